#!/usr/bin/env python3
"""Plots ./train_rkv runs: loss curves, and validation loss versus KV-cache size.

    python3 runs/plot_runs.py RUN_DIR [RUN_DIR ...] [--out DIR] [--layers L]

Each RUN_DIR is a --out folder of ./train_rkv holding log.jsonl. Writes
  DIR/loss_curves.png  train loss of every run (thin), validation loss at retention 1
                       (solid) and at the other retentions (dashed), against the step
  DIR/loss_vs_kv.png   each run's last validation loss per retention against the
                       fraction of the KV cache kept, one line per run
and prints the same numbers as a Markdown table on stdout.

Keep-every-k keeps layers 0, k, 2k, ... of L: ceil(L/k) layers, a fraction ceil(L/k)/L
of the full cache. L (num_hidden_layers) is read from the first of: --layers, a record of
log.jsonl that carries it (the run's settings), the run folder's config.json, its newest
checkpoint's config.json. A run folder whose checkpoints were not kept (runs/exp1) keeps a
copy of config.json.

Needs matplotlib: scripts/install_deps.sh installs Debian's python3-matplotlib for
/usr/bin/python3; for another python3, `python3 -m pip install matplotlib`.
"""
import argparse
import glob
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


class Run:
    """One run folder: its train and validation curves and its number of layers."""

    def __init__(self, path, layers_arg):
        self.path = path
        self.name = os.path.basename(os.path.normpath(path))
        log = os.path.join(path, "log.jsonl")
        if not os.path.isfile(log):
            sys.exit(f"{path}: no log.jsonl (not a ./train_rkv --out folder?)")
        self.train, self.val, log_layers = read_log(log)
        self.layers = layers_arg or log_layers or config_layers(path)

    def last_val(self):
        """{k: (step, loss)}: the last validation loss logged at each retention k."""
        return {k: curve[-1] for k, curve in sorted(self.val.items())}


def find_key(record, key):
    """The value of `key` anywhere in a JSON record (nested objects included), or None."""
    if isinstance(record, dict):
        if key in record:
            return record[key]
        for value in record.values():
            found = find_key(value, key)
            if found is not None:
                return found
    return None


def read_log(path):
    """The run's curves from log.jsonl: train [(step, loss)] and val {k: [(step, loss)]},
    sorted by step, and num_hidden_layers if a record carries it. A step logged twice (a run
    resumed after a crash repeats the steps since its checkpoint) keeps its last record; an
    unfinished last line is skipped."""
    train, val, layers = {}, {}, None
    with open(path) as f:
        lines = f.read().split("\n")
    for line in lines[:-1]:  # lines[-1] follows the last '\n': empty, or a line being written
        if not line.strip():
            continue
        r = json.loads(line)
        layers = find_key(r, "num_hidden_layers") or layers
        if "train_loss" in r:
            train[r["step"]] = r["train_loss"]
        elif "val_loss" in r:
            val.setdefault(r["retention"], {})[r["step"]] = r["val_loss"]
    return sorted(train.items()), {k: sorted(c.items()) for k, c in val.items()}, layers


def config_layers(run_dir):
    """L from the run folder's config.json, else from its newest checkpoint's."""
    checkpoints = sorted(glob.glob(os.path.join(run_dir, "ckpt_" + "[0-9]" * 8, "config.json")))
    for path in [os.path.join(run_dir, "config.json")] + checkpoints[::-1]:
        if os.path.isfile(path):
            with open(path) as f:
                return json.load(f)["num_hidden_layers"]
    sys.exit(f"{run_dir}: no number of layers in log.jsonl, config.json or a checkpoint; pass --layers")


def kept_layers(L, k):
    """Layers that keep a cache under keep-every-k: 0, k, 2k, ... < L."""
    return math.ceil(L / k)


def markdown_table(runs):
    rows = ["| run | keep 1/k | cached layers | cache fraction | val loss | vs full | step |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run in runs:
        last = run.last_val()
        full = last[1][1] if 1 in last else None
        for k, (step, loss) in last.items():
            kept = kept_layers(run.layers, k)
            delta = f"{loss - full:+.4f}" if full is not None else ""
            rows.append(f"| {run.name} | 1/{k} | {kept}/{run.layers} | {kept / run.layers:.0%} | {loss:.4f} "
                        f"| {delta} | {step} |")
    return "\n".join(rows)


def plot_curves(runs, path):
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    dashes = [(5, 2), (2, 2), (6, 2, 1, 2), (1, 1)]  # one dash pattern per retention k > 1
    for i, run in enumerate(runs):
        color = colors[i % len(colors)]
        if run.train:
            steps, losses = zip(*run.train)
            ax.plot(steps, losses, color=color, lw=0.8, alpha=0.35, label=f"{run.name} train")
        for j, (k, curve) in enumerate(sorted(run.val.items())):
            steps, losses = zip(*curve)
            style = {"ls": "-", "lw": 2} if k == 1 else {"ls": "--", "dashes": dashes[j % len(dashes)], "lw": 1.2}
            ax.plot(steps, losses, color=color, marker=".", label=f"{run.name} val 1/{k}", **style)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("train and validation loss (val: keep every k-th layer's KV cache)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=max(1, len(runs)))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_kv(runs, path):
    fig, ax = plt.subplots(figsize=(7, 5))
    for run in runs:
        last = run.last_val()
        if not last:
            continue
        # Sorted by cache fraction; keep-every-k values that keep as many layers share a point's x.
        points = sorted(((kept_layers(run.layers, k) / run.layers, loss, k) for k, (_, loss) in last.items()),
                        key=lambda p: (p[0], -p[2]))
        xs, ys, ks = zip(*points)
        line, = ax.plot(xs, ys, marker="o", label=f"{run.name} (L={run.layers})")
        for x, y, k in points:
            ax.annotate(f"1/{k}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=line.get_color())
    ax.set_xlabel("KV cache kept (fraction of layers)")
    ax.set_ylabel("last validation loss")
    ax.set_title("validation loss vs KV-cache size")
    ax.set_xlim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (./train_rkv --out), each with log.jsonl")
    parser.add_argument("--out", default=".", help="folder for loss_curves.png and loss_vs_kv.png (default: .)")
    parser.add_argument("--layers", type=int, help="number of layers L, for runs that record it nowhere")
    args = parser.parse_args()

    runs = [Run(path, args.layers) for path in args.runs]
    print(markdown_table(runs))
    os.makedirs(args.out, exist_ok=True)
    curves, kv = os.path.join(args.out, "loss_curves.png"), os.path.join(args.out, "loss_vs_kv.png")
    plot_curves(runs, curves)
    plot_kv(runs, kv)
    print(f"\nwrote {curves} and {kv}", file=sys.stderr)


if __name__ == "__main__":
    main()
