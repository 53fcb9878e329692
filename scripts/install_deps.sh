#!/usr/bin/env bash
# Installs the Debian packages rkv builds with, when they are missing.
# Runs apt-get only as root; otherwise it names what to install and fails.
set -euo pipefail

packages=(cmake g++ make pkg-config python3 catch2 libfmt-dev libcli11-dev nlohmann-json3-dev libopenblas-dev
          libboost-context-dev libopenmpi-dev openmpi-bin libpcre2-dev libicu-dev)

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
