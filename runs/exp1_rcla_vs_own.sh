#!/usr/bin/env bash
# Experiment 1: does stochastic KV routing make a model tolerate a shared KV cache?
# The default model (gpt2-tiny, 6 layers) trained on the built-in corpus twice, with
# the same steps, data and seed: once as an ordinary transformer (--p-own 1), once
# with R-CLA (--p-own 0.5). Each run validates at keep-every-k for k = 1, 2, 3, 4.
# Writes runs/exp1/pown-*/log.jsonl (and config.json: the checkpoints are not kept in git),
# runs/exp1/table.md, stating the commit and machine it ran on and how long each run took,
# and the two plots. The README's first-experiment table is copied from table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s configure
cmake --build build -j "$(nproc)" --target train_rkv > /dev/null

# The plots need matplotlib: Debian's python3-matplotlib (scripts/install_deps.sh) is for
# /usr/bin/python3, which need not be the python3 on PATH.
python=python3
python3 -c "import matplotlib" 2> /dev/null || python=/usr/bin/python3

commit=$(git rev-parse HEAD)
dirty=$(git status --porcelain --untracked-files=no -- . ':!runs/exp1' | wc -l)
seconds=()
for p in 1 0.5; do
    rm -rf "runs/exp1/pown-$p"
    start=$SECONDS
    build/train_rkv --model gpt2-tiny --steps 600 --seed 1337 --p-own "$p" --out "runs/exp1/pown-$p"
    seconds+=($((SECONDS - start)))
    cp "runs/exp1/pown-$p/ckpt_00000600/config.json" "runs/exp1/pown-$p/config.json"
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
changes=$([ "$dirty" -gt 0 ] && echo " plus uncommitted changes to $dirty files" || true)
{
    echo "Ran \`runs/exp1_rcla_vs_own.sh\` at commit $commit$changes"
    echo "on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu):"
    echo "--p-own 1 took ${seconds[0]} s, --p-own 0.5 ${seconds[1]} s (600 steps each, validation included)."
    echo
    "$python" runs/plot_runs.py runs/exp1/pown-1 runs/exp1/pown-0.5 --out runs/exp1
} | tee runs/exp1/table.md
