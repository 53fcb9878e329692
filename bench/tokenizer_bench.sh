#!/usr/bin/env bash
# Encoding speed of rkv's tokenizer.json reader against the Hugging Face `tokenizers` package, on the
# same text and machine: MB/s on one core and on all cores, for a byte-level BPE (Llama 3's structure)
# and a SentencePiece-style BPE with byte fallback (Llama 2's), 16000 tokens each, trained here by
# bench/tokenizer_bench.py. Each side runs REPS times, alternating; the table shows the median and
# the range. The ids of both sides are compared once (they must be equal).
#
#   bench/tokenizer_bench.sh [MB] [REPS]     (8 MB, 3 reps; PYTHON: an interpreter with tokenizers)
#
# rkv: ./tokenize_text --ids (encoding time only, lines in parallel chunks with --threads);
# tokenizers: Tokenizer.encode_batch_fast over the same lines, RAYON_NUM_THREADS=1 and
# TOKENIZERS_PARALLELISM=false for one core, RAYON_NUM_THREADS=<cores> and parallelism on for all.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-8}
REPS=${2:-3}
PYTHON=${PYTHON:-python3}
BIN=./tokenize_text
[ -x "$BIN" ] || BIN=build/tokenize_text
CORES=$(nproc)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" bench/tokenizer_bench.py prepare "$WORK" "$MB"

rkv_mbs() {   # tokenizer threads
    "$BIN" --tokenizer "$1" --ids "$WORK/text.txt" --threads "$2" 2>&1 >/dev/null |
        sed -n 's/.*: \([0-9.]*\) MB\/s/\1/p'
}
hf_mbs() {    # tokenizer threads
    if [ "$2" = 1 ]; then par=false; else par=true; fi
    RAYON_NUM_THREADS=$2 TOKENIZERS_PARALLELISM=$par "$PYTHON" bench/tokenizer_bench.py encode "$1" "$WORK/text.txt" |
        sed -n 's/MB\/s //p'
}
summary() {   # numbers... -> "median (min-max)"
    printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {printf "%.2f (%.2f-%.2f)", v[int((NR+1)/2)], v[1], v[NR]}'
}

echo "commit $(git rev-parse --short HEAD), $CORES cores, $(du -m "$WORK/text.txt" | cut -f1) MB text, $REPS reps"
printf '| tokenizer | threads | rkv MB/s | tokenizers MB/s |\n| --- | --- | --- | --- |\n'
for kind in bytelevel spm; do
    tok="$WORK/$kind.json"
    "$BIN" --tokenizer "$tok" --ids "$WORK/text.txt" 2>/dev/null > "$WORK/rkv.ids"
    "$PYTHON" bench/tokenizer_bench.py ids "$tok" "$WORK/text.txt" > "$WORK/hf.ids"
    cmp -s "$WORK/rkv.ids" "$WORK/hf.ids" || { echo "$kind: rkv's ids differ from tokenizers'" >&2; exit 1; }
    for threads in 1 "$CORES"; do
        rkv=(); hf=()
        for _ in $(seq "$REPS"); do
            rkv+=("$(rkv_mbs "$tok" "$threads")")
            hf+=("$(hf_mbs "$tok" "$threads")")
        done
        echo "| $kind | $threads | $(summary "${rkv[@]}") | $(summary "${hf[@]}") |"
    done
done
