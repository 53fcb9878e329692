// Activation recomputation (--recompute, DESIGN.md section 3): which of a layer's activations
// the backward computes again instead of keeping them for all L layers.
//   none   every layer's activations are kept from the forward
//   mlp    the MLP's (norm2's output and statistics, fc, up, act: (N, FF) each) are kept for one
//          layer and recomputed from mid, the residual after attention
//   layer  all of a layer's are kept for one layer and recomputed from resid[l], the layer's
//          input; K and V (after QK-norm and RoPE) stay stored for every layer: the route's data
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace rkv {

enum class Recompute { none, mlp, layer };

inline std::vector<std::string> recompute_names() { return {"none", "mlp", "layer"}; }

inline const char* recompute_name(Recompute r) {
    return r == Recompute::none ? "none" : r == Recompute::mlp ? "mlp" : "layer";
}

inline Recompute parse_recompute(const std::string& name) {
    for (Recompute r : {Recompute::none, Recompute::mlp, Recompute::layer})
        if (name == recompute_name(r)) return r;
    throw std::invalid_argument("--recompute: unknown '" + name + "' (none, mlp or layer)");
}

}  // namespace rkv
