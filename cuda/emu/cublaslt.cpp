// cuBLASLt on the host: descriptors, layouts, the heuristic query and
// cublasLtMatmul with the epilogues the engine uses (DEFAULT, BIAS, GELU,
// GELU_BIAS, GELU_AUX(_BIAS), DGELU, BGRADA, BGRADB). Unknown attributes and
// epilogues are refused with CUBLAS_STATUS_NOT_SUPPORTED rather than ignored,
// so a result can never silently differ from the GPU's.
#include <cublasLt.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/emu/gemm.h"

struct cublasLtContext {};

namespace emu {
namespace {

struct Desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    void* bias = nullptr;
    int bias_type = -1;  // -1: the type of D
    std::int64_t bias_stride = 0;
    void* aux = nullptr;
    std::int64_t aux_ld = 0, aux_stride = 0;
    int aux_type = -1;
};

struct Layout {
    cudaDataType_t type;
    std::int64_t rows, cols, ld;
    std::int32_t order = CUBLASLT_ORDER_COL;
    std::int32_t batch = 1;
    std::int64_t stride = 0;
};

Desc* desc(cublasLtMatmulDesc_t d) { return reinterpret_cast<Desc*>(d); }
Layout* layout(cublasLtMatrixLayout_t l) { return reinterpret_cast<Layout*>(l); }

// Copies an attribute value, checking its size as the library does.
template <class V>
cublasStatus_t set(V& field, const void* buf, std::size_t size) {
    if (!buf || size != sizeof(V)) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&field, buf, sizeof(V));
    return CUBLAS_STATUS_SUCCESS;
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
float gelu(float x) { return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x))); }
float gelu_grad(float x) {
    const float t = std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
}

bool supported_types(cudaDataType_t a, cudaDataType_t b, cudaDataType_t c, cudaDataType_t d,
                     cublasComputeType_t compute, cudaDataType_t scale) {
    if (a != b || c != d) return false;
    if (compute == CUBLAS_COMPUTE_64F || compute == CUBLAS_COMPUTE_64F_PEDANTIC)
        return a == CUDA_R_64F && c == CUDA_R_64F && scale == CUDA_R_64F;
    const bool f32 = compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC ||
                     compute == CUBLAS_COMPUTE_32F_FAST_16F || compute == CUBLAS_COMPUTE_32F_FAST_16BF ||
                     compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    return f32 && scale == CUDA_R_32F &&
           ((a == CUDA_R_32F && c == CUDA_R_32F) ||
            ((a == CUDA_R_16BF || a == CUDA_R_16F) && (c == a || c == CUDA_R_32F)));
}

bool known_epilogue(cublasLtEpilogue_t e) {
    switch (e) {
        case CUBLASLT_EPILOGUE_DEFAULT:
        case CUBLASLT_EPILOGUE_BIAS:
        case CUBLASLT_EPILOGUE_GELU:
        case CUBLASLT_EPILOGUE_GELU_BIAS:
        case CUBLASLT_EPILOGUE_GELU_AUX:
        case CUBLASLT_EPILOGUE_GELU_AUX_BIAS:
        case CUBLASLT_EPILOGUE_DGELU:
        case CUBLASLT_EPILOGUE_BGRADA:
        case CUBLASLT_EPILOGUE_BGRADB: return true;
        default: return false;
    }
}

bool has(cublasLtEpilogue_t e, cublasLtEpilogue_t bits) { return (e & bits) == bits; }

// The problem a matmul call describes, after the library's checks.
struct Problem {
    std::int64_t m, n, k, batch;
    bool ta, tb;
};

cublasStatus_t validate(const Desc& op, const Layout& a, const Layout& b, const Layout& c, const Layout& d,
                        Problem& p) {
    if (a.order != CUBLASLT_ORDER_COL || b.order != CUBLASLT_ORDER_COL || c.order != CUBLASLT_ORDER_COL ||
        d.order != CUBLASLT_ORDER_COL)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!supported_types(a.type, b.type, c.type, d.type, op.compute, op.scale) || !known_epilogue(op.epilogue))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    p.ta = op.transa != CUBLAS_OP_N;
    p.tb = op.transb != CUBLAS_OP_N;
    p.m = d.rows;
    p.n = d.cols;
    p.k = p.ta ? a.rows : a.cols;
    p.batch = d.batch;
    const bool shapes_agree = (p.ta ? a.cols : a.rows) == p.m && (p.tb ? b.rows : b.cols) == p.n &&
                              (p.tb ? b.cols : b.rows) == p.k && c.rows == p.m && c.cols == p.n;
    const bool batches_agree = a.batch == p.batch && b.batch == p.batch && c.batch == p.batch;
    const auto ld_ok = [](const Layout& l) { return l.ld >= std::max<std::int64_t>(1, l.rows); };
    if (!shapes_agree || !batches_agree || !ld_ok(a) || !ld_ok(b) || !ld_ok(c) || !ld_ok(d))
        return CUBLAS_STATUS_INVALID_VALUE;
    const bool needs_bias = has(op.epilogue, CUBLASLT_EPILOGUE_BIAS) || op.epilogue == CUBLASLT_EPILOGUE_BGRADA ||
                            op.epilogue == CUBLASLT_EPILOGUE_BGRADB;
    const bool needs_aux = has(op.epilogue, CUBLASLT_EPILOGUE_GELU_AUX) || op.epilogue == CUBLASLT_EPILOGUE_DGELU;
    // cublasLt.h: the aux matrix's leading dimension must be a multiple of 8.
    if ((needs_bias && !op.bias) || (needs_aux && (!op.aux || op.aux_ld < p.m || op.aux_ld % 8 != 0)))
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

Matrix matrix(const void* data, const Layout& l) { return {data, l.type, l.rows, l.cols, l.ld, l.stride}; }

template <class Acc>
void run(const Desc& op, const Problem& p, Acc alpha, Acc beta, const Matrix& a, const Matrix& b, const Matrix& c,
         const Matrix& d) {
    const cudaDataType_t bias_type = op.bias_type < 0 ? d.type : static_cast<cudaDataType_t>(op.bias_type);
    const cudaDataType_t aux_type = op.aux_type < 0 ? d.type : static_cast<cudaDataType_t>(op.aux_type);
    const cublasLtEpilogue_t e = op.epilogue;
    for (std::int64_t batch = 0; batch < p.batch; ++batch) {
        const std::int64_t c0 = batch * c.stride, d0 = batch * d.stride;
        const std::int64_t bias0 = batch * op.bias_stride, aux0 = batch * op.aux_stride;
        // The bias gradients reduce an input over k, independently of the product.
        if (e == CUBLASLT_EPILOGUE_BGRADA || e == CUBLASLT_EPILOGUE_BGRADB) {
            const bool of_a = e == CUBLASLT_EPILOGUE_BGRADA;
            const Matrix& x = of_a ? a : b;
            const bool trans = of_a ? p.ta : p.tb;
            const std::int64_t len = of_a ? p.m : p.n;
            for (std::int64_t r = 0; r < len; ++r) {
                Acc s = 0;
                for (std::int64_t q = 0; q < p.k; ++q) {
                    // A: element (r, q) of op(A); B: element (q, r) of op(B).
                    const bool row_major = of_a ? trans : !trans;
                    s += static_cast<Acc>(
                        load(x.data, x.type, batch * x.stride + (row_major ? q + r * x.ld : r + q * x.ld)));
                }
                store(op.bias, bias_type, bias0 + r, s);
            }
        }
        product<Acc>(a, p.ta, b, p.tb, p.m, p.n, p.k, batch, [&](std::int64_t i, std::int64_t j, Acc v) {
            v *= alpha;
            if (beta != Acc(0)) v += beta * static_cast<Acc>(load(c.data, c.type, c0 + i + j * c.ld));
            if (has(e, CUBLASLT_EPILOGUE_BIAS)) v += static_cast<Acc>(load(op.bias, bias_type, bias0 + i));
            if (has(e, CUBLASLT_EPILOGUE_GELU_AUX)) store(op.aux, aux_type, aux0 + i + j * op.aux_ld, v);
            if (has(e, CUBLASLT_EPILOGUE_GELU)) v = static_cast<Acc>(gelu(static_cast<float>(v)));
            if (e == CUBLASLT_EPILOGUE_DGELU)
                v *= static_cast<Acc>(gelu_grad(static_cast<float>(load(op.aux, aux_type, aux0 + i + j * op.aux_ld))));
            store(const_cast<void*>(d.data), d.type, d0 + i + j * d.ld, v);
        });
    }
}

}  // namespace
}  // namespace emu

using emu::Desc;
using emu::Layout;

const char* cublasLtGetStatusString(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "success";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
        case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
        default: return "an internal operation failed";
    }
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasLtContext;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    *d = reinterpret_cast<cublasLtMatmulDesc_t>(new Desc{compute, scale});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete emu::desc(d);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    Desc& op = *emu::desc(d);
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_TRANSA: return emu::set(op.transa, buf, size);
        case CUBLASLT_MATMUL_DESC_TRANSB: return emu::set(op.transb, buf, size);
        case CUBLASLT_MATMUL_DESC_EPILOGUE: return emu::set(op.epilogue, buf, size);
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return emu::set(op.bias, buf, size);
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return emu::set(op.bias_type, buf, size);
        case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: return emu::set(op.bias_stride, buf, size);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: return emu::set(op.aux, buf, size);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: return emu::set(op.aux_ld, buf, size);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE: return emu::set(op.aux_stride, buf, size);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE: return emu::set(op.aux_type, buf, size);
        case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return emu::set(op.compute, buf, size);
        case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return emu::set(op.scale, buf, size);
        default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    *l = reinterpret_cast<cublasLtMatrixLayout_t>(
        new Layout{type, static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols), ld});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete emu::layout(l);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    Layout& x = *emu::layout(l);
    switch (attr) {
        case CUBLASLT_MATRIX_LAYOUT_TYPE: return emu::set(x.type, buf, size);
        case CUBLASLT_MATRIX_LAYOUT_ORDER: return emu::set(x.order, buf, size);
        case CUBLASLT_MATRIX_LAYOUT_ROWS: return emu::set(x.rows, buf, size);
        case CUBLASLT_MATRIX_LAYOUT_COLS: return emu::set(x.cols, buf, size);
        case CUBLASLT_MATRIX_LAYOUT_LD: return emu::set(x.ld, buf, size);
        case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return emu::set(x.batch, buf, size);
        case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return emu::set(x.stride, buf, size);
        default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

// Preferences only steer the algorithm search, which the emulator lacks.
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new cublasLtMatmulPreferenceOpaque_t{};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t, const void* buf, size_t) {
    return pref && buf ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!d || !a || !b || !c || !dl || !pref || requested < 1 || !results || !returned)
        return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    emu::Problem p;
    if (emu::validate(*emu::desc(d), *emu::layout(a), *emu::layout(b), *emu::layout(c), *emu::layout(dl), p) !=
        CUBLAS_STATUS_SUCCESS)
        return CUBLAS_STATUS_NOT_SUPPORTED;  // no algorithm for this problem
    results[0] = cublasLtMatmulHeuristicResult_t{};
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t d, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta,
                              const void* C, cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t dl,
                              const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!d || !a || !b || !c || !dl || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    const Desc& op = *emu::desc(d);
    emu::Problem p;
    if (const cublasStatus_t s =
            emu::validate(op, *emu::layout(a), *emu::layout(b), *emu::layout(c), *emu::layout(dl), p);
        s != CUBLAS_STATUS_SUCCESS)
        return s;
    if (p.m == 0 || p.n == 0 || p.batch == 0) return CUBLAS_STATUS_SUCCESS;

    const bool f64 = op.scale == CUDA_R_64F;
    const double beta_value = f64 ? *static_cast<const double*>(beta) : *static_cast<const float*>(beta);
    const emu::Matrix ma = emu::matrix(A, *emu::layout(a)), mb = emu::matrix(B, *emu::layout(b)),
                      mc = emu::matrix(C, *emu::layout(c)), md = emu::matrix(D, *emu::layout(dl));
    if (p.k > 0) {
        emu::check_inside("cublasLtMatmul", "A", ma, p.batch);
        emu::check_inside("cublasLtMatmul", "B", mb, p.batch);
    }
    if (beta_value != 0) emu::check_inside("cublasLtMatmul", "C", mc, p.batch);
    emu::check_inside("cublasLtMatmul", "D", md, p.batch);
    const cudaDataType_t bias_type = op.bias_type < 0 ? md.type : static_cast<cudaDataType_t>(op.bias_type);
    const std::int64_t bias_len = op.epilogue == CUBLASLT_EPILOGUE_BGRADB ? p.n : p.m;
    if (op.bias)
        emu::check_inside("cublasLtMatmul", "the bias", {op.bias, bias_type, bias_len, 1, bias_len, op.bias_stride},
                          op.bias_stride ? p.batch : 1);
    if (op.aux)
        emu::check_inside("cublasLtMatmul", "the epilogue's aux matrix",
                          {op.aux, op.aux_type < 0 ? md.type : static_cast<cudaDataType_t>(op.aux_type), p.m, p.n,
                           op.aux_ld, op.aux_stride},
                          p.batch);
    if (f64)
        emu::run<double>(op, p, *static_cast<const double*>(alpha), beta_value, ma, mb, mc, md);
    else
        emu::run<float>(op, p, *static_cast<const float*>(alpha), static_cast<float>(beta_value), ma, mb, mc, md);
    return CUBLAS_STATUS_SUCCESS;
}
