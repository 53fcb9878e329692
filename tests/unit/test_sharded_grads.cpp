// ZeRO-2's gradient windows (src/sharded_grads.h) in one process: for each rank r of W, the
// shard the windows accumulate over micro-batches is bitwise the slice [r * shard, + shard) of
// the whole gradient buffer a plain backward accumulates, zeros past the table. One process
// has nothing to reduce (LocalComm), so this checks the windows themselves: where each range is
// written, the running sum carried into the next micro-batch, the tied embeddings' own window.
// The sums over ranks are tests/cli/test_train_mpi.py's (and tests/dist/test_comm.cpp's).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "dist/comm.h"
#include "src/cpu_ops.h"
#include "src/model.h"
#include "src/sharded_grads.h"
#include "tests/fixtures.h"

using namespace rkv;

TEST_CASE("ZeRO-2's windows accumulate each rank's shard of the whole buffer, bitwise", "[dist][model]") {
    for (auto family : {"gpt2", "llama3", "qwen3"}) {
        const ModelConfig c = test::tiny_config(family);
        std::mt19937_64 rng(std::random_device{}());
        CpuOps<float> ops;
        Model<float> whole(c, ops, 2, 5);
        test::random_params(whole.params, whole.table, rng);
        const ParamTable& table = whole.table;
        std::vector<std::vector<int>> inputs, targets;
        for (int micro = 0; micro < 3; micro++) {
            auto [in, tg] = test::random_batch(10, c.vocab_size, rng);
            inputs.push_back(in);
            targets.push_back(tg);
        }
        const Route route{{0, 0, 0, 3}};
        whole.zero_grad();
        for (int micro = 0; micro < 3; micro++)
            whole.forward_backward(inputs[micro].data(), targets[micro].data(), route, 0.5);

        const bool tied = table.lm_head == table.wte;
        const size_t windows = ShardedGrads<float>::working_elements(table);
        CHECK(windows < table.total);
        for (size_t world : {1, 2, 3})
            for (size_t rank = 0; rank < world; rank++) {
                INFO(family << (tied ? " (tied)" : "") << ", rank " << rank << " of " << world);
                const size_t shard = (table.total + world - 1) / world;
                Model<float> model(c, ops, 2, 5, shard * world, true, Recompute::none, windows);
                std::copy(whole.params, whole.params + table.total, model.params);
                std::fill(model.grads, model.grads + windows, std::nanf(""));  // every window is zeroed first
                LocalComm comm;
                ShardedGrads<float> grads(model, ops, comm, shard * rank, shard);
                grads.zero();
                for (int micro = 0; micro < 3; micro++) {
                    model.forward_backward(inputs[micro].data(), targets[micro].data(), route, 0.5);
                    grads.finish();
                }
                std::vector<float> want(shard, 0.0f);
                for (size_t i = 0; i < shard && shard * rank + i < table.total; i++)
                    want[i] = whole.grads[shard * rank + i];
                CHECK(std::memcmp(grads.shard(), want.data(), shard * sizeof(float)) == 0);
            }
    }
}
