// Linear layer: out = inp W^T + b, as in torch.nn.Linear.
//   inp (N, C), weight (OC, C), bias (OC) or null, out (N, OC)
// Backward accumulates (+=) into dinp, dweight and dbias, like every backward in ref/.
#pragma once
#include "ref/gemm.h"

namespace rkv::ref {

template <class T>
void linear_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) {
    gemm(false, true, N, OC, C, T(1), inp, C, weight, C, T(0), out, OC);
    if (bias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[size_t(n) * OC + o] += bias[o];
}

template <class T>
void linear_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     int N, int C, int OC) {
    if (dinp) gemm(false, false, N, C, OC, T(1), dout, OC, weight, C, T(1), dinp, C);      // (N,OC)(OC,C)
    if (dweight) gemm(true, false, OC, C, N, T(1), dout, OC, inp, C, T(1), dweight, C);    // (OC,N)(N,C)
    if (dbias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) dbias[o] += dout[size_t(n) * OC + o];
}

}  // namespace rkv::ref
