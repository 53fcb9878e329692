#!/usr/bin/env bash
# Experiment 2 (the source paper's Table 1, pre-training, at tiny scale): how much loss does
# R-CLA pay at the full cache for tolerating a shared one, and is a deep model with a shared
# cache better than a shallow model whose full cache has the same size?
# - an 8-layer gpt2-tiny-width model (C 128) trained with --p-own 1 (ordinary), 0.75, 0.5, 0.25,
#   each scored by ./eval_rkv at keep-every-k, k = 1, 2, 4 (8, 4, 2 cached layers);
# - 4- and 2-layer models of the same width, ordinary, at their full cache (the same KV bytes
#   per token as the 8-layer model at k = 2 and k = 4);
# three seeds each, the same data (the built-in corpus) and steps. Writes OUT/<model>-s<seed>/
# (train_rkv's run folder and eval.jsonl, eval_rkv's JSON lines), OUT/table.md (mean and
# spread over the seeds) and OUT/loss_vs_kv.png (with matplotlib).
# STEPS, SEEDS and OUT override the defaults, e.g. STEPS=20 SEEDS=1 OUT=/tmp/exp2 for a smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-600}
SEEDS=${SEEDS:-"1337 1338 1339"}
OUT=${OUT:-runs/exp2}
make -s all
mkdir -p "$OUT/configs"
for L in 8 4 2; do
    cat > "$OUT/configs/gpt2-L$L.json" <<JSON
{"model_type": "gpt2", "vocab_size": 256, "hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": $L,
 "num_attention_heads": 4, "max_position_embeddings": 512}
JSON
done
run() {   # name config seed retention [train_rkv flags...]
    local name=$1 config=$2 seed=$3 retention=$4
    shift 4
    local dir="$OUT/$name-s$seed"
    if [ ! -f "$dir/eval.jsonl" ]; then   # a finished run is kept: the script resumes where it stopped
        rm -rf "$dir"
        ./train_rkv --config "$config" --steps "$STEPS" --seed "$seed" --val-every 0 --out "$dir" "$@"
        ./eval_rkv --ckpt "$dir" --retention "$retention" --val-batches 64 --json | grep '^{' > "$dir/eval.jsonl.tmp"
        mv "$dir/eval.jsonl.tmp" "$dir/eval.jsonl"
    fi
}
for seed in $SEEDS; do
    for p in 1 0.75 0.5 0.25; do run "L8-p$p" "$OUT/configs/gpt2-L8.json" "$seed" 1,2,4 --p-own "$p"; done
    for L in 4 2; do run "L$L-p1" "$OUT/configs/gpt2-L$L.json" "$seed" 1 --p-own 1; done
done
python3 runs/exp2_table.py "$OUT" | tee "$OUT/table.md"
