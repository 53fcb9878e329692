#!/usr/bin/env bash
# Compiles every CUDA source under bench/, cuda/, layers/, optim/ and tests/emu/ with
# nvcc for sm_90a and sm_80, to object files only (nothing runs): a kernel
# that is valid under the emulator but not valid CUDA fails here.
# Usage: scripts/nvcc_check.sh [-j N]   (NVCC=... picks the compiler)
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

mapfile -t sources < <(cd "$root" && find bench cuda layers optim tests/emu -name '*.cu' 2>/dev/null | sort)
if [[ ${#sources[@]} -eq 0 ]]; then
  echo "nvcc_check: no .cu files"
  exit 0
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# One nvcc call per file, both architectures at once.
compile() {
  local src=$1
  local obj="$out/$(echo "$src" | tr / _).o"
  "$nvcc" -std=c++20 -O2 -I"$root" \
    -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80 \
    -Werror all-warnings \
    -c "$root/$src" -o "$obj" 2>"$obj.log" || { echo "FAIL $src"; cat "$obj.log"; return 1; }
  echo "ok   $src"
}
export -f compile
export nvcc root out

printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -I{} bash -c 'compile "$@"' _ {}
