#!/usr/bin/env bash
# The CPU path builds where there is no CUDA toolkit: configures the source tree with the
# toolkit hidden from CMake, builds the three programs, and checks that CMake says why it
# leaves the CUDA path out, that no CUDA library is linked, and that --device cuda is
# refused with the reason. (The CPU path's tests run in the main build; this one keeps the
# toolkit-free configuration building.)
# Usage: test_nocuda_build.sh SOURCE_DIR BUILD_DIR [COMPILER_LAUNCHER]
set -euo pipefail
src=$1 dir=$2 launcher=${3:-}
mkdir -p "$dir"
cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON \
    ${launcher:+-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher} > "$dir/configure.log"
grep -q "no CUDA toolkit found: building the CPU path only" "$dir/configure.log" ||
    { echo "FAIL: CMake does not say it builds the CPU path only"; cat "$dir/configure.log"; exit 1; }
cmake --build "$dir" -j 2 --target train_rkv generate_rkv eval_rkv > "$dir/build.log" 2>&1 ||
    { echo "FAIL: the CPU path does not build without the CUDA toolkit"; tail -50 "$dir/build.log"; exit 1; }
for p in train_rkv generate_rkv eval_rkv; do
    if ldd "$dir/$p" | grep -E "libcuda|libcurand|libcublas|libnccl"; then
        echo "FAIL: $p links a CUDA library"
        exit 1
    fi
done
if out=$("$dir/train_rkv" --device cuda --steps 1 --out "$dir/run" 2>&1); then
    echo "FAIL: train_rkv --device cuda exits 0 in a build without the CUDA path"
    exit 1
fi
grep -q "no CUDA path" <<< "$out" || { echo "FAIL: --device cuda is refused without the reason: $out"; exit 1; }
echo "PASS: the CPU path builds without the CUDA toolkit, links none of it, and refuses --device cuda"
