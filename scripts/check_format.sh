#!/usr/bin/env bash
# Fails when a C++ or CUDA source differs from what clang-format makes of it under the
# repository's .clang-format. The version is pinned: another clang-format major version
# formats some constructs differently, so the check names the one it needs.
# `scripts/check_format.sh --fix` formats the files in place instead.
set -euo pipefail
cd "$(dirname "$0")/.."
want=14
tool=$(command -v clang-format-$want || true)
if [ -z "$tool" ] && command -v clang-format >/dev/null &&
   clang-format --version | grep -q "version $want\."; then tool=$(command -v clang-format); fi
if [ -z "$tool" ]; then
    echo "check_format: clang-format $want not found (Debian: apt-get install clang-format-$want)" >&2
    exit 1
fi
# Tracked files and new ones not yet added (git ignores build folders), so a file is formatted
# before its first commit.
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.h' '*.cu' '*.cuh')
if [ "${1:-}" = --fix ]; then
    "$tool" -i --style=file "${files[@]}"
    exit 0
fi
bad=()
for f in "${files[@]}"; do
    "$tool" --style=file --dry-run --Werror "$f" > /dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
    echo "check_format: ${#bad[@]} file(s) differ from .clang-format; run scripts/check_format.sh --fix:" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
fi
echo "check_format: ${#files[@]} files follow .clang-format"
