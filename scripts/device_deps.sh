#!/usr/bin/env bash
# The Debian packages a GPU build needs, for a machine that has nvcc and CMake but neither
# the packages nor a network (e.g. a lent GPU machine): fetched here,
# carried there in .deps/ (git ignores it), unpacked there without installing.
#
#   scripts/device_deps.sh fetch          here: downloads the .deb files into .deps/debs
#   source scripts/device_deps.sh use     there: unpacks them into .deps/root and exports
#                                         CMAKE_PREFIX_PATH, LD_LIBRARY_PATH and
#                                         RKV_DEPS_CMAKE_FLAGS (OpenBLAS, found by path)
# A GPU build needs no emulator (Boost.Context) and builds without MPI when MPI is missing.
deps=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.deps

deps_fetch() {
    mkdir -p "$deps/debs"
    (cd "$deps/debs" && apt-get download libfmt-dev libfmt9 libcli11-dev nlohmann-json3-dev catch2 \
        libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5)
    du -sh "$deps/debs"
}

deps_use() {
    [[ -d $deps/debs ]] || { echo "device_deps: no $deps/debs (run 'scripts/device_deps.sh fetch' here)" >&2; return 1; }
    mkdir -p "$deps/root"
    local f lib=$deps/root/usr/lib/x86_64-linux-gnu
    for f in "$deps"/debs/*.deb; do dpkg-deb -x "$f" "$deps/root" || return 1; done
    export CMAKE_PREFIX_PATH=$deps/root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
    export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    # Debian points libblas.so and cblas.h at OpenBLAS through alternatives, which unpacking
    # does not make: name them.
    export RKV_DEPS_CMAKE_FLAGS="-DBLAS_LIBRARIES=$lib/openblas-pthread/libopenblas.so \
-DCBLAS_INCLUDE_DIR=$deps/root/usr/include/x86_64-linux-gnu/openblas-pthread"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then   # run
    set -euo pipefail
    [[ "${1:-}" == fetch ]] || { echo "usage: scripts/device_deps.sh fetch | source scripts/device_deps.sh use" >&2; exit 2; }
    deps_fetch
elif [[ "${1:-}" == use ]]; then             # sourced
    deps_use
fi
