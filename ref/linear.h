// Linear layer: out = inp W^T + b, as in torch.nn.Linear (the arguments: ref/linear_args.h).
//   inp (N, C), weight (OC, C), bias (OC) or null, out (N, OC), rows ld apart
// Backward accumulates (+=) into dinp, dweight and dbias, like every backward in ref/.
#pragma once
#include <cstddef>

#include "ref/gemm.h"
#include "ref/linear_args.h"

namespace rkv::ref {

template <class S>
void linear_forward(const LinearArgs<S, S>& a) {
    const int N = a.N, C = a.C, OC = a.OC, ld = a.row_stride();
    gemm(false, true, N, OC, C, S(1), a.inp, C, a.weight, C, S(0), a.out, ld);
    if (a.bias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) a.out[size_t(n) * ld + o] += a.bias[o];
}

template <class S>
void linear_backward(const LinearArgs<S, S>& a) {
    const int N = a.N, C = a.C, OC = a.OC, ld = a.row_stride();
    if (a.dinp) gemm(false, false, N, C, OC, S(1), a.dout, ld, a.weight, C, S(1), a.dinp, C);    // (N,OC)(OC,C)
    if (a.dweight) gemm(true, false, OC, C, N, S(1), a.dout, ld, a.inp, C, S(1), a.dweight, C);  // (OC,N)(N,C)
    if (a.dbias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) a.dbias[o] += a.dout[size_t(n) * ld + o];
}

}  // namespace rkv::ref
