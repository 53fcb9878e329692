// The whole model on the CUDA path (the kernels of layers/, run by the emulator in CI)
// against the CPU reference: same weights, data and routes, five AdamW steps, per-step
// losses to 1e-4 and first-step gradients to 1e-5 relative.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "optim/adamw.h"
#include "src/cpu_ops.h"
#include "src/cuda_ops.h"
#include "src/model.h"
#include "tests/fixtures.h"

using namespace rkv;

namespace {

double rel_error(const std::vector<float>& x, const std::vector<float>& ref) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < x.size(); i++) {
        diff += (double(x[i]) - ref[i]) * (double(x[i]) - ref[i]);
        norm += double(ref[i]) * ref[i];
    }
    return std::sqrt(diff / norm);
}

}  // namespace

TEST_CASE("five training steps on the CUDA path give the CPU path's losses", "[cuda][model]") {
    for (auto family : {"gpt2", "llama3", "qwen3"}) {
        INFO(family);
        const ModelConfig c = test::tiny_config(family);
        const int B = 2, T = 7, L = c.num_hidden_layers;
        std::mt19937_64 rng(std::random_device{}());
        CpuOps<float> cpu;
        CudaOps gpu;
        Model<float> ref_model(c, cpu, B, T), model(c, gpu, B, T);
        std::vector<float> params(ref_model.table.total);
        init_params(params.data(), ref_model.table, c, rng());
        cpu.upload(ref_model.params, params.data(), params.size());
        gpu.upload(model.params, params.data(), params.size());
        const AdamWConfig adamw{0.9, 0.99, 1e-8, 0.1, false, 1.0};
        AdamW ref_opt(ref_model.table, adamw, cpu), opt(model.table, adamw, gpu);
        RouteSampler sampler(L, 0.5);
        for (long step = 1; step <= 5; step++) {
            auto [inputs, targets] = test::random_batch(B * T, c.vocab_size, rng);
            const Route route = sampler.sample({7, uint64_t(step), 0});
            ref_model.zero_grad();
            model.zero_grad();
            const double ref_loss = ref_model.forward_backward(inputs.data(), targets.data(), route);
            const double loss = model.forward_backward(inputs.data(), targets.data(), route);
            INFO("step " << step << " route " << route.str());
            CHECK(std::abs(loss - ref_loss) < 1e-4);
            if (step == 1) {
                std::vector<float> g(model.table.total), ref_g(model.table.total);
                gpu.download(g.data(), model.grads, g.size());
                cpu.download(ref_g.data(), ref_model.grads, ref_g.size());
                CHECK(rel_error(g, ref_g) < 1e-5);
            }
            const double ref_norm = std::sqrt(ref_opt.grad_sq(ref_model.grads)), norm = std::sqrt(opt.grad_sq(model.grads));
            CHECK(norm == Approx(ref_norm).epsilon(1e-4));   // AdamW turns rounding of tiny gradients into full steps
            ref_opt.step(ref_model.params, ref_model.grads, 1e-2, step, ref_norm);
            opt.step(model.params, model.grads, 1e-2, step, norm);
        }
    }
}
