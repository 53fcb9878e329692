// Linear layer: out = inp W^T + b, and its backward
//   dinp = or += dout W,   dW += dout^T inp,   db += column sums of dout
//   and through a GELU before it (inp = GELU(inp_pre)):  dinp = (dout W) * GELU'(inp_pre)
//   inp, inp_pre, dinp (N, C), weight (OC, C), bias (OC), out, pre and dout (N, OC)
//   (the arguments: ref/linear_args.h)
// cuBLASLt is column-major: a row-major (R, K) matrix is a column-major (K, R) one, so every
// product below is written for the transposes (out^T = W inp^T and so on). The bias add, the
// GELU, its derivative and the bias gradient run in the GEMMs' epilogues:
//   forward        BIAS, or GELU_AUX_BIAS (out = GELU(pre) with pre stored as the aux matrix)
//   input grad     DGELU: dpre^T = (W^T dout^T) * GELU'(pre^T), pre read as the aux matrix
//   weight grad    BGRADB: the sums of dout over its N rows, as a by-product of dW^T += inp^T dout
// Where cuBLASLt has no algorithm with the epilogue (an aux leading dimension that is not a
// multiple of 8; a type combination a GPU's library lacks), a bias or aux matrix is not 16-byte
// aligned, or epilogues are switched off, the plain GEMM runs and small kernels do the rest:
// the bias add, GELU and its backward (layers/activations.cu), the column sums.
// Every GEMM computes in fp32 (CUBLAS_COMPUTE_32F: no TF32) for both storage types; the weight
// gradient reads S and accumulates into the float dW (C = D, beta 1). cuBLASLt returns the same
// bits for the same problem, pointers' alignment and GPU, so the results are deterministic.
#include "layers/linear.cuh"

#include <cublasLt.h>

#include <algorithm>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "layers/activations.cuh"
#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256;

void lt_check(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw std::runtime_error(std::string("cuBLASLt: ") + what + " failed: " + cublasLtGetStatusString(s));
}

// The handle and the workspace, made on first use and kept for the life of the process (freeing
// them from a static destructor would race the CUDA runtime's own teardown). One stream at a time
// may use the workspace, as with one cuBLAS handle.
struct Library {
    cublasLtHandle_t handle = nullptr;
    void* workspace = nullptr;
};

const Library& library() {
    static const Library lib = [] {
        Library made;
        lt_check(cublasLtCreate(&made.handle), "cublasLtCreate");
        cuda_check(cudaMalloc(&made.workspace, kLinearWorkspaceBytes));
        return made;
    }();
    return lib;
}

// A cuBLASLt descriptor, destroyed with its scope.
template <class H, cublasStatus_t (*destroy)(H)>
class Owned {
public:
    Owned() = default;
    Owned(Owned&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Owned& operator=(Owned&&) = delete;
    ~Owned() {
        if (h_) destroy(h_);
    }
    H* out() { return &h_; }
    H get() const { return h_; }

private:
    H h_ = nullptr;
};
using MatmulDesc = Owned<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using MatrixLayout = Owned<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using Preference = Owned<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

template <class S>
constexpr cudaDataType_t data_type = std::is_same_v<S, float> ? CUDA_R_32F : CUDA_R_16BF;

// A column-major (rows, cols) matrix of S with leading dimension ld.
template <class S>
MatrixLayout layout(int rows, int cols, int ld) {
    MatrixLayout l;
    lt_check(cublasLtMatrixLayoutCreate(l.out(), data_type<S>, rows, cols, ld), "cublasLtMatrixLayoutCreate");
    return l;
}

// The alignment in bytes (at most 256, the heuristic's default assumption) that both the pointer
// and every column start have: algorithms needing more are excluded from the search.
uint32_t alignment(const void* p, int ld, size_t element_bytes) {
    const uint64_t bits = reinterpret_cast<uintptr_t>(p) | uint64_t(ld) * element_bytes | 256;
    return uint32_t(bits & (~bits + 1));  // the lowest set bit
}

template <class V>
void set_attribute(const MatmulDesc& desc, cublasLtMatmulDescAttributes_t attr, const V& value) {
    lt_check(cublasLtMatmulDescSetAttribute(desc.get(), attr, &value, sizeof(value)), "cublasLtMatmulDescSetAttribute");
}

template <class V>
void set_preference(const Preference& pref, cublasLtMatmulPreferenceAttributes_t attr, const V& value) {
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref.get(), attr, &value, sizeof(value)),
             "cublasLtMatmulPreferenceSetAttribute");
}

// What a GEMM's epilogue does besides storing D.
struct Epilogue {
    cublasLtEpilogue_t kind = CUBLASLT_EPILOGUE_DEFAULT;
    const void* bias = nullptr;  // BIAS: (m) added to every column; BGRADB: (n) written, op(B) summed over k
    const void* aux = nullptr;   // laid out as D. GELU_AUX: D before the GELU, written; DGELU: read
};

bool g_epilogues = true;

// What decides the heuristic's choice of algorithm for a GEMM. It is asked once per key (the
// query costs far more host time than the rest of a call, and training repeats a few shapes);
// no value: it had none.
struct GemmKey {
    bool ta, tb;
    int m, n, k, lda, ldb, ldd;
    cudaDataType_t type, type_d;
    cublasLtEpilogue_t epilogue;
    uint32_t align_a, align_b, align_d, align_bias, align_aux;
    auto operator<=>(const GemmKey&) const = default;
};

std::map<GemmKey, std::optional<cublasLtMatmulAlgo_t>>& algorithms() {
    static std::map<GemmKey, std::optional<cublasLtMatmulAlgo_t>> chosen;
    return chosen;
}

// D (m, n) = op(A) op(B) + beta D, column-major, op(A) (m, k) and op(B) (k, n); A and B of type
// S, D of type SD (float or S), accumulation in fp32. With an epilogue, false (and nothing
// done) when epilogues are off or cuBLASLt has no algorithm for it; without, that throws.
template <class S, class SD>
bool matmul(cudaStream_t stream, bool ta, bool tb, int m, int n, int k, const S* A, int lda, const S* B, int ldb,
            float beta, SD* D, int ldd, const Epilogue& epilogue = {}) {
    const bool plain = epilogue.kind == CUBLASLT_EPILOGUE_DEFAULT;
    if (!plain && !g_epilogues) return false;
    // The heuristic is not told where the bias and aux matrix are: an epilogue reading them
    // with vector loads is used only on 16-byte aligned ones (every parameter and activation
    // of a model whose widths are multiples of 8).
    if (!plain && std::min(alignment(epilogue.bias, 0, 1), alignment(epilogue.aux, 0, 1)) < 16) return false;
    // cuBLASLt takes an aux matrix only with a leading dimension that is a multiple of 8.
    if (epilogue.aux && ldd % 8 != 0) return false;
    const Library& lib = library();
    MatmulDesc desc;
    lt_check(cublasLtMatmulDescCreate(desc.out(), CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
    set_attribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, ta ? CUBLAS_OP_T : CUBLAS_OP_N);
    set_attribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, tb ? CUBLAS_OP_T : CUBLAS_OP_N);
    set_attribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue.kind);
    if (epilogue.bias) set_attribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, epilogue.bias);
    if (epilogue.aux) {
        set_attribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, epilogue.aux);
        set_attribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, int64_t(ldd));
    }
    const MatrixLayout a = layout<S>(ta ? k : m, ta ? m : k, lda), b = layout<S>(tb ? n : k, tb ? k : n, ldb),
                       d = layout<SD>(m, n, ldd);

    const uint32_t align_a = alignment(A, lda, sizeof(S)), align_b = alignment(B, ldb, sizeof(S)),
                   align_d = alignment(D, ldd, sizeof(SD));
    const GemmKey key{ta,
                      tb,
                      m,
                      n,
                      k,
                      lda,
                      ldb,
                      ldd,
                      data_type<S>,
                      data_type<SD>,
                      epilogue.kind,
                      align_a,
                      align_b,
                      align_d,
                      alignment(epilogue.bias, 0, 1),
                      alignment(epilogue.aux, 0, 1)};
    auto [entry, fresh] = algorithms().try_emplace(key);
    if (fresh) {
        Preference pref;
        lt_check(cublasLtMatmulPreferenceCreate(pref.out()), "cublasLtMatmulPreferenceCreate");
        set_preference(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(kLinearWorkspaceBytes));
        set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
        set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
        set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d);
        set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);
        cublasLtMatmulHeuristicResult_t found{};
        int count = 0;
        if (cublasLtMatmulAlgoGetHeuristic(lib.handle, desc.get(), a.get(), b.get(), d.get(), d.get(), pref.get(), 1,
                                           &found, &count) == CUBLAS_STATUS_SUCCESS &&
            count > 0)
            entry->second = found.algo;
    }
    if (!entry->second) {
        if (!plain) return false;
        throw std::runtime_error("cuBLASLt: no algorithm for the " + std::to_string(m) + "x" + std::to_string(n) + "x" +
                                 std::to_string(k) + " GEMM (check the pointers' alignment)");
    }
    const float alpha = 1.0f;
    lt_check(cublasLtMatmul(lib.handle, desc.get(), &alpha, A, a.get(), B, b.get(), &beta, D, d.get(), D, d.get(),
                            &*entry->second, lib.workspace, kLinearWorkspaceBytes, stream),
             "cublasLtMatmul");
    return true;
}

// out^T (OC, N) = W inp^T, out's rows ld apart, with the epilogue's bias and GELU; false as matmul.
template <class S>
bool forward_matmul(S* out, const S* inp, const S* weight, int N, int C, int OC, int ld, cudaStream_t stream,
                    const Epilogue& epilogue = {}) {
    return matmul(stream, true, false, OC, N, C, weight, C, inp, C, 0.0f, out, ld, epilogue);
}

// out (N, OC), rows ld apart, += bias (OC), one thread an element.
template <class S>
__global__ void add_bias_kernel(S* out, const S* bias, int N, int OC, int ld) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= size_t(N) * OC) return;
    S& o = out[i / OC * ld + i % OC];
    o = from_float<S>(to_float(o) + to_float(bias[i % OC]));
}

// dbias (OC) += the column sums of dout (N, OC), rows ld apart: a thread a column, rows in
// order (deterministic; neighbouring threads read neighbouring columns).
template <class S>
__global__ void bias_grad_kernel(float* dbias, const S* dout, int N, int OC, int ld) {
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float sum = 0.0f;
    for (int n = 0; n < N; n++) sum += to_float(dout[size_t(n) * ld + o]);
    dbias[o] += sum;
}

// acc (n) += x
__global__ void accumulate_kernel(float* acc, const float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) acc[i] += x[i];
}

}  // namespace

void set_linear_epilogues(bool on) { g_epilogues = on; }

template <class S>
void linear_forward(const LinearArgs<S, float>& a, cudaStream_t stream) {
    const int N = a.N, C = a.C, OC = a.OC, ld = a.row_stride();
    if (ld < OC)
        throw std::invalid_argument("linear_forward: row stride " + std::to_string(ld) + " < " + std::to_string(OC));
    if (N == 0 || OC == 0) return;
    if (!a.bias) {
        forward_matmul(a.out, a.inp, a.weight, N, C, OC, ld, stream);
    } else if (!forward_matmul(a.out, a.inp, a.weight, N, C, OC, ld, stream, {CUBLASLT_EPILOGUE_BIAS, a.bias})) {
        forward_matmul(a.out, a.inp, a.weight, N, C, OC, ld, stream);
        launch_kernel(add_bias_kernel<S>, unsigned(ceil_div<size_t>(size_t(N) * OC, kBlock)), kBlock, 0, stream, a.out,
                      a.bias, N, OC, ld);
    }
}

template <class S>
void linear_gelu_forward(const LinearArgs<S, float>& a, cudaStream_t stream) {
    const int N = a.N, C = a.C, OC = a.OC;
    if (N == 0 || OC == 0) return;
    const Epilogue gelu{a.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX, a.bias, a.pre};
    if (forward_matmul(a.out, a.inp, a.weight, N, C, OC, OC, stream, gelu)) return;
    LinearArgs<S, float> pre = a;
    pre.out = a.pre, pre.ld = OC;
    linear_forward(pre, stream);
    gelu_forward(a.out, a.pre, size_t(N) * OC, stream);
}

// dW^T (C, OC) += inp^T dout and dbias += the column sums of dout, each skipped when null.
template <class S>
void weight_backward(float* dweight, float* dbias, const S* dout, const S* inp, int N, int C, int OC, int ld,
                     cudaStream_t stream) {
    if (!dweight) return;
    if (!dbias) {
        matmul(stream, false, true, C, OC, N, inp, C, dout, ld, 1.0f, dweight, C);
        return;
    }
    // BGRADB writes the column sums of dout rather than adding them: into scratch, then added.
    StreamScratch<float> sums(OC, stream);
    const unsigned blocks = unsigned(ceil_div(OC, kBlock));
    if (matmul(stream, false, true, C, OC, N, inp, C, dout, ld, 1.0f, dweight, C,
               {CUBLASLT_EPILOGUE_BGRADB, sums.get()})) {
        launch_kernel(accumulate_kernel, blocks, kBlock, 0, stream, dbias, sums.get(), OC);
        return;
    }
    matmul(stream, false, true, C, OC, N, inp, C, dout, ld, 1.0f, dweight, C);
    launch_kernel(bias_grad_kernel<S>, blocks, kBlock, 0, stream, dbias, dout, N, OC, ld);
}

template <class S>
void linear_backward(const LinearArgs<S, float>& a, cudaStream_t stream) {
    const int N = a.N, C = a.C, OC = a.OC, ld = a.row_stride();
    if (a.dbias && !a.dweight) throw std::invalid_argument("linear_backward: dbias comes with dweight");
    if (ld < OC)
        throw std::invalid_argument("linear_backward: row stride " + std::to_string(ld) + " < " + std::to_string(OC));
    if (N == 0) return;
    // dinp^T = W^T dout^T (+ dinp^T)
    if (a.dinp)
        matmul(stream, false, false, C, N, OC, a.weight, C, a.dout, ld, a.accumulate_dinp ? 1.0f : 0.0f, a.dinp, C);
    weight_backward(a.dweight, a.dbias, a.dout, a.inp, N, C, OC, ld, stream);
}

template <class S>
void linear_gelu_backward(const LinearArgs<S, float>& a, cudaStream_t stream) {
    const int N = a.N, C = a.C, OC = a.OC;
    if (a.dbias && !a.dweight) throw std::invalid_argument("linear_gelu_backward: dbias comes with dweight");
    if (N == 0) return;
    const Epilogue dgelu{CUBLASLT_EPILOGUE_DGELU, nullptr, a.inp_pre};
    if (!matmul(stream, false, false, C, N, OC, a.weight, C, a.dout, OC, 0.0f, a.dinp, C, dgelu)) {
        matmul(stream, false, false, C, N, OC, a.weight, C, a.dout, OC, 0.0f, a.dinp, C);
        gelu_backward(a.dinp, a.dinp, a.inp_pre, size_t(N) * C, stream);  // in place: each element reads only itself
    }
    weight_backward(a.dweight, a.dbias, a.dout, a.inp, N, C, OC, OC, stream);
}

template void linear_forward<float>(const LinearArgs<float, float>&, cudaStream_t);
template void linear_forward<__nv_bfloat16>(const LinearArgs<__nv_bfloat16, float>&, cudaStream_t);
template void linear_gelu_forward<float>(const LinearArgs<float, float>&, cudaStream_t);
template void linear_gelu_forward<__nv_bfloat16>(const LinearArgs<__nv_bfloat16, float>&, cudaStream_t);
template void linear_backward<float>(const LinearArgs<float, float>&, cudaStream_t);
template void linear_backward<__nv_bfloat16>(const LinearArgs<__nv_bfloat16, float>&, cudaStream_t);
template void linear_gelu_backward<float>(const LinearArgs<float, float>&, cudaStream_t);
template void linear_gelu_backward<__nv_bfloat16>(const LinearArgs<__nv_bfloat16, float>&, cudaStream_t);

}  // namespace rkv::cuda
