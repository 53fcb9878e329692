// cuBLAS, cuBLASLt, NCCL and cuRAND under the emulator: results against CPU
// loops, the libraries' status codes, and the operand checks that catch a
// wrong transpose, leading dimension or batch stride.
#include <catch2/catch.hpp>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <curand.h>
#include <nccl.h>

#include <cmath>
#include <random>
#include <vector>

#include "tests/emu/device_buffer.h"

namespace {

using emu_test::DeviceBuffer;

std::vector<float> random_floats(std::size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(gen);
    return v;
}

// op(X)[r, c] of a column-major matrix with leading dimension ld.
float at(const std::vector<float>& x, bool trans, int ld, int r, int c) {
    return trans ? x[c + static_cast<std::size_t>(r) * ld] : x[r + static_cast<std::size_t>(c) * ld];
}

// C = alpha op(A) op(B) + beta C, column-major, in double.
std::vector<float> reference(bool ta, bool tb, int m, int n, int k, float alpha, const std::vector<float>& a,
                             int lda, const std::vector<float>& b, int ldb, float beta, std::vector<float> c,
                             int ldc) {
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
            double s = 0;
            for (int p = 0; p < k; ++p) s += double(at(a, ta, lda, i, p)) * at(b, tb, ldb, p, j);
            float& out = c[i + static_cast<std::size_t>(j) * ldc];
            out = static_cast<float>(alpha * s + (beta == 0 ? 0.0 : double(beta) * out));
        }
    return c;
}

void require_close(const std::vector<float>& got, const std::vector<float>& want, double tol) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("element " << i);
        REQUIRE(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])));
    }
}

struct Handle {
    cublasHandle_t h;
    Handle() { REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS); }
    ~Handle() { cublasDestroy(h); }
};

TEST_CASE("cublasGemmEx and cublasSgemm match a CPU loop in every transpose", "[blas]") {
    Handle blas;
    const int m = 13, n = 7, k = 9, pad = 3;
    for (const bool ta : {false, true})
        for (const bool tb : {false, true}) {
            const int lda = (ta ? k : m) + pad, ldb = (tb ? n : k) + pad, ldc = m + pad;
            const std::vector<float> a = random_floats(static_cast<std::size_t>(lda) * (ta ? m : k), 1),
                                     b = random_floats(static_cast<std::size_t>(ldb) * (tb ? k : n), 2),
                                     c = random_floats(static_cast<std::size_t>(ldc) * n, 3);
            DeviceBuffer<float> da(a), db(b), dc(c);
            const float alpha = 0.5f, beta = 2.0f;
            const auto opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
            REQUIRE(cublasGemmEx(blas.h, opa, opb, m, n, k, &alpha, da.get(), CUDA_R_32F, lda, db.get(),
                                 CUDA_R_32F, ldb, &beta, dc.get(), CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
            const std::vector<float> want = reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            require_close(dc.to_host(), want, 1e-5);
            dc.from_host(c);
            REQUIRE(cublasSgemm(blas.h, opa, opb, m, n, k, &alpha, da.get(), lda, db.get(), ldb, &beta,
                                dc.get(), ldc) == CUBLAS_STATUS_SUCCESS);
            require_close(dc.to_host(), want, 1e-5);
        }
}

TEST_CASE("bf16 GEMM into fp32, and beta = 0 never reads C", "[blas]") {
    Handle blas;
    const int m = 16, n = 8, k = 32;
    std::vector<float> a = random_floats(m * k, 4), b = random_floats(k * n, 5);
    std::vector<__nv_bfloat16> ab(a.size()), bb(b.size());
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = __bfloat162float(ab[i] = __float2bfloat16(a[i]));
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = __bfloat162float(bb[i] = __float2bfloat16(b[i]));
    DeviceBuffer<__nv_bfloat16> da(ab), db(bb);
    DeviceBuffer<float> dc(m * n);  // fresh: NaN
    const float one = 1.0f, zero = 0.0f;
    REQUIRE(cublasGemmEx(blas.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, da.get(), CUDA_R_16BF, m, db.get(),
                         CUDA_R_16BF, k, &zero, dc.get(), CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
    require_close(dc.to_host(),
                  reference(false, false, m, n, k, 1, a, m, b, k, 0, std::vector<float>(m * n), m), 1e-5);
}

TEST_CASE("cuBLAS argument checks return the library's status", "[blas]") {
    Handle blas;
    DeviceBuffer<float> a(64), b(64), c(64);
    const float one = 1.0f;
    const auto gemm = [&](cublasHandle_t h, int m, int lda, int ldc, cudaDataType ct) {
        return cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, 8, 8, &one, a.get(), CUDA_R_32F, lda, b.get(),
                            CUDA_R_32F, 8, &one, c.get(), ct, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    CHECK(gemm(blas.h, 8, 8, 8, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    CHECK(gemm(blas.h, -1, 8, 8, CUDA_R_32F) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(gemm(blas.h, 8, 7, 8, CUDA_R_32F) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(gemm(blas.h, 8, 8, 7, CUDA_R_32F) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(gemm(blas.h, 8, 8, 8, CUDA_R_8I) == CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(gemm(nullptr, 8, 8, 8, CUDA_R_32F) == CUBLAS_STATUS_NOT_INITIALIZED);
}

TEST_CASE("a wrong leading dimension, transpose or batch stride is caught", "[blas][bugs]") {
    Handle blas;
    const int m = 32, n = 16, k = 8;
    DeviceBuffer<float> a(m * k), b(k * n), c(m * n);
    a.fill(1), b.fill(1);
    const float one = 1.0f, zero = 0.0f;
    // A is m x k with lda = m; lda = m + 1 is legal for the library but reads
    // past the end of A.
    REQUIRE_THROWS_WITH(
        cublasGemmEx(blas.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a.get(), CUDA_R_32F, m + 1, b.get(),
                     CUDA_R_32F, k, &zero, c.get(), CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        Catch::Contains("A (32 x 8, ld 33) ends 28 bytes past the end"));
    // B holds k x n; declared transposed (n x k) with ldb = n + 16 it reaches
    // far past its end.
    REQUIRE_THROWS_WITH(cublasSgemm(blas.h, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, &one, a.get(), m, b.get(),
                                    n + 16, &zero, c.get(), m),
                        Catch::Contains("cublasSgemm: B (16 x 8, ld 32) ends 448 bytes past"));
    // Two batches of A, B and C with a batch stride one element too large.
    DeviceBuffer<float> a2(2 * m * k), b2(2 * k * n), c2(2 * m * n);
    a2.fill(1), b2.fill(1);
    const auto batched = [&](long long stride_b) {
        return cublasGemmStridedBatchedEx(blas.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a2.get(),
                                          CUDA_R_32F, m, m * k, b2.get(), CUDA_R_32F, k, stride_b, &zero,
                                          c2.get(), CUDA_R_32F, m, m * n, 2, CUBLAS_COMPUTE_32F,
                                          CUBLAS_GEMM_DEFAULT);
    };
    REQUIRE(batched(k * n) == CUBLAS_STATUS_SUCCESS);
    for (float v : c2.to_host()) REQUIRE(v == static_cast<float>(k));
    REQUIRE_THROWS_WITH(batched(k * n + 1), Catch::Contains("batch stride 129 x 2) ends 4 bytes past"));
    // A host pointer instead of device memory.
    std::vector<float> host(m * k);
    REQUIRE_THROWS_WITH(cublasSgemm(blas.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, host.data(), m, b.get(),
                                    k, &zero, c.get(), m),
                        Catch::Contains("is not in device memory"));
}

// Row-major GPT-style linear layer on cuBLASLt: out (T x OC) = inp (T x C) W^T
// + bias, written column-major as out^T (OC x T) = W (OC x C) . inp^T.
struct Lt {
    cublasLtHandle_t h;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    Lt(int oc, int t, int ch, cublasLtEpilogue_t epilogue, void* bias, void* aux, std::int64_t aux_ld) {
        REQUIRE(cublasLtCreate(&h) == CUBLAS_STATUS_SUCCESS);
        REQUIRE(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) ==
                CUBLAS_STATUS_SUCCESS);
        REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) ==
                CUBLAS_STATUS_SUCCESS);
        REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                               sizeof epilogue) == CUBLAS_STATUS_SUCCESS);
        if (bias)
            REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                   sizeof bias) == CUBLAS_STATUS_SUCCESS);
        if (aux) {
            REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                                                   sizeof aux) == CUBLAS_STATUS_SUCCESS);
            REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                                   sizeof aux_ld) == CUBLAS_STATUS_SUCCESS);
        }
        // W stored row-major OC x C is column-major C x OC; read transposed.
        REQUIRE(cublasLtMatrixLayoutCreate(&a, CUDA_R_32F, ch, oc, ch) == CUBLAS_STATUS_SUCCESS);
        REQUIRE(cublasLtMatrixLayoutCreate(&b, CUDA_R_32F, ch, t, ch) == CUBLAS_STATUS_SUCCESS);
        REQUIRE(cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, oc, t, oc) == CUBLAS_STATUS_SUCCESS);
    }
    ~Lt() {
        cublasLtMatrixLayoutDestroy(a);
        cublasLtMatrixLayoutDestroy(b);
        cublasLtMatrixLayoutDestroy(c);
        cublasLtMatmulDescDestroy(op);
        cublasLtDestroy(h);
    }
    cublasStatus_t run(const float* w, const float* inp, float* out) {
        const float one = 1.0f, zero = 0.0f;
        return cublasLtMatmul(h, op, &one, w, a, inp, b, &zero, out, c, out, c, nullptr, nullptr, 0, nullptr);
    }
};

float gelu(float x) { return 0.5f * x * (1.0f + std::tanh(0.7978845608f * (x + 0.044715f * x * x * x))); }

TEST_CASE("cuBLASLt matmul with its epilogues", "[blas]") {
    const int oc = 16, t = 5, ch = 8;   // aux's leading dimension (oc) must be a multiple of 8
    const std::vector<float> w = random_floats(oc * ch, 6), inp = random_floats(t * ch, 7),
                             bias = random_floats(oc, 8);
    DeviceBuffer<float> dw(w), dinp(inp), dbias(bias), out(oc * t), aux(oc * t);
    std::vector<float> pre(oc * t);
    for (int r = 0; r < t; ++r)
        for (int o = 0; o < oc; ++o) {
            double s = 0;
            for (int i = 0; i < ch; ++i) s += double(inp[r * ch + i]) * w[o * ch + i];
            pre[r * oc + o] = static_cast<float>(s);
        }
    const auto expect = [&](bool with_bias, bool with_gelu) {
        std::vector<float> e(pre);
        for (int r = 0; r < t; ++r)
            for (int o = 0; o < oc; ++o) {
                float& v = e[r * oc + o];
                if (with_bias) v += bias[o];
                if (with_gelu) v = gelu(v);
            }
        return e;
    };
    SECTION("DEFAULT") {
        Lt lt(oc, t, ch, CUBLASLT_EPILOGUE_DEFAULT, nullptr, nullptr, 0);
        REQUIRE(lt.run(dw.get(), dinp.get(), out.get()) == CUBLAS_STATUS_SUCCESS);
        require_close(out.to_host(), expect(false, false), 1e-5);
    }
    SECTION("BIAS") {
        Lt lt(oc, t, ch, CUBLASLT_EPILOGUE_BIAS, dbias.get(), nullptr, 0);
        REQUIRE(lt.run(dw.get(), dinp.get(), out.get()) == CUBLAS_STATUS_SUCCESS);
        require_close(out.to_host(), expect(true, false), 1e-5);
    }
    SECTION("GELU") {
        Lt lt(oc, t, ch, CUBLASLT_EPILOGUE_GELU, nullptr, nullptr, 0);
        REQUIRE(lt.run(dw.get(), dinp.get(), out.get()) == CUBLAS_STATUS_SUCCESS);
        require_close(out.to_host(), expect(false, true), 1e-5);
    }
    SECTION("GELU_AUX_BIAS keeps the pre-activation") {
        Lt lt(oc, t, ch, CUBLASLT_EPILOGUE_GELU_AUX_BIAS, dbias.get(), aux.get(), oc);
        REQUIRE(lt.run(dw.get(), dinp.get(), out.get()) == CUBLAS_STATUS_SUCCESS);
        require_close(out.to_host(), expect(true, true), 1e-5);
        require_close(aux.to_host(), expect(true, false), 1e-5);
    }
    SECTION("an aux leading dimension that is not a multiple of 8 is refused") {
        Lt lt(oc - 4, t, ch, CUBLASLT_EPILOGUE_GELU_AUX_BIAS, dbias.get(), aux.get(), oc - 4);
        REQUIRE(lt.run(dw.get(), dinp.get(), out.get()) == CUBLAS_STATUS_INVALID_VALUE);
    }
    SECTION("GELU_BIAS without a bias pointer is refused") {
        Lt lt(oc, t, ch, CUBLASLT_EPILOGUE_GELU_BIAS, nullptr, nullptr, 0);
        REQUIRE(lt.run(dw.get(), dinp.get(), out.get()) == CUBLAS_STATUS_INVALID_VALUE);
    }
    SECTION("the heuristic offers one algorithm, none for mismatched shapes") {
        Lt lt(oc, t, ch, CUBLASLT_EPILOGUE_DEFAULT, nullptr, nullptr, 0);
        cublasLtMatmulPreference_t pref;
        REQUIRE(cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS);
        const std::uint64_t workspace = 32 << 20;
        REQUIRE(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &workspace, sizeof workspace) == CUBLAS_STATUS_SUCCESS);
        cublasLtMatmulHeuristicResult_t result;
        int count = 0;
        REQUIRE(cublasLtMatmulAlgoGetHeuristic(lt.h, lt.op, lt.a, lt.b, lt.c, lt.c, pref, 1, &result,
                                               &count) == CUBLAS_STATUS_SUCCESS);
        REQUIRE(count == 1);
        REQUIRE(cublasLtMatmulAlgoGetHeuristic(lt.h, lt.op, lt.b, lt.a, lt.c, lt.c, pref, 1, &result,
                                               &count) == CUBLAS_STATUS_NOT_SUPPORTED);
        REQUIRE(count == 0);
        const float one = 1.0f, zero = 0.0f;
        REQUIRE(cublasLtMatmul(lt.h, lt.op, &one, dw.get(), lt.b, dinp.get(), lt.a, &zero, out.get(), lt.c,
                               out.get(), lt.c, nullptr, nullptr, 0, nullptr) == CUBLAS_STATUS_INVALID_VALUE);
        cublasLtMatmulPreferenceDestroy(pref);
    }
    SECTION("a wrong attribute size or an unknown attribute is refused") {
        Lt lt(oc, t, ch, CUBLASLT_EPILOGUE_DEFAULT, nullptr, nullptr, 0);
        const std::int64_t wide = 0;
        REQUIRE(cublasLtMatmulDescSetAttribute(lt.op, CUBLASLT_MATMUL_DESC_TRANSA, &wide, sizeof wide) ==
                CUBLAS_STATUS_INVALID_VALUE);
        const void* scale = nullptr;
        REQUIRE(cublasLtMatmulDescSetAttribute(lt.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scale,
                                               sizeof scale) == CUBLAS_STATUS_NOT_SUPPORTED);
    }
}

TEST_CASE("cuBLASLt bias gradients and a wrong batch stride", "[blas][bugs]") {
    // The weight gradient of a linear layer, as llm.c computes it: with inp
    // (T x C) and dout (T x OC) row-major, i.e. C x T and OC x T column-major,
    // D = inp . dout^T is C x OC column-major: dweight (OC x C) row-major.
    // BGRADB reduces op(B) = dout over T: the bias gradient.
    const int oc = 6, t = 9, ch = 4;
    const std::vector<float> inp = random_floats(t * ch, 9), dout = random_floats(t * oc, 10);
    DeviceBuffer<float> dinp(inp), ddout(dout), dweight(ch * oc), dbias(oc);
    cublasLtHandle_t h;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    REQUIRE(cublasLtCreate(&h) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    const cublasOperation_t tn = CUBLAS_OP_N, tt = CUBLAS_OP_T;
    const cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BGRADB;
    void* bias = dbias.get();
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tn, sizeof tn);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tt, sizeof tt);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    cublasLtMatrixLayoutCreate(&a, CUDA_R_32F, ch, t, ch);
    cublasLtMatrixLayoutCreate(&b, CUDA_R_32F, oc, t, oc);
    cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, ch, oc, ch);
    const float one = 1.0f, zero = 0.0f;
    REQUIRE(cublasLtMatmul(h, op, &one, dinp.get(), a, ddout.get(), b, &zero, dweight.get(), c, dweight.get(),
                           c, nullptr, nullptr, 0, nullptr) == CUBLAS_STATUS_SUCCESS);
    std::vector<float> want_bias(oc, 0), want_w(ch * oc, 0);
    for (int r = 0; r < t; ++r)
        for (int o = 0; o < oc; ++o) {
            want_bias[o] += dout[r * oc + o];
            for (int i = 0; i < ch; ++i) want_w[i + o * ch] += inp[r * ch + i] * dout[r * oc + o];
        }
    require_close(dbias.to_host(), want_bias, 1e-5);
    require_close(dweight.to_host(), want_w, 1e-5);

    // The same as 3 batches of 3 rows each, with a batch stride off by one.
    const std::int32_t batches = 3;
    const std::int64_t stride_a = ch * 3, stride_b = oc * 3 + 1, stride_c = 0;
    cublasLtMatrixLayout_t a3, b3, c3;
    cublasLtMatrixLayoutCreate(&a3, CUDA_R_32F, ch, 3, ch);
    cublasLtMatrixLayoutCreate(&b3, CUDA_R_32F, oc, 3, oc);
    cublasLtMatrixLayoutCreate(&c3, CUDA_R_32F, ch, oc, ch);
    for (auto [l, s] : {std::pair{a3, stride_a}, {b3, stride_b}, {c3, stride_c}}) {
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batches, sizeof batches);
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s, sizeof s);
    }
    REQUIRE_THROWS_WITH(
        cublasLtMatmul(h, op, &one, dinp.get(), a3, ddout.get(), b3, &zero, dweight.get(), c3, dweight.get(),
                       c3, nullptr, nullptr, 0, nullptr),
        Catch::Contains("cublasLtMatmul: B (6 x 3, ld 6, batch stride 19 x 3) ends 8 bytes past"));
    for (auto l : {a, b, c, a3, b3, c3}) cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(op);
    cublasLtDestroy(h);
}

TEST_CASE("NCCL with one rank copies", "[nccl]") {
    ncclComm_t comm;
    ncclUniqueId id;
    REQUIRE(ncclGetUniqueId(&id) == ncclSuccess);
    REQUIRE(ncclCommInitRank(&comm, 2, id, 0) == ncclInvalidUsage);
    REQUIRE(ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess);
    const std::vector<float> x = random_floats(100, 11);
    DeviceBuffer<float> send(x), recv(100);
    REQUIRE(ncclAllReduce(send.get(), recv.get(), 100, ncclFloat32, ncclSum, comm, nullptr) == ncclSuccess);
    REQUIRE(recv.to_host() == x);
    REQUIRE(ncclAllReduce(send.get(), send.get(), 100, ncclFloat32, ncclAvg, comm, nullptr) == ncclSuccess);
    REQUIRE(send.to_host() == x);
    REQUIRE(ncclAllReduce(send.get(), recv.get(), 101, ncclFloat32, ncclSum, comm, nullptr) ==
            ncclInvalidArgument);
    int n = 0;
    REQUIRE(ncclCommCount(comm, &n) == ncclSuccess);
    REQUIRE(n == 1);
    REQUIRE(ncclCommDestroy(comm) == ncclSuccess);
}

TEST_CASE("cuRAND device generators run as their host twins", "[curand]") {
    const std::size_t n = 1000;
    DeviceBuffer<float> out(n);
    curandGenerator_t gen;
    REQUIRE(curandCreateGenerator(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10) == CURAND_STATUS_SUCCESS);
    REQUIRE(curandSetPseudoRandomGeneratorSeed(gen, 1234) == CURAND_STATUS_SUCCESS);
    REQUIRE(curandGenerateNormal(gen, out.get(), n, 0.0f, 1.0f) == CURAND_STATUS_SUCCESS);
    REQUIRE(curandDestroyGenerator(gen) == CURAND_STATUS_SUCCESS);
    std::vector<float> host(n);
    REQUIRE(curandCreateGeneratorHost(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10) == CURAND_STATUS_SUCCESS);
    REQUIRE(curandSetPseudoRandomGeneratorSeed(gen, 1234) == CURAND_STATUS_SUCCESS);
    REQUIRE(curandGenerateNormal(gen, host.data(), n, 0.0f, 1.0f) == CURAND_STATUS_SUCCESS);
    REQUIRE(curandDestroyGenerator(gen) == CURAND_STATUS_SUCCESS);
    REQUIRE(out.to_host() == host);
    double mean = 0;
    for (float v : host) mean += v;
    REQUIRE(std::abs(mean / n) < 0.1);
}

}  // namespace
