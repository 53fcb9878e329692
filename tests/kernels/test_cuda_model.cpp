// The whole model on the CUDA path (the kernels of layers/, run by the emulator in CI)
// against the CPU reference: same weights, data and routes, five AdamW steps. fp32 storage:
// per-step losses to 1e-4 and first-step gradients to 1e-5 relative; bf16 storage: on the
// same weights each step, losses to 2e-3 and first-step gradients to 2e-2.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "optim/adamw.h"
#include "src/cpu_ops.h"
#include "src/cuda_ops.h"
#include "src/model.h"
#include "tests/fixtures.h"
#include "tests/rel_error.h"

using namespace rkv;
using kcheck::rel_error;

std::vector<ModelConfig> tiny_configs() {
    return {test::tiny_config("gpt2"), test::tiny_config("llama3"), test::tiny_config("qwen3")};
}

// Trains ref (fp32 on the CPU) and the CUDA path storing S side by side from the same
// weights on the same batches and routes, five AdamW steps; checks each step's loss within
// loss_tol and the first step's gradients within grad_tol (relative; later, as a tiny model
// learns, its gradients become sums that nearly cancel, and bf16's rounding shows up to 10%
// in some tensors). With `resync`, the CUDA model starts every step from ref's weights, so
// that each step compares the two on the same weights (bf16: AdamW turns the rounding of
// tiny gradients into whole steps, and a tiny model at lr 1e-2 amplifies that within a few
// steps); without, the weights are its own.
template <class S>
void train_side_by_side(const std::vector<ModelConfig>& configs, double loss_tol, double grad_tol, bool resync) {
    for (const ModelConfig& c : configs) {
        INFO(c.model_type << " head_dim " << c.head_dim);
        const int B = 2, T_ = 7, L = c.num_hidden_layers;
        std::mt19937_64 rng(std::random_device{}());
        CpuOps<float> cpu;
        CudaOps<S> gpu;
        Model<float> ref_model(c, cpu, B, T_);
        Model<S> model(c, gpu, B, T_);
        std::vector<float> params(ref_model.table.total);
        init_params(params.data(), ref_model.table, c, rng());
        const AdamWConfig adamw{0.9, 0.99, 1e-8, 0.1, false, 1.0};
        AdamW<float> ref_opt(ref_model.table, adamw, cpu);
        AdamW<S> opt(model.table, adamw, gpu);
        ref_opt.set_weights(ref_model.params, params);
        opt.set_weights(model.params, params);
        RouteSampler sampler(L, 0.5);
        for (long step = 1; step <= 5; step++) {
            if (resync) opt.set_weights(model.params, ref_opt.weights(ref_model.params));
            auto [inputs, targets] = test::random_batch(B * T_, c.vocab_size, rng);
            const Route route = sampler.sample({7, uint64_t(step), 0});
            ref_model.zero_grad();
            model.zero_grad();
            const double ref_loss = ref_model.forward_backward(inputs.data(), targets.data(), route);
            const double loss = model.forward_backward(inputs.data(), targets.data(), route);
            INFO("step " << step << " route " << route.str() << " loss " << loss << " ref " << ref_loss);
            CHECK(std::abs(loss - ref_loss) < loss_tol);
            const double ref_norm = std::sqrt(ref_opt.grad_sq(ref_model.grads)),
                         norm = std::sqrt(opt.grad_sq(model.grads));
            if (step == 1) {  // from the random initial weights
                std::vector<float> g(model.table.total), ref_g(model.table.total);
                gpu.download(g.data(), model.grads, g.size());
                cpu.download(ref_g.data(), ref_model.grads, ref_g.size());
                CHECK(rel_error(g, ref_g) < grad_tol);
                // The norm the optimizer clips with is these gradients' (its distance to
                // ref_norm is bounded by the gradients' own error, checked above).
                double sum_sq = 0;
                for (float x : g) sum_sq += double(x) * x;
                CHECK(norm == Approx(std::sqrt(sum_sq)).epsilon(1e-9));
            }
            ref_opt.step(ref_model.params, ref_model.grads, 1e-2, step, ref_norm);
            opt.step(model.params, model.grads, 1e-2, step, norm);
        }
    }
}

TEST_CASE("five fp32 training steps on the CUDA path give the CPU path's losses", "[cuda][model]") {
    train_side_by_side<float>(tiny_configs(), 1e-4, 1e-5, false);
}

// bf16 storage rounds every activation to 8 bits of mantissa (relative 2^-9): on the same
// weights the loss stays within 2e-3 of fp32's (measured over 40 runs: up to 7e-4) and the
// first gradients within 2e-2 relative (measured over 40 runs: up to 1.1e-2 at head dim 64,
// 8e-3 elsewhere: the whole model's rounding compounding what each kernel keeps under 1e-2). Head dim 64 runs attention
// on the tensor-core kernel, the tiny head dims on the plain one.
TEST_CASE("bf16 training steps on the CUDA path match the CPU path on the same weights", "[cuda][model][bf16]") {
    std::vector<ModelConfig> configs = tiny_configs();
    ModelConfig wide = test::tiny_config("qwen3");
    wide.head_dim = 64;
    configs.push_back(wide);
    train_side_by_side<__nv_bfloat16>(configs, 2e-3, 2e-2, true);
}
