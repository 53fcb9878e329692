// layers/attention_plain.cu against ref/attention.h (double), through attention_check.h: MHA, GQA
// and MQA; lengths that are not multiples of the 32-row tile; head dims 4 to 128; routes read
// from device memory; the same bits in every thread order. Storage float, and bf16 on a few
// shapes: ref gets the inputs (and the out the backward reads) as stored. Every output within
// bound_for the storage; lse, float in both, within the fp32 bound.
#include "attention_check.h"

using namespace kcheck;
using namespace kcheck::attn;

namespace {

// lse is float whatever the storage: the fp32 bound; one key leaves dq and dk only the
// rounding of a zero sum, in either storage.
template <class S>
const Kernel<S> plain{.row = table_row("plain"), .qk = 2.0f, .lse_bound = fp32_bound, .one_key_bound = 1e-5};

}  // namespace

TEST_CASE("attention matches ref: MHA, GQA, MQA, any length, head dims 4 to 128", "[attention][attention_plain]") {
    const Shape shape = GENERATE(
        // MHA
        Shape{2, 33, 3, 3, 16}, Shape{1, 70, 2, 2, 64}, Shape{1, 1, 2, 2, 64},
        // GQA
        Shape{2, 5, 4, 2, 16}, Shape{1, 70, 4, 2, 64}, Shape{1, 64, 6, 2, 32},
        // MQA
        Shape{2, 33, 4, 1, 16}, Shape{1, 97, 2, 1, 64},
        // small and odd head dims
        Shape{2, 19, 2, 1, 4}, Shape{1, 37, 3, 3, 6}, Shape{1, 40, 2, 2, 24},
        // several key tiles; a group of 4
        Shape{2, 130, 4, 2, 64}, Shape{1, 96, 8, 2, 16},
        // the largest head dim
        Shape{1, 70, 2, 1, 128}, Shape{1, 257, 4, 2, 128});
    check_layer(plain<float>, shape);
}

TEST_CASE("bf16 attention matches ref: GQA and MQA, a partial tile", "[attention][attention_plain]") {
    const Shape shape = GENERATE(Shape{2, 33, 4, 2, 16}, Shape{1, 40, 2, 1, 64});
    check_layer(plain<bf16>, shape);
}

TEMPLATE_TEST_CASE("attention reads the route from device memory and writes or adds to the source",
                   "[attention][attention_plain]", float, bf16) {
    check_routed(plain<TestType>, Shape{2, 45, 4, 2, 16});
}

TEMPLATE_TEST_CASE("attention gives the same bits in every thread order", "[attention][attention_plain]", float, bf16) {
    check_same_bits(plain<TestType>, Shape{2, 40, 4, 2, 16});
}
