#!/usr/bin/env bash
# llm.c .bin -> rkv checkpoint -> llm.c .bin gives back the same bytes, and train_rkv
# starts from the converted directory with the same first loss as from the .bin.
#   test_convert.sh CONVERT TRAIN_RKV MAKE_FIXTURE
set -euo pipefail
convert=$1 train_rkv=$2 make_fixture=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/rkv-convert.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$make_fixture" "$work/fx" > /dev/null
"$convert" "$work/fx/model.bin" "$work/model" > /dev/null
"$convert" "$work/model" "$work/back.bin" > /dev/null
cmp "$work/fx/model.bin" "$work/back.bin"
first_loss() {
    "$train_rkv" --init "$1" --train "$work/fx/train.bin" -b 2 -t 16 --steps 1 --val-every 0 --out "$2" --device cpu \
        > /dev/null
    grep -m 1 '"train_loss"' "$2/log.jsonl" | sed -E 's/,"(time|wall_s)":("[^"]*"|[0-9.e+-]*)//g'   # no clock fields
}
[ "$(first_loss "$work/fx/model.bin" "$work/a")" = "$(first_loss "$work/model" "$work/b")" ]
if "$convert" "$work/fx/train.bin" "$work/bad" 2> "$work/err"; then exit 1; fi
grep -q "train.bin" "$work/err"
echo "1 passed, 0 failed"
