#!/usr/bin/env bash
# Experiment 3 (the source paper's Tables 2-3, fine-tuning, at tiny scale): a model pretrained as
# an ordinary transformer, fine-tuned on question answering three ways, then served with 100%,
# 50% and 25% of its KV cache: which fine-tuning keeps its answers when the cache shrinks?
# - base: a 4-layer Llama-style byte-level model (C WIDTH), pretrained with --p-own 1 on the
#   built-in corpus with copy drills (runs/copy_drill.py, about 13% of the tokens) spread between
#   its documents, without which a model this small does not learn to look facts up in its context
#   within a CPU's budget (runs/README.md, exp3, "Learnability"); one base, as the paper fine-tunes
#   one model;
# - fine-tuned from it on the built-in QA task's train split (./eval_rkv --write-qa, the
#   prompt/completion lines as ./tokenize_text --sft rows: no loss on the prompt) three ways:
#   ft-own (--p-own 1, ordinary), ft-rcla (--p-own 0.6, R-CLA), ft-cla2 (--train-route
#   keep-every:2, CLA@2: layers share K/V in fixed pairs), each with three seeds (the data order
#   and the routes drawn);
# - each scored by ./eval_rkv --qa on the first N_TEST questions of the test split at
#   keep-every-k, k = 1, 2, 4 (4, 2, 1 cached layers): SQuAD v2 F1 and exact match.
# Writes OUT/pre-s<PRE_SEED>/ and OUT/ft-<method>-s<seed>/ (train_rkv's run folders; qa.jsonl,
# eval_rkv's JSON lines; answers.jsonl.gz, every prediction), OUT/pre-s<PRE_SEED>/probe.jsonl and
# steps.jsonl (the base model's in-context lookup before fine-tuning, and during pretraining),
# OUT/logs/ (each program's output), OUT/times.tsv (seconds per piece), OUT/table.md (mean and
# spread over the fine-tuning seeds), OUT/f1_vs_kv.png and OUT/answer_loss_vs_kv.png (with
# matplotlib). A finished piece is kept: run it again to resume where it stopped. Environment
# overrides, e.g. for a smoke run:
#   PRE_STEPS=10 FT_STEPS=5 N_TEST=10 SEEDS=1 MIN_PROBE=0 OUT=/tmp/exp3 runs/exp3_finetune_qa.sh
# Size: the timings runs/README.md gives for the defaults, measured on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PRE_STEPS=${PRE_STEPS:-8000}     # pretraining updates, -b 8 -t 256
PRE_SEED=${PRE_SEED:-1337}       # the base model's seed
DRILL_DOCS=${DRILL_DOCS:-1600}   # copy-drill documents mixed into pretraining (0: the corpus alone)
FT_STEPS=${FT_STEPS:-200}        # fine-tuning updates of FT_BATCH rows of 512 tokens (one example each)
FT_BATCH=${FT_BATCH:-4}
FT_LR=${FT_LR:-1e-3}
N_TEST=${N_TEST:-200}            # test questions scored (the split holds 500)
WIDTH=${WIDTH:-128}              # the base model's hidden size (4 heads, MLP 4x), 4 layers
SEEDS=${SEEDS:-"1337 1338 1339"}
MIN_PROBE=${MIN_PROBE:-0.05}     # the base's probe F1 below which fine-tuning is not worth running
OUT=${OUT:-runs/exp3}
make -s configure
cmake --build build -j "$(nproc)" --target train_rkv eval_rkv tokenize_text > /dev/null
# The plot needs matplotlib: Debian's python3-matplotlib is for /usr/bin/python3.
python=python3
python3 -c "import matplotlib" 2> /dev/null || python=/usr/bin/python3
mkdir -p "$OUT/configs" "$OUT/logs"
# A finished piece is reused, so every piece of OUT must come from the same settings (more seeds may come later).
settings="PRE_STEPS=$PRE_STEPS PRE_SEED=$PRE_SEED DRILL_DOCS=$DRILL_DOCS FT_STEPS=$FT_STEPS FT_BATCH=$FT_BATCH FT_LR=$FT_LR N_TEST=$N_TEST WIDTH=$WIDTH"
if [ -f "$OUT/settings" ] && [ "$(cat "$OUT/settings")" != "$settings" ]; then
    echo "exp3: $OUT was run with $(cat "$OUT/settings"), not $settings: give another OUT" >&2
    exit 1
fi
echo "$settings" > "$OUT/settings"
cat > "$OUT/configs/base.json" <<JSON
{"model_type": "llama", "vocab_size": 256, "hidden_size": $WIDTH, "intermediate_size": $((4 * WIDTH)),
 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": $((WIDTH / 4)),
 "max_position_embeddings": 512}
JSON
piece() {   # name command...: runs it with its output in OUT/logs/name.log, its time in OUT/times.tsv
    local name=$1 start=$SECONDS
    shift
    echo "exp3: $name"
    "$@" > "$OUT/logs/$name.log" 2>&1 || { echo "exp3: $name failed, see $OUT/logs/$name.log" >&2; exit 1; }
    printf '%s\t%s\n' "$name" $((SECONDS - start)) >> "$OUT/times.tsv"
}

# The QA task and the fine-tuning rows (prompt and completion of each example, one per row), in
# OUT/data/corpus/, which git ignores (/runs/*/*/corpus/): the script makes them again.
data="$OUT/data/corpus"
if [ ! -f "$data/test.jsonl" ]; then
    piece write-qa build/eval_rkv --write-qa "$data"
    head -n "$N_TEST" "$data/qa_test.jsonl" > "$data/test.jsonl.tmp"
    mv "$data/test.jsonl.tmp" "$data/test.jsonl"
fi
if [ ! -f "$data/rows/text_train.bin" ]; then
    rm -rf "$data/rows"
    piece rows build/tokenize_text --sft 512 --val-frac 0.05 --out "$data/rows" "$data/qa_train_prompts.jsonl"
fi

# The base model's pretraining data: the built-in corpus with the copy drills between its
# documents, so that every batch holds both (as two shards, a batch would hold one or the other,
# and the model learned to copy the drills but not to look up the corpus's facts: runs/README.md).
pre_data="$data/pretrain"
if [ ! -f "$pre_data/done" ]; then
    rm -rf "$pre_data"
    drills=()
    if [ "$DRILL_DOCS" -gt 0 ]; then
        piece drills "$python" runs/copy_drill.py "$data/drills.jsonl" --docs "$DRILL_DOCS"
        drills=("$data/drills.jsonl")
    fi
    piece corpus build/tokenize_text --builtin-corpus --out "$pre_data" "${drills[@]}"
    touch "$pre_data/done"
fi

base="$OUT/pre-s$PRE_SEED"
if [ ! -d "$base/ckpt_$(printf %08d "$PRE_STEPS")" ]; then   # the run's last checkpoint: it finished
    rm -rf "$base"
    piece "pre-s$PRE_SEED" build/train_rkv --config "$OUT/configs/base.json" --train "$pre_data/corpus_train.bin" \
        --val "$pre_data/corpus_val.bin" --steps "$PRE_STEPS" --seed "$PRE_SEED" --p-own 1 -b 8 -t 256 \
        --val-every 0 --ckpt-every 2000 --out "$base"   # checkpoints to probe while it runs
fi
# Can the base model look a fact up in its context at all? The question appended in the
# corpus's own form ("... key of nubi?" answered " 2491."), no fine-tuning: F1 on the
# answerable questions (the answer's first 10 bytes; the words after it cost precision). At each
# checkpoint, with the loss on held-out copy drills (about 2.9 without copying, 1.45 copying
# perfectly): OUT/pre-s<PRE_SEED>/steps.jsonl, and the last one's in probe.jsonl.
drill_val="$data/drill_val/text_train_000000.bin"
if [ ! -f "$drill_val" ]; then
    piece drills-val "$python" runs/copy_drill.py "$data/drills_val.jsonl" --docs 120 --seed 2
    piece drill-val-shard build/tokenize_text --val-tokens 0 --out "$data/drill_val" "$data/drills_val.jsonl"
fi
if [ ! -f "$base/steps.jsonl" ]; then
    rm -f "$base/steps.jsonl.tmp"
    for ckpt in "$base"/ckpt_*; do   # in step order: the names are zero-padded
        step=$((10#${ckpt##*_}))
        piece "probe-s$PRE_SEED-$step" build/eval_rkv --ckpt "$ckpt" --qa "$data/test.jsonl" \
            --qa-template "{context} {question}" --retention 1 --max-answer 10 --json
        piece "drills-s$PRE_SEED-$step" build/eval_rkv --ckpt "$ckpt" --val "$drill_val" -b 8 -t 256 \
            --retention 1 --json
        "$python" -c 'import json, sys
first = lambda log: next(json.loads(line) for line in open(log) if line.startswith("{"))
probe, drills = first(sys.argv[2]), first(sys.argv[3])
print(json.dumps({"step": int(sys.argv[1]), **probe, "drill_loss": drills["val_loss"]}))' \
            "$step" "$OUT/logs/probe-s$PRE_SEED-$step.log" "$OUT/logs/drills-s$PRE_SEED-$step.log" \
            >> "$base/steps.jsonl.tmp"
    done
    mv "$base/steps.jsonl.tmp" "$base/steps.jsonl"
fi
[ -f "$base/probe.jsonl" ] || tail -n 1 "$base/steps.jsonl" > "$base/probe.jsonl"
# Fine-tuning a base that cannot look facts up measures nothing (runs/README.md, exp3): stop here.
if ! probe=$("$python" -c 'import json, sys
f1 = json.load(open(sys.argv[1]))["has_ans_f1"]
print(f1)
sys.exit(f1 < float(sys.argv[2]))' "$base/probe.jsonl" "$MIN_PROBE"); then
    echo "exp3: the base model's probe F1 is $probe, below MIN_PROBE=$MIN_PROBE: it does not look facts up in" \
        "its context. Pretrain it longer (PRE_STEPS), with more drills (DRILL_DOCS) or from another PRE_SEED" \
        "in another OUT; MIN_PROBE=0 fine-tunes it anyway." >&2
    exit 1
fi

for seed in $SEEDS; do
    for method in own rcla cla2; do
        case $method in
            own) route=(--p-own 1) ;;
            rcla) route=(--p-own 0.6) ;;
            cla2) route=(--train-route keep-every:2) ;;
        esac
        dir="$OUT/ft-$method-s$seed"
        [ -f "$dir/qa.jsonl" ] && continue   # finished
        rm -rf "$dir"
        piece "ft-$method-s$seed" build/train_rkv --init "$base" --train "$data/rows/text_train.bin" \
            --val "$data/rows/text_val.bin" -b "$FT_BATCH" -t 512 --steps "$FT_STEPS" --lr "$FT_LR" --seed "$seed" \
            --val-every 0 --out "$dir" "${route[@]}"
        piece "qa-$method-s$seed" build/eval_rkv --ckpt "$dir" --qa "$data/test.jsonl" --retention 1,2,4 \
            --max-answer 16 --json --qa-out "$dir/answers.jsonl"
        gzip -nf "$dir/answers.jsonl"   # each context 3 times over: gzip shrinks it several-fold
        grep '^{' "$OUT/logs/qa-$method-s$seed.log" > "$dir/qa.jsonl.tmp"
        mv "$dir/qa.jsonl.tmp" "$dir/qa.jsonl"
    done
done
"$python" runs/exp3_table.py "$OUT" | tee "$OUT/table.md"
echo "exp3: $SECONDS s this time; seconds per piece in $OUT/times.tsv"
