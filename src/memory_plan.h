// The memory plan (train_rkv --plan): what one rank of a training run holds on its device,
// by kind, and on its host while loading and checkpointing; whether that fits a GPU; and the
// options and largest micro-batch that do. Counted from the buffers the code allocates
// (Model::buffers, AdamW's state, cuBLASLt's workspace, the kernels' scratch) for the CUDA
// path's storage type (src/storage.h), so the plan follows the code; NCCL's own buffers and the CUDA context
// are estimates (the emulated CUDA path allocates neither).
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/config.h"
#include "src/recompute.h"

namespace rkv {

struct PlanSettings {
    ModelConfig config;
    int batch = 1, seq_len = 1, grad_accum = 1;
    int zero = 0;  // 1: ZeRO-1 (master, m and v sharded over the ranks); 2: ZeRO-2
                   // (the gradients too: the shard's, and working windows)
    int ranks = 1;
    size_t gpu_bytes = 0;                   // the device memory a rank has
    bool fp32_storage = false;              // the CUDA path's storage: bf16 (fp32 master weights), or fp32
    Recompute recompute = Recompute::none;  // --recompute: what the Model keeps for one layer only
};

struct MemoryPlan {
    // Device bytes per rank, in the order the kinds are printed: weights, gradients,
    // master_m_v, activations, activation_grads, logits, attention (lse and the backward's
    // workspace), kv_route (K, V, their gradients, tokens, the route), cublaslt, scratch
    // (load staging, kernels' partial sums), comm and cuda_context (both estimates).
    std::vector<std::pair<std::string, size_t>> by_kind;
    size_t allocated_bytes = 0;  // what rkv itself allocates: all but the estimates
    size_t total_bytes = 0;
    bool fits = false;
    size_t host_load_bytes = 0;        // a fresh run (--init or random weights), on every rank
    size_t host_resume_bytes = 0;      // --resume: the weights, m and v (with --zero their slice), every rank
    size_t host_checkpoint_bytes = 0;  // rank 0: the weights (m and v too without --zero, else a slice)
};

MemoryPlan memory_plan(const PlanSettings& s);

// The largest micro-batch that fits at s's sequence length and options (0: not even one).
int largest_batch(PlanSettings s);

// "80GB", "80GiB", "141 GB", "512MiB", "1e9" (bytes); throws std::invalid_argument naming the text.
size_t parse_bytes(const std::string& text);

// The report train_rkv --plan prints: a table, the verdict and what to change; or one JSON line.
// What to change: the run's options, else the first that fits of ZeRO-1 (under mpirun),
// --recompute mlp, --recompute layer and their pairs, the least compute first.
std::string plan_text(const PlanSettings& s);
nlohmann::json plan_json(const PlanSettings& s);

}  // namespace rkv
