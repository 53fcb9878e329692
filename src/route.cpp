#include "src/route.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <stdexcept>

#include "src/philox.h"

namespace rkv {

bool Route::is_read(int j) const { return std::find(kv_src.begin(), kv_src.end(), j) != kv_src.end(); }

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

std::string Route::str() const { return fmt::format("{}", fmt::join(kv_src, " ")); }

void validate_route(const Route& route, int L) {
    if (route.num_layers() != L)
        throw std::invalid_argument(fmt::format("route has {} layers, the model {}", route.num_layers(), L));
    for (int l = 0; l < L; l++) {
        const int src = route.kv_src[l];
        if (src < 0 || src > l)
            throw std::invalid_argument(
                fmt::format("route [{}]: layer {} reads layer {}, which is not in 0..{}", route.str(), l, src, l));
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
        if (j < 0 || j >= L) throw std::invalid_argument(fmt::format("kept layer {} is not in 0..{}", j, L - 1));
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
        const float own = stream.uniform(), pick = stream.uniform();  // in (0, 1]
        // ceil(pick * l) - 1 maps (0, 1] onto {0, ..., l-1} in equal parts.
        const int src = std::clamp(int(std::ceil(double(pick) * l)) - 1, 0, l - 1);
        r.kv_src[l] = double(own) <= p_own_ ? l : src;
    }
    return r;
}

std::string TrainRouteSpec::str() const {
    switch (kind) {
        case Kind::stochastic: return "stochastic";
        case Kind::keep_every: return fmt::format("keep-every:{}", k);
        case Kind::layers: return fmt::format("layers:{}", fmt::join(layers, ","));
    }
    return "";
}

// A whole decimal integer (no sign, no spaces, no trailing characters), or nullopt.
static std::optional<int> parse_int(const std::string& s) {
    int x = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return x;
}

std::vector<int> parse_layer_list(const std::string& list) {
    std::vector<int> layers;
    size_t begin = 0;
    while (begin <= list.size()) {
        const size_t comma = std::min(list.find(',', begin), list.size());
        const std::string item = list.substr(begin, comma - begin);
        const auto j = parse_int(item);
        if (!j) throw std::invalid_argument(fmt::format("'{}' is not a layer index", item));
        layers.push_back(*j);
        begin = comma + 1;
    }
    return layers;
}

TrainRouteSpec parse_train_route(const std::string& spec) {
    auto bad = [&](const std::string& why) {
        return std::invalid_argument(
            fmt::format("--train-route '{}': {} (expected stochastic, keep-every:K or layers:0,3,5)", spec, why));
    };
    TrainRouteSpec r;
    const size_t colon = spec.find(':');
    const std::string kind = spec.substr(0, colon), arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
    if (kind == "stochastic") {
        if (colon != std::string::npos) throw bad("stochastic takes no argument (its p is --p-own)");
        return r;
    }
    if (colon == std::string::npos && (kind == "keep-every" || kind == "layers"))
        throw bad(kind + " needs an argument after ':'");
    if (kind == "keep-every") {
        const auto k = parse_int(arg);
        if (!k || *k < 1) throw bad(fmt::format("K must be a whole number >= 1, got '{}'", arg));
        r.kind = TrainRouteSpec::Kind::keep_every;
        r.k = *k;
        return r;
    }
    if (kind == "layers") {
        r.kind = TrainRouteSpec::Kind::layers;
        try {
            r.layers = parse_layer_list(arg);
        } catch (const std::invalid_argument& e) {
            throw bad(e.what());
        }
        for (size_t i = 1; i < r.layers.size(); i++)
            if (r.layers[i] <= r.layers[i - 1]) throw bad("the layers must be listed in increasing order, each once");
        if (r.layers.front() != 0) throw bad("the kept layers must include layer 0");
        return r;
    }
    throw bad(fmt::format("unknown route kind '{}'", kind));
}

TrainRoute::TrainRoute(const TrainRouteSpec& spec, int num_layers, double p_own, double p_own_final, long steps)
    : spec_(spec), L_(num_layers), p0_(p_own), p1_(p_own_final), steps_(steps) {
    for (double p : {p_own, p_own_final})
        if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument(fmt::format("p_own must be in [0, 1], got {}", p));
    try {
        if (spec.kind == TrainRouteSpec::Kind::keep_every) fixed_ = keep_every(L_, spec.k);
        if (spec.kind == TrainRouteSpec::Kind::layers) fixed_ = keep_layers(L_, spec.layers);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("--train-route {}: {}", spec.str(), e.what()));
    }
}

double TrainRoute::p_own(long step) const {
    if (steps_ <= 1) return p0_;
    return p0_ + (p1_ - p0_) * double(step) / double(steps_ - 1);
}

Route TrainRoute::at(long step, const RouteKey& key) const {
    if (spec_.kind != TrainRouteSpec::Kind::stochastic) return fixed_;
    return RouteSampler(L_, std::clamp(p_own(step), 0.0, 1.0)).sample(key);
}

}  // namespace rkv
