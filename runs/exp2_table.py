#!/usr/bin/env python3
"""Tabulates runs/exp2_depth_vs_cache.sh: validation loss against KV bytes per token.

    python3 runs/exp2_table.py OUT

Reads OUT/<model>-s<seed>/eval.jsonl (./eval_rkv --json lines: retention, val_loss,
kv_bytes_per_token); prints a Markdown table, one row per model and one column per KV size,
each cell the mean over the seeds and, after the sign, half the range (max - min) / 2, with the
number of seeds; writes OUT/loss_vs_kv.png, one curve per model, when matplotlib is there.
collect(), print_table() and plot() serve the other experiments' tables too (runs/exp3_table.py).
"""
import collections
import glob
import json
import os
import re
import statistics
import sys


def collect(out, name, field):
    """(model, KV bytes per token) -> the values of `field` over the seeds, from the JSON lines of
    OUT/<model>-s<seed>/<name> (lines without the field are skipped)."""
    cells = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(out, "*-s*", name))):
        model = re.sub(r"-s\d+$", "", os.path.basename(os.path.dirname(path)))
        with open(path) as f:
            for line in f:
                e = json.loads(line)
                if field in e:
                    cells[(model, e["kv_bytes_per_token"])].append(e[field])
    if not cells:
        sys.exit(f"{out}: no */{name} with {field}")
    return cells


def print_table(cells, models, title):
    """A Markdown table, a row per model, a column per KV size (largest first, with its share of the
    largest): mean ± half range over the seeds (n)."""
    sizes = sorted({b for _, b in cells}, reverse=True)
    full = sizes[0]
    print(f"{title}; mean ± half range over seeds (n).\n")
    print("| model | " + " | ".join(f"{b} B ({100 * b / full:.0f}%)" for b in sizes) + " |")
    print("| --- |" + " ---: |" * len(sizes))
    for m in models:
        row = []
        for b in sizes:
            v = cells.get((m, b))
            row.append(f"{statistics.mean(v):.4f} ± {(max(v) - min(v)) / 2:.4f} ({len(v)})" if v else "")
        print(f"| {m} | " + " | ".join(row) + " |")


def plot(cells, models, path, ylabel):
    """One curve per model against KV bytes per token, the half range as error bars (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib not found: no plot)", file=sys.stderr)
        return
    sizes = {b for _, b in cells}
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in models:
        xs = [b for b in sorted(sizes) if (m, b) in cells]
        means = [statistics.mean(cells[(m, b)]) for b in xs]
        spread = [(max(cells[(m, b)]) - min(cells[(m, b)])) / 2 for b in xs]
        ax.errorbar(xs, means, yerr=spread, marker="o", capsize=3, label=m)
    ax.set_xlabel("KV bytes per token")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    out = sys.argv[1]
    cells = collect(out, "eval.jsonl", "val_loss")
    # "L8-p0.75": deepest first, then the highest p_own (the ordinary model) first.
    depth_p = lambda m: (-int(m[1:m.index("-")]), -float(m[m.index("-p") + 2:]))
    models = sorted({m for m, _ in cells}, key=depth_p)
    print_table(cells, models, "Validation loss (nats per byte, built-in corpus) against KV bytes per token")
    plot(cells, models, os.path.join(out, "loss_vs_kv.png"), "validation loss")


if __name__ == "__main__":
    main()
