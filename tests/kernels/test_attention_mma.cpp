// layers/attention_mma.cu against ref/attention.h in double on the same bf16-rounded inputs,
// through attention_check.h: out, dq, dk, dv to bf16_bound; lse (float) to 1e-5, so that it is the
// plain kernel's natural-log lse and either backward takes either's (the backward runs on
// ref's lse). Head dims 64 and 128; MHA, GQA and MQA; lengths that are not multiples of the
// tiles (64 keys, 64 or 128 queries); routes read from device memory, with two layers reading
// one source; the same bits under every emulator thread order (refusals: test_attention_kernels.cpp).
#include "attention_check.h"

#include "layers/attention_mma.cuh"

using namespace kcheck;
using namespace kcheck::attn;

namespace {

// q and k in [-1.5, 1.5]: q.k ~ HS / 4 before the 1 / sqrt(HS), a few units' scores at HS 128
// too. One key leaves dq and dk the rounding of a bf16 sum.
const Kernel<bf16> tc{.row = table_row("mma"), .qk = 1.5f, .lse_bound = fp32_bound, .one_key_bound = 1e-2};

}  // namespace

TEST_CASE("attention_mma matches ref: head dims 64 and 128, MHA, GQA, MQA, any length", "[attention][attention_mma]") {
    const Shape shape = GENERATE(
        // HS 64: one partial tile; one key; several key tiles and two forward blocks, GQA, MQA
        Shape{1, 37, 2, 2, 64}, Shape{2, 1, 4, 2, 64}, Shape{1, 130, 4, 2, 64}, Shape{1, 200, 2, 1, 64},
        // HS 128: MHA, and a group of 4
        Shape{1, 70, 2, 2, 128}, Shape{1, 130, 4, 1, 128});
    check_layer(tc, shape);
}

TEST_CASE("attention_mma reads the route from device memory and writes or adds to the source",
          "[attention][attention_mma]") {
    check_routed(tc, Shape{2, 45, 4, 2, 64});
}

TEST_CASE("attention_mma gives the same bits in every thread order and every run", "[attention][attention_mma]") {
    const Shape shape = GENERATE(Shape{1, 130, 4, 2, 64}, Shape{1, 70, 2, 1, 128});
    check_same_bits(tc, shape);
}
