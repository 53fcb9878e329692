// ./eval_rkv: scores a trained model at every KV-cache size without training it (DESIGN.md
// section 1, "Inference"): the validation loss when only every k-th layer (--retention) or the
// listed layers (--keep-layers) keep a cache, computed as train_rkv's validation computes it
// (src/validation.h); a greedy search for the kept layers that lose least (--search-kept); and
// extractive question answering through the shared cache (--qa): greedy answers scored with
// SQuAD v2's exact match and F1 (src/qa_metrics.h), and the loss of the gold answer. QA text goes
// through the checkpoint's tokenizer.json (src/model_tokenizer.h), or bytes for byte-level models.
#include <algorithm>
#include <climits>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "data/hf_tokenizer.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/text_shards.h"
#include "data/tokenizer.h"
#include "dist/comm.h"
#include "optim/adamw.h"
#include "src/checkpoint.h"
#include "src/cli_range.h"
#include "src/devices.h"
#include "src/file_io.h"
#include "src/greedy_decode.h"
#include "src/kv_cache.h"
#include "src/model.h"
#include "src/model_tokenizer.h"
#include "src/qa_data.h"
#include "src/qa_metrics.h"
#include "src/route.h"
#include "src/storage.h"
#include "src/validation.h"

namespace fs = std::filesystem;

namespace {

struct Options {
    std::string ckpt;  // a checkpoint, a run folder (its newest) or an llm.c .bin
    std::string val;   // shard glob; empty: the built-in corpus's validation split
    int batch = 8, seq_len = 128, val_batches = 16;
    std::vector<int> retention = {1, 2, 3, 4};
    std::vector<std::string> keep_layers;  // each "0,3,5"
    int search_kept = 0;                   // 0: no search
    std::string device = "auto";
    bool json = false;
    std::string qa;  // a QA file (src/qa_data.h): question answering instead
    std::string qa_template = rkv::kDefaultQaTemplate;
    std::string qa_out;     // each example with its prediction, as JSON Lines
    std::string tokenizer;  // a tokenizer.json instead of the checkpoint's
    int max_answer = 32;    // tokens generated per answer at most
    std::string write_qa;   // a folder for the built-in QA task's files
};

// A comma-separated list of layer indices, as --keep-layers takes it, ascending, each once.
std::vector<int> parse_layers(const std::string& s) {
    std::vector<int> layers;
    try {
        layers = rkv::parse_layer_list(s);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("--keep-layers {}: {}", s, e.what()));
    }
    std::sort(layers.begin(), layers.end());
    layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
    return layers;
}

// One setting scored: a route and what names it.
struct Setting {
    std::optional<int> retention;  // keep every k-th layer, or
    std::vector<int> kept;         // these layers
    rkv::Route route;
};

std::string setting_name(const Setting& s) {
    return s.retention ? fmt::format("1/{}", *s.retention) : fmt::format("layers {}", fmt::join(s.kept, ","));
}

// The settings --retention and --keep-layers ask for, in that order.
std::vector<Setting> settings(const Options& o, int L) {
    std::vector<Setting> out;
    for (int k : o.retention) {
        if (k < 1) throw std::invalid_argument(fmt::format("--retention values must be >= 1, got {}", k));
        const rkv::Route r = rkv::keep_every(L, k);
        out.push_back({k, r.kept_layers(), r});
    }
    for (const std::string& spec : o.keep_layers) {
        const std::vector<int> kept = parse_layers(spec);
        try {
            out.push_back({std::nullopt, kept, rkv::keep_layers(L, kept)});
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument(fmt::format("--keep-layers {}: {}", spec, e.what()));
        }
    }
    return out;
}

// The checkpoint's update step (0 for a model-only checkpoint or an llm.c file): on the CUDA
// path's bf16 build the working copy of the weights is what that step's rounding made of them.
long checkpoint_step(const std::string& path) {
    const fs::path state = fs::path(path) / "state.json";
    if (!fs::exists(state)) return 0;
    const nlohmann::json j = rkv::read_json_file(state.string());
    const nlohmann::json step = j.is_object() ? j.value("step", nlohmann::json(0)) : nlohmann::json();
    if (!step.is_number_integer()) throw std::runtime_error(fmt::format("{}: no integer \"step\"", state.string()));
    return step.get<long>();
}

template <class S>
struct Evaluator {
    const Options& o;
    std::unique_ptr<rkv::LayerOps<S>> ops;
    rkv::ModelConfig config;
    std::vector<float> weights;  // fp32, as the checkpoint holds them
    long step = 0;
    std::string source;  // the checkpoint evaluated

    explicit Evaluator(const Options& o_) : o(o_), ops(rkv::make_layer_ops<S>(o_.device)) {
        const rkv::ModelWeights file(o.ckpt);  // a model folder, a run folder's newest checkpoint, an llm.c .bin
        source = file.source().empty() ? o.ckpt : file.source();
        config = file.config();
        weights.resize(rkv::ParamTable(config).total);
        file.read(weights.data());
        step = checkpoint_step(source);
    }

    // A model of B x T positions holding the checkpoint's weights: the working copy exactly
    // as training had it after `step` (AdamW rounds it so on the CUDA path; a copy on the CPU).
    std::unique_ptr<rkv::Model<S>> model(int B, int T) {
        auto m = std::make_unique<rkv::Model<S>>(config, *ops, B, T, 0, false);
        rkv::AdamW<S>(m->table, {}, *ops).set_weights(m->params, weights, step);
        return m;
    }

    size_t kv_bytes_per_token(const rkv::Route& route) {
        return rkv::KvCache<S>(*ops, config, route, 1, 1).bytes_per_token();
    }
};

nlohmann::json setting_json(const Setting& s) {
    nlohmann::json j;
    if (s.retention)
        j["retention"] = *s.retention;
    else
        j["keep_layers"] = s.kept;
    j["kept_layers"] = s.kept;
    return j;
}

// Validation loss at each setting, then the greedy search.
template <class S>
void validation(Evaluator<S>& ev) {
    const Options& o = ev.o;
    const int L = ev.config.num_hidden_layers;
    if (o.seq_len > ev.config.max_position_embeddings)
        throw std::invalid_argument(fmt::format("--seq-len {} exceeds the model's max_position_embeddings {}",
                                                o.seq_len, ev.config.max_position_embeddings));
    // The built-in corpus's validation split, from this machine's cache as train_rkv reads it.
    const std::string pattern = o.val.empty() ? rkv::cached_builtin_corpus(rkv::kBuiltinCorpusSeed).val : o.val;
    // train_rkv's validation loader: no shuffling, one rank.
    rkv::DataLoader val({pattern, o.batch, o.seq_len, 0, 1, false, 0, ev.config.vocab_size});
    auto model = ev.model(o.batch, o.seq_len);
    rkv::LocalComm comm;
    std::map<std::vector<int>, double> losses;  // kept layers -> loss: each route validated once
    auto loss_of = [&](const rkv::Route& route) {
        const std::vector<int> kept = route.kept_layers();
        if (!losses.count(kept)) losses[kept] = rkv::validation_loss(*model, val, route, o.val_batches, comm);
        return losses[kept];
    };
    const size_t full_bytes = ev.kv_bytes_per_token(rkv::all_own(L));
    fmt::print("{} ({} layers) | val {} ({} tokens), {} batches of {} x {}\n", ev.source, L,
               o.val.empty() ? "the built-in corpus" : o.val, val.num_tokens(), o.val_batches, o.batch, o.seq_len);

    const std::vector<Setting> all = settings(o, L);
    if (!all.empty()) {
        fmt::print("\nvalidation loss per KV-cache setting\n");
        fmt::print("  {:<16}  {:>13}  {:>14}  {:>9}\n", "setting", "cached layers", "KV bytes/token", "val loss");
    }
    std::vector<nlohmann::json> lines;
    for (const Setting& s : all) {
        const double loss = loss_of(s.route);
        const size_t bytes = ev.kv_bytes_per_token(s.route);
        fmt::print("  {:<16}  {:>6}/{:<6}  {:>14}  {:>9.4f}\n", setting_name(s), s.kept.size(), L, bytes, loss);
        nlohmann::json j = setting_json(s);
        j["val_loss"] = loss;
        j["kv_bytes_per_token"] = bytes;
        j["kv_bytes_full_per_token"] = full_bytes;
        lines.push_back(j);
    }

    if (o.search_kept > 0) {
        const int M = o.search_kept;
        if (M > L) throw std::invalid_argument(fmt::format("--search-kept {} exceeds the model's {} layers", M, L));
        // Greedy: from {0}, add the layer whose addition gives the lowest loss (ties to the
        // lower layer), until M are kept.
        std::vector<int> kept = {0};
        fmt::print("\ngreedy search for {} kept layers\n", M);
        while (int(kept.size()) < M) {
            int best = -1;
            double best_loss = 0;
            for (int j = 1; j < L; j++) {
                if (std::find(kept.begin(), kept.end(), j) != kept.end()) continue;
                std::vector<int> trial = kept;
                trial.push_back(j);
                std::sort(trial.begin(), trial.end());
                const double loss = loss_of(rkv::keep_layers(L, trial));
                if (best < 0 || loss < best_loss) best = j, best_loss = loss;
            }
            kept.push_back(best);
            std::sort(kept.begin(), kept.end());
            fmt::print("  + layer {:<3} -> layers {:<16} val loss {:.4f}\n", best,
                       fmt::format("{}", fmt::join(kept, ",")), best_loss);
        }
        // Against the M layers spread evenly over the depth: keep-every-k where L/M is whole.
        std::vector<int> even;
        for (int i = 0; i < M; i++) even.push_back(i * L / M);
        const rkv::Route found = rkv::keep_layers(L, kept), spread = rkv::keep_layers(L, even);
        const double found_loss = loss_of(found), even_loss = loss_of(spread);
        std::optional<int> k;
        for (int kk = 1; kk <= L; kk++)
            if (rkv::keep_every(L, kk) == spread) k = kk;
        const std::string even_name = k ? fmt::format("keep 1/{} (layers {})", *k, fmt::join(even, ","))
                                        : fmt::format("evenly spaced (layers {})", fmt::join(even, ","));
        fmt::print("  found layers {}: val loss {:.4f}; {}: {:.4f} ({:+.4f})\n", fmt::join(kept, ","), found_loss,
                   even_name, even_loss, even_loss - found_loss);
        nlohmann::json j{{"search_kept", M},
                         {"keep_layers", kept},
                         {"val_loss", found_loss},
                         {"kv_bytes_per_token", ev.kv_bytes_per_token(found)},
                         {"kv_bytes_full_per_token", full_bytes},
                         {"baseline_keep_layers", even},
                         {"baseline_val_loss", even_loss}};
        if (k) j["baseline_retention"] = *k;
        lines.push_back(j);
    }
    if (o.json)
        for (const auto& j : lines) fmt::print("{}\n", j.dump());
}

// A QA example as tokens: the prompt after the document start, the completion after it.
struct QaTokens {
    std::vector<int> prompt, completion;
};

// QA text in the model's tokens, as tokenize_text --sft writes the fine-tuning rows: through the
// checkpoint's tokenizer.json (the model's document start before the prompt; prompt and
// completion encoded apart, so the boundary is exact), else as bytes after byte 0.
struct QaText {
    std::optional<rkv::HfTokenizer> tok;
    std::vector<int> start;  // the document start
    std::vector<int> ends;   // tokens that end an answer: the model's EOS ids (byte-level: byte 0)

    QaText(const Options& o, const std::string& ckpt, int V) : tok(rkv::load_tokenizer(o.tokenizer, ckpt)) {
        if (!tok) {
            if (V != rkv::kByteVocab)
                throw std::invalid_argument(
                    fmt::format("--qa: the model's vocabulary ({} tokens) is not byte-level "
                                "and no tokenizer.json is next to {}: give --tokenizer",
                                V, ckpt));
            start = ends = {rkv::kDocStart};
            return;
        }
        if (tok->vocab_size() > V)
            throw std::invalid_argument(fmt::format("{}: {} tokens, more than the model's vocabulary of {}",
                                                    tok->path(), tok->vocab_size(), V));
        const std::vector<int32_t> s = rkv::document_tokens(*tok).start;
        start.assign(s.begin(), s.end());
        ends = rkv::eos_ids(ckpt);
    }
    std::vector<int> encode(const std::string& text) const {
        const std::vector<int32_t> ids = tok ? tok->encode(text) : rkv::encode_bytes(text);
        return {ids.begin(), ids.end()};
    }
};

// A greedy answer's text as its tokens come: push(id) says whether the answer is over, at an
// end token (not part of the text) or at a newline (the text cut before it).
struct AnswerText {
    const QaText& qa;
    std::optional<rkv::DecodeStream> stream;
    std::string text;
    bool cut = false;  // at a newline

    explicit AnswerText(const QaText& q) : qa(q) {
        if (qa.tok) stream.emplace(*qa.tok, false);
    }
    bool push(int id) {
        if (std::find(qa.ends.begin(), qa.ends.end(), id) != qa.ends.end()) return true;
        text += stream ? stream->push(id) : std::string(1, char(id));
        const size_t newline = text.find('\n');
        if (newline == std::string::npos) return false;
        text.resize(newline);
        return cut = true;
    }
    // The answer without the white space around it.
    std::string finish() {
        if (!cut && stream) text += stream->flush();  // ids that end inside a character: U+FFFD, as generate_rkv
        const size_t first = text.find_first_not_of(" \t\r\n"), last = text.find_last_not_of(" \t\r\n");
        return first == std::string::npos ? "" : text.substr(first, last - first + 1);
    }
};

// Per setting: the loss of the gold completions given their prompts (teacher-forced, nats per
// token over all completions' tokens), and greedy answers through the shared KV cache, ended by
// a newline or an end token, scored against the gold answers.
template <class S>
void question_answering(Evaluator<S>& ev) {
    const Options& o = ev.o;
    const rkv::ModelConfig& c = ev.config;
    const int L = c.num_hidden_layers;
    const QaText text(o, ev.source, c.vocab_size);
    const std::string tmpl = rkv::parse_qa_template(o.qa_template);
    const std::vector<rkv::QaExample> examples = rkv::read_qa_jsonl(o.qa);
    std::vector<QaTokens> items;
    int longest = 1, longest_prompt = 1, unanswerable = 0;
    for (size_t i = 0; i < examples.size(); i++) {
        QaTokens t;
        t.prompt = text.start;
        for (int id : text.encode(rkv::qa_prompt(tmpl, examples[i]))) t.prompt.push_back(id);
        t.completion = text.encode(rkv::qa_completion(examples[i]));
        const int P = int(t.prompt.size()), n = P + std::max(int(t.completion.size()), o.max_answer);
        if (n > c.max_position_embeddings)
            throw std::invalid_argument(
                fmt::format("{}:{}: a prompt of {} tokens and an answer of up to {} exceed the "
                            "model's {} positions",
                            o.qa, i + 1, P, n - P, c.max_position_embeddings));
        longest = std::max(longest, P + int(t.completion.size()) - 1);
        longest_prompt = std::max(longest_prompt, P);
        unanswerable += examples[i].answers.empty();
        items.push_back(std::move(t));
    }
    auto scorer = ev.model(o.batch, longest);                   // the answer loss, B examples at once
    auto decoder = ev.model(1, std::min(longest_prompt, 256));  // prompts in chunks of up to 256
    fmt::print("{} ({} layers) | {}: {} examples ({} unanswerable), greedy answers of up to {} tokens, {}\n\n",
               ev.source, L, o.qa, items.size(), unanswerable, o.max_answer,
               text.tok ? text.tok->path() : std::string("byte-level"));
    // As SQuAD v2's script, also over the answerable questions alone ("HasAns"): a model that
    // always answers nothing scores the share of unanswerable ones overall, and 0 there.
    fmt::print("  {:<16}  {:>13}  {:>14}  {:>6}  {:>6}  {:>6}  {:>11}\n", "setting", "cached layers", "KV bytes/token",
               "EM", "F1", "ans F1", "answer loss");
    std::vector<nlohmann::json> lines;
    std::string out;  // --qa-out
    for (const Setting& s : settings(o, L)) {
        // The gold answers' loss: each row a prompt and its completion but the last token,
        // targets only on the completion's tokens.
        double loss_sum = 0;
        long loss_tokens = 0;
        for (size_t i0 = 0; i0 < items.size(); i0 += o.batch) {
            std::vector<int> inputs(size_t(o.batch) * longest, 0), targets(inputs.size(), -1);
            long n = 0;
            for (size_t i = i0; i < std::min(items.size(), i0 + o.batch); i++) {
                const QaTokens& t = items[i];
                const size_t row = (i - i0) * longest, P = t.prompt.size();
                std::copy(t.prompt.begin(), t.prompt.end(), inputs.begin() + row);
                std::copy(t.completion.begin(), t.completion.end() - 1, inputs.begin() + row + P);
                for (size_t j = 0; j < t.completion.size(); j++) targets[row + P - 1 + j] = t.completion[j];
                n += long(t.completion.size());
            }
            loss_sum += scorer->forward(inputs.data(), targets.data(), s.route) * double(n);
            loss_tokens += n;
        }
        double em = 0, f1 = 0, has_em = 0, has_f1 = 0;
        for (size_t i = 0; i < items.size(); i++) {
            const QaTokens& t = items[i];
            rkv::KvCache<S> cache(*ev.ops, c, s.route, 1, int(t.prompt.size()) + o.max_answer);
            AnswerText answer(text);
            rkv::greedy_decode(*decoder, cache, t.prompt, o.max_answer, [&](int id) { return answer.push(id); });
            const std::string prediction = answer.finish();
            const rkv::QaScore score = rkv::score_answer(prediction, examples[i].answers);
            em += score.em;
            f1 += score.f1;
            if (!examples[i].answers.empty()) has_em += score.em, has_f1 += score.f1;
            if (!o.qa_out.empty()) {
                nlohmann::json j = setting_json(s);
                j.erase("kept_layers");
                j.update({{"context", examples[i].context},
                          {"question", examples[i].question},
                          {"answers", examples[i].answers},
                          {"prediction", prediction},
                          {"em", score.em},
                          {"f1", score.f1}});
                out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
            }
        }
        const double n = double(items.size()), answer_loss = loss_sum / double(loss_tokens);
        const int has_n = int(items.size()) - unanswerable;
        const size_t bytes = ev.kv_bytes_per_token(s.route);
        fmt::print("  {:<16}  {:>6}/{:<6}  {:>14}  {:>6.3f}  {:>6.3f}  {:>6}  {:>11.4f}\n", setting_name(s),
                   s.kept.size(), L, bytes, em / n, f1 / n, has_n ? fmt::format("{:.3f}", has_f1 / has_n) : "-",
                   answer_loss);
        nlohmann::json j = setting_json(s);
        j.update({{"em", em / n},
                  {"f1", f1 / n},
                  {"n", items.size()},
                  {"answer_loss", answer_loss},
                  {"kv_bytes_per_token", bytes},
                  {"has_ans_n", has_n}});
        if (has_n) j.update({{"has_ans_em", has_em / has_n}, {"has_ans_f1", has_f1 / has_n}});
        lines.push_back(j);
    }
    if (!o.qa_out.empty()) rkv::write_text_atomic(o.qa_out, out);
    if (o.json)
        for (const auto& j : lines) fmt::print("{}\n", j.dump());
}

template <class S>
int evaluate(const Options& o) {
    Evaluator<S> ev(o);
    if (!o.qa.empty())
        question_answering(ev);
    else
        validation(ev);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"rkv: validation loss and question answering at every KV-cache size"};
    app.add_option("--ckpt", o.ckpt,
                   "checkpoint directory, run folder (its newest checkpoint), model folder or "
                   "llm.c .bin");
    app.add_option("--val", o.val, "glob of validation shards (default: the built-in corpus's validation split)");
    app.add_option("-b,--batch", o.batch, "sequences per micro-batch")
        ->check(rkv::in_range(1, INT_MAX))
        ->capture_default_str();
    app.add_option("-t,--seq-len", o.seq_len, "tokens per sequence")
        ->check(rkv::in_range(1, INT_MAX))
        ->capture_default_str();
    app.add_option("--val-batches", o.val_batches, "validation micro-batches")
        ->check(rkv::in_range(1, INT_MAX))
        ->capture_default_str();
    app.add_option("--retention", o.retention, "keep-every-k values scored (1: the full cache)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--keep-layers", o.keep_layers, "a set of kept layers scored, e.g. 0,3,5 (repeatable)");
    app.add_option("--search-kept", o.search_kept, "greedily find the M kept layers with the lowest validation loss")
        ->check(rkv::in_range(1, INT_MAX));
    app.add_option("--device", o.device, "cpu, cuda or auto")
        ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
        ->capture_default_str();
    app.add_flag("--json", o.json, "also print one JSON line per setting");
    app.add_option("--qa", o.qa,
                   "question answering on this JSON Lines file of {context, question, answers}, "
                   "instead of the validation loss");
    app.add_option("--qa-template", o.qa_template, "the prompt: {context} and {question} filled in, \\n a newline")
        ->capture_default_str();
    app.add_option("--qa-out", o.qa_out, "write each example with its answers and prediction (JSON Lines)");
    app.add_option("--tokenizer", o.tokenizer,
                   "tokenizer.json for --qa (default: the checkpoint's or its run "
                   "folder's; none: byte-level)")
        ->check(CLI::ExistingFile);
    app.add_option("--max-answer", o.max_answer, "tokens generated per answer at most")
        ->check(rkv::in_range(1, INT_MAX))
        ->capture_default_str();
    app.add_option("--write-qa", o.write_qa, "write the built-in QA task (train and test splits) into this folder");
    CLI11_PARSE(app, argc, argv);
    try {
        if (!o.write_qa.empty()) {
            rkv::write_builtin_qa(o.write_qa);
            if (o.ckpt.empty()) return 0;
        }
        if (o.ckpt.empty()) throw std::invalid_argument("--ckpt is required (a checkpoint to evaluate)");
        if (!o.tokenizer.empty() && o.qa.empty())
            throw std::invalid_argument("--tokenizer is for --qa (the validation loss reads token shards)");
        return rkv::uses_cuda(o.device) ? evaluate<rkv::CudaStorage>(o) : evaluate<float>(o);
    } catch (const std::exception& e) {
        std::fflush(stdout);
        fmt::print(stderr, "eval_rkv: error: {}\n", e.what());
        return 1;
    }
}
