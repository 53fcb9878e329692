// cuBLAS on the host: the GEMM entry points the engine calls. Each runs the
// library's own argument checks (same status codes), then checks that every
// operand lies inside one allocation, then the reference GEMM.
#include <cublas_v2.h>

#include <algorithm>

#include "cuda/emu/gemm.h"

struct cublasContext {
    cudaStream_t stream = nullptr;
    cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
};

namespace emu {
namespace {

bool valid_op(cublasOperation_t op) {
    return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;  // C = T for real types
}

// The type combinations of cublasGemmEx's table that the engine can meet.
bool supported(cudaDataType_t a, cudaDataType_t b, cudaDataType_t c, cublasComputeType_t compute) {
    if (a != b) return false;
    switch (compute) {
        case CUBLAS_COMPUTE_64F:
        case CUBLAS_COMPUTE_64F_PEDANTIC: return a == CUDA_R_64F && c == CUDA_R_64F;
        case CUBLAS_COMPUTE_32F:
        case CUBLAS_COMPUTE_32F_PEDANTIC:
        case CUBLAS_COMPUTE_32F_FAST_16F:
        case CUBLAS_COMPUTE_32F_FAST_16BF:
        case CUBLAS_COMPUTE_32F_FAST_TF32:
            return (a == CUDA_R_32F && c == CUDA_R_32F) ||
                   ((a == CUDA_R_16BF || a == CUDA_R_16F) && (c == a || c == CUDA_R_32F));
        default: return false;
    }
}

struct GemmCall {
    const char* api;
    cublasHandle_t handle;
    cublasOperation_t transa, transb;
    std::int64_t m, n, k;
    const void* alpha;
    Matrix a, b;
    const void* beta;
    void* c;
    cudaDataType_t c_type;
    std::int64_t ldc, stride_c, batch;
    cublasComputeType_t compute;
};

template <class Acc>
void run(const GemmCall& g) {
    const Acc alpha = *static_cast<const Acc*>(g.alpha), beta = *static_cast<const Acc*>(g.beta);
    for (std::int64_t batch = 0; batch < g.batch; ++batch) {
        const std::int64_t c0 = batch * g.stride_c;
        product<Acc>(g.a, g.transa != CUBLAS_OP_N, g.b, g.transb != CUBLAS_OP_N, g.m, g.n, g.k, batch,
                     [&](std::int64_t i, std::int64_t j, Acc p) {
                         const std::int64_t at = c0 + i + j * g.ldc;
                         // beta == 0: C is not read, so NaN there does not leak in.
                         const Acc old =
                             beta == Acc(0) ? Acc(0) : beta * static_cast<Acc>(load(g.c, g.c_type, at));
                         store(g.c, g.c_type, at, alpha * p + old);
                     });
    }
}

cublasStatus_t gemm(const GemmCall& g) {
    if (!g.handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!valid_op(g.transa) || !valid_op(g.transb) || g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    const std::int64_t a_rows = g.transa == CUBLAS_OP_N ? g.m : g.k;
    const std::int64_t b_rows = g.transb == CUBLAS_OP_N ? g.k : g.n;
    if (g.a.ld < std::max<std::int64_t>(1, a_rows) || g.b.ld < std::max<std::int64_t>(1, b_rows) ||
        g.ldc < std::max<std::int64_t>(1, g.m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!g.alpha || !g.beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (!supported(g.a.type, g.b.type, g.c_type, g.compute)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;

    Matrix a = g.a, b = g.b;
    a.rows = a_rows;
    a.cols = g.transa == CUBLAS_OP_N ? g.k : g.m;
    b.rows = b_rows;
    b.cols = g.transb == CUBLAS_OP_N ? g.n : g.k;
    const Matrix c{g.c, g.c_type, g.m, g.n, g.ldc, g.stride_c};
    if (g.k > 0) {
        check_inside(g.api, "A", a, g.batch);
        check_inside(g.api, "B", b, g.batch);
    }
    check_inside(g.api, "C", c, g.batch);

    GemmCall checked = g;
    checked.a = a;
    checked.b = b;
    if (g.compute == CUBLAS_COMPUTE_64F || g.compute == CUBLAS_COMPUTE_64F_PEDANTIC)
        run<double>(checked);
    else
        run<float>(checked);
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace
}  // namespace emu

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasContext;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream) return CUBLAS_STATUS_INVALID_VALUE;
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void*, size_t) {
    return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t) {
    return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

// Host and device pointers are the same memory here; the mode is kept only
// so that it reads back.
cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->pointer_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "CUBLAS_STATUS_INTERNAL_ERROR";
    }
}

const char* cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "success";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
        case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
        default: return "an internal operation failed";
    }
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                          cublasOperation_t transb, int m, int n, int k, const void* alpha,
                                          const void* A, cudaDataType Atype, int lda, long long strideA,
                                          const void* B, cudaDataType Btype, int ldb, long long strideB,
                                          const void* beta, void* C, cudaDataType Ctype, int ldc,
                                          long long strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t) {
    return emu::gemm({"cublasGemmStridedBatchedEx",
                      handle,
                      transa,
                      transb,
                      m,
                      n,
                      k,
                      alpha,
                      {A, Atype, 0, 0, lda, strideA},
                      {B, Btype, 0, 0, ldb, strideB},
                      beta,
                      C,
                      Ctype,
                      ldc,
                      strideC,
                      batchCount,
                      computeType});
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                            int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda,
                            const void* B, cudaDataType Btype, int ldb, const void* beta, void* C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t) {
    return emu::gemm({"cublasGemmEx",
                      handle,
                      transa,
                      transb,
                      m,
                      n,
                      k,
                      alpha,
                      {A, Atype, 0, 0, lda, 0},
                      {B, Btype, 0, 0, ldb, 0},
                      beta,
                      C,
                      Ctype,
                      ldc,
                      0,
                      1,
                      computeType});
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                              int m, int n, int k, const float* alpha, const float* A, int lda,
                              const float* B, int ldb, const float* beta, float* C, int ldc) {
    return emu::gemm({"cublasSgemm",
                      handle,
                      transa,
                      transb,
                      m,
                      n,
                      k,
                      alpha,
                      {A, CUDA_R_32F, 0, 0, lda, 0},
                      {B, CUDA_R_32F, 0, 0, ldb, 0},
                      beta,
                      C,
                      CUDA_R_32F,
                      ldc,
                      0,
                      1,
                      CUBLAS_COMPUTE_32F});
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k, const float* alpha,
                                         const float* A, int lda, long long strideA, const float* B, int ldb,
                                         long long strideB, const float* beta, float* C, int ldc,
                                         long long strideC, int batchCount) {
    return emu::gemm({"cublasSgemmStridedBatched",
                      handle,
                      transa,
                      transb,
                      m,
                      n,
                      k,
                      alpha,
                      {A, CUDA_R_32F, 0, 0, lda, strideA},
                      {B, CUDA_R_32F, 0, 0, ldb, strideB},
                      beta,
                      C,
                      CUDA_R_32F,
                      ldc,
                      strideC,
                      batchCount,
                      CUBLAS_COMPUTE_32F});
}
