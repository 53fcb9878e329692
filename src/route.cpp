#include "src/route.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "src/philox.h"

namespace rkv {

bool Route::is_read(int j) const {
    return std::find(kv_src.begin(), kv_src.end(), j) != kv_src.end();
}

int Route::last_reader(int j) const {
    for (int l = num_layers() - 1; l >= 0; l--)
        if (kv_src[l] == j) return l;
    return -1;
}

std::vector<int> Route::kept_layers() const {
    std::vector<int> kept;
    for (int j = 0; j < num_layers(); j++)
        if (is_read(j)) kept.push_back(j);
    return kept;
}

std::string Route::str() const {
    return fmt::format("{}", fmt::join(kv_src, " "));
}

void validate_route(const Route& route, int L) {
    if (route.num_layers() != L)
        throw std::invalid_argument(fmt::format("route has {} layers, the model {}", route.num_layers(), L));
    for (int l = 0; l < L; l++) {
        const int src = route.kv_src[l];
        if (src < 0 || src > l)
            throw std::invalid_argument(fmt::format(
                "route [{}]: layer {} reads layer {}, which is not in 0..{}", route.str(), l, src, l));
    }
}

Route all_own(int L) {
    Route r;
    for (int l = 0; l < L; l++) r.kv_src.push_back(l);
    return r;
}

Route keep_every(int L, int k) {
    if (k < 1) throw std::invalid_argument(fmt::format("keep-every-k needs k >= 1, got {}", k));
    Route r;
    for (int l = 0; l < L; l++) r.kv_src.push_back(l - l % k);
    return r;
}

Route keep_layers(int L, const std::vector<int>& kept) {
    std::vector<bool> keep(L, false);
    for (int j : kept) {
        if (j < 0 || j >= L)
            throw std::invalid_argument(fmt::format("kept layer {} is not in 0..{}", j, L - 1));
        keep[j] = true;
    }
    if (L > 0 && !keep[0]) throw std::invalid_argument("the kept layers must include layer 0");
    Route r;
    int nearest = 0;
    for (int l = 0; l < L; l++) {
        if (keep[l]) nearest = l;
        r.kv_src.push_back(nearest);
    }
    return r;
}

static constexpr uint64_t kMaxRanks = 1 << 16;

RouteSampler::RouteSampler(int num_layers, double p_own) : L_(num_layers), p_own_(p_own) {
    if (num_layers < 1) throw std::invalid_argument("route sampler: num_layers must be positive");
    if (!(p_own >= 0.0 && p_own <= 1.0))
        throw std::invalid_argument(fmt::format("route sampler: p_own must be in [0, 1], got {}", p_own));
}

Route RouteSampler::sample(const RouteKey& key) const {
    if (key.rank >= kMaxRanks) throw std::invalid_argument("route sampler: rank out of range");
    PhiloxStream stream(key.seed, key.microbatch * kMaxRanks + key.rank, 0);
    Route r;
    r.kv_src.resize(L_);
    r.kv_src[0] = 0;
    for (int l = 1; l < L_; l++) {
        const float own = stream.uniform(), pick = stream.uniform();   // in (0, 1]
        // ceil(pick * l) - 1 maps (0, 1] onto {0, ..., l-1} in equal parts.
        const int src = std::clamp(int(std::ceil(double(pick) * l)) - 1, 0, l - 1);
        r.kv_src[l] = double(own) <= p_own_ ? l : src;
    }
    return r;
}

}  // namespace rkv
