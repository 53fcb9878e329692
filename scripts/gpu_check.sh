#!/usr/bin/env bash
# The GPU check, one command for a machine with an NVIDIA GPU (make gpu-check):
#   1. builds the CUDA path with nvcc for this GPU (build-gpu/, RKV_GPU=ON);
#   2. runs every kernel test on the GPU against ref/ (kernel_tests_gpu), and the
#      attention and model tests again under compute-sanitizer when it is there;
#   3. benchmarks training with ./train_rkv --device cuda and prints a table: ms per step,
#      tokens/s and MFU for gpt2-124m (T 1024) and qwen3-0.6b (T 2048) at --p-own 1 and 0.5.
# Full logs go to OUT (default /tmp/rkv-gpu-check, or $OUT when set: the device tool's
# folder); the table is printed last. Meant to finish in under 8 minutes on one H100/H200.
#
# The kernels are fp32 (CUBLAS_COMPUTE_32F, no TF32), so MFU is against the GPU's fp32
# CUDA-core peak (FP32_TFLOPS, default 67 for an H100/H200 SXM), and FLOPs are counted as
# 6 x parameters x tokens (attention left out, as llm.c counts).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-${OUT:-/tmp/rkv-gpu-check}}
peak=${FP32_TFLOPS:-67}
mkdir -p "$out"
cd "$root"

nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader | tee "$out/gpu.txt"
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d .)
arch=$cap
[[ $cap == 90 ]] && arch=90a   # Hopper: the arch-specific target, as the nvcc check uses

scripts/install_deps.sh
cmake -S . -B build-gpu -DRKV_GPU=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_BUILD_TYPE=Release \
    > "$out/configure.log"
cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; exit 1; }

status=0
build-gpu/layers/kernel_tests_gpu > "$out/kernel_tests.log" 2>&1 || status=1
tests_line=$(tail -n 2 "$out/kernel_tests.log" | head -n 1)
sanitizer="not found"
if command -v compute-sanitizer > /dev/null; then
    if compute-sanitizer --tool memcheck --error-exitcode 1 build-gpu/layers/kernel_tests_gpu \
        "[attention],[cuda]" > "$out/sanitizer.log" 2>&1; then sanitizer="clean"; else sanitizer="ERRORS"; status=1; fi
fi

# ms/step: the median of the progress lines' "X ms" after two warm-up steps.
bench() {   # model batch seq p_own
    local log="$out/train-$1-$4.log"
    build-gpu/train_rkv --model "$1" -b "$2" -t "$3" --p-own "$4" --steps 12 --val-every 0 --device cuda \
        --out "$(mktemp -d)" > "$log" 2>&1 || { echo "$1 p_own $4: train_rkv failed (see $log)"; return; }
    local params ms
    params=$(sed -n 's/.*(\([0-9]*\) parameters.*/\1/p' "$log" | head -n 1)
    ms=$(sed -n 's/^step *\([0-9]*\)\/[0-9]* .* | \([0-9.]*\) ms | .*/\1 \2/p' "$log" | awk '$1 > 2 {print $2}' |
         sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
    awk -v m="$1" -v p="$4" -v b="$2" -v t="$3" -v ms="$ms" -v n="$params" -v peak="$peak" 'BEGIN {
        tps = b * t / (ms / 1000); mfu = 6 * n * tps / (peak * 1e12) * 100;
        printf "%-12s %6s %5d %6d %10.1f %12.0f %7.1f%%\n", m, p, b, t, ms, tps, mfu }'
}
{
    echo
    echo "rkv GPU check, commit $(git rev-parse --short HEAD), $(head -n 1 "$out/gpu.txt")"
    echo "kernel tests on the GPU: $tests_line"
    echo "compute-sanitizer memcheck (attention, whole model): $sanitizer"
    printf "%-12s %6s %5s %6s %10s %12s %8s\n" model p_own B T "ms/step" "tokens/s" "MFU fp32"
    for p in 1 0.5; do bench gpt2-124m 8 1024 "$p"; done
    for p in 1 0.5; do bench qwen3-0.6b 4 2048 "$p"; done
} | tee "$out/table.txt"
exit $status
