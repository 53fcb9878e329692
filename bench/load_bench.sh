#!/usr/bin/env bash
# Loading a Hugging Face model folder: host memory peak (max RSS of /usr/bin/time -v) and wall
# time against the folder's size on disk. The folder is written here, not committed: sharded
# bf16 safetensors (1 GiB shards and model.safetensors.index.json) shaped like PRESET (Qwen3
# names and sizes, random weights: bf16 values of magnitude 2^-7 .. 2^-6), by a few lines of
# standard-library Python. Then, each from that folder:
#   convert   convert_checkpoint DIR OUT --dtype bf16   the loader, and a bf16 model.safetensors written
#   generate  generate_rkv --ckpt DIR --max-new 1       the loader and a 3-token prefill
#   train     train_rkv --init DIR --steps 1            only with TRAIN=1 (the CPU path holds weights,
#                                                       gradients, AdamW's m and v: 5x the fp32 model)
#
#   PRESET=qwen3-1.7b DEVICE=cpu TRAIN=0 DIR=/tmp/rkv-load-bench KEEP=0 bench/load_bench.sh
# CPU s is user + system time: on a shared machine wall time also counts waiting for a core.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-$root/build}
preset=${PRESET:-qwen3-1.7b} device=${DEVICE:-cpu} train=${TRAIN:-0}
dir=${DIR:-${TMPDIR:-/tmp}/rkv-load-bench}
rm -rf "$dir"
mkdir -p "$dir"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$dir"' EXIT

# The preset's sizes, from rkv's own table of presets (V C FF L NH NKV HS eps theta maxT).
case "$preset" in
    qwen3-0.6b) sizes="151936 1024 3072 28 16 8 128 1e-6 1000000 40960" ;;
    qwen3-1.7b) sizes="151936 2048 6144 28 16 8 128 1e-6 1000000 40960" ;;
    *) echo "load_bench.sh: PRESET is qwen3-0.6b or qwen3-1.7b" >&2; exit 2 ;;
esac
python3 - "$dir/model" $sizes <<'EOF'
import json, math, os, struct, sys
out = sys.argv[1]
V, C, FF, L, NH, NKV, HS = map(int, sys.argv[2:9])
eps, theta, maxT = float(sys.argv[9]), float(sys.argv[10]), int(sys.argv[11])
os.makedirs(out)
tensors = [("model.embed_tokens.weight", (V, C))]
for l in range(L):
    p = f"model.layers.{l}."
    tensors += [(p + "input_layernorm.weight", (C,)), (p + "self_attn.q_proj.weight", (NH * HS, C)),
                (p + "self_attn.k_proj.weight", (NKV * HS, C)), (p + "self_attn.v_proj.weight", (NKV * HS, C)),
                (p + "self_attn.q_norm.weight", (HS,)), (p + "self_attn.k_norm.weight", (HS,)),
                (p + "self_attn.o_proj.weight", (C, NH * HS)), (p + "post_attention_layernorm.weight", (C,)),
                (p + "mlp.gate_proj.weight", (FF, C)), (p + "mlp.up_proj.weight", (FF, C)),
                (p + "mlp.down_proj.weight", (C, FF))]
tensors.append(("model.norm.weight", (C,)))
shards, shard, size = [], [], 0
for name, shape in tensors:   # 1 GiB shards, in order
    n = 2 * math.prod(shape)
    if shard and size + n > 1 << 30:
        shards.append(shard)
        shard, size = [], 0
    shard.append((name, shape, n))
    size += n
shards.append(shard)
small = bytes((b & 0x80) | 0x3c for b in range(256))   # sign kept, exponent 2^-7 or 2^-6
weight_map = {}
for i, shard in enumerate(shards):
    file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    header, at = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, n in shard:
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [at, at + n]}
        weight_map[name] = file
        at += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(out, file), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, shape, n in shard:
            for start in range(0, n, 1 << 26):
                chunk = bytearray(os.urandom(min(1 << 26, n - start)))
                chunk[1::2] = chunk[1::2].translate(small)   # the high byte of each little-endian bf16
                f.write(chunk)
json.dump({"metadata": {"total_size": sum(n for s in shards for _, _, n in s)}, "weight_map": weight_map},
          open(os.path.join(out, "model.safetensors.index.json"), "w"), indent=2)
json.dump({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": V, "hidden_size": C,
           "intermediate_size": FF, "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": NKV,
           "head_dim": HS, "rms_norm_eps": eps, "rope_theta": theta, "max_position_embeddings": maxT,
           "tie_word_embeddings": True, "dtype": "bfloat16"}, open(os.path.join(out, "config.json"), "w"), indent=2)
EOF
disk=$(du -sb "$dir/model" | cut -f1)
params=$(( (disk - $(du -sb "$dir/model"/*.json | awk '{s += $1} END {print s}')) / 2 ))   # about: headers are small

# Runs a command under /usr/bin/time -v; prints its max RSS (GiB) and wall time (s).
measure() {
    local name=$1
    shift
    if ! /usr/bin/time -v "$@" > "$dir/$name.out" 2> "$dir/$name.time"; then
        echo "load_bench.sh: $name failed:" >&2
        tail -n 30 "$dir/$name.time" >&2
        exit 1
    fi
    awk -v name="$name" -v disk="$disk" -v params="$params" '
        /Maximum resident set size/ { rss = $NF * 1024 }
        /User time|System time/ { cpu += $NF }
        /Elapsed \(wall clock\)/ {
            n = split($NF, t, ":")
            wall = n == 3 ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2]
        }
        END { printf "%-9s %12.2f %10.2f %13.2f %9.1f %8.1f\n", name, rss / 2^30, rss / disk, rss / (4 * params), wall,
                     cpu }' \
        "$dir/$name.time"
}

printf "%s, %s: %.2f GiB on disk (sharded bf16, %.2fG parameters), fp32 in memory %.2f GiB\n" "$preset" "$device" \
    "$(echo "$disk / 2^30" | bc -l)" "$(echo "$params / 10^9" | bc -l)" "$(echo "4 * $params / 2^30" | bc -l)"
printf "%-9s %12s %10s %13s %9s %8s\n" run "max RSS GiB" "x on disk" "x fp32 model" "wall s" "CPU s"
measure convert "$build/convert_checkpoint" "$dir/model" "$dir/out" --dtype bf16
rm -rf "$dir/out"
measure generate "$build/generate_rkv" --ckpt "$dir/model" --tokens 1,2,3 --max-new 1 --temperature 0 \
    --device "$device"
if [ "$train" = 1 ]; then
    measure train "$build/train_rkv" --init "$dir/model" --steps 1 -b 1 -t 16 --val-every 0 --device "$device" \
        --out "$dir/run"
fi
