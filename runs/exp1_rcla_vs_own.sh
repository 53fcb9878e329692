#!/usr/bin/env bash
# Experiment 1: does stochastic KV routing make a model tolerate a shared KV cache?
# The default model (gpt2-tiny, 6 layers) trained on the built-in corpus twice, with
# the same steps, data and seed: once as an ordinary transformer (--p-own 1), once
# with R-CLA (--p-own 0.5). Each run validates at keep-every-k for k = 1, 2, 3, 4.
# Writes runs/exp1/pown-*/log.jsonl, runs/exp1/table.md and the two plots.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all
for p in 1 0.5; do
    rm -rf "runs/exp1/pown-$p"
    ./train_rkv --model gpt2-tiny --steps 600 --seed 1337 --p-own "$p" --out "runs/exp1/pown-$p"
done
python3 runs/plot_runs.py runs/exp1/pown-1 runs/exp1/pown-0.5 --out runs/exp1 | tee runs/exp1/table.md
