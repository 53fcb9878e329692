// ./generate_rkv: text from a trained model, served with a depth-wise shared KV cache
// (DESIGN.md section 1, "Inference"). Only every k-th layer (--retention k) or the listed
// layers (--keep-layers) keep a cache; the others read the nearest kept layer's. The prompt
// runs through the model in chunks, then each new token costs one position per sequence.
// Prints each sequence, then what the cache holds and the speed. --model serves a preset with
// random weights instead of a checkpoint: the speed and the cache's size without training one.
//
// Text: a checkpoint with a tokenizer.json (in its folder or its run folder, or --tokenizer) takes
// --prompt through it after the model's document start and prints the decoded text as it is
// produced (one sequence; several are printed at the end); byte-level models (vocabulary 256)
// read and print bytes. A sequence ends at the model's EOS (eos_token_id of generation_config.json
// or config.json, a number or a list), at a --stop string (not printed), or after --max-new tokens.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "data/hf_tokenizer.h"
#include "data/text_shards.h"
#include "data/tokenizer.h"
#include "src/checkpoint.h"
#include "src/cli_range.h"
#include "src/devices.h"
#include "src/kv_cache.h"
#include "src/model.h"
#include "src/model_tokenizer.h"
#include "src/params.h"
#include "src/route.h"
#include "src/storage.h"

namespace {

struct Options {
    std::string ckpt;               // a checkpoint directory, a run folder (its newest) or an llm.c .bin
    std::string model;              // or a preset, its weights drawn from --seed
    std::string prompt;             // text: through the tokenizer, or bytes for byte-level models
    std::vector<int> tokens;        // token ids, any model
    std::string tokenizer;          // a tokenizer.json instead of the checkpoint's
    std::vector<std::string> stop;  // stop strings
    int retention = 1;              // keep every k-th layer's cache
    std::vector<int> keep_layers;   // or these layers'
    int max_new = 200, batch = 1, chunk = 256, top_k = 0;
    double temperature = 0.8;
    uint64_t seed = 1337;
    std::string device = "auto";
    bool json = false;
};

// The model's weights: --ckpt's opened and checked (rkv::ModelWeights), or --model's preset
// drawn from --seed. Handed over as pieces (offset in the parameter buffer, values, count):
// --ckpt's tensor by tensor from the mapped files, so the host holds one tensor beside the model.
struct Weights {
    rkv::ModelConfig config;
    std::unique_ptr<rkv::ModelWeights> file;
    std::vector<float> drawn;

    explicit Weights(const Options& o) {
        if (o.model.empty()) {
            file = std::make_unique<rkv::ModelWeights>(o.ckpt);  // a model folder, a run folder or an llm.c .bin
            config = file->config();
            return;
        }
        config = rkv::preset(o.model);
        const rkv::ParamTable table(config);
        drawn.resize(table.total);
        rkv::init_params(drawn.data(), table, config, o.seed);
    }
    void each(const std::function<void(size_t, const float*, size_t)>& sink) const {
        if (file)
            file->read_each(sink);
        else
            sink(0, drawn.data(), drawn.size());
    }
};

// The prompt's tokens: --tokens as given; --prompt after the document start, through the tokenizer
// (as tokenize_text writes documents) or as bytes for the byte-level models the built-in corpus trains.
std::vector<int> prompt_tokens(const Options& o, const rkv::ModelConfig& c, const rkv::HfTokenizer* tok) {
    if (!o.tokens.empty()) return o.tokens;
    if (tok) {
        std::vector<int32_t> ids = rkv::document_tokens(*tok).start;
        tok->encode(o.prompt, false, ids);
        return {ids.begin(), ids.end()};
    }
    if (c.vocab_size != rkv::kByteVocab)
        throw std::invalid_argument(
            fmt::format("the model's vocabulary ({} tokens) is not byte-level and no "
                        "tokenizer.json was found: give --tokenizer or the prompt as --tokens",
                        c.vocab_size));
    std::vector<int> tokens{rkv::kDocStart};
    for (int32_t t : rkv::encode_bytes(o.prompt)) tokens.push_back(t);
    return tokens;
}

// A token drawn from softmax(logits / temperature) over the top_k largest (all when 0);
// the largest when temperature is 0 (ties to the lower id). Linear in V: a step of a large
// vocabulary (Qwen3's 151936) must not cost more on the host than the forward on the GPU.
template <class F>
int sample(const F* logits, int V, double temperature, int top_k, std::mt19937_64& rng) {
    const auto higher = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    std::vector<int> ids(V);  // the candidates, in id order
    std::iota(ids.begin(), ids.end(), 0);
    if (top_k > 0 && top_k < V) {
        std::nth_element(ids.begin(), ids.begin() + top_k - 1, ids.end(), higher);
        ids.resize(top_k);
        std::sort(ids.begin(), ids.end());
    }
    const int best = *std::min_element(ids.begin(), ids.end(), higher);
    if (temperature <= 0) return best;
    std::vector<double> weights(ids.size());
    for (size_t i = 0; i < ids.size(); i++)
        weights[i] = std::exp((double(logits[ids[i]]) - double(logits[best])) / temperature);
    return ids[std::discrete_distribution<int>(weights.begin(), weights.end())(rng)];
}

// Byte-level tokens as text, bytes outside printable ASCII (but newline and tab) as \xNN, so a
// sampled byte sequence that is not valid UTF-8 still prints; other vocabularies as ids.
std::string printable(const std::vector<int>& tokens, int V) {
    if (V != rkv::kByteVocab) return fmt::format("{}", fmt::join(tokens, " "));
    std::string out;
    for (int t : tokens) {
        if (t == rkv::kDocStart) continue;
        if ((t >= 0x20 && t < 0x7f) || t == '\n' || t == '\t')
            out += char(t);
        else
            out += fmt::format("\\x{:02x}", t);
    }
    return out;
}

// One sequence's new text as its tokens come: through the tokenizer's DecodeStream (whole
// characters only), else printable(); cut before the first --stop string. printable_end() is how
// much may be shown now: text that might begin a stop string is held back until it cannot.
struct TextOut {
    std::optional<rkv::DecodeStream> stream;
    int V = 0;
    std::string text;
    bool stopped = false;  // a stop string occurred

    void push(int id, const std::vector<std::string>& stops) {
        const size_t before = text.size();
        if (stream)
            text += stream->push(id);
        else
            text += V == rkv::kByteVocab ? printable({id}, V) : " " + std::to_string(id);
        size_t cut = std::string::npos;  // the earliest stop string; only one ending in the new text is new
        for (const std::string& s : stops)
            cut = std::min(cut, text.find(s, before >= s.size() ? before - s.size() + 1 : 0));
        if (cut != std::string::npos) {
            text.resize(cut);
            stopped = true;
        }
    }
    size_t printable_end(const std::vector<std::string>& stops) const {
        if (stopped) return text.size();
        size_t hold = 0;
        for (const std::string& s : stops)
            for (size_t k = std::min(s.size() - 1, text.size()); k > hold; k--)
                if (text.compare(text.size() - k, k, s, 0, k) == 0) {
                    hold = k;
                    break;
                }
        return text.size() - hold;
    }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class S>
int generate(const Options& o) {
    using Master = rkv::master_t<S>;
    const Weights weights(o);
    const rkv::ModelConfig& c = weights.config;
    // Where its tokenizer and generation config are looked for: the checkpoint read (a run
    // folder's newest), or the llm.c file given.
    const std::string ckpt_path = !weights.file ? "" : weights.file->source().empty() ? o.ckpt : weights.file->source();
    const int L = c.num_hidden_layers, V = c.vocab_size, B = o.batch;
    const std::optional<rkv::HfTokenizer> tok = rkv::load_tokenizer(o.tokenizer, ckpt_path);
    if (tok && tok->vocab_size() > V)
        throw std::invalid_argument(
            fmt::format("{}: {} tokens, more than the model's vocabulary of {}", tok->path(), tok->vocab_size(), V));
    const std::vector<int> eos = rkv::eos_ids(ckpt_path);
    for (const std::string& stop : o.stop)
        if (stop.empty()) throw std::invalid_argument("--stop needs a non-empty string");
    const std::vector<int> prompt = prompt_tokens(o, c, tok ? &*tok : nullptr);
    const int P = int(prompt.size());
    // In 64 bits: --max-new up to INT_MAX must not wrap around.
    if (int64_t(P) + int64_t(o.max_new) > int64_t(c.max_position_embeddings))
        throw std::invalid_argument(fmt::format("a prompt of {} tokens and {} new ones exceed the model's {} positions",
                                                P, o.max_new, c.max_position_embeddings));
    const int max_len = P + o.max_new;
    const rkv::Route route =
        o.keep_layers.empty() ? rkv::keep_every(L, o.retention) : rkv::keep_layers(L, o.keep_layers);

    auto ops = rkv::make_layer_ops<S>(o.device);
    rkv::Model<S> model(c, *ops, B, std::min(o.chunk, P), 0, false);  // decoding runs 1 position
    // The fp32 weights, rounded to the working type on the device where that is not fp32.
    static_assert(std::is_same_v<Master, float>, "checkpoints hold fp32 weights");
    const size_t total = model.table.total;
    Master* master = nullptr;
    if constexpr (std::is_same_v<S, Master>)
        master = model.params;
    else
        master = static_cast<Master*>(ops->alloc_bytes(total * sizeof(Master)));
    weights.each([&](size_t offset, const float* x, size_t n) { ops->upload(master + offset, x, n); });
    if constexpr (!std::is_same_v<S, Master>) {
        ops->to_working(model.params, master, total);
        ops->free_bytes(master);
    }
    rkv::KvCache<S> cache(*ops, c, route, B, max_len);

    // Prefill: the prompt (every sequence starts from it) in chunks of up to T positions.
    std::vector<std::vector<int>> out(B, prompt);
    auto t0 = std::chrono::steady_clock::now();
    int n = 0;  // positions of the last chunk
    for (int p0 = 0; p0 < P; p0 += n) {
        n = std::min(model.T, P - p0);
        std::vector<int> inputs;
        for (int b = 0; b < B; b++) inputs.insert(inputs.end(), prompt.begin() + p0, prompt.begin() + p0 + n);
        model.forward_cached(inputs.data(), n, cache);
    }
    std::vector<Master> last = model.logits(n, n - 1);  // (B, V): each sequence's newest position
    const double prefill_s = seconds_since(t0);

    // Decode: one new token per sequence and step, until every sequence has ended. A sequence that
    // ended keeps running with the batch (its tokens are dropped), so the batch stays one shape.
    std::vector<TextOut> texts(B);
    for (auto& t : texts) {
        if (tok) t.stream.emplace(*tok, false);
        t.V = V;
    }
    std::vector<std::string> ended(B);  // "eos", "stop" or "length" once ended
    const bool stream = B == 1 && !o.json;
    size_t shown = 0;  // bytes of the streamed sequence's text printed
    const std::vector<int32_t> prompt_ids(prompt.begin(), prompt.end());
    const std::string prompt_text = !tok ? printable(prompt, V) : o.tokens.empty() ? o.prompt : tok->decode(prompt_ids);
    if (stream) {
        fmt::print("--- sequence 0\n{}", prompt_text);
        std::fflush(stdout);
    }
    std::mt19937_64 rng(o.seed);
    std::vector<int> next(B);
    t0 = std::chrono::steady_clock::now();
    int decoded = 0;  // forward passes of one token
    for (int step = 0; step < o.max_new; step++) {
        for (int b = 0; b < B; b++) {
            next[b] = sample(&last[size_t(b) * V], V, o.temperature, o.top_k, rng);
            if (!ended[b].empty()) continue;
            if (std::find(eos.begin(), eos.end(), next[b]) != eos.end()) {
                ended[b] = "eos";
                continue;
            }
            out[b].push_back(next[b]);
            texts[b].push(next[b], o.stop);
            if (texts[b].stopped)
                ended[b] = "stop";
            else if (step + 1 == o.max_new)
                ended[b] = "length";
        }
        if (stream) {
            const size_t end = texts[0].printable_end(o.stop);
            if (end > shown) {
                fmt::print("{}", texts[0].text.substr(shown, end - shown));
                std::fflush(stdout);
                shown = end;
            }
        }
        if (step + 1 == o.max_new ||
            std::all_of(ended.begin(), ended.end(), [](const std::string& e) { return !e.empty(); }))
            break;
        model.forward_cached(next.data(), 1, cache);
        last = model.logits(1);
        decoded++;
    }
    const double decode_s = seconds_since(t0);
    for (auto& t : texts)  // ids that end inside a character: their U+FFFD, as decode gives
        if (t.stream && !t.stopped) t.text += t.stream->flush();
    for (auto& e : ended)
        if (e.empty()) e = "length";  // --max-new 0

    if (stream)
        fmt::print("{}\n", texts[0].text.substr(shown));
    else if (!o.json)
        for (int b = 0; b < B; b++) fmt::print("--- sequence {}\n{}{}\n", b, prompt_text, texts[b].text);
    const size_t full_per_token = cache.bytes_per_token() / cache.slots() * L;
    const double tokens_per_s = decode_s > 0 ? double(decoded) * B / decode_s : 0.0;
    if (!o.json) {
        fmt::print(
            "kv cache: layers {} kept ({} of {}), {} bytes per token ({:.0f}% of the full cache), "
            "{} bytes for {} x {} positions\n",
            fmt::join(cache.kept_layers(), " "), cache.slots(), L, cache.bytes_per_token(),
            100.0 * double(cache.bytes_per_token()) / double(full_per_token), cache.bytes(), B, max_len);
        fmt::print("prefill: {} x {} tokens in {:.1f} ms; decode: {} x {} tokens in {:.1f} ms, {:.0f} tokens/s\n", B, P,
                   1e3 * prefill_s, B, decoded, 1e3 * decode_s, tokens_per_s);
    } else {
        std::vector<std::vector<int>> new_ids(B);
        std::vector<std::string> text(B);
        for (int b = 0; b < B; b++) {
            new_ids[b].assign(out[b].begin() + P, out[b].end());
            text[b] = texts[b].text;
        }
        const nlohmann::json stats{{"route", route.str()},
                                   {"kept_layers", cache.slots()},
                                   {"layers", L},
                                   {"kv_bytes_per_token", cache.bytes_per_token()},
                                   {"kv_bytes_full_per_token", full_per_token},
                                   {"kv_bytes", cache.bytes()},
                                   {"batch", B},
                                   {"prompt_tokens", P},
                                   {"prefill_ms", 1e3 * prefill_s},
                                   {"decode_tokens", decoded},
                                   {"decode_ms", 1e3 * decode_s},
                                   {"decode_tokens_per_s", tokens_per_s},
                                   {"ids", new_ids},
                                   {"text", text},
                                   {"ended", ended}};
        fmt::print("{}\n", stats.dump());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"rkv: generate text with a depth-wise shared KV cache"};
    auto* weights = app.add_option_group("weights", "one of");
    weights->add_option("--ckpt", o.ckpt,
                        "model folder (Hugging Face or checkpoint), run folder (its newest checkpoint) or llm.c .bin");
    weights->add_option("--model", o.model, "a preset with random weights (benchmarks), instead of --ckpt");
    weights->require_option(1);
    app.add_option("--prompt", o.prompt, "prompt text (through the tokenizer, or bytes for byte-level models)");
    app.add_option("--tokenizer", o.tokenizer, "tokenizer.json (default: the checkpoint's or its run folder's)")
        ->check(CLI::ExistingFile);
    app.add_option("--stop", o.stop, "end a sequence where this text appears (repeatable; not printed)");
    app.add_option("--tokens", o.tokens, "prompt token ids (any model), instead of --prompt")->delimiter(',');
    auto* retention =
        app.add_option("--retention", o.retention, "keep every k-th layer's KV cache: 1, 2, 3, 4 keep 100/50/33/25%")
            ->check(rkv::in_range(1, INT_MAX));
    app.add_option("--keep-layers", o.keep_layers, "keep these layers' caches (0 among them), instead of --retention")
        ->delimiter(',')
        ->excludes(retention);
    app.add_option("--max-new", o.max_new, "tokens to generate per sequence")->check(rkv::in_range(0, INT_MAX));
    app.add_option("-b,--batch", o.batch, "sequences generated together from the prompt")
        ->check(rkv::in_range(1, INT_MAX));
    app.add_option("--chunk", o.chunk, "prompt positions per forward pass")->check(rkv::in_range(1, INT_MAX));
    app.add_option("--temperature", o.temperature, "sampling temperature; 0 takes the most likely token")
        ->check(CLI::Validator(
            [](std::string& s) {
                const double t = std::strtod(s.c_str(), nullptr);
                return std::isfinite(t) && t >= 0 ? std::string() : "must be a finite number >= 0, got " + s;
            },
            "FINITE >= 0"));
    app.add_option("--top-k", o.top_k, "sample among the k most likely tokens (0: all)")
        ->check(rkv::in_range(0, INT_MAX));
    app.add_option("--seed", o.seed, "sampling seed");
    app.add_option("--device", o.device, "cpu, cuda or auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    app.add_flag("--json", o.json, "print only one JSON line: the numbers, each sequence's new ids and text");
    CLI11_PARSE(app, argc, argv);
    try {
        return rkv::uses_cuda(o.device) ? generate<rkv::CudaStorage>(o) : generate<float>(o);
    } catch (const std::exception& e) {
        std::fflush(stdout);
        fmt::print(stderr, "generate_rkv: error: {}\n", e.what());
        return 1;
    }
}
