// layers/embedding.cu against ref/embedding.h, for float and bf16 storage (ref gets the
// inputs as stored; the weight gradients are float either way, held to the fp32 bound), in
// both thread orders.
#include "kernel_check.h"

#include "layers/embedding.cuh"
#include "ref/embedding.h"

using namespace kcheck;

TEMPLATE_TEST_CASE("embedding forward matches ref, with and without positions", "[embedding]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const int B = 3, T = 13, C = 72, V = 257, maxT = 16;
    const bool positions = GENERATE(true, false);
    const InOrder in_order(order);
    const auto tokens = random_ints(size_t(B) * T, 0, V - 1);
    const auto wte = as_stored<S>(random_floats(size_t(V) * C)), wpe = as_stored<S>(random_floats(size_t(maxT) * C));
    Device<int> d_tokens(tokens);
    Device<S> d_wte(to_storage<S>(wte)), d_wpe(to_storage<S>(wpe)), d_out(size_t(B) * T * C);
    rkv::cuda::embedding_forward(rkv::EmbeddingArgs<S, float>{.B = B,
                                                              .T = T,
                                                              .C = C,
                                                              .tokens = d_tokens.get(),
                                                              .wte = d_wte.get(),
                                                              .wpe = positions ? d_wpe.get() : nullptr,
                                                              .out = d_out.get()},
                                 nullptr);

    std::vector<double> ref(size_t(B) * T * C);
    const auto wpe_ref = to_double(wpe);
    const auto wte_ref = to_double(wte);
    rkv::ref::embedding_forward(rkv::EmbeddingArgs<double, double>{.B = B,
                                                                   .T = T,
                                                                   .C = C,
                                                                   .tokens = tokens.data(),
                                                                   .wte = wte_ref.data(),
                                                                   .wpe = positions ? wpe_ref.data() : nullptr,
                                                                   .out = ref.data()});
    check_close(positions ? "embedding_forward (wte + wpe)" : "embedding_forward (wte)", to_floats(d_out.download()),
                ref, bound_for<S>());
}

TEMPLATE_TEST_CASE("embedding backward matches ref and is deterministic", "[embedding]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const int B = 4, T = 13, C = 72, V = 257, maxT = 16;
    const bool positions = GENERATE(true, false);
    const InOrder in_order(order);
    // Few distinct tokens, so that many positions share a row of dwte.
    auto tokens = random_ints(size_t(B) * T, 0, 9);
    tokens[5] = V - 1;
    const auto dout = as_stored<S>(random_floats(size_t(B) * T * C));
    const auto dwte0 = random_floats(size_t(V) * C), dwpe0 = random_floats(size_t(maxT) * C);
    Device<int> d_tokens(tokens);
    Device<S> d_dout(to_storage<S>(dout));
    Device<float> d_dwte(dwte0), d_dwpe(dwpe0);
    const auto run = [&] {
        d_dwte.upload(dwte0);
        d_dwpe.upload(dwpe0);
        rkv::cuda::embedding_backward(rkv::EmbeddingArgs<S, float>{.B = B,
                                                                   .T = T,
                                                                   .C = C,
                                                                   .tokens = d_tokens.get(),
                                                                   .dout = d_dout.get(),
                                                                   .dwte = d_dwte.get(),
                                                                   .dwpe = positions ? d_dwpe.get() : nullptr},
                                      nullptr);
    };
    run();
    const auto dwte = d_dwte.download(), dwpe = d_dwpe.download();

    auto dwte_ref = to_double(dwte0), dwpe_ref = to_double(dwpe0);
    const auto dout_ref = to_double(dout);
    rkv::ref::embedding_backward(rkv::EmbeddingArgs<double, double>{.B = B,
                                                                    .T = T,
                                                                    .C = C,
                                                                    .tokens = tokens.data(),
                                                                    .dout = dout_ref.data(),
                                                                    .dwte = dwte_ref.data(),
                                                                    .dwpe = positions ? dwpe_ref.data() : nullptr});
    check_close("embedding_backward dwte", dwte, dwte_ref, fp32_bound);
    check_close("embedding_backward dwpe", dwpe, dwpe_ref, fp32_bound);

    run();
    CHECK(d_dwte.download() == dwte);
    CHECK(d_dwpe.download() == dwpe);
}
