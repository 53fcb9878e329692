// Greedy decoding of one sequence through the shared KV cache (src/kv_cache.h): the prompt
// runs through the model in chunks of up to model.T positions, then each step feeds back the
// most likely token (ties to the lower id) as one new position, until a stop token or max_new.
#pragma once
#include <algorithm>
#include <functional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "src/kv_cache.h"
#include "src/model.h"

namespace rkv {

// The index of the largest of logits[0, V), the lowest such index on ties.
template <class F>
int argmax(const F* logits, int V) {
    return int(std::max_element(logits, logits + V) - logits);
}

// The new tokens, the stopping one included (stop(token) true ends the answer). model.B and
// cache.B must be 1, and the cache empty and long enough for the prompt and max_new tokens.
template <class S>
std::vector<int> greedy_decode(Model<S>& model, KvCache<S>& cache, const std::vector<int>& prompt, int max_new,
                               const std::function<bool(int)>& stop) {
    if (model.B != 1 || cache.B != 1 || cache.length != 0)
        throw std::invalid_argument("greedy_decode: one sequence (B 1) and an empty cache");
    const int P = int(prompt.size()), V = model.config.vocab_size;
    if (P < 1) throw std::invalid_argument("greedy_decode: an empty prompt");
    if (P + max_new > cache.max_len)
        throw std::invalid_argument(fmt::format("greedy_decode: a prompt of {} and {} new tokens exceed the cache's {}",
                                                P, max_new, cache.max_len));
    int n = 0;  // positions of the last chunk
    for (int p0 = 0; p0 < P; p0 += n) {
        n = std::min(model.T, P - p0);
        model.forward_cached(prompt.data() + p0, n, cache);
    }
    std::vector<int> out;
    auto last = model.logits(n, n - 1);  // (1, V): the newest position's
    while (int(out.size()) < max_new) {
        int next = argmax(last.data(), V);
        out.push_back(next);
        if (stop(next) || int(out.size()) == max_new) break;
        model.forward_cached(&next, 1, cache);
        last = model.logits(1);
    }
    return out;
}

}  // namespace rkv
