#!/usr/bin/env bash
# The GPU check, one command for a machine with an NVIDIA GPU (make gpu-check):
#   1. builds the CUDA path with nvcc for this GPU (build-gpu/, RKV_GPU=ON);
#   2. runs every kernel test on the GPU against ref/ (kernel_tests_gpu), and the
#      attention, QK-norm + RoPE and model tests again under compute-sanitizer when it is there;
#   3. benchmarks training with ./train_rkv --device cuda and prints a table: ms per step,
#      tokens/s and MFU for gpt2-124m (T 1024) and qwen3-0.6b (T 2048) at --p-own 1 and 0.5
#      (attention auto: wgmma on Hopper), and both at --p-own 1 with --attention mma (mma.sync);
#   4. benchmarks causal attention (attention_bench: the mma.sync, the Hopper wgmma and the plain
#      kernels, forward and backward, ms and TFLOP/s at HS 64 and 128, T 1024 .. 8192; about 20 s);
#   5. where a step's time goes: gpt2-124m and qwen3-0.6b at --p-own 1 with --profile, the
#      device time per step of each layer operation (CUDA events);
#   5b. serving with the shared KV cache (bench/decode_bench.sh): decode tokens/s and KV bytes
#      per token at retention 1, 2, 3, 4 for gpt2-124m and qwen3-0.6b, 8 sequences of a
#      512-token prompt, 256 new tokens each;
#   6. determinism: gpt2-124m for 6 steps, and for 3 steps resumed to 6, log the same bits;
#   7. with several GPUs, data-parallel scaling: gpt2-124m tokens/s under mpirun at 1, 2, 4
#      and 8 GPUs, and the scaling efficiency tokens/s(n) / (n tokens/s(1)).
# Full logs go to OUT (default /tmp/rkv-gpu-check, or $OUT when set: the device tool's
# folder); the table is printed last. Meant to finish in under 8 minutes on one H100/H200.
# On a machine without the Debian packages or a network (the lent GPU machine), run
# scripts/device_deps.sh fetch beforehand where apt-get works and carry .deps/ along.
#
# The build stores bf16 (the default; fp32 master weights), its GEMMs and attention on the
# tensor cores, so MFU is against the GPU's dense bf16 peak (PEAK_TFLOPS, default 989 for an
# H100/H200 SXM), and FLOPs are counted as 6 x parameters x tokens (attention left out, as
# llm.c counts).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-${OUT:-/tmp/rkv-gpu-check}}
peak=${PEAK_TFLOPS:-989}
mkdir -p "$out"
cd "$root"

nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader | tee "$out/gpu.txt"
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d .)
arch=$cap
[[ $cap == 90 ]] && arch=90a   # Hopper: the arch-specific target, as the nvcc check uses

# The packages: carried in .deps/ (scripts/device_deps.sh) to a machine without a network,
# else installed. CMake's generator: make, or Ninja where there is no make.
deps_flags=()
if [[ -d .deps/debs ]]; then
    source scripts/device_deps.sh use
    read -ra deps_flags <<< "$RKV_DEPS_CMAKE_FLAGS"
else
    scripts/install_deps.sh
fi
generator=()
command -v make > /dev/null || generator=(-G Ninja)
cmake -S . -B build-gpu "${generator[@]}" -DRKV_GPU=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_BUILD_TYPE=Release \
    "${deps_flags[@]}" > "$out/configure.log" 2>&1 || { tail -n 40 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" --target train_rkv generate_rkv kernel_tests_gpu attention_bench > "$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; exit 1; }

# Every program runs under a time limit: a kernel that hangs on the GPU costs its step, not the
# rest of the check (and the lent machine's time).
limit() {   # seconds command...
    if command -v timeout > /dev/null; then timeout "$@"; else shift; "$@"; fi
}

status=0
limit 180 build-gpu/layers/kernel_tests_gpu > "$out/kernel_tests.log" 2>&1 || status=1
tests_line=$(tail -n 2 "$out/kernel_tests.log" | head -n 1)
sanitizer="not found"
if command -v compute-sanitizer > /dev/null; then
    if limit 180 compute-sanitizer --tool memcheck --error-exitcode 1 build-gpu/layers/kernel_tests_gpu \
        "[attention],[attention_tc],[attention_wgmma],[attention_cached],[qk_norm_rope],[cuda]" > "$out/sanitizer.log" 2>&1; then sanitizer="clean"; else sanitizer="ERRORS"; status=1; fi
fi

# ms/step: the median of the progress lines' "X ms" after two warm-up steps.
median_ms() {   # log
    sed -n 's/^step *\([0-9]*\)\/[0-9]* .* | \([0-9.]*\) ms | .*/\1 \2/p' "$1" | awk '$1 > 2 {print $2}' |
        sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
bench() {   # model batch seq p_own attention
    local log="$out/train-$1-$4-$5.log"
    limit 120 build-gpu/train_rkv --model "$1" -b "$2" -t "$3" --p-own "$4" --attention "$5" --steps 12 --val-every 0 \
        --device cuda --out "$(mktemp -d)" > "$log" 2>&1 || { echo "$1 p_own $4 $5: train_rkv failed (see $log)"; return; }
    local params ms
    params=$(sed -n 's/.*(\([0-9]*\) parameters.*/\1/p' "$log" | head -n 1)
    ms=$(median_ms "$log")
    awk -v m="$1" -v p="$4" -v a="$5" -v b="$2" -v t="$3" -v ms="$ms" -v n="$params" -v peak="$peak" 'BEGIN {
        tps = b * t / (ms / 1000); mfu = 6 * n * tps / (peak * 1e12) * 100;
        printf "%-12s %6s %-6s %5d %6d %10.1f %12.0f %7.1f%%\n", m, p, a, b, t, ms, tps, mfu }'
}
# The device time per step of each layer operation (train_rkv --profile), over 5 steps.
profile() {   # model batch seq
    local log="$out/profile-$1.log"
    limit 120 build-gpu/train_rkv --model "$1" -b "$2" -t "$3" --p-own 1 --steps 6 --val-every 0 --profile \
        --device cuda --out "$(mktemp -d)" > "$log" 2>&1 || { echo "$1 --profile: train_rkv failed (see $log)"; return; }
    echo "$1, B $2, T $3, p_own 1:"
    sed -n '/^device time per step/,$p' "$log"
}
# Two identical runs (routing on, a checkpoint at step 3, then resumed to 6) must log the
# same bits: the kernels have no atomics and the rounding's randomness is keyed, not drawn.
determinism() {
    local a b flags=(--model gpt2-124m -b 4 -t 1024 --p-own 0.5 --schedule constant --val-every 3 --val-batches 2
                        --device cuda)
    a=$(mktemp -d) b=$(mktemp -d)
    limit 120 build-gpu/train_rkv "${flags[@]}" --steps 6 --out "$a" > "$out/determinism-a.log" 2>&1 &&
        limit 120 build-gpu/train_rkv "${flags[@]}" --steps 3 --out "$b" > "$out/determinism-b.log" 2>&1 &&
        limit 120 build-gpu/train_rkv "${flags[@]}" --steps 6 --out "$b" --resume >> "$out/determinism-b.log" 2>&1 ||
        { echo "determinism: train_rkv failed (see $out/determinism-*.log)"; return; }
    # The step events, without the wall-clock fields (the start lines and times differ).
    steps_of() { grep '"step"' "$1" | sed -E 's/,"(time|wall_s)":("[^"]*"|[0-9.e+-]*)//g'; }
    if cmp -s <(steps_of "$a/log.jsonl") <(steps_of "$b/log.jsonl"); then
        echo "determinism: a run and a stopped-and-resumed one log the same bits"
    else echo "determinism: the logs DIFFER (see $a/log.jsonl, $b/log.jsonl)"; fi
}
# Data parallelism over the GPUs of this machine: gpt2-124m, B 8 x T 1024 per GPU.
scaling() {
    local gpus base="" n log ms tps
    gpus=$(nvidia-smi -L | wc -l)
    (( gpus > 1 )) && command -v mpirun > /dev/null || return 0
    echo
    printf "%-6s %10s %12s %11s\n" GPUs "ms/step" "tokens/s" efficiency
    for n in 1 2 4 8; do
        (( n <= gpus )) || break
        log="$out/scaling-$n.log"
        limit 180 mpirun -np "$n" --allow-run-as-root build-gpu/train_rkv --model gpt2-124m -b 8 -t 1024 --steps 12 \
            --val-every 0 --device cuda --out "$(mktemp -d)" > "$log" 2>&1 || { echo "$n GPUs: failed (see $log)"; continue; }
        ms=$(median_ms "$log")
        tps=$(awk -v n="$n" -v ms="$ms" 'BEGIN {printf "%.0f", n * 8 * 1024 / (ms / 1000)}')
        [[ -z $base ]] && base=$tps
        awk -v n="$n" -v ms="$ms" -v tps="$tps" -v base="$base" \
            'BEGIN {printf "%-6d %10.1f %12.0f %10.1f%%\n", n, ms, tps, 100 * tps / (n * base)}'
    done
}

{
    echo
    echo "rkv GPU check, commit $(git rev-parse --short HEAD 2> /dev/null || echo "${RKV_COMMIT:-unknown}"), $(head -n 1 "$out/gpu.txt")"
    echo "kernel tests on the GPU: $tests_line"
    echo "compute-sanitizer memcheck (attention, cached attention, QK-norm + RoPE, whole model): $sanitizer"
    printf "%-12s %6s %-6s %5s %6s %10s %12s %8s\n" model p_own attn B T "ms/step" "tokens/s" "MFU bf16"
    for p in 1 0.5; do bench gpt2-124m 8 1024 "$p" auto; done
    bench gpt2-124m 8 1024 1 mma
    for p in 1 0.5; do bench qwen3-0.6b 4 2048 "$p" auto; done
    bench qwen3-0.6b 4 2048 1 mma
    echo
    limit 180 build-gpu/layers/attention_bench || echo "attention_bench failed"
    echo
    profile gpt2-124m 8 1024
    echo
    profile qwen3-0.6b 4 2048
    echo
    for model in gpt2-124m qwen3-0.6b; do
        GENERATE=build-gpu/generate_rkv MODEL=$model DEVICE=cuda B=8 P=512 N=256 REPEATS=1 \
            limit 180 bench/decode_bench.sh || echo "$model: decode_bench failed"
    done
    echo
    determinism
    scaling
} | tee "$out/table.txt"
exit $status
