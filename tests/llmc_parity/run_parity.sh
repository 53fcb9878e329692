#!/usr/bin/env bash
# The llm.c parity regression test: trains rkv from the fixture's llm.c checkpoint on the
# fixture's shards with llm.c's settings and checks the per-step train and val losses
# against the ones llm.c's CPU trainer gave (expected.json; README.md says how they were made).
#
#   run_parity.sh TRAIN_RKV MAKE_FIXTURE [EXPECTED_JSON]
#
# Exit 0 when every loss is within the tolerance, non-zero otherwise.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 TRAIN_RKV MAKE_FIXTURE [EXPECTED_JSON]" >&2
    exit 2
fi
train_rkv=$1
make_fixture=$2
expected=${3:-"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/expected.json"}

work=$(mktemp -d "${TMPDIR:-/tmp}/rkv-llmc-parity.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$make_fixture" "$work/fixture"

# The settings expected.json was made with: B 4, T 32, 20 updates at a constant lr 1e-3,
# AdamW (0.9, 0.999, 1e-8) without weight decay or clipping, data in order, validation
# on the first 4 val batches before the first update, every 10 updates and after the last.
if ! "$train_rkv" --init "$work/fixture/model.bin" \
        --train "$work/fixture/train.bin" --val "$work/fixture/val.bin" \
        -b 4 -t 32 --grad-accum 1 --steps 20 \
        --lr 1e-3 --schedule constant --warmup 0 \
        --beta1 0.9 --beta2 0.999 --eps 1e-8 --wd 0 --clip 0 \
        --shuffle 0 --p-own 1 \
        --val-every 10 --val-batches 4 --retention 1 \
        --ckpt-every 0 --out "$work/run" --device cpu > "$work/train.out" 2>&1; then
    echo "run_parity: train_rkv failed; its output:" >&2
    cat "$work/train.out" >&2
    exit 1
fi

"$make_fixture" --compare "$expected" "$work/run/log.jsonl" "$work/fixture"
