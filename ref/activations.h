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

template <class S>
void gelu_forward(S* out, const S* x, size_t N) {
    const S c = std::sqrt(S(2) / S(M_PI));
    for (size_t i = 0; i < N; i++) {
        const S u = c * (x[i] + S(0.044715) * x[i] * x[i] * x[i]);
        out[i] = S(0.5) * x[i] * (S(1) + std::tanh(u));
    }
}

template <class S>
void gelu_backward(S* dx, const S* dout, const S* x, size_t N) {
    const S c = std::sqrt(S(2) / S(M_PI));
    for (size_t i = 0; i < N; i++) {
        const S u = c * (x[i] + S(0.044715) * x[i] * x[i] * x[i]);
        const S th = std::tanh(u);
        const S du = c * (S(1) + S(3 * 0.044715) * x[i] * x[i]);
        dx[i] += dout[i] * (S(0.5) * (S(1) + th) + S(0.5) * x[i] * (S(1) - th * th) * du);
    }
}

template <class S>
void swiglu_forward(const SwiGLUArgs<S>& a) {
    const S *gate = a.gate, *up = a.up;
    S* out = a.out;
    for (size_t i = 0; i < a.n; i++) {
        const S sig = S(1) / (S(1) + std::exp(-gate[i]));
        out[i] = gate[i] * sig * up[i];
    }
}

// d silu(g)/dg = sig * (1 + g * (1 - sig))
template <class S>
void swiglu_backward(const SwiGLUArgs<S>& a) {
    const S *dout = a.dout, *gate = a.gate, *up = a.up;
    S *dgate = a.dgate, *dup = a.dup;
    for (size_t i = 0; i < a.n; i++) {
        const S sig = S(1) / (S(1) + std::exp(-gate[i]));
        dgate[i] += dout[i] * up[i] * sig * (S(1) + gate[i] * (S(1) - sig));
        dup[i] += dout[i] * gate[i] * sig;
    }
}

}  // namespace rkv::ref
