#!/usr/bin/env python3
"""End to end, the fine-tuning path a user takes: prompt/completion JSON Lines become row files
(./tokenize_text --sft), ./train_rkv fine-tunes on them, ./eval_rkv scores question answering at
every retention. Checks the rows against the format (data/sft_file.h) and the tokenizer: the
document start first, the loss mask exactly on the completion and its end-of-text token, padding
after it; then that training and scoring run on them and bad input is refused by name.

Usage: python3 tests/cli/test_finetune_cli.py --bin-dir BUILD_DIR --fixtures tests/fixtures/tokenizers

Standard library only. Prints one line per check, then "N passed, M failed"; exits non-zero if
any check failed.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

from test_train_cli import Checks   # the same PASS/FAIL lines

RUN_TIMEOUT_S = 600     # only stops a hang
SFT_MAGIC = 20261204


def run(args):
    return subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=RUN_TIMEOUT_S)


def read_rows(path):
    """(T, [(tokens, mask)]) of a row file, read from the documented layout."""
    with open(path, "rb") as f:
        data = f.read()
    header = struct.unpack("<256i", data[:1024])
    assert header[0] == SFT_MAGIC and header[1] == 1, header[:5]
    width, T, R = header[2], header[3], header[4]
    tokens = struct.unpack(f"<{R * T}{'H' if width == 2 else 'I'}", data[1024:1024 + R * T * width])
    mask = data[1024 + R * T * width:]
    assert len(mask) == R * T
    return T, [(list(tokens[r * T:(r + 1) * T]), list(mask[r * T:(r + 1) * T])) for r in range(R)]


def byte_documents(path):
    """A byte-level version 1 shard's documents, as bytes without their document start (byte 0)."""
    with open(path, "rb") as f:
        data = f.read()
    header = struct.unpack("<256i", data[:1024])
    assert header[:2] == (20240520, 1) and len(data) == 1024 + 2 * header[2], header[:3]
    assert not any(data[1025::2]), "a token above 255"
    stream = data[1024::2]   # each uint16's low byte
    assert stream[:1] == b"\0", "the stream starts with a document start"
    return stream[1:].split(b"\0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    tokenize, train, evaluate = (os.path.join(args.bin_dir, p) for p in ("tokenize_text", "train_rkv", "eval_rkv"))
    c = Checks()
    with tempfile.TemporaryDirectory(prefix="finetune_cli_") as tmp:
        os.environ.setdefault("RKV_CACHE_DIR", os.path.join(tmp, "cache"))   # never the user's cache

        # A tokenizer.json: rows start with its BOS, the completion ends with the end-of-text
        # token named, and only the completion's tokens and that end carry loss.
        examples = [{"prompt": f"Question {i}: what is {i} plus {i}?", "completion": f" {2 * i} zork"}
                    for i in range(12)]
        examples.append({"prompt": "x " * 200, "completion": " long prompt"})   # the prompt must lose its left
        examples.append({"prompt": "p", "completion": " c" * 200})              # cannot fit: dropped
        data = os.path.join(tmp, "sft.jsonl")
        with open(data, "w") as f:
            for e in examples:
                f.write(json.dumps(e) + "\n")
        tok = os.path.join(args.fixtures, "bytelevel_llama3.json")
        out = os.path.join(tmp, "rows")
        p = run([tokenize, "--tokenizer", tok, "--sft", "64", "--doc-end", "<|end_of_text|>", "--val-frac", "0.25",
                 "--out", out, data])
        c.check(p.returncode == 0, "tokenize_text --sft with a tokenizer.json", p.stderr)
        if p.returncode == 0:
            T, rows = read_rows(os.path.join(out, "text_train.bin"))
            _, val = read_rows(os.path.join(out, "text_val.bin"))
            c.check(T == 64 and len(rows) + len(val) == 13 and len(val) == 3,
                    "12 + 1 examples kept (one dropped as too long), a quarter of them for validation",
                    f"T {T}, {len(rows)} train, {len(val)} val")
            ok = True
            for tokens, mask in rows + val:
                loss = [t for t, m in zip(tokens, mask) if m]
                last = max(i for i, m in enumerate(mask) if m)
                first = min(i for i, m in enumerate(mask) if m)
                ok &= tokens[0] == 0 and loss[-1] == 1 and all(mask[first:last + 1]) and not any(mask[last + 1:])
                ok &= all(t == 0 for t in tokens[last + 1:]) and mask[0] == 0
            c.check(ok, "every row: BOS first, the loss on one span ending in the end-of-text token, padding after")
            c.check("truncated" in p.stdout and "dropped" in p.stdout, "the report counts truncations and drops",
                    p.stdout)
        p = run([tokenize, "--tokenizer", tok, "--sft", "64", "--out", os.path.join(tmp, "rows_no_eos"), data])
        c.check(p.returncode != 0 and "--doc-end" in p.stderr and "bytelevel_llama3.json" in p.stderr,
                "a tokenizer without a known end-of-text token is refused, naming it and --doc-end", p.stderr)
        bad = os.path.join(tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write(json.dumps(examples[0]) + "\n{\"prompt\": 3, \"completion\": \"x\"}\n")
        p = run([tokenize, "--sft", "64", "--out", os.path.join(tmp, "rows_bad"), bad])
        c.check(p.returncode != 0 and "bad.jsonl:2" in p.stderr, "a bad line is refused as file:line", p.stderr)

        # The built-in corpus written as shards: the bytes train_rkv generates for itself.
        corpus = os.path.join(tmp, "corpus")
        p = run([tokenize, "--builtin-corpus", "--out", corpus])
        c.check(p.returncode == 0, "tokenize_text --builtin-corpus", p.stderr)
        p = run([train, "--device", "cpu", "-b", "1", "-t", "16", "--steps", "1", "--val-every", "0",
                 "--out", os.path.join(tmp, "corpus_run")])   # fills RKV_CACHE_DIR with its corpus
        # Its log names the corpus it trains on: "train DIR/corpus_train.bin (N tokens)".
        trained = re.search(r"train (\S+)/corpus_train\.bin \(", p.stdout)
        same = p.returncode == 0 and trained is not None
        for name in ("corpus_train.bin", "corpus_val.bin") if same else []:
            with open(os.path.join(corpus, name), "rb") as f, open(os.path.join(trained[1], name), "rb") as g:
                same &= f.read() == g.read()
        c.check(same, "its two shards are those train_rkv trains on when given no --train", p.stdout[-500:])

        # With files, their documents spread evenly between the corpus's training documents (the
        # j-th of m before corpus document (j + 1) * n / (m + 1)); validation is the corpus's own.
        extra = [f"drill {j} | drill {j}." for j in range(3)]
        drills = os.path.join(tmp, "drills.jsonl")
        with open(drills, "w") as f:
            f.writelines(json.dumps({"text": d}) + "\n" for d in extra)
        mixed = os.path.join(tmp, "corpus_mixed")
        p = run([tokenize, "--builtin-corpus", "--out", mixed, drills])
        c.check(p.returncode == 0 and "3 documents" in p.stdout, "tokenize_text --builtin-corpus with a file to mix in",
                p.stderr)
        if p.returncode == 0:
            base, got = (byte_documents(os.path.join(d, "corpus_train.bin")) for d in (corpus, mixed))
            extra_at = [i for i, d in enumerate(got) if d in (e.encode() for e in extra)]
            n = len(base)
            c.check([got[i].decode() for i in extra_at] == extra
                    and [d for i, d in enumerate(got) if i not in extra_at] == base,
                    "the corpus's documents in order, with the file's in order between them", f"at {extra_at}")
            c.check([i - j for j, i in enumerate(extra_at)] == [(j + 1) * n // 4 for j in range(3)],
                    "the file's documents spread evenly", f"{n} corpus documents, file's at {extra_at}")
            with open(os.path.join(corpus, "corpus_val.bin"), "rb") as f, \
                    open(os.path.join(mixed, "corpus_val.bin"), "rb") as g:
                c.check(f.read() == g.read(), "validation is the corpus's alone")
        p = run([tokenize, "--out", os.path.join(tmp, "drill_shards"), "--val-tokens", "0", drills])
        c.check(p.returncode == 0 and byte_documents(os.path.join(tmp, "drill_shards", "text_train_000000.bin"))
                == [e.encode() for e in extra], "byte-level shards: a JSON Lines file is one document per line",
                p.stderr)
        with open(bad_drills := os.path.join(tmp, "bad_drills.jsonl"), "w") as f:
            f.write('{"text": "fine"}\n{"txt": "no"}\n')
        p = run([tokenize, "--builtin-corpus", "--out", os.path.join(tmp, "corpus_bad"), bad_drills])
        c.check(p.returncode != 0 and "bad_drills.jsonl:2" in p.stderr
                and not os.path.exists(os.path.join(tmp, "corpus_bad")),
                "a bad line in a file to mix in is refused as file:line, and nothing is written", p.stderr)
        p = run([tokenize, "--builtin-corpus", "--tokenizer", tok, "--out", os.path.join(tmp, "corpus2")])
        c.check(p.returncode != 0 and "--builtin-corpus" in p.stderr, "--builtin-corpus with --tokenizer is refused",
                p.stderr)

        # Byte-level, the built-in QA task: rows, a few fine-tuning steps, QA scores per retention.
        qa = os.path.join(tmp, "qa")
        p = run([evaluate, "--write-qa", qa])
        c.check(p.returncode == 0, "eval_rkv --write-qa writes the built-in QA task", p.stderr)
        rows = os.path.join(tmp, "qa_rows")
        p = run([tokenize, "--sft", "256", "--val-frac", "0.05", "--out", rows,
                 os.path.join(qa, "qa_train_prompts.jsonl")])
        c.check(p.returncode == 0, "tokenize_text --sft, byte-level", p.stderr)
        run_dir = os.path.join(tmp, "run")
        p = run([train, "--device", "cpu", "--train", os.path.join(rows, "text_train.bin"), "--val",
                 os.path.join(rows, "text_val.bin"), "-t", "256", "-b", "4", "--steps", "4", "--val-every", "2",
                 "--val-batches", "2", "--train-route", "keep-every:2", "--out", run_dir])
        c.check(p.returncode == 0 and "rows of 256 tokens" in p.stdout, "train_rkv fine-tunes on the rows",
                p.stderr[-500:])
        test = os.path.join(tmp, "qa_test_small.jsonl")
        with open(os.path.join(qa, "qa_test.jsonl")) as f, open(test, "w") as g:
            g.writelines(f.readlines()[:6])
        p = run([evaluate, "--ckpt", run_dir, "--qa", test, "--retention", "1,2", "--json", "--device", "cpu"])
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        c.check(p.returncode == 0 and [j.get("retention") for j in lines] == [1, 2]
                and all(0 <= j["f1"] <= 1 and 0 <= j["em"] <= 1 and j["n"] == 6 for j in lines),
                "eval_rkv --qa scores the fine-tuned model at each retention", p.stderr[-500:] or p.stdout)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
