// layers/cross_entropy.cu against ref/cross_entropy.h (double), in both thread orders.
#include "kernel_check.h"

#include "layers/cross_entropy.cuh"
#include "ref/cross_entropy.h"

using namespace kcheck;

namespace {
struct Shape {
    int N, V;
};
}  // namespace

TEST_CASE("cross entropy forward and backward match ref, skipping target -1", "[cross_entropy]") {
    const auto order = GENERATE(from_range(orders()));
    const Shape shape = GENERATE(Shape{13, 257}, Shape{4, 1500}, Shape{3, 5});
    const InOrder in_order(order);
    const int N = shape.N, V = shape.V;
    INFO("N " << N << " V " << V);
    const auto logits = random_floats(size_t(N) * V, -8.0f, 8.0f);
    auto targets = random_ints(N, 0, V - 1);
    targets[1] = -1;
    targets[N - 1] = V - 1;
    int counted = 0;
    for (int t : targets) counted += t >= 0;
    const float dloss = 1.0f / float(counted);

    Device<float> d_logits(logits), d_losses(N);
    Device<int> d_targets(targets);
    rkv::cuda::cross_entropy_forward(d_losses.get(), d_logits.get(), d_targets.get(), N, V, nullptr);
    std::vector<double> losses_ref(N);
    rkv::ref::cross_entropy_forward(losses_ref.data(), to_double(logits).data(), targets.data(), N, V);
    const auto losses = d_losses.download();
    check_close("cross_entropy_forward", losses, losses_ref);
    CHECK(losses[1] == 0.0f);

    const auto dlogits0 = random_floats(size_t(N) * V);
    Device<float> d_dlogits(dlogits0);
    rkv::cuda::cross_entropy_backward(d_dlogits.get(), d_logits.get(), d_targets.get(), dloss, N, V, nullptr);
    auto dlogits_ref = to_double(dlogits0);
    rkv::ref::cross_entropy_backward(dlogits_ref.data(), to_double(logits).data(), targets.data(), double(dloss), N,
                                     V);
    const auto dlogits = d_dlogits.download();
    check_close("cross_entropy_backward", dlogits, dlogits_ref);
    // The skipped row is untouched.
    CHECK(std::equal(dlogits.begin() + V, dlogits.begin() + 2 * V, dlogits0.begin() + V));
}
