#!/usr/bin/env bash
# llm.c .bin -> rkv checkpoint -> llm.c .bin gives back the same bytes, and train_rkv
# starts from the converted directory with the same first loss as from the .bin. A GPT-2
# folder uses GPT-2's Hugging Face names; run folders and Hugging Face folders (sharded,
# bf16) convert too; a missing input is reported as missing.
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
# The safetensors header's tensor names and dtypes.
header() { python3 -c 'import json, struct, sys
f = open(sys.argv[1], "rb"); h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
print(" ".join(sorted(k + ":" + v["dtype"] for k, v in h.items() if k != "__metadata__")))' "$1"; }
header "$work/model/model.safetensors" | grep -q "transformer.h.0.attn.c_attn.weight:F32"
if header "$work/model/model.safetensors" | grep -q "model.layers"; then exit 1; fi
"$convert" "$work/a" "$work/from_run" --hf --dtype bf16 > /dev/null      # a run folder: its newest checkpoint
header "$work/from_run/model.safetensors" | grep -q "transformer.wte.weight:BF16"
grep -q '"rkv"' "$work/from_run/config.json"
fixtures=$(dirname "$0")/../fixtures/hf
"$convert" "$fixtures/qwen3-bf16" "$work/qwen3" --hf > /dev/null          # sharded, bf16
header "$work/qwen3/model.safetensors" | grep -q "model.layers.1.self_attn.k_norm.weight:F32"
# A checkpoint's config.json records the routing and its last validation at each keep-every-k.
"$train_rkv" --init "$work/qwen3" -b 2 -t 16 --steps 2 --val-every 1 --val-batches 2 --retention 1,2 --p-own 0.25 \
    --out "$work/v" --device cpu > /dev/null
python3 - "$work/v" <<'EOF_PY'
import json, sys
rkv = json.load(open(sys.argv[1] + "/ckpt_00000002/config.json"))["rkv"]
log = [json.loads(line) for line in open(sys.argv[1] + "/log.jsonl")]
want = {e["retention"]: e["val_loss"] for e in log if e.get("step") == 2 and "val_loss" in e}
assert rkv["route"] == {"kind": "stochastic", "p_own": 0.25, "p_own_final": 0.25}, rkv
assert rkv["validation"]["step"] == 2, rkv
assert {e["keep_every"]: e["loss"] for e in rkv["validation"]["losses"]} == want, (rkv, want)
assert [e["kept_layers"] for e in rkv["validation"]["losses"]] == [2, 1], rkv
EOF_PY
if "$convert" "$work/nowhere" "$work/x" 2> "$work/err"; then exit 1; fi
grep -q "nowhere: no such file or directory" "$work/err"
if "$convert" "$work/model" "$work/x.bin" --hf 2> "$work/err"; then exit 1; fi
grep -q "x.bin" "$work/err"
echo "1 passed, 0 failed"
