// Activation recomputation on the CUDA path (the emulator in CI): --recompute mlp and layer
// give none's losses and gradients bit for bit, in fp32 and bf16 storage, every family, under
// routes that read earlier layers (tests/recompute_check.h). The recomputation reruns the
// forward's kernels on the bits the forward stored, so no tolerance applies.
#include <catch2/catch.hpp>

#include "src/cuda_ops.h"
#include "tests/recompute_check.h"

using namespace rkv;

TEST_CASE("CUDA path: recompute mlp and layer give none's losses and gradients bitwise", "[cuda][model][recompute]") {
    SECTION("fp32 storage") {
        CudaOps<float> ops;
        test::check_recompute_bitwise<float>(ops);
    }
    SECTION("bf16 storage") {
        CudaOps<__nv_bfloat16> ops;
        test::check_recompute_bitwise<__nv_bfloat16>(ops);
    }
}
