#!/usr/bin/env bash
# Serving with the shared KV cache, per retention (DESIGN.md section 6: decode tokens/s and KV
# bytes per token per retention). ./generate_rkv serves a preset with random weights (the
# speed and the cache's size do not depend on them): B sequences of a P-token prompt, N new
# tokens each, greedy, keeping every k-th layer's cache for k = 1 2 3 4. Prints a table.
#
#   GENERATE=build/generate_rkv MODEL=gpt2-tiny DEVICE=cpu B=8 P=64 N=128 REPEATS=3 bench/decode_bench.sh
#
# decode tokens/s counts B x (N - 1) forward passes of one token over the decode's wall time
# (sampling included), the median of REPEATS runs; prefill is the prompt's chunked forward.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
generate=${GENERATE:-$root/build/generate_rkv}
model=${MODEL:-gpt2-tiny} device=${DEVICE:-cpu}
B=${B:-8} P=${P:-64} N=${N:-128} repeats=${REPEATS:-3}

tokens=$(awk -v p="$P" 'BEGIN { for (i = 0; i < p; i++) printf "%s%d", (i ? "," : ""), (i * 37 + 11) % 251 }')
printf "%-12s %-6s %3s %7s %14s %10s %11s %15s\n" model device k kept "KV B/token" "KV MiB" "prefill ms" "decode tok/s"
for k in 1 2 3 4; do
    runs=()
    for ((r = 0; r < repeats; r++)); do
        runs+=("$("$generate" --model "$model" --device "$device" -b "$B" --tokens "$tokens" --max-new "$N" \
                   --temperature 0 --retention "$k" --json | tail -n 1)")
    done
    printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys
runs = [json.loads(line) for line in sys.stdin]
s = runs[0]
print("%-12s %-6s %3d %7s %14d %10.1f %11.1f %15.0f" % (sys.argv[1], sys.argv[2], int(sys.argv[3]),
      "%d/%d" % (s["kept_layers"], s["layers"]), s["kv_bytes_per_token"],
      s["kv_bytes"] / 2**20,
      statistics.median(r["prefill_ms"] for r in runs), statistics.median(r["decode_tokens_per_s"] for r in runs)))
' "$model" "$device" "$k"
done
