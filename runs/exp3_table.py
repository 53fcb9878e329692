#!/usr/bin/env python3
"""Tabulates runs/exp3_finetune_qa.sh: question answering against KV bytes per token.

    python3 runs/exp3_table.py OUT

Reads OUT/ft-<method>-s<seed>/qa.jsonl (./eval_rkv --qa --json lines: retention, f1, em,
has_ans_f1, answer_loss, kv_bytes_per_token); prints four Markdown tables (F1, exact match, F1 on
the answerable questions, the gold answer's teacher-forced loss), one row per fine-tuning method
and one column per KV size, each cell the mean over the seeds ± half the range (n), as
runs/exp2_table.py does; writes OUT/f1_vs_kv.png and OUT/answer_loss_vs_kv.png.
Then the base models' lookup before fine-tuning, from OUT/pre-s<seed>/probe.jsonl, and how it
grew during pretraining, from OUT/pre-s<seed>/steps.jsonl.
"""
import glob
import json
import os
import sys

from exp2_table import collect, plot, print_table

METHODS = ["ft-own", "ft-cla2", "ft-rcla"]   # ordinary (p_own 1), CLA@2 (fixed pairs), R-CLA (p_own 0.6)


def main():
    out = sys.argv[1]
    tables = [("f1", "F1 (SQuAD v2, all test questions)"), ("em", "Exact match (all test questions)"),
              ("has_ans_f1", "F1 on the answerable test questions only"),
              ("answer_loss", "Teacher-forced loss of the gold answer (nats per token, all test questions)")]
    plots = {"f1": ("f1_vs_kv.png", "F1 (built-in QA test split)"),
             "answer_loss": ("answer_loss_vs_kv.png", "gold answer loss (nats/token)")}
    for i, (field, title) in enumerate(tables):
        cells = collect(out, "qa.jsonl", field)
        models = [m for m in METHODS if any(k[0] == m for k in cells)]
        models += sorted({m for m, _ in cells} - set(models))
        if i:
            print()
        print_table(cells, models, f"{title}, built-in QA task, against KV bytes per token")
        if field in plots:
            name, ylabel = plots[field]
            plot(cells, models, os.path.join(out, name), ylabel)
    print()
    print_table(collect(out, "probe.jsonl", "has_ans_f1"), ["pre"],
                "Base models before fine-tuning: F1 on the answerable test questions asked in the corpus's own "
                "form (context, then the question; 10 bytes of answer), full cache")
    for path in sorted(glob.glob(os.path.join(out, "pre-s*", "steps.jsonl"))):
        print(f"\n{os.path.basename(os.path.dirname(path))} during pretraining: the probe at each checkpoint, and "
              "the loss on held-out copy drills (about 2.9 without copying, 1.45 copying perfectly).\n")
        print("| step | probe F1, answerable | probe EM, all | drill loss |")
        print("| ---: | ---: | ---: | ---: |")
        with open(path) as f:
            for e in map(json.loads, f):
                print(f"| {e['step']} | {e['has_ans_f1']:.4f} | {e['em']:.4f} | {e['drill_loss']:.3f} |")


if __name__ == "__main__":
    main()
