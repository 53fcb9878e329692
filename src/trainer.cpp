#include "src/trainer.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "data/corpus.h"
#include "src/checkpoint.h"
#include "src/devices.h"
#include "src/file_io.h"
#include "src/op_profile.h"
#include "src/storage.h"
#include "src/validation.h"

namespace fs = std::filesystem;

namespace rkv {

namespace {

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal = sig; }

#ifndef RKV_VERSION
#define RKV_VERSION "unknown"
#endif

// A checkpoint's state.json, checked: where a resumed run continues.
struct TrainState {
    long step = 0;
    LoaderState loader;
    nlohmann::json run;  // run_settings() and the number of ranks
    double wall_s = 0;   // training time of the run up to the checkpoint
};

TrainState parse_state(const nlohmann::json& state, const std::string& ckpt_dir) {
    const std::string file = ckpt_dir + "/state.json";
    auto fail = [&](const std::string& what) { throw std::runtime_error(fmt::format("{}: {}", file, what)); };
    if (!state.is_object()) fail("not a JSON object");
    auto count = [&](const nlohmann::json& parent, const std::string& key, const std::string& name) {
        if (!parent.contains(key)) fail(fmt::format("\"{}\" is missing", name));
        const nlohmann::json& j = parent[key];
        if (!j.is_number_integer() || j.get<int64_t>() < 0 || j.get<int64_t>() > INT32_MAX)
            fail(fmt::format("\"{}\" must be a non-negative integer, got {}", name, j.dump()));
        return j.get<int64_t>();
    };
    TrainState st;
    st.step = count(state, "step", "step");
    const std::string name = fs::path(ckpt_dir).filename().string();
    if (name != fmt::format("ckpt_{:08d}", st.step))
        fail(fmt::format("\"step\" is {}, but the checkpoint is named {}", st.step, name));
    if (!state.contains("train_loader") || !state["train_loader"].is_object())
        fail("\"train_loader\" is missing or not an object");
    st.loader.epoch = count(state["train_loader"], "epoch", "train_loader.epoch");
    st.loader.batch = count(state["train_loader"], "batch", "train_loader.batch");
    if (!state.contains("run") || !state["run"].is_object()) fail("\"run\" is missing or not an object");
    st.run = state["run"];
    if (count(st.run, "world", "run.world") < 1) fail("\"run.world\" must be at least 1");
    if (state.contains("wall_s")) {
        if (!state["wall_s"].is_number() || state["wall_s"].get<double>() < 0)
            fail(fmt::format("\"wall_s\" must be a non-negative number, got {}", state["wall_s"].dump()));
        st.wall_s = state["wall_s"];
    }
    return st;
}

// A run resumes on any number of ranks that keeps its global batch, world x --grad-accum
// micro-batches (DESIGN.md section 6): each micro-batch's data and route are keyed by its index
// in the global batch, so the same micro-batches are only split otherwise over ranks and
// accumulation. The loader counts global batches of `world` micro-batches: its position is
// carried over as the micro-batches read. Throws naming state.json and both splits.
LoaderState loader_on(const TrainState& st, const std::string& ckpt_dir, int world, int grad_accum) {
    const std::string file = ckpt_dir + "/state.json";
    const int64_t was = st.run["world"].get<int64_t>();
    const nlohmann::json& a = st.run.contains("grad_accum") ? st.run["grad_accum"] : nlohmann::json(grad_accum);
    if (!a.is_number_integer() || a.get<int64_t>() < 1)
        throw std::runtime_error(
            fmt::format("{}: \"run.grad_accum\" must be a positive integer, got {}", file, a.dump()));
    const int64_t global = was * a.get<int64_t>();
    if (global != int64_t(world) * grad_accum)
        throw std::runtime_error(fmt::format(
            "{}: the run's global batch is {} micro-batches ({} rank{} x --grad-accum {}), this job's {} ({} x {}); a "
            "resumed run keeps its global batch{}",
            file, global, was, was == 1 ? "" : "s", a.get<int64_t>(), int64_t(world) * grad_accum, world, grad_accum,
            global % world == 0 ? fmt::format(": give --grad-accum {}", global / world)
                                : fmt::format(", which {} ranks do not divide", world)));
    const int64_t read = st.loader.batch * was;  // micro-batches of the epoch already read
    if (read % world != 0)
        throw std::runtime_error(
            fmt::format("{}: the data position, micro-batch {} of epoch {}, is not the start of "
                        "a global batch on {} ranks; resume on {} ranks",
                        file, read, st.loader.epoch, world, was));
    return {st.loader.epoch, read / world};
}

// "2026-12-04T20:41:07Z"
std::string utc_now() { return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr))); }

// Where the run computes, in words: the emulator build runs the CUDA path on the CPU.
std::string device_text(const std::string& device) {
    if (!uses_cuda(device)) return "cpu";
#ifdef RKV_EMU
    return "cuda (emulated on the CPU: this build has no GPU code)";
#else
    return "cuda";
#endif
}

// A checkpoint's config against the one the flags ask for: the family first, then the
// first differing field.
void check_same_config(const ModelConfig& saved, const ModelConfig& asked, const std::string& where) {
    const auto a = to_json(saved), b = to_json(asked);
    auto differ = [&](const std::string& key) {
        if (a[key] != b[key])
            throw std::runtime_error(fmt::format("{}: its config has {} = {}, but the flags ask for {}", where, key,
                                                 a[key].dump(), b[key].dump()));
    };
    differ("model_type");
    for (auto& [key, value] : a.items()) differ(key);
}

std::string last_good(const std::string& out) {
    const auto good = latest_checkpoint(out);
    return good ? "The last good checkpoint is " + *good + "." : "No good checkpoint was written.";
}

// Signs of diverged weights. A loss above twice that of guessing uniformly over the
// vocabulary (where a freshly initialized model starts), or a weight above 1e5 in magnitude
// (trained transformers' stay within a few hundred): in both, the weights have left the
// region training moves in, even when the loss still reads finite (a saturated model's is
// exactly ln V).
double diverged_loss(int vocab_size) { return 2 * std::log(double(vocab_size)); }
constexpr float kDivergedWeight = 1e5f;

// --profile's table: each operation's calls and device time per step, and its share.
void print_profile(const OpProfile& profile, long steps) {
    if (steps <= 0) {
        fmt::print("profile: no step after the first to report (--steps 2 or more)\n");
        return;
    }
    const std::vector<OpTotal> totals = profile.totals();
    double all = 0;
    for (const OpTotal& t : totals) all += t.ms;
    fmt::print("\ndevice time per step by layer operation, over {} steps after the first:\n", steps);
    fmt::print("{:<28} {:>9} {:>10} {:>7}\n", "operation", "calls", "ms", "share");
    for (const OpTotal& t : totals)
        fmt::print("{:<28} {:>9.1f} {:>10.3f} {:>6.1f}%\n", t.name, double(t.calls) / steps, t.ms / steps,
                   100 * t.ms / all);
    fmt::print("{:<28} {:>9} {:>10.3f}\n", "all", "", all / steps);
}

}  // namespace

void resume_options(TrainOptions& o) {
    if (o.out.empty()) throw std::invalid_argument("--resume needs --out");
    const auto latest = latest_checkpoint(o.out);
    if (!latest) throw std::runtime_error(fmt::format("{}: --resume, but no checkpoint in it", o.out));
    const std::string file = *latest + "/state.json";
    const TrainState st = parse_state(read_json_file(file), *latest);
    apply_run_settings(o, st.run, file);
    if (o.steps > st.step) return;
    if (o.given.count("--steps"))
        throw std::runtime_error(
            fmt::format("--steps {}: the run in {} is at step {} already ({}); give a larger "
                        "--steps to train it further",
                        o.steps, o.out, st.step, *latest));
    throw std::runtime_error(
        fmt::format("{}: the run is finished (step {} of --steps {}); give --steps above {} "
                    "to extend it",
                    o.out, st.step, o.steps, st.step));
}

template <class S>
Trainer<S>::Trainer(const TrainOptions& options, Comm& comm) : o_(options), comm_(comm), lead_(comm.rank() == 0) {
    // From here on SIGINT/SIGTERM ask for a checkpoint and a clean stop, not an abrupt exit.
    g_signal = 0;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    o_.validate();
    if (o_.val_batches % comm_.world() != 0)
        throw std::invalid_argument(
            fmt::format("--val-batches {} must be a multiple of the {} ranks", o_.val_batches, comm_.world()));
    config_ = o_.config_file.empty() ? preset(o_.model) : load_config(o_.config_file);

    out_ = o_.out.empty() ? fmt::format("runs/out/{}-{:%Y%m%d-%H%M%S}", o_.model, fmt::localtime(std::time(nullptr)))
                          : o_.out;
    const auto latest = latest_checkpoint(out_);
    if (latest && !o_.resume)
        throw std::runtime_error(fmt::format(
            "{}: already holds checkpoints (newest {}); pass --resume to continue it or choose another --out", out_,
            *latest));
    if (o_.resume && !latest) throw std::runtime_error(fmt::format("{}: --resume, but no checkpoint in it", out_));
    fs::create_directories(out_);

    std::optional<Checkpoint> resumed;
    TrainState st;
    if (o_.resume) {
        resumed = load_checkpoint(*latest, true);
        st = parse_state(resumed->state, *latest);
        step_ = st.step;
        wall_s_ = st.wall_s;
        st.loader = loader_on(st, *latest, comm_.world(), o_.grad_accum);
    }
    load_weights(resumed ? &*resumed : nullptr);
    if (o_.seq_len > config_.max_position_embeddings)
        throw std::invalid_argument(fmt::format("--seq-len {} exceeds the model's max_position_embeddings {}",
                                                o_.seq_len, config_.max_position_embeddings));
    resolve_data();
    if (resumed) {
        // This rank's shard of the state, read from whichever ranks' files hold it.
        OptimizerSlice slice =
            load_optimizer(*latest, resumed->state, model_->table, o_.zero ? shard_ * comm_.rank() : 0, shard_,
                           !std::is_same_v<S, master_t<S>>);
        opt_->set_state(slice.m, slice.v);
        if (!slice.master.empty()) {
            opt_->set_master(model_->params, slice.master, step_);
            gather_params();
        }
        train_->restore(st.loader);
    }
    routes_ = std::make_unique<TrainRoute>(parse_train_route(o_.train_route), config_.num_hidden_layers, o_.p_own,
                                           o_.p_own_last(), o_.steps);
    schedule_ = {parse_schedule(o_.schedule), o_.lr, o_.min_lr_frac, o_.warmup_steps(), o_.steps};
    if (lead_) {
        print_header();
        if (resumed) {
            fmt::print("resumed from {} at step {}\n", *latest, step_);
            if (st.run["world"] != comm_.world())
                fmt::print(
                    "the run moves from {} to {} ranks (--grad-accum {}): the same global batch, its sums in "
                    "another order\n",
                    st.run["world"].dump(), comm_.world(), o_.grad_accum);
            const nlohmann::json& epoch = resumed->state.value("train_epoch_micro_batches", nlohmann::json());
            if (epoch.is_number_integer() && epoch.get<int64_t>() != train_->batches_per_epoch() * comm_.world())
                fmt::print(
                    "note: an epoch of the training data is {} micro-batches on {} ranks, {} before: from the "
                    "next epoch on the data order differs from the run's on its old number of ranks\n",
                    train_->batches_per_epoch() * comm_.world(), comm_.world(), epoch.dump());
            if (st.run.contains("steps") && st.run["steps"] != o_.steps)
                fmt::print(
                    "extending the run from --steps {} to {}: the learning-rate (and any p_own) schedule "
                    "now spans {} steps, so from step {} on it differs from the one the run started with\n",
                    st.run["steps"].dump(), o_.steps, o_.steps, step_);
        }
        // A fresh run starts a fresh log; a resumed one keeps what its checkpoint had seen.
        TrainLog::truncate_after(out_ + "/log.jsonl", o_.resume ? step_ : -1);
        const long val_batches = o_.val_batches / comm_.world() * long(o_.retention.size());
        log_ = std::make_unique<TrainLog>(
            out_ + "/log.jsonl", TrainLog::Plan{o_.steps, val_ ? o_.val_every : 0, val_batches, o_.grad_accum});
        nlohmann::json start = {{"event", resumed ? "resume" : "start"},
                                {"time", utc_now()},
                                {"version", RKV_VERSION},
                                {"run", run_record()},
                                {"machine",
                                 {{"hostname", host_name()},
                                  {"device", device_text(o_.device)},
                                  {"ranks", comm_.world()},
                                  {"precision", precision_name<S>()}}}};
        if (resumed) start["from_step"] = step_;
        log_->event(start);
        write_text_atomic(out_ + "/run.json", start.dump(2) + "\n");
    }
}

template <class S>
void Trainer<S>::print_header() const {
    const int world = comm_.world();
    fmt::print("train_rkv {} | device {} | {} rank{} | {} storage | run folder {}\n", RKV_VERSION,
               device_text(o_.device), world, world == 1 ? "" : "s", precision_name<S>(), out_);
    fmt::print("model {} ({} parameters, {} layers) | train {} ({}){}\n", config_.model_type, model_->table.total,
               config_.num_hidden_layers, train_glob_, train_->summary(),
               val_ ? fmt::format(" | val {} ({})", val_glob_, val_->summary()) : std::string());
}

template <class S>
void Trainer<S>::load_weights(const Checkpoint* resumed) {
    Checkpoint init;
    if (resumed) {
        if (o_.model_given) check_same_config(resumed->config, config_, *latest_checkpoint(out_));
        config_ = resumed->config;
        init.params = resumed->params;
        source_ = resumed->source;
    } else if (!o_.init.empty()) {
        init = load_model_weights(o_.init);
        if (o_.model_given) check_same_config(init.config, config_, o_.init);
        config_ = init.config;
        source_ = init.source;
    }
    ops_ = make_layer_ops<S>(o_.device, o_.attention);
    if (o_.profile && !ops_->profile())
        throw std::invalid_argument("--profile times the CUDA path's operations; this run is on the CPU (--device " +
                                    o_.device + ")");
    // ZeRO-1 and 2 split the flat buffer evenly: it is padded with zeros to world shards. ZeRO-2's
    // model writes its gradients into working windows (src/sharded_grads.h), not a whole buffer.
    const ParamTable table(config_);
    const size_t total = table.total, world = comm_.world();
    shard_ = o_.zero ? (total + world - 1) / world : total;
    model_ = std::make_unique<Model<S>>(config_, *ops_, o_.batch, o_.seq_len, o_.zero ? shard_ * world : total, true,
                                        parse_recompute(o_.recompute),
                                        o_.zero == 2 ? ShardedGrads<S>::working_elements(table) : 0);
    if (o_.zero == 2)
        sharded_grads_ = std::make_unique<ShardedGrads<S>>(*model_, *ops_, comm_, shard_ * comm_.rank(), shard_);
    if (init.params.empty()) {
        init.params.resize(model_->table.total);
        init_params(init.params.data(), model_->table, config_, o_.seed);
    }
    opt_ = std::make_unique<AdamW<S>>(model_->table, AdamWConfig{o_.beta1, o_.beta2, o_.eps, o_.wd, false, o_.clip},
                                      *ops_, o_.zero ? shard_ * comm_.rank() : 0, shard_);
    opt_->set_weights(model_->params, init.params, step_);
    gather_params();
}

template <class S>
void Trainer<S>::gather_params() {
    if (o_.zero) comm_.all_gather(model_->params + shard_ * comm_.rank(), model_->params, shard_);
}

template <class S>
void Trainer<S>::resolve_data() {
    std::string train = o_.train, val = o_.val;
    if (train.empty()) {  // rank 0 generates the corpus into this machine's cache, the others wait
        CorpusFiles files;
        if (lead_) files = cached_builtin_corpus(kBuiltinCorpusSeed);
        comm_.barrier();
        if (!lead_) files = cached_builtin_corpus(kBuiltinCorpusSeed);  // another machine's ranks generate their own
        train = files.train;
        val = files.val;
    }
    train_glob_ = train;
    val_glob_ = val;
    const LoaderOptions common{"",    o_.batch, o_.seq_len,        comm_.rank(), comm_.world(),
                               false, o_.seed,  config_.vocab_size};
    LoaderOptions t = common, v = common;
    t.pattern = train;
    t.shuffle = o_.shuffle;
    train_ = std::make_unique<DataLoader>(t);
    if (!val.empty() && o_.val_every > 0) {
        v.pattern = val;
        val_ = std::make_unique<DataLoader>(v);
    }
}

template <class S>
nlohmann::json Trainer<S>::run_record() const {
    nlohmann::json run = run_settings(o_);
    run["world"] = comm_.world();
    return run;
}

template <class S>
nlohmann::json Trainer<S>::rkv_block() const {
    // The training route (src/route.h, TrainRoute): "stochastic" draws one per micro-batch (each
    // layer l >= 1 keeps its own K/V with probability p_own, linear to p_own_final over the run,
    // else reads a layer drawn uniformly below it); "keep-every:K" and "layers:..." are fixed.
    const TrainRouteSpec spec = parse_train_route(o_.train_route);
    nlohmann::json route = {{"kind", spec.str()}};
    if (spec.kind == TrainRouteSpec::Kind::stochastic) {
        route["p_own"] = o_.p_own;
        route["p_own_final"] = o_.p_own_last();
    }
    nlohmann::json block = {{"route", route}};
    if (val_step_ >= 0) {
        nlohmann::json losses = nlohmann::json::array();
        for (auto& [k, loss] : val_loss_)
            losses.push_back({{"keep_every", k},
                              {"kept_layers", keep_every(config_.num_hidden_layers, k).kept_layers().size()},
                              {"loss", loss}});
        block["validation"] = {{"step", val_step_}, {"losses", losses}};
    }
    return block;
}

template <class S>
double Trainer<S>::train_step() {
    const int BT = o_.batch * o_.seq_len;
    // The update's loss is the mean over every target that carries loss, in all micro-batches
    // of all ranks: with fine-tuning rows each micro-batch has its own count, so the counts are
    // summed first and micro-batch i, the mean of its n_i targets, is weighted n_i / total.
    // (With shards every target counts, and the weight is 1 / (grad_accum * world).)
    std::vector<std::vector<int32_t>> inputs(o_.grad_accum, std::vector<int32_t>(BT)), targets = inputs;
    double total = 0;
    for (int micro = 0; micro < o_.grad_accum; micro++) {
        train_->next_batch(inputs[micro].data(), targets[micro].data());
        total += loss_tokens(targets[micro]);
    }
    comm_.all_reduce_sum(&total, 1);
    if (sharded_grads_)
        sharded_grads_->zero();
    else
        model_->zero_grad();
    const int world = comm_.world();
    double loss = 0;
    for (int micro = 0; micro < o_.grad_accum; micro++) {
        // In the last micro-batch, each layer's gradients start their all-reduce as soon as
        // its backward is done, while the layers below run theirs (NCCL on a side stream).
        // ZeRO-2 reduces every micro-batch's gradients that way, each range to the rank whose
        // shard holds it (src/sharded_grads.h).
        const bool last = micro == o_.grad_accum - 1;
        if (last && !o_.zero)
            model_->on_grads_final = [&](size_t begin, size_t end) {
                comm_.all_reduce_start(model_->grads + begin, end - begin);
            };
        // The global micro-batch index keys the route, so a resumed run, and a run that
        // splits the same global batch over more ranks and fewer micro-batches, draw the
        // same routes. It tells the ranks apart already: the key's rank field stays 0.
        const uint64_t index = (uint64_t(step_) * o_.grad_accum + micro) * world + comm_.rank();
        const Route route = routes_->at(step_, {o_.seed, index, 0});
        const double scale = loss_tokens(targets[micro]) / total;
        loss += model_->forward_backward(inputs[micro].data(), targets[micro].data(), route, scale) * scale;
        if (sharded_grads_) sharded_grads_->finish();
    }
    // ZeRO-1: each rank needs the summed gradients of its shard only, whose bounds do not
    // follow the layers': one reduce-scatter after the backward.
    if (o_.zero == 1) comm_.reduce_scatter_sum(model_->grads, model_->grads + shard_ * comm_.rank(), shard_);
    if (!o_.zero) {
        model_->on_grads_final = nullptr;
        comm_.finish_started();
    }
    comm_.all_reduce_sum(&loss, 1);
    return loss;
}

template <class S>
const float* Trainer<S>::shard_grads() const {
    if (sharded_grads_) return sharded_grads_->shard();
    return model_->grads + (o_.zero ? shard_ * comm_.rank() : 0);
}

template <class S>
double Trainer<S>::validate(int k) {
    return validation_loss(*model_, *val_, keep_every(config_.num_hidden_layers, k), o_.val_batches, comm_);
}

template <class S>
void Trainer<S>::validate_all() {
    if (!val_) return;
    const auto t0 = std::chrono::steady_clock::now();
    for (int k : o_.retention) {
        const double loss = validate(k);
        if (!std::isfinite(loss)) {
            // The weights after update step_ gave it: as if the next step's loss were not finite.
            std::string kept = lead_ ? keep_good_checkpoints(step_ + 1) : "";
            comm_.barrier();  // the checkpoints are sorted before any rank stops the job
            throw std::runtime_error(fmt::format("step {}: the validation loss is {} at retention 1/{}; stopping. {}",
                                                 step_, loss, k, kept));
        }
        if (log_) log_->val(step_, k, loss);
        val_loss_[k] = loss;
    }
    val_step_ = step_;
    if (log_) log_->validated(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
}

template <class S>
std::string Trainer<S>::keep_good_checkpoints(long bad) {
    const long first = std::min(diverged_from_, bad - 1);  // bad - 1: the weights that gave the bad loss
    std::vector<std::string> set_aside;
    for (auto dir = latest_checkpoint(out_); dir; dir = latest_checkpoint(out_)) {
        const long step = std::stol(fs::path(*dir).filename().string().substr(5));
        if (step < first) break;
        const std::string aside = *dir + ".diverged";
        fs::remove_all(aside);
        fs::rename(*dir, aside);
        set_aside.push_back(fs::path(*dir).filename().string());
    }
    sync_dir(out_);
    std::string kept = last_good(out_);
    if (!set_aside.empty())  // newest first
        kept += fmt::format(
            " Set aside as diverged (renamed *.diverged): {}{}.", set_aside.back(),
            set_aside.size() == 1 ? "" : fmt::format(" to {}, {} checkpoints", set_aside.front(), set_aside.size()));
    return kept;
}

template <class S>
std::vector<float> Trainer<S>::model_weights() const {
    const size_t total = model_->table.total;
    if (!o_.zero) {  // AdamW holds the whole buffer: its fp32 truth
        std::vector<float> w = opt_->weights(model_->params);
        w.resize(total);
        return w;
    }
    std::vector<float> w(total);
    if constexpr (std::is_same_v<S, float>) {
        ops_->download(w.data(), model_->params, total);
    } else {  // bf16, the upper half of an fp32, through a bounded buffer
        std::vector<S> working(std::min(total, kStagingElements));
        for (size_t i = 0; i < total; i += working.size()) {
            const size_t n = std::min(working.size(), total - i);
            ops_->download(working.data(), model_->params + i, n);
            for (size_t j = 0; j < n; j++) {
                uint16_t bits;
                std::memcpy(&bits, &working[j], sizeof bits);
                w[i + j] = std::bit_cast<float>(uint32_t(bits) << 16);
            }
        }
    }
    return w;
}

template <class S>
void Trainer<S>::save() {
    // Without ZeRO rank 0 holds all the state and writes the checkpoint alone.
    if (!o_.zero && !lead_) return;
    std::vector<float> params;
    if (lead_) params = model_weights();
    if (lead_ && !std::all_of(params.begin(), params.end(), [](float x) { return std::isfinite(x); }))
        throw std::runtime_error(
            fmt::format("step {}: the parameters are not finite after the update; not saving "
                        "them. {}",
                        step_, keep_good_checkpoints(step_ + 1)));
    float max_weight = 0;
    for (float w : params) max_weight = std::max(max_weight, std::fabs(w));
    if (max_weight > kDivergedWeight) diverged_from_ = std::min(diverged_from_, step_);
    nlohmann::json state = {{"step", step_},
                            {"train_loader", train_->state()},
                            {"run", run_record()},
                            {"wall_s", wall_s()},
                            {"train_epoch_micro_batches", train_->batches_per_epoch() * comm_.world()}};
    const ModelFolderExtras extras{Dtype::F32, source_, rkv_block()};
    if (!o_.zero) {
        fmt::print("checkpoint {}\n",
                   save_checkpoint(out_, step_, config_, params.data(), opt_->m(), opt_->v(), state, extras));
        return;
    }
    // ZeRO: each rank writes its own slice of the state; the checkpoint becomes complete (rank 0
    // renames its folder) only once every rank's file is written.
    state["optimizer_shards"] = comm_.world();
    int saved = lead_ && fs::exists(checkpoint_dir(out_, step_));  // this step is already saved, whole
    comm_.broadcast(&saved, sizeof saved, 0);
    if (saved) return;
    const std::string tmp = checkpoint_tmp(out_, step_);
    if (lead_) {
        fs::remove_all(tmp);
        fs::create_directories(tmp);
    }
    comm_.barrier();
    OptimizerSlice mine{opt_->m(), opt_->v(), {}};
    if constexpr (!std::is_same_v<S, master_t<S>>) mine.master = opt_->weights(model_->params);
    write_optimizer_shard(tmp, step_, model_->table.total, comm_.world(), comm_.rank(), mine);
    if (lead_) write_checkpoint_model(tmp, config_, params.data(), state, extras);
    comm_.barrier();  // every rank's part is written
    if (!lead_) return;
    commit_checkpoint(out_, step_);
    fmt::print("checkpoint {}\n", checkpoint_dir(out_, step_));
}

template <class S>
int Trainer<S>::run() {
    if (g_signal) return 128 + g_signal;
    start_ = std::chrono::steady_clock::now();
    const long tokens_per_step = long(o_.batch) * o_.seq_len * o_.grad_accum * comm_.world();
    if (step_ == 0 && o_.val_every > 0) validate_all();
    OpProfile* profile = o_.profile ? ops_->profile() : nullptr;
    const long first = step_;  // its step warms up (cuBLASLt's choices, allocations): not profiled
    while (step_ < o_.steps) {
        const auto t0 = std::chrono::steady_clock::now();
        if (profile) profile->enable(step_ > first);
        const double loss = train_step();
        double sq = opt_->grad_sq(shard_grads());
        if (o_.zero) comm_.all_reduce_sum(&sq, 1);
        const double norm = std::sqrt(sq);
        if (!std::isfinite(loss) || !std::isfinite(norm)) {
            std::string kept = lead_ ? keep_good_checkpoints(step_ + 1) : "";
            comm_.barrier();  // the checkpoints are sorted before any rank stops the job
            throw std::runtime_error(
                fmt::format("step {}: the loss or gradient norm is not finite (loss {}, gradient "
                            "norm {}); stopping. {}",
                            step_ + 1, loss, norm, kept));
        }
        const double lr = schedule_.at(int(step_));
        opt_->step(model_->params, shard_grads(), lr, step_ + 1, norm);
        gather_params();
        if (profile) {
            profile->enable(false);
            profile->collect();
        }
        // Weights that give a loss above the bound have diverged, even if the run carries on.
        if (!(loss <= diverged_loss(config_.vocab_size))) diverged_from_ = std::min(diverged_from_, step_);
        step_++;
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (log_)
            log_->train({step_, o_.steps, loss, lr, norm, ms, tokens_per_step / (ms / 1000.0), step_ * tokens_per_step,
                         wall_s(), utc_now()});
        const bool last = step_ == o_.steps;
        if (o_.val_every > 0 && (step_ % o_.val_every == 0 || last)) validate_all();
        if (last || (o_.ckpt_every > 0 && step_ % o_.ckpt_every == 0)) save();
        // Every rank stops at the same step, whichever of them got the signal.
        double signal = g_signal;
        comm_.all_reduce_sum(&signal, 1);
        if (signal > 0 && !last) {
            save();
            const int sig = g_signal ? int(g_signal) : SIGTERM;
            if (lead_) fmt::print("stopped by signal {} at step {}; --resume continues\n", sig, step_);
            return 128 + sig;
        }
    }
    if (log_) log_->print_retention_table(config_.num_hidden_layers);
    if (profile && lead_) print_profile(*profile, step_ - first - 1);
    return 0;
}

template class Trainer<float>;
#if RKV_WITH_CUDA
template class Trainer<__nv_bfloat16>;
#endif

}  // namespace rkv
