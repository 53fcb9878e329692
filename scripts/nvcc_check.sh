#!/usr/bin/env bash
# Compiles every CUDA source under bench/, cuda/, layers/, optim/ and tests/emu/ with
# nvcc for sm_90a and sm_80, to object files only (nothing runs): a kernel
# that is valid under the emulator but not valid CUDA fails here. The work is the
# Makefile's nvcc-check target: objects in build/nvcc/, remade only when their source or
# a header it includes changed, so a second run after editing one kernel compiles that one.
# Usage: scripts/nvcc_check.sh [-j N]   (NVCC=... picks the compiler, BUILD=... the folder)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=2
[[ "${1:-}" == -j ]] && jobs=$2
[[ "${1:-}" == -j* && "${1:-}" != -j ]] && jobs=${1#-j}

nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [[ ! -x "$nvcc" ]]; then
  echo "nvcc_check: nvcc not found (set NVCC)" >&2
  exit 1
fi
exec make --no-print-directory -C "$root" -j "$jobs" NVCC="$nvcc" nvcc-check
