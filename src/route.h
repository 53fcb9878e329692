// Routes (DESIGN.md section 1): layer l attends with its own queries to the keys and
// values of layer kv_src[l] <= l. Training draws a fresh route per micro-batch; inference
// uses a fixed pattern of kept layers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rkv {

struct Route {
    std::vector<int> kv_src;  // (L); kv_src[0] == 0, kv_src[l] <= l

    int num_layers() const { return int(kv_src.size()); }
    // Whether some layer reads layer j's K/V: only such layers compute K/V at all.
    bool is_read(int j) const;
    // The highest layer that reads layer j's K/V (the backward's first), -1 if none.
    int last_reader(int j) const;
    // Layers whose K/V are read: the layers that keep a KV cache.
    std::vector<int> kept_layers() const;
    std::string str() const;  // "0 0 2 2"
    bool operator==(const Route&) const = default;
};

// Throws std::invalid_argument unless route is a valid route over L layers.
void validate_route(const Route& route, int L);

Route all_own(int L);
// Inference: S = {0, k, 2k, ...}; layer l reads the nearest kept layer at or below it.
Route keep_every(int L, int k);
// Inference: an explicit list of kept layers (0 must be among them).
Route keep_layers(int L, const std::vector<int>& kept);

// What a training route is keyed by: a run, a resumed run and a CPU/GPU pair of runs
// that agree on the key draw the same route.
struct RouteKey {
    uint64_t seed = 0;
    uint64_t microbatch = 0;  // global micro-batch index
    uint32_t rank = 0;
};

// The training sampler, on Philox4x32-10 (src/philox.h: the numbers of cuRAND's curand_init /
// curand_uniform, so a kernel can draw the same routes on a GPU). The key picks the stream:
// seed, and subsequence microbatch * 2^16 + rank.
// For each layer l >= 1 independently: own K/V with probability p_own, otherwise a
// source drawn uniformly from {0, ..., l-1}.
class RouteSampler {
public:
    RouteSampler(int num_layers, double p_own);
    Route sample(const RouteKey& key) const;

private:
    int L_;
    double p_own_;
};

// The route policy of training, --train-route (DESIGN.md section 1):
//   "stochastic"    a route drawn per micro-batch by RouteSampler, keyed as above, with
//                   p_own a function of the update step only: linear from p_own at step 0
//                   to p_own_final at the last step, so resume and mpirun draw the same routes
//   "keep-every:K"  one fixed route, keep_every(L, K), for every micro-batch
//   "layers:0,3,5"  one fixed route, keep_layers(L, {0, 3, 5}): fixed sharing (CLA), the baseline
// Under a fixed route the layers nobody reads compute no K/V, as under any route.
struct TrainRouteSpec {
    enum class Kind { stochastic, keep_every, layers };
    Kind kind = Kind::stochastic;
    int k = 0;                // keep_every
    std::vector<int> layers;  // layers
    std::string str() const;  // the canonical spec: "stochastic", "keep-every:2", "layers:0,3,5"
};
// Throws std::invalid_argument naming spec and what is wrong with it.
TrainRouteSpec parse_train_route(const std::string& spec);
// "0,3,5" as written (each a whole number >= 0); throws std::invalid_argument "'x' is not a
// layer index" for anything else.
std::vector<int> parse_layer_list(const std::string& list);

class TrainRoute {
public:
    // steps: the run's updates (--steps). Throws std::invalid_argument when the spec does not
    // fit L layers or a p_own is outside [0, 1].
    TrainRoute(const TrainRouteSpec& spec, int num_layers, double p_own, double p_own_final, long steps);
    // The route of the micro-batch `key` in update `step` (0-based).
    Route at(long step, const RouteKey& key) const;
    // The stochastic policy's p_own in update `step`.
    double p_own(long step) const;

private:
    TrainRouteSpec spec_;
    int L_;
    double p0_, p1_;
    long steps_;
    Route fixed_;  // the fixed kinds' route
};

}  // namespace rkv
