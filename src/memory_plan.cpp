#include "src/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>

#include "layers/linear_workspace.h"
#include "optim/adamw.h"
#include "src/model.h"
#include "src/params.h"
#include "src/sharded_grads.h"

namespace rkv {

namespace {

// Estimates of what rkv does not allocate itself: NCCL's channel buffers between the ranks
// (NCCL_BUFFSIZE, 4 MiB, for each channel, peer and protocol) and the CUDA context (kernels,
// cuBLASLt's handle, the stream-ordered pool's reserve), both as measured on recent GPUs.
constexpr size_t kNcclBytes = size_t(1) << 30;
constexpr size_t kCudaContextBytes = size_t(600) << 20;

const char* const kKinds[] = {"weights",          "gradients", "master_m_v", "activations",
                              "activation_grads", "logits",    "attention",  "kv_route",
                              "cublaslt",         "scratch",   "comm",       "cuda_context"};

std::string gib(size_t bytes) { return fmt::format("{:.2f} GiB", double(bytes) / double(size_t(1) << 30)); }

template <class S>
MemoryPlan plan_for(const PlanSettings& s) {
    const ModelConfig& c = s.config;
    const size_t total = ParamTable(c).total, ranks = s.ranks;
    const size_t shard = s.zero ? (total + ranks - 1) / ranks : total;
    const size_t capacity = s.zero ? shard * ranks : total;
    const size_t N = size_t(s.batch) * s.seq_len;
    std::map<std::string, size_t> kind;
    // The arena: one allocation of the buffers' bytes, in the constructor's layout. ZeRO-2's
    // gradients: the arena's working windows, and the shard's sums beside it.
    const size_t windows = s.zero == 2 ? ShardedGrads<S>::working_elements(ParamTable(c)) : 0;
    for (const ModelBuffer& b : Model<S>::buffers(c, s.batch, s.seq_len, capacity, true, s.recompute, windows))
        kind[b.kind] += b.bytes;
    if (s.zero == 2) kind["gradients"] += shard * sizeof(float);
    // AdamW: m and v of the shard, and its fp32 master when the storage is not fp32.
    kind["master_m_v"] = shard * sizeof(float) * (std::is_same_v<S, float> ? 2 : 3);
    // The attention backward's row sums D = rowsum(dO * O), (B, NH, T) floats (tensor-core kernels).
    kind["attention"] += N * c.num_attention_heads * sizeof(float);
    kind["cublaslt"] = cuda::kLinearWorkspaceBytes;
    // Short-lived: the weights' upload while loading (bf16), kernels' partial sums in a step.
    kind["scratch"] = std::is_same_v<S, float> ? 0 : std::min(total, kStagingElements) * sizeof(float);
    kind["comm"] = s.ranks > 1 ? kNcclBytes : 0;
    kind["cuda_context"] = kCudaContextBytes;

    MemoryPlan p;
    for (const char* k : kKinds) {
        p.by_kind.emplace_back(k, kind[k]);
        p.total_bytes += kind[k];
    }
    p.allocated_bytes = p.total_bytes - kind["comm"] - kind["cuda_context"];
    p.fits = s.gpu_bytes == 0 || p.total_bytes <= s.gpu_bytes;
    // Host: the whole fp32 weights (init or --init) before the upload; on resume m and v too,
    // with --zero only the rank's slice of them and of the master (src/sharded_checkpoint.h).
    // A checkpoint (src/trainer.cpp, save): without --zero rank 0 holds the whole weights, m and
    // v; with it each rank its slice of m, v and master, and rank 0 also the whole weights
    // (its working copy in fp32, downloaded through a buffer of kStagingElements).
    const size_t slice = shard * sizeof(float) * (std::is_same_v<S, float> ? 2 : 3);
    p.host_load_bytes = total * sizeof(float);
    p.host_resume_bytes = s.zero ? total * sizeof(float) + slice : 3 * total * sizeof(float);
    const size_t staging = std::is_same_v<S, float> ? 0 : std::min(total, kStagingElements) * sizeof(S);
    p.host_checkpoint_bytes = s.zero ? total * sizeof(float) + staging + slice : 3 * total * sizeof(float);
    return p;
}

}  // namespace

MemoryPlan memory_plan(const PlanSettings& s) {
#if RKV_WITH_CUDA
    return s.fp32_storage ? plan_for<float>(s) : plan_for<__nv_bfloat16>(s);
#else
    if (!s.fp32_storage)
        throw std::invalid_argument(
            "--plan: planning a GPU run's bf16 storage needs a build with the CUDA toolkit "
            "(its bf16 type); this build has no CUDA path");
    return plan_for<float>(s);
#endif
}

int largest_batch(PlanSettings s) {
    auto fits = [&](int b) {
        s.batch = b;
        return memory_plan(s).fits;
    };
    if (!fits(1)) return 0;
    int lo = 1, hi = 2;  // fits(lo), and hi is the first untried above
    while (hi <= (1 << 20) && fits(hi)) lo = hi, hi *= 2;
    while (hi - lo > 1) {
        const int mid = lo + (hi - lo) / 2;
        (fits(mid) ? lo : hi) = mid;
    }
    return lo;
}

size_t parse_bytes(const std::string& text) {
    auto fail = [&] {
        return std::invalid_argument(
            fmt::format("'{}' is not a memory size (examples: 80GB, 80GiB, 141GB, 512MiB)", text));
    };
    size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        throw fail();
    }
    std::string unit;
    for (char ch : text.substr(used))
        if (!std::isspace(static_cast<unsigned char>(ch))) unit += char(std::toupper(static_cast<unsigned char>(ch)));
    static const std::map<std::string, double> units = {
        {"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},           {"GB", 1e9},
        {"TB", 1e12}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
    const auto it = units.find(unit);
    if (it == units.end() || !std::isfinite(value) || value <= 0 || value * it->second >= 1e18) throw fail();
    return size_t(value * it->second);
}

namespace {

// What to change when s does not fit, or the largest micro-batch when it does.
struct Advice {
    std::string text;
    nlohmann::json json;
};

// The options to try, the run's own first, then those that cost less compute before those that
// cost more: ZeRO-1 and 2 (only communication), recomputing the MLP (its up projections again), then
// whole layers (about one more forward).
std::vector<PlanSettings> candidates(const PlanSettings& s) {
    std::vector<int> zeros = {s.zero};
    if (s.ranks > 1)
        for (int zero = s.zero + 1; zero <= 2; zero++) zeros.push_back(zero);
    std::vector<PlanSettings> out;
    for (Recompute r : {Recompute::none, Recompute::mlp, Recompute::layer}) {
        if (r < s.recompute) continue;
        for (int zero : zeros) {
            out.push_back(s);
            out.back().recompute = r;
            out.back().zero = zero;
        }
    }
    return out;
}

std::string options(const PlanSettings& t) {
    std::string o = t.zero ? fmt::format("--zero {} ", t.zero) : "";
    if (t.recompute != Recompute::none) o += fmt::format("--recompute {} ", recompute_name(t.recompute));
    return o;
}

Advice advise(const PlanSettings& s) {
    const long tokens = long(s.batch) * s.grad_accum;  // sequences per rank per update
    const std::vector<PlanSettings> tries = candidates(s);
    for (size_t i = 0; i < tries.size(); i++) {
        const PlanSettings& t = tries[i];
        const int b = largest_batch(t);
        if (b == 0) continue;
        const int accum = int((tokens + b - 1) / b);
        const std::string opts = fmt::format("{}-b {} -t {}", options(t), b, s.seq_len);
        const long kept = std::max<long>(tokens, b);
        std::string text = fmt::format(
            "largest micro-batch that fits: {} (--grad-accum {} keeps {} sequence{} per "
            "rank and update)",
            opts, accum, kept, kept == 1 ? "" : "s");
        // The largest micro-batch the options after it allow, with the cheapest that reach it.
        int best = b;
        size_t best_at = i;
        for (size_t j = i + 1; j < tries.size(); j++)
            if (const int bj = largest_batch(tries[j]); bj > best) best = bj, best_at = j;
        if (best > b) text += fmt::format("; with {}up to -b {}", options(tries[best_at]), best);
        return {text,
                {{"zero", t.zero},
                 {"recompute", recompute_name(t.recompute)},
                 {"batch", b},
                 {"seq_len", s.seq_len},
                 {"grad_accum", accum}}};
    }
    return {fmt::format("not even -b 1 -t {} fits{}, recomputing whole layers: a shorter -t or a larger GPU", s.seq_len,
                        s.ranks > 1 ? " with --zero 2" : " (one rank: --zero 1 and 2 shard nothing)"),
            nullptr};
}

}  // namespace

nlohmann::json plan_json(const PlanSettings& s) {
    const MemoryPlan p = memory_plan(s);
    nlohmann::json by_kind = nlohmann::json::object();
    for (auto& [k, bytes] : p.by_kind) by_kind[k] = bytes;
    return {{"model_type", s.config.model_type},
            {"storage", s.fp32_storage ? "fp32" : "bf16"},
            {"parameters", ParamTable(s.config).total},
            {"batch", s.batch},
            {"seq_len", s.seq_len},
            {"grad_accum", s.grad_accum},
            {"zero", s.zero},
            {"recompute", recompute_name(s.recompute)},
            {"ranks", s.ranks},
            {"gpu_bytes", s.gpu_bytes},
            {"by_kind", by_kind},
            {"allocated_bytes", p.allocated_bytes},
            {"total_bytes", p.total_bytes},
            {"fits", p.fits},
            {"host_load_bytes", p.host_load_bytes},
            {"host_resume_bytes", p.host_resume_bytes},
            {"host_checkpoint_bytes", p.host_checkpoint_bytes},
            {"suggestion", advise(s).json}};
}

std::string plan_text(const PlanSettings& s) {
    const MemoryPlan p = memory_plan(s);
    std::string out = fmt::format(
        "memory plan: {} ({} parameters, {} storage), -b {} -t {} --grad-accum {} --zero {} --recompute {}, {} "
        "rank{}\n",
        s.config.model_type, ParamTable(s.config).total, s.fp32_storage ? "fp32" : "bf16", s.batch, s.seq_len,
        s.grad_accum, s.zero, recompute_name(s.recompute), s.ranks, s.ranks == 1 ? "" : "s");
    out += "device memory per rank:\n";
    for (auto& [k, bytes] : p.by_kind)
        out +=
            fmt::format("  {:<18} {:>12}{}\n", k, gib(bytes), k == "comm" || k == "cuda_context" ? "  (estimate)" : "");
    out += fmt::format("  {:<18} {:>12}\n", "total", gib(p.total_bytes));
    out += fmt::format("host memory per rank: loading {}, resuming {}, checkpointing {} (rank 0{})\n",
                       gib(p.host_load_bytes), gib(p.host_resume_bytes), gib(p.host_checkpoint_bytes),
                       s.zero ? "; the others their slice alone" : "");
    out += fmt::format("{} a GPU of {:.1f} GB ({})\n", p.fits ? "fits" : "does NOT fit", double(s.gpu_bytes) / 1e9,
                       gib(s.gpu_bytes));
    out += advise(s).text + "\n";
    return out;
}

}  // namespace rkv
