#!/usr/bin/env python3
"""Writes copy drills: text where half the bytes repeat what came a few bytes before.

    python3 runs/copy_drill.py OUT.jsonl [--docs 1600] [--seed 1]

One JSON line {"text": ...} per document (tokenize_text's documents), each 12 drills
"<8-20 random letters> | <the same letters>." joined by spaces: about 400 bytes each, 0.63 MB of
text at the default count. The second copy is predictable only by finding the first and reading
on, the pattern (an induction head) a small transformer otherwise learns late: exp3 spreads
these through its base model's pretraining corpus so that the model can look facts up in its
context on a CPU's budget (runs/README.md, exp3, "Learnability").
"""
import argparse
import json
import random
import string
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--docs", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    docs = []
    for _ in range(a.docs):
        drills = []
        for _ in range(12):
            s = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(8, 20)))
            drills.append(f"{s} | {s}.")
        docs.append(" ".join(drills))
    with open(a.out, "w") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in docs)


if __name__ == "__main__":
    sys.exit(main())
