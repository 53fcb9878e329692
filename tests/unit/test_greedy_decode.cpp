// Greedy decoding through the shared KV cache gives the tokens that recomputing the whole
// sequence under the same route gives at every step (eval_rkv --qa's answers).
#include <catch2/catch.hpp>

#include <random>

#include "src/cpu_ops.h"
#include "src/greedy_decode.h"
#include "tests/fixtures.h"

using namespace rkv;

namespace {

// The reference: each step runs the whole sequence so far through Model::forward (no cache)
// and takes the most likely next token.
std::vector<int> greedy_recompute(Model<double>& model, const Route& route, std::vector<int> seq, int max_new,
                                  int stop) {
    const int V = model.config.vocab_size;
    std::vector<int> out;
    while (int(out.size()) < max_new) {
        const int n = int(seq.size());
        std::vector<int> inputs(model.T, 0);  // positions after n do not change the ones before
        std::copy(seq.begin(), seq.end(), inputs.begin());
        model.forward(inputs.data(), nullptr, route);
        const std::vector<double> row = model.logits(n, n - 1);  // (1, n ... T - 1, V): the first row
        const int next = argmax(row.data(), V);
        out.push_back(next);
        seq.push_back(next);
        if (next == stop) break;
    }
    return out;
}

}  // namespace

TEST_CASE("greedy decoding through the shared KV cache equals recomputing the sequence", "[qa][decode]") {
    for (auto family : {"gpt2", "llama3", "qwen3"}) {
        INFO(family);
        ModelConfig c = test::tiny_config(family);
        c.max_position_embeddings = 24;
        c.num_hidden_layers = 6;
        const int L = c.num_hidden_layers, max_len = c.max_position_embeddings;
        std::mt19937_64 rng(std::random_device{}());
        CpuOps<double> ops;
        Model<double> full(c, ops, 1, max_len);
        test::random_params(full.params, full.table, rng);
        for (const Route& route : {all_own(L), keep_every(L, 2), keep_every(L, 4), keep_layers(L, {0, 3, 5})}) {
            INFO("route " << route.str());
            for (int chunk : {1, 4, 16}) {  // the prompt's chunks: the decode path, several, one
                INFO("chunk " << chunk);
                Model<double> cached(c, ops, 1, chunk, 0, false);
                ops.copy_bytes(cached.params, full.params, full.table.total * sizeof(double));
                std::vector<int> prompt(7);
                for (int& t : prompt) t = int(rng() % c.vocab_size);
                const int max_new = max_len - int(prompt.size());
                KvCache<double> cache(ops, c, route, 1, max_len);
                const std::vector<int> got = greedy_decode(cached, cache, prompt, max_new, [](int) { return false; });
                CHECK(got.size() == size_t(max_new));
                CHECK(got == greedy_recompute(full, route, prompt, max_new, -1));
                // A stop token ends the answer and is returned with it.
                const int stop = got[3];
                KvCache<double> again(ops, c, route, 1, max_len);
                const std::vector<int> stopped =
                    greedy_decode(cached, again, prompt, max_new, [&](int t) { return t == stop; });
                CHECK(stopped == greedy_recompute(full, route, prompt, max_new, stop));
                CHECK(stopped.back() == stop);
                CHECK(stopped.size() <= 4);
            }
        }
    }
}
