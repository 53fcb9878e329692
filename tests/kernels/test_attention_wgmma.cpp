// layers/attention_wgmma.cu (forward and backward) against ref/attention.h in double on the same
// bf16-rounded inputs, through attention_check.h: out to bf16_bound, lse (float) to 1e-5, so that
// it is the natural-log lse the backward takes; dq (written), dk, dv (what the backward added)
// to bf16_bound, the backward run once on ref's out and lse and once on this forward's (routed and
// same-bits checks). Head dims 64 and 128; MHA, GQA and MQA; lengths that are not multiples of
// the tiles (128 queries or keys a block, 64 a backward step); routes read from device memory,
// with two layers reading one source, whose dk, dv get both layers' sum; the same bits under
// every emulator thread order (refusals: test_attention_kernels.cpp). On a GPU without
// sm_90a code or of another compute capability, every case is skipped.
#include "attention_check.h"

#include "layers/attention_wgmma.cuh"

using namespace kcheck;
using namespace kcheck::attn;

namespace {

// q and k in [-1.5, 1.5]: scores of a few units at HS 64 and 128, as attention_mma's test.
const Kernel<bf16> wg{.row = table_row("wgmma"), .qk = 1.5f, .lse_bound = fp32_bound, .one_key_bound = 1e-2};

// Catch2 2 has no SKIP: a warning, and the case returns.
bool skipped() {
    if (rkv::cuda::attention_wgmma_supported()) return false;
    WARN("attention_wgmma: not supported by this build or GPU (needs sm_90a and compute capability 9.0); skipped");
    return true;
}

}  // namespace

TEST_CASE("attention_wgmma matches ref: head dims 64 and 128, MHA, GQA, MQA, any length",
          "[attention][attention_wgmma]") {
    if (skipped()) return;
    const Shape shape = GENERATE(
        // HS 64: one key; a partial tile; two query blocks and key tiles, GQA; MQA with a partial second
        // block; whole tiles only (two blocks, each's last backward step on its diagonal)
        Shape{2, 1, 4, 2, 64}, Shape{1, 17, 2, 2, 64}, Shape{1, 130, 4, 2, 64}, Shape{1, 200, 2, 1, 64},
        Shape{1, 256, 2, 1, 64},
        // HS 128: one key; MHA; a group of 4; three query blocks, GQA (steps past both diagonals)
        Shape{1, 1, 2, 2, 128}, Shape{1, 70, 2, 2, 128}, Shape{1, 130, 4, 1, 128}, Shape{2, 300, 4, 2, 128});
    check_layer(wg, shape);
}

TEST_CASE("attention_wgmma reads the route from device memory and writes or adds to the source",
          "[attention][attention_wgmma]") {
    if (skipped()) return;
    const Shape shape = GENERATE(Shape{2, 45, 4, 2, 64}, Shape{1, 150, 2, 1, 128});
    check_routed(wg, shape);
}

TEST_CASE("attention_wgmma gives the same bits in every thread order and every run", "[attention][attention_wgmma]") {
    if (skipped()) return;
    const Shape shape = GENERATE(Shape{1, 130, 4, 2, 64}, Shape{1, 260, 2, 1, 128});
    check_same_bits(wg, shape);
}
