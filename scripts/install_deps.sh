#!/usr/bin/env bash
# Installs the Debian packages rkv builds with, when they are missing.
# Runs apt-get only as root; otherwise it names what to install and fails.
#
# These are all the CPU path needs (train_rkv, generate_rkv, test_grad, convert_checkpoint and
# their tests): a C++20 compiler, CMake, OpenBLAS, MPI, fmt, CLI11, nlohmann-json, Catch2, and
# python3 for the end-to-end tests (python3-matplotlib for runs/plot_runs.py), and clang-format 14
# for the format check. The CUDA toolkit
# is not installed here: where it is (e.g. /usr/local/cuda from NVIDIA's installer, found by
# CMake's FindCUDAToolkit), the build adds the CUDA path, its emulator (libboost-context) and
# kernel tests, and `make test` compiles every kernel with nvcc; without it CMake says it
# builds the CPU path only and `make test` skips the nvcc check.
set -euo pipefail

packages=(cmake g++ make pkg-config python3 python3-matplotlib catch2 libfmt-dev libcli11-dev nlohmann-json3-dev
          libopenblas-dev libboost-context-dev libopenmpi-dev openmpi-bin libpcre2-dev libicu-dev
          clang-format-14)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "rkv needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
