// cuBLASLt, NCCL and cuRAND under the emulator: results against CPU
// loops, the libraries' status codes, and the operand checks that catch a
// wrong transpose, leading dimension or batch stride.
#include <cublasLt.h>
#include <curand.h>
#include <nccl.h>
#include <catch2/catch.hpp>

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

void require_close(const std::vector<float>& got, const std::vector<float>& want, double tol) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("element " << i);
        REQUIRE(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])));
    }
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
        REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue) ==
                CUBLAS_STATUS_SUCCESS);
        if (bias)
            REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) ==
                    CUBLAS_STATUS_SUCCESS);
        if (aux) {
            REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux) ==
                    CUBLAS_STATUS_SUCCESS);
            REQUIRE(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld) ==
                    CUBLAS_STATUS_SUCCESS);
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
    const int oc = 16, t = 5, ch = 8;  // aux's leading dimension (oc) must be a multiple of 8
    const std::vector<float> w = random_floats(oc * ch, 6), inp = random_floats(t * ch, 7), bias = random_floats(oc, 8);
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
        REQUIRE(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                     sizeof workspace) == CUBLAS_STATUS_SUCCESS);
        cublasLtMatmulHeuristicResult_t result;
        int count = 0;
        REQUIRE(cublasLtMatmulAlgoGetHeuristic(lt.h, lt.op, lt.a, lt.b, lt.c, lt.c, pref, 1, &result, &count) ==
                CUBLAS_STATUS_SUCCESS);
        REQUIRE(count == 1);
        REQUIRE(cublasLtMatmulAlgoGetHeuristic(lt.h, lt.op, lt.b, lt.a, lt.c, lt.c, pref, 1, &result, &count) ==
                CUBLAS_STATUS_NOT_SUPPORTED);
        REQUIRE(count == 0);
        const float one = 1.0f, zero = 0.0f;
        REQUIRE(cublasLtMatmul(lt.h, lt.op, &one, dw.get(), lt.b, dinp.get(), lt.a, &zero, out.get(), lt.c, out.get(),
                               lt.c, nullptr, nullptr, 0, nullptr) == CUBLAS_STATUS_INVALID_VALUE);
        cublasLtMatmulPreferenceDestroy(pref);
    }
    SECTION("a wrong attribute size or an unknown attribute is refused") {
        Lt lt(oc, t, ch, CUBLASLT_EPILOGUE_DEFAULT, nullptr, nullptr, 0);
        const std::int64_t wide = 0;
        REQUIRE(cublasLtMatmulDescSetAttribute(lt.op, CUBLASLT_MATMUL_DESC_TRANSA, &wide, sizeof wide) ==
                CUBLAS_STATUS_INVALID_VALUE);
        const void* scale = nullptr;
        REQUIRE(cublasLtMatmulDescSetAttribute(lt.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scale, sizeof scale) ==
                CUBLAS_STATUS_NOT_SUPPORTED);
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
    REQUIRE(cublasLtMatmul(h, op, &one, dinp.get(), a, ddout.get(), b, &zero, dweight.get(), c, dweight.get(), c,
                           nullptr, nullptr, 0, nullptr) == CUBLAS_STATUS_SUCCESS);
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
    REQUIRE_THROWS_WITH(cublasLtMatmul(h, op, &one, dinp.get(), a3, ddout.get(), b3, &zero, dweight.get(), c3,
                                       dweight.get(), c3, nullptr, nullptr, 0, nullptr),
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
    REQUIRE(ncclAllReduce(send.get(), recv.get(), 101, ncclFloat32, ncclSum, comm, nullptr) == ncclInvalidArgument);
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
