#!/usr/bin/env bash
# CPU training speed: ms per optimizer step of ./train_rkv on the CPU for the llm.c-sized
# tiny GPT-2 (4 layers, 128 channels, 4 heads, T 64, B 4, vocab 50257 as GPT-2's
# tokenizer has it), at p_own 1 (no routing) and 0.5, at 1 and 2 threads. Optionally
# llm.c's CPU trainer (train_gpt2.c) at the same shape and thread count, in the same run.
#
#   bench/cpu_step.sh
#
# Environment (all optional):
#   TRAIN_RKV  the train_rkv binary (default: build/train_rkv under the repository;
#              a Release build: cmake -S . -B /tmp/build-bench -DRKV_CUDA_PATH=OFF
#              -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/build-bench -j2 --target train_rkv)
#   LLMC_DIR   a checkout of https://github.com/karpathy/llm.c OUTSIDE this repository;
#              when set, llm.c's CPU trainer is measured too (see "llm.c" below)
#   THREADS    thread counts to measure (default "1 2"); each sets OMP_NUM_THREADS and
#              OPENBLAS_NUM_THREADS
#   P_OWN      rkv p_own values (default "1 0.5")
#   STEPS      steps per run (default 30)
#   WARMUP     leading steps left out of the median (default 5)
#   REPEATS    runs per configuration (default 3); the figure is the median of the runs' medians
#   KEEP=1     keep the temporary folder
#
# What is timed is each tool's own per-step clock, both around the same work: the next
# batch, forward, backward, (rkv: gradient norm), AdamW update. rkv's is the "X ms" of its
# progress line "step i/N | loss .. | lr .. | norm .. | X ms | ...", llm.c's the
# "(took X ms)" of its "step i: train loss .. (took X ms)". Per run the median over the steps
# after WARMUP is taken; per configuration the median over REPEATS runs. "fastest ms" is the
# fastest single step after the warm-up over all runs: under load from other work it is
# the better estimate of the uncontended step time.
#
# Data: one llm.c token shard (magic 20240520, version 1, uint16) of uniformly random
# tokens in [0, 50257), written by python3 and fed to both trainers (rkv: --train/--val).
#
# llm.c: llm.c's train_gpt2.c is used UNMODIFIED. Its main() has hard-coded paths, B, T, 40
# steps, validation and sampling, so, as llm.c's own test_gpt2.c does, a small driver
# written into the temporary folder (never into this repository) defines TESTING (which
# compiles out llm.c's main), #includes "$LLMC_DIR/train_gpt2.c", and runs llm.c's main
# training step verbatim: dataloader_next_batch, gpt2_forward, gpt2_zero_grad,
# gpt2_backward, gpt2_update(lr 1e-4, 0.9, 0.999, 1e-8, wd 0), timed with clock_gettime
# exactly as llm.c's main times it, without its validation and sampling. It is compiled
# with llm.c's Makefile flags for train_gpt2 (gcc -Ofast -march=native -fopenmp -DOMP -lm).
# llm.c needs a checkpoint of the shape; the simplest honest one is written by python3 in
# llm.c's format (256 int32 header: magic 20240326, version 3, maxT 64, V 50257, L 4,
# NH 4, C 128, Vp 50304; then the fp32 parameters in llm.c's order) with GPT-2's init
# (matrices and embeddings N(0, 0.02), norm weights 1, biases 0). The values do not
# change the work done; rkv starts from its own init of the same shape (--config).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
train_rkv=${TRAIN_RKV:-$repo/build/train_rkv}
threads_list=${THREADS:-"1 2"}
p_own_list=${P_OWN:-"1 0.5"}
steps=${STEPS:-30}
warmup=${WARMUP:-5}
repeats=${REPEATS:-3}
B=4 T=64 V=50257 L=4 NH=4 C=128

if [[ ! -x $train_rkv ]]; then
    echo "cpu_step: no train_rkv at $train_rkv (set TRAIN_RKV, or build it)" >&2
    exit 2
fi
if (( steps <= warmup )); then
    echo "cpu_step: STEPS ($steps) must exceed WARMUP ($warmup)" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rkv-cpu-step.XXXXXX")
if [[ ${KEEP:-0} == 1 ]]; then echo "cpu_step: keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
trap 'exit 130' INT TERM   # so that the EXIT trap also runs when interrupted

cat > "$work/config.json" <<EOF
{"model_type":"gpt2","vocab_size":$V,"hidden_size":$C,"num_hidden_layers":$L,"num_attention_heads":$NH,"max_position_embeddings":$T}
EOF

# The token shard: enough tokens for every step of a run plus one (the last target).
python3 - "$work/tokens.bin" $(( (steps + 1) * B * T + 1 )) $V <<'EOF'
import random, struct, sys
from array import array
path, n, V = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1337)
header = [0] * 256
header[0], header[1], header[2] = 20240520, 1, n
with open(path, "wb") as f:
    f.write(struct.pack("<256i", *header))
    f.write(array("H", (rng.randrange(V) for _ in range(n))).tobytes())
EOF

# median of the numbers on stdin
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) exit 1; print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# per-step ms of one run's log (on stdin) -> the median over the steps after the warm-up
rkv_steps() { sed -nE 's/^step +([0-9]+)\/[0-9]+ \|.*\| ([0-9.]+) ms \|.*/\1 \2/p' | awk -v w="$warmup" '$1 > w {print $2}'; }
llmc_steps() { sed -nE 's/^step ([0-9]+): train loss .* \(took ([0-9.]+) ms\)/\1 \2/p' | awk -v w="$warmup" '$1 >= w {print $2}'; }

declare -A result fastest

# Runs the command after -- `repeats` times at `th` threads; under `name`, records the median
# over the runs of each run's median step (steps_fn parses a log) and the fastest step.
measure() {  # name threads steps_fn -- command...
    local name=$1 th=$2 steps_fn=$3 r ms all=() log=$work/run.log step_file=$work/steps
    shift 4
    : > "$step_file"
    for (( r = 0; r < repeats; r++ )); do
        rm -rf "$work/rkv-run"
        if ! OMP_NUM_THREADS=$th OPENBLAS_NUM_THREADS=$th "$@" > "$log" 2>&1; then
            echo "cpu_step: $name failed; its output:" >&2
            cat "$log" >&2
            exit 1
        fi
        ms=$("$steps_fn" < "$log" | median)
        "$steps_fn" < "$log" >> "$step_file"
        echo "  $name threads=$th run $((r + 1)): median $ms ms/step" >&2
        all+=("$ms")
    done
    result["$name|$th"]=$(printf '%s\n' "${all[@]}" | median)
    fastest["$name|$th"]=$(sort -g "$step_file" | head -1)
}

llmc_bin=
if [[ -n ${LLMC_DIR:-} ]]; then
    [[ -f $LLMC_DIR/train_gpt2.c ]] || { echo "cpu_step: no train_gpt2.c in LLMC_DIR=$LLMC_DIR" >&2; exit 2; }
    python3 - "$work/llmc_model.bin" $T $V $L $NH $C <<'EOF'
import struct, sys
maxT, V, L, NH, C = map(int, sys.argv[2:])
Vp = (V + 127) // 128 * 128
# llm.c's parameter tensors in its order, with GPT-2's init: (numel, kind)
shapes = [(Vp * C, "w"), (maxT * C, "w"),                       # wte, wpe
          (L * C, "1"), (L * C, "0"),                           # ln1w, ln1b
          (L * 3 * C * C, "w"), (L * 3 * C, "0"),               # qkvw, qkvb
          (L * C * C, "w"), (L * C, "0"),                       # attprojw, attprojb
          (L * C, "1"), (L * C, "0"),                           # ln2w, ln2b
          (L * 4 * C * C, "w"), (L * 4 * C, "0"),               # fcw, fcb
          (L * C * 4 * C, "w"), (L * C, "0"),                   # fcprojw, fcprojb
          (C, "1"), (C, "0")]                                   # lnfw, lnfb
header = [0] * 256
header[:8] = [20240326, 3, maxT, V, L, NH, C, Vp]
try:
    import numpy as np
    rng = np.random.default_rng(1337)
    gen = lambda n, k: (rng.normal(0, 0.02, n) if k == "w" else np.full(n, float(k))).astype("<f4").tobytes()
except ImportError:
    import random
    from array import array
    rng = random.Random(1337)
    gen = lambda n, k: array("f", (rng.gauss(0, 0.02) for _ in range(n)) if k == "w" else [float(k)] * n).tobytes()
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", *header))
    for n, k in shapes:
        f.write(gen(n, k))
EOF
    cat > "$work/llmc_bench.c" <<'EOF'
// Lives only in a temporary folder: llm.c's train_gpt2.c, unmodified, with its main compiled
// out (TESTING, as llm.c's test_gpt2.c does); the loop is llm.c main's training step.
#define TESTING
#include "train_gpt2.c"
int main(int argc, char** argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s MODEL TOKENS B T STEPS\n", argv[0]); return 2; }
    int B = atoi(argv[3]), T = atoi(argv[4]), steps = atoi(argv[5]);
    GPT2 model;
    gpt2_build_from_checkpoint(&model, argv[1]);
    DataLoader train_loader;
    dataloader_init(&train_loader, argv[2], B, T, 0, 1, 1);
    struct timespec start, end;
    for (int step = 0; step < steps; step++) {
        clock_gettime(CLOCK_MONOTONIC, &start);
        dataloader_next_batch(&train_loader);
        gpt2_forward(&model, train_loader.inputs, train_loader.targets, B, T);
        gpt2_zero_grad(&model);
        gpt2_backward(&model);
        gpt2_update(&model, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, step+1);
        clock_gettime(CLOCK_MONOTONIC, &end);
        double time_elapsed_s = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
        printf("step %d: train loss %f (took %f ms)\n", step, model.mean_loss, time_elapsed_s * 1000);
    }
    dataloader_free(&train_loader);
    gpt2_free(&model);
    return 0;
}
EOF
    llmc_bin=$work/llmc_bench
    gcc -Ofast -Wno-unused-result -Wno-ignored-pragmas -Wno-unknown-attributes -march=native \
        -fopenmp -DOMP -I"$LLMC_DIR" "$work/llmc_bench.c" -lm -o "$llmc_bin"
fi

echo "cpu_step: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; rkv $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')${LLMC_DIR:+; llm.c $(git -C "$LLMC_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')}"
echo "cpu_step: GPT-2 L $L C $C NH $NH V $V, B $B T $T; $steps steps, median after $warmup warm-up steps, $repeats runs each; load: $(cut -d' ' -f1-3 /proc/loadavg)"
names=()
for p in $p_own_list; do names+=("rkv p_own=$p"); done
[[ -n $llmc_bin ]] && names+=("llm.c")
# Interleave the trainers within each thread count so that a change in machine load
# hits them alike.
for th in $threads_list; do
    for p in $p_own_list; do
        measure "rkv p_own=$p" "$th" rkv_steps -- "$train_rkv" --config "$work/config.json" \
            --train "$work/tokens.bin" --val "$work/tokens.bin" -b $B -t $T --steps "$steps" --p-own "$p" \
            --val-every 0 --out "$work/rkv-run" --device cpu
    done
    [[ -n $llmc_bin ]] && measure "llm.c" "$th" llmc_steps -- "$llmc_bin" "$work/llmc_model.bin" \
        "$work/tokens.bin" $B $T "$steps"
done

echo "cpu_step: load at the end: $(cut -d' ' -f1-3 /proc/loadavg) (more than ~0.3 means other work shared the cores)"
printf '\n%-16s %8s %10s %10s %20s %12s\n' trainer threads ms/step tokens/s "llm.c ms / this ms" "fastest ms"
for th in $threads_list; do
    for n in "${names[@]}"; do
        ms=${result["$n|$th"]}
        ratio=-
        [[ -n $llmc_bin ]] && ratio=$(awk -v a="${result["llm.c|$th"]}" -v b="$ms" 'BEGIN {printf "%.2f", a / b}')
        printf '%-16s %8s %10.1f %10.0f %20s %12.1f\n' "$n" "$th" "$ms" "$(awk -v ms="$ms" -v n=$((B * T)) 'BEGIN {print n / (ms / 1000)}')" "$ratio" "${fastest["$n|$th"]}"
    done
done
