#include "src/train_options.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include "src/cli_range.h"

#include "src/route.h"

#include "src/devices.h"
#include "src/recompute.h"

namespace rkv {

namespace {

using nlohmann::json;

template <class V>
struct element {
    using type = V;
};
template <class E>
struct element<std::vector<E>> {
    using type = E;
};
// Options whose values are numbers (or lists of them) have a range.
template <class V>
constexpr bool numeric =
    std::is_arithmetic_v<typename element<V>::type> && !std::is_same_v<typename element<V>::type, bool>;
struct NoRange {};
template <class V>
using RangeOf = std::conditional_t<numeric<V>, Range<typename element<V>::type>, NoRange>;

// A JSON value as V: "" or why it is not one.
template <class V>
std::string read_json(const json& j, V& x) {
    bool ok;
    if constexpr (std::is_same_v<V, bool>)
        ok = j.is_boolean();
    else if constexpr (std::is_same_v<V, std::string>)
        ok = j.is_string();
    else if constexpr (std::is_floating_point_v<V>)
        ok = j.is_number();
    else if constexpr (std::is_unsigned_v<V>)
        ok = j.is_number_unsigned() || (j.is_number_integer() && j >= 0);
    else if constexpr (std::is_integral_v<V>)
        ok = j.is_number_integer() && j.get<int64_t>() >= INT_MIN && j.get<int64_t>() <= INT_MAX &&
             !(j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(INT_MAX));
    else {  // a list
        if (!j.is_array()) return fmt::format("{} is not a list", j.dump());
        x.clear();
        for (const json& e : j) {
            typename V::value_type v;
            if (std::string why = read_json(e, v); !why.empty()) return why;
            x.push_back(v);
        }
        return "";
    }
    if (!ok)
        return fmt::format("{} is not {}", j.dump(),
                           std::is_same_v<V, bool>          ? "true or false"
                           : std::is_same_v<V, std::string> ? "a string"
                           : std::is_floating_point_v<V>    ? "a number"
                                                            : "an integer");
    x = j.get<V>();
    return "";
}

// One option of the run's settings (run_settings): its flag, how it reads from and into
// TrainOptions, the range its values must lie in, and whether a resumed run may change it.
struct Setting {
    std::string flag;  // "--seq-len"
    bool may_change = false;
    std::function<json(const TrainOptions&)> get;
    std::function<std::string(TrainOptions&, const json&)> set;  // "" or why the value is refused
    std::optional<CLI::Validator> check;                         // of the command line's text

    std::string key() const {  // "seq_len"
        std::string k = flag.substr(2);
        for (char& c : k)
            if (c == '-') c = '_';
        return k;
    }
};

template <class V>
Setting setting(const char* flag, V TrainOptions::*field, std::optional<RangeOf<V>> range = {},
                bool may_change = false) {
    Setting s{flag, may_change, [field](const TrainOptions& o) { return json(o.*field); }, {}, {}};
    s.set = [field, range](TrainOptions& o, const json& j) {
        V x{};
        if (std::string why = read_json(j, x); !why.empty()) return why;
        if constexpr (numeric<V>) {
            std::vector<typename element<V>::type> values;  // the value, or a list's elements
            if constexpr (std::is_same_v<V, typename element<V>::type>)
                values = {x};
            else
                values = x;
            for (const auto& e : values)
                if (std::string why = range ? range->check(e, fmt::format("{}", e)) : ""; !why.empty()) return why;
        }
        o.*field = x;
        return std::string();
    };
    if constexpr (numeric<V>)
        if (range) s.check = in_range(*range);
    return s;
}

constexpr bool kMayChange = true;

// Every option that changes what a run computes or logs. --steps comes before --warmup,
// whose default depends on it.
const std::vector<Setting>& settings_table() {
    static const std::vector<Setting> table = [] {
        const Range<int> positive{1, INT_MAX}, counter{0, INT_MAX};
        const Range<double> fraction{0, 1}, below_one{0, 1, false, true}, nonnegative{0, INFINITY, false, true};
        std::vector<Setting> t = {
            setting("--init", &TrainOptions::init),
            setting("--train", &TrainOptions::train),
            setting("--val", &TrainOptions::val),
            setting("--batch", &TrainOptions::batch, positive),
            setting("--seq-len", &TrainOptions::seq_len, positive),
            // On another number of ranks, to keep the global batch (src/trainer.cpp checks it).
            setting("--grad-accum", &TrainOptions::grad_accum, positive, kMayChange),
            setting("--steps", &TrainOptions::steps, positive, kMayChange),
            setting("--lr", &TrainOptions::lr, nonnegative),
            setting("--min-lr-frac", &TrainOptions::min_lr_frac, fraction),
            setting("--warmup", &TrainOptions::warmup, Range<int>{-1, INT_MAX}),
            setting("--schedule", &TrainOptions::schedule),
            setting("--beta1", &TrainOptions::beta1, below_one),
            setting("--beta2", &TrainOptions::beta2, below_one),
            setting("--eps", &TrainOptions::eps, Range<double>{0, INFINITY, true, true}),
            setting("--wd", &TrainOptions::wd, nonnegative),
            setting("--clip", &TrainOptions::clip, nonnegative),
            setting("--shuffle", &TrainOptions::shuffle),
            setting("--train-route", &TrainOptions::train_route),
            setting("--p-own", &TrainOptions::p_own, fraction),
            setting("--p-own-final", &TrainOptions::p_own_final, fraction),
            setting("--seed", &TrainOptions::seed, Range<uint64_t>{0, UINT64_MAX}),
            setting("--val-every", &TrainOptions::val_every, counter, kMayChange),
            setting("--val-batches", &TrainOptions::val_batches, positive),
            setting("--retention", &TrainOptions::retention, positive),
            setting("--ckpt-every", &TrainOptions::ckpt_every, counter, kMayChange),
            setting("--device", &TrainOptions::device),
            setting("--attention", &TrainOptions::attention),
            setting("--zero", &TrainOptions::zero, Range<int>{0, 2}),
            // The gradients are bitwise the same with any value (DESIGN.md): a resumed run may
            // change it, e.g. to fit another GPU.
            setting("--recompute", &TrainOptions::recompute, {}, kMayChange),
        };
        for (Setting& s : t) {  // the schedules' ends as the values they came to
            if (s.flag == "--warmup") s.get = [](const TrainOptions& o) { return json(o.warmup_steps()); };
            if (s.flag == "--p-own-final") s.get = [](const TrainOptions& o) { return json(o.p_own_last()); };
        }
        return t;
    }();
    return table;
}

// A saved or given value as a command line writes it: 0.002, cosine, 1,2,3.
std::string shown(const json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (!j.is_array()) return j.dump();
    std::string s;
    for (const json& e : j) s += (s.empty() ? "" : ",") + shown(e);
    return s;
}

}  // namespace

void add_train_options(CLI::App& app, TrainOptions& o) {
    auto* model = app.add_option("--model", o.model,
                                 "model preset (gpt2-124m, gpt2-tiny, llama3-tiny, qwen3-tiny, qwen3-0.6b, qwen3-1.7b)")
                      ->capture_default_str();
    auto* config = app.add_option("--config", o.config_file, "model config.json (Hugging Face field names)")
                       ->check(CLI::ExistingFile)
                       ->excludes(model);
    model->excludes(config);
    app.add_option("--init", o.init, "initial weights: an rkv checkpoint directory or an llm.c GPT-2 .bin");
    app.add_option("--train", o.train, "glob of training shards (default: the built-in corpus)");
    app.add_option("--val", o.val, "glob of validation shards (default: the built-in corpus's)");
    app.add_option("-b,--batch", o.batch, "sequences per micro-batch")->capture_default_str();
    app.add_option("-t,--seq-len", o.seq_len, "tokens per sequence")->capture_default_str();
    app.add_option("--grad-accum", o.grad_accum, "micro-batches per update")->capture_default_str();
    app.add_option("--steps", o.steps, "optimizer updates (to score a checkpoint without training it: ./eval_rkv)")
        ->capture_default_str();
    app.add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
    app.add_option("--min-lr-frac", o.min_lr_frac, "final learning rate as a fraction of --lr")->capture_default_str();
    app.add_option("--warmup", o.warmup, "warmup steps (default: 5% of --steps)");
    app.add_option("--schedule", o.schedule, "learning-rate schedule")
        ->check(CLI::IsMember({"constant", "cosine", "linear"}))
        ->capture_default_str();
    app.add_option("--beta1", o.beta1, "AdamW beta1")->capture_default_str();
    app.add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
    app.add_option("--eps", o.eps, "AdamW epsilon")->capture_default_str();
    app.add_option("--wd", o.wd, "decoupled weight decay on matrices")->capture_default_str();
    app.add_option("--clip", o.clip, "max global gradient norm (0: off)")->capture_default_str();
    app.add_option("--shuffle", o.shuffle, "shuffle the training batches (0|1)")->capture_default_str();
    const auto p_own_given = [&o](const std::string&) { o.p_own_given = true; };
    app.add_option("--p-own", o.p_own, "probability that a layer attends to its own K/V (1: no routing)")
        ->capture_default_str()
        ->each(p_own_given);
    app.add_option("--p-own-final", o.p_own_final,
                   "p_own at the last step, linear from --p-own at step 0 (default: --p-own throughout)")
        ->each(p_own_given);
    app.add_option("--train-route", o.train_route,
                   "training routes: stochastic (drawn per micro-batch with --p-own), keep-every:K or layers:0,3,5 "
                   "(one fixed sharing pattern, CLA)")
        ->capture_default_str();
    app.add_option("--seed", o.seed, "seed of the weights, routes and shuffling")->capture_default_str();
    app.add_option("--val-every", o.val_every, "validate every N updates (0: off)")->capture_default_str();
    app.add_option("--val-batches", o.val_batches, "validation micro-batches")->capture_default_str();
    app.add_option("--retention", o.retention, "keep-every-k values validated (1: the full cache)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--ckpt-every", o.ckpt_every, "checkpoint every N updates (0: only at the end)")
        ->capture_default_str();
    app.add_option("--out", o.out, "run folder: log.jsonl and checkpoints (default: runs/out/<model>-<time>)");
    app.add_flag("--resume", o.resume, "continue from the newest checkpoint in --out");
    app.add_option("--device", o.device, "where to train")
        ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
        ->capture_default_str();
    app.add_option("--attention", o.attention,
                   "attention kernel of the CUDA path: auto (wgmma on Hopper in an sm_90a build, else mma), "
                   "wgmma, mma (mma.sync) or plain")
        ->check(CLI::IsMember(attention_names()))
        ->capture_default_str();
    app.add_flag("--profile", o.profile,
                 "print the device time per step of each layer operation, over the steps after the first (CUDA path)");
    app.add_option("--zero", o.zero,
                   "1: shard the optimizer state across ranks (ZeRO-1); 2: the gradients too "
                   "(ZeRO-2)")
        ->check(CLI::IsMember({0, 1, 2}))
        ->capture_default_str();
    app.add_option("--recompute", o.recompute,
                   "activation recomputation in the backward: none, mlp (the MLP's from the residual after "
                   "attention) or layer (every layer's from its input); the same gradients, less memory")
        ->check(CLI::IsMember(recompute_names()))
        ->capture_default_str();
    for (const Setting& s : settings_table())
        if (s.check) app.get_option(s.flag)->check(*s.check);
    app.final_callback([&app, &o, model, config] {
        o.model_given = model->count() || config->count();
        for (const CLI::Option* opt : app.get_options())
            if (opt->count()) o.given.insert(opt->get_name());
    });
}

json run_settings(const TrainOptions& o) {
    json j = json::object();
    for (const Setting& s : settings_table()) j[s.key()] = s.get(o);
    return j;
}

void apply_run_settings(TrainOptions& o, const json& saved, const std::string& file) {
    if (!saved.is_object()) throw std::runtime_error(fmt::format("{}: \"run\" is not an object", file));
    // Keys the file lacks and the command line does not give; a setting a resumed run may change
    // takes the command line's value when an older rkv did not save it.
    std::vector<std::string> missing, flags, changeable;
    for (const Setting& s : settings_table()) {
        if (s.may_change) changeable.push_back(s.flag);
        if (!saved.contains(s.key()) && !o.given.count(s.flag) && !s.may_change) {
            missing.push_back("run." + s.key());
            flags.push_back(s.flag);
        }
    }
    if (!missing.empty())
        throw std::runtime_error(
            fmt::format("{}: {} {} missing (a checkpoint of an older rkv?); give {} with the "
                        "value{} the run was started with",
                        file, fmt::join(missing, ", "), missing.size() == 1 ? "is" : "are", fmt::join(flags, ", "),
                        missing.size() == 1 ? "" : "s"));
    for (const Setting& s : settings_table()) {
        const std::string key = s.key();
        const bool given = o.given.count(s.flag);
        if (!saved.contains(key)) continue;  // given
        TrainOptions was = o;
        if (std::string why = s.set(was, saved[key]); !why.empty())
            throw std::runtime_error(fmt::format("{}: run.{}: {}", file, key, why));
        if (!given)
            s.set(o, saved[key]);
        else if (!s.may_change && s.get(o) != s.get(was))
            throw std::runtime_error(fmt::format(
                "{}: the run was started with {} {}, but the command line gives {} {}; --resume continues a run as it "
                "was started (only {} may change): drop the flag, or start a new run in another --out",
                file, s.flag, shown(s.get(was)), s.flag, shown(s.get(o)), fmt::join(changeable, ", ")));
    }
}

void TrainOptions::validate() const {
    auto require = [](bool ok, const std::string& what) {
        if (!ok) throw std::invalid_argument(what);
    };
    for (const Setting& s : settings_table()) {  // each value in its range
        TrainOptions copy = *this;
        const json value = s.get(*this);
        const std::string why = s.set(copy, value);
        require(why.empty(), fmt::format("{}: {}", s.flag, why));
    }
    auto one_of = [](const std::string& x, std::initializer_list<const char*> names) {
        for (const char* n : names)
            if (x == n) return true;
        return false;
    };
    require(one_of(schedule, {"constant", "cosine", "linear"}), fmt::format("--schedule: unknown {}", schedule));
    require(one_of(device, {"cpu", "cuda", "auto"}), fmt::format("--device: unknown {}", device));
    require(one_of(attention, {"auto", "wgmma", "mma", "plain"}), fmt::format("--attention: unknown {}", attention));
    parse_recompute(recompute);  // throws naming the option
    require(warmup_steps() <= steps, fmt::format("--warmup {} exceeds --steps {}", warmup_steps(), steps));
    const TrainRouteSpec route = parse_train_route(train_route);
    require(route.kind == TrainRouteSpec::Kind::stochastic || !p_own_given,
            fmt::format("--p-own and --p-own-final apply to --train-route stochastic, not {}", train_route));
    require(train.empty() == val.empty() || val.empty(), "--val needs --train");
    require(!resume || !out.empty(), "--resume needs --out");
}

}  // namespace rkv
