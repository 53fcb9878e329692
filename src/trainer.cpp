#include "src/trainer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "data/corpus.h"
#include "src/checkpoint.h"
#include "src/devices.h"
#include "src/op_profile.h"
#include "src/storage.h"

namespace fs = std::filesystem;

namespace rkv {

namespace {

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal = sig; }

constexpr uint64_t kCorpusSeed = 0;   // the built-in corpus is the same for every run

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
    return good ? "The last good checkpoint is " + *good + "." : "No checkpoint was written.";
}

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

template <class T>
Trainer<T>::Trainer(const TrainOptions& options, Comm& comm) : o_(options), comm_(comm), lead_(comm.rank() == 0) {
    // From here on SIGINT/SIGTERM ask for a checkpoint and a clean stop, not an abrupt exit.
    g_signal = 0;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    o_.validate();
    if (o_.val_batches % comm_.world() != 0)
        throw std::invalid_argument(fmt::format("--val-batches {} must be a multiple of the {} ranks", o_.val_batches,
                                                comm_.world()));
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
    if (o_.resume) resumed = load_checkpoint(*latest, true);
    if (resumed) step_ = resumed->state["step"];
    load_weights(resumed ? &*resumed : nullptr);
    if (o_.seq_len > config_.max_position_embeddings)
        throw std::invalid_argument(fmt::format("--seq-len {} exceeds the model's max_position_embeddings {}",
                                                o_.seq_len, config_.max_position_embeddings));
    resolve_data();
    if (resumed) {
        const Checkpoint& ck = *resumed;
        const auto& saved = ck.state["run"];
        const nlohmann::json identity = run_identity();
        for (auto& [key, value] : identity.items())
            if (saved.value(key, nlohmann::json()) != value)
                throw std::runtime_error(fmt::format("{}: was trained with {} = {}, but the flags say {}", *latest,
                                                     key, saved.value(key, nlohmann::json()).dump(), value.dump()));
        opt_->set_state(ck.m, ck.v);   // each rank takes its shard of the whole state
        train_->restore(ck.state["train_loader"].get<LoaderState>());
        if (lead_) fmt::print("resumed from {} at step {}\n", *latest, step_);
    }
    sampler_ = std::make_unique<RouteSampler>(config_.num_hidden_layers, o_.p_own);
    schedule_ = {parse_schedule(o_.schedule), o_.lr, o_.min_lr_frac, o_.warmup_steps(), o_.steps};
    if (lead_) {
        // A fresh run starts a fresh log; a resumed one keeps what its checkpoint had seen.
        TrainLog::truncate_after(out_ + "/log.jsonl", o_.resume ? step_ : -1);
        log_ = std::make_unique<TrainLog>(out_ + "/log.jsonl");
    }
}

template <class T>
void Trainer<T>::load_weights(const Checkpoint* resumed) {
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
    ops_ = make_layer_ops<T>(o_.device, o_.attention);
    if (o_.profile && !ops_->profile())
        throw std::invalid_argument("--profile times the CUDA path's operations; this run is on the CPU (--device " +
                                    o_.device + ")");
    // ZeRO-1 splits the flat buffer evenly: it is padded with zeros to world shards.
    const size_t total = ParamTable(config_).total, world = comm_.world();
    shard_ = o_.zero ? (total + world - 1) / world : total;
    model_ = std::make_unique<Model<T>>(config_, *ops_, o_.batch, o_.seq_len, o_.zero ? shard_ * world : total);
    if (init.params.empty()) {
        init.params.resize(model_->table.total);
        init_params(init.params.data(), model_->table, config_, o_.seed);
    }
    opt_ = std::make_unique<AdamW<T>>(model_->table, AdamWConfig{o_.beta1, o_.beta2, o_.eps, o_.wd, false, o_.clip},
                                      *ops_, o_.zero ? shard_ * comm_.rank() : 0, shard_);
    opt_->set_weights(model_->params, init.params, step_);
    gather_params();
}

template <class T>
void Trainer<T>::gather_params() {
    if (o_.zero) comm_.all_gather(model_->params + shard_ * comm_.rank(), model_->params, shard_);
}

template <class T>
void Trainer<T>::resolve_data() {
    std::string train = o_.train, val = o_.val;
    if (train.empty()) {   // rank 0 writes the corpus, the others wait for it
        if (lead_) write_builtin_corpus(out_ + "/corpus", kCorpusSeed);
        comm_.barrier();
        const CorpusFiles files = builtin_corpus_files(out_ + "/corpus");
        train = files.train;
        val = files.val;
    }
    const LoaderOptions common{"", o_.batch, o_.seq_len, comm_.rank(), comm_.world(), false, o_.seed,
                               config_.vocab_size};
    LoaderOptions t = common, v = common;
    t.pattern = train;
    t.shuffle = o_.shuffle;
    train_ = std::make_unique<DataLoader>(t);
    if (!val.empty() && o_.val_every > 0) {
        v.pattern = val;
        val_ = std::make_unique<DataLoader>(v);
    }
    if (lead_)
        fmt::print("model {} ({} parameters, {} layers, {}) | train {} ({} tokens){}\n", config_.model_type,
               model_->table.total, config_.num_hidden_layers, precision_name<T>(), train, train_->num_tokens(),
               val_ ? fmt::format(" | val {} ({} tokens)", val, val_->num_tokens()) : std::string());
}

template <class T>
nlohmann::json Trainer<T>::run_identity() const {
    return {{"batch", o_.batch}, {"seq_len", o_.seq_len}, {"grad_accum", o_.grad_accum}, {"seed", o_.seed},
            {"p_own", o_.p_own}, {"shuffle", o_.shuffle}, {"world", comm_.world()}};
}

template <class T>
nlohmann::json Trainer<T>::rkv_block() const {
    // The route: per micro-batch, each layer l >= 1 keeps its own K/V with probability p_own,
    // else reads a layer drawn uniformly below it (src/route.h, RouteSampler).
    nlohmann::json block = {{"route", {{"kind", "uniform_earlier"}, {"p_own", o_.p_own}}}};
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

template <class T>
double Trainer<T>::train_step() {
    const int BT = o_.batch * o_.seq_len;
    std::vector<int32_t> inputs(BT), targets(BT);
    model_->zero_grad();
    const int world = comm_.world();
    double loss = 0;
    for (int micro = 0; micro < o_.grad_accum; micro++) {
        train_->next_batch(inputs.data(), targets.data());
        // In the last micro-batch, each layer's gradients start their all-reduce as soon as
        // its backward is done, while the layers below run theirs (NCCL on a side stream).
        const bool last = micro == o_.grad_accum - 1;
        if (last && !o_.zero)
            model_->on_grads_final = [&](size_t begin, size_t end) {
                comm_.all_reduce_start(model_->grads + begin, end - begin);
            };
        // The global micro-batch index keys the route, so a resumed run, and a run that
        // splits the same global batch over more ranks and fewer micro-batches, draw the
        // same routes. It tells the ranks apart already: the key's rank field stays 0.
        const uint64_t index = (uint64_t(step_) * o_.grad_accum + micro) * world + comm_.rank();
        const Route route = sampler_->sample({o_.seed, index, 0});
        const double scale = 1.0 / (o_.grad_accum * world);   // the mean over all micro-batches
        loss += model_->forward_backward(inputs.data(), targets.data(), route, scale) * scale;
    }
    model_->on_grads_final = nullptr;
    // ZeRO-1: each rank needs the summed gradients of its shard only, whose bounds do not
    // follow the layers': one reduce-scatter after the backward.
    if (o_.zero) comm_.reduce_scatter_sum(model_->grads, model_->grads + shard_ * comm_.rank(), shard_);
    else comm_.all_reduce_finish();
    comm_.all_reduce_sum(&loss, 1);
    return loss;
}

template <class T>
double Trainer<T>::validate(int k) {
    const int BT = o_.batch * o_.seq_len;
    std::vector<int32_t> inputs(BT), targets(BT);
    const Route route = keep_every(config_.num_hidden_layers, k);
    val_->reset();
    double sum = 0;
    for (int i = 0; i < o_.val_batches / comm_.world(); i++) {   // the ranks share the batches
        val_->next_batch(inputs.data(), targets.data());
        sum += model_->forward(inputs.data(), targets.data(), route);
    }
    comm_.all_reduce_sum(&sum, 1);
    return sum / o_.val_batches;
}

template <class T>
void Trainer<T>::validate_all() {
    if (!val_) return;
    for (int k : o_.retention) {
        const double loss = validate(k);
        if (!std::isfinite(loss))
            throw std::runtime_error(fmt::format("step {}: the validation loss is {} at retention 1/{}; stopping. {}",
                                                 step_, loss, k, last_good(out_)));
        if (log_) log_->val(step_, k, loss);
        val_loss_[k] = loss;
    }
    val_step_ = step_;
}

template <class T>
std::vector<float> Trainer<T>::gather_shards(const std::vector<float>& shard) const {
    std::vector<float> whole(shard_ * comm_.world());
    comm_.all_gather(shard.data(), whole.data(), shard_);
    whole.resize(model_->table.total);
    return whole;
}

template <class T>
void Trainer<T>::save() {
    // Every rank takes part in gathering sharded optimizer state; otherwise rank 0 has it all.
    if (!o_.zero && !lead_) return;
    std::vector<float> m = opt_->m(), v = opt_->v(), params = opt_->weights(model_->params);
    if (o_.zero) {
        m = gather_shards(m);
        v = gather_shards(v);
        params = gather_shards(params);
    }
    if (!lead_) return;
    params.resize(model_->table.total);
    if (!std::all_of(params.begin(), params.end(), [](float x) { return std::isfinite(x); }))
        throw std::runtime_error(fmt::format("step {}: the parameters are not finite after the update; not saving "
                                             "them. {}", step_, last_good(out_)));
    const nlohmann::json state = {{"step", step_}, {"train_loader", train_->state()}, {"run", run_identity()}};
    fmt::print("checkpoint {}\n", save_checkpoint(out_, step_, config_, params.data(), m, v, state,
                                                        {Dtype::F32, source_, rkv_block()}));
}

template <class T>
int Trainer<T>::run() {
    if (g_signal) return 128 + g_signal;
    const long tokens_per_step = long(o_.batch) * o_.seq_len * o_.grad_accum * comm_.world();
    if (step_ == 0 && o_.val_every > 0) validate_all();
    OpProfile* profile = o_.profile ? ops_->profile() : nullptr;
    const long first = step_;  // its step warms up (cuBLASLt's choices, allocations): not profiled
    while (step_ < o_.steps) {
        const auto t0 = std::chrono::steady_clock::now();
        if (profile) profile->enable(step_ > first);
        const double loss = train_step();
        double sq = opt_->grad_sq(model_->grads);
        if (o_.zero) comm_.all_reduce_sum(&sq, 1);
        const double norm = std::sqrt(sq);
        if (!std::isfinite(loss) || !std::isfinite(norm))
            throw std::runtime_error(fmt::format("step {}: the loss or gradient norm is not finite (loss {}, gradient "
                                                 "norm {}); stopping. {}", step_ + 1, loss, norm, last_good(out_)));
        const double lr = schedule_.at(int(step_));
        opt_->step(model_->params, model_->grads, lr, step_ + 1, norm);
        gather_params();
        if (profile) {
            profile->enable(false);
            profile->collect();
        }
        step_++;
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (log_) log_->train(step_, o_.steps, loss, lr, norm, ms, tokens_per_step / (ms / 1000.0));
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
