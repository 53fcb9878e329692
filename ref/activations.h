// Pointwise MLP activations.
//   GELU (tanh approximation, GPT-2's): x (N), out (N)
//   SwiGLU: out = silu(gate) * up with silu(g) = g * sigmoid(g); gate, up, out (N)
#pragma once
#include <cmath>
#include <cstddef>

namespace rkv {

// The arguments of SwiGLU, forward and backward, one struct carried unchanged from the model
// driver (src/model.h) through LayerOps (src/layer_ops.h) to ref/ and the kernels, as
// ref/attention_args.h for attention (GELU, fused into the linear layers, has none of its own:
// ref/linear_args.h). S is the storage type; pointers are in the implementation's memory. The
// tensors are the MLP's (B, T, FF), taken as n = B * T * FF elements.
template <class S>
struct SwiGLUArgs {
    size_t n = 0;
    const S* gate = nullptr;  // (n)
    const S* up = nullptr;    // (n)
    S* out = nullptr;         // (n)
    // The backward's.
    const S* dout = nullptr;  // (n)
    S* dgate = nullptr;       // (n)
    S* dup = nullptr;         // (n)
};

}  // namespace rkv

namespace rkv::ref {

template <class T>
void gelu_forward(T* out, const T* x, size_t N) {
    const T c = std::sqrt(T(2) / T(M_PI));
    for (size_t i = 0; i < N; i++) {
        const T u = c * (x[i] + T(0.044715) * x[i] * x[i] * x[i]);
        out[i] = T(0.5) * x[i] * (T(1) + std::tanh(u));
    }
}

template <class T>
void gelu_backward(T* dx, const T* dout, const T* x, size_t N) {
    const T c = std::sqrt(T(2) / T(M_PI));
    for (size_t i = 0; i < N; i++) {
        const T u = c * (x[i] + T(0.044715) * x[i] * x[i] * x[i]);
        const T th = std::tanh(u);
        const T du = c * (T(1) + T(3 * 0.044715) * x[i] * x[i]);
        dx[i] += dout[i] * (T(0.5) * (T(1) + th) + T(0.5) * x[i] * (T(1) - th * th) * du);
    }
}

template <class T>
void swiglu_forward(const SwiGLUArgs<T>& a) {
    const T *gate = a.gate, *up = a.up;
    T* out = a.out;
    for (size_t i = 0; i < a.n; i++) {
        const T sig = T(1) / (T(1) + std::exp(-gate[i]));
        out[i] = gate[i] * sig * up[i];
    }
}

// d silu(g)/dg = sig * (1 + g * (1 - sig))
template <class T>
void swiglu_backward(const SwiGLUArgs<T>& a) {
    const T *dout = a.dout, *gate = a.gate, *up = a.up;
    T *dgate = a.dgate, *dup = a.dup;
    for (size_t i = 0; i < a.n; i++) {
        const T sig = T(1) / (T(1) + std::exp(-gate[i]));
        dgate[i] += dout[i] * up[i] * sig * (T(1) + gate[i] * (T(1) - sig));
        dup[i] += dout[i] * gate[i] * sig;
    }
}

}  // namespace rkv::ref
