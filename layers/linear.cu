// Linear layer: out = inp W^T + b, and its backward
//   dinp += dout W,   dW += dout^T inp,   db += column sums of dout
//   inp (N, C), weight (OC, C), bias (OC), out and dout (N, OC)
// cuBLAS is column-major: a row-major (R, K) matrix is a column-major (K, R) one, so every
// product below is written for the transposes (out^T = W inp^T and so on).
// The bias kernels are deterministic: each column sums its rows in a fixed order.
#include "layers/linear.cuh"

#include <cublas_v2.h>
#include <stdexcept>
#include <string>

namespace rkv::cuda {

namespace {

void cublas_check(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw std::runtime_error(std::string("cuBLAS: ") + what + " failed: " + cublasGetStatusString(s));
}

// One handle per host thread, made on first use.
cublasHandle_t handle(cudaStream_t stream) {
    thread_local cublasHandle_t h = [] {
        cublasHandle_t created;
        cublas_check(cublasCreate(&created), "cublasCreate");
        return created;
    }();
    cublas_check(cublasSetStream(h, stream), "cublasSetStream");
    return h;
}

// C (m, n) = alpha op(A) op(B) + beta C, column-major, fp32 with fp32 accumulation.
void gemm(cudaStream_t stream, bool ta, bool tb, int m, int n, int k, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
    const float alpha = 1.0f;
    cublas_check(cublasGemmEx(handle(stream), ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
                              &alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &beta, C, CUDA_R_32F, ldc,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
}

// out (N, OC) += bias broadcast over rows
__global__ void add_bias_kernel(float* out, const float* bias, int N, int OC) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < size_t(N) * OC) out[i] += bias[i % OC];
}

// dbias (OC) += sum over rows of dout (N, OC): one thread a column, rows in order.
__global__ void bias_backward_kernel(float* dbias, const float* dout, int N, int OC) {
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float sum = 0.0f;
    for (int n = 0; n < N; n++) sum += dout[size_t(n) * OC + o];
    dbias[o] += sum;
}

}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC,
                    cudaStream_t stream) {
    gemm(stream, true, false, OC, N, C, weight, C, inp, C, 0.0f, out, OC);            // out^T = W inp^T
    if (bias) {
        const size_t n = size_t(N) * OC;
        launch_kernel(add_bias_kernel, unsigned((n + 255) / 256), 256, 0, stream, out, bias, N, OC);
    }
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, cudaStream_t stream) {
    if (dinp) gemm(stream, false, false, C, N, OC, weight, C, dout, OC, 1.0f, dinp, C);       // dinp^T += W^T dout^T
    if (dweight) gemm(stream, false, true, C, OC, N, inp, C, dout, OC, 1.0f, dweight, C);     // dW^T += inp^T dout
    if (dbias) launch_kernel(bias_backward_kernel, unsigned((OC + 255) / 256), 256, 0, stream, dbias, dout, N, OC);
}

}  // namespace rkv::cuda
