#!/usr/bin/env python3
"""End-to-end tests of ./eval_rkv: its validation losses are train_rkv's, bitwise, for the same
checkpoint and data (CPU and CUDA path, every form of --ckpt); the greedy search of kept layers
finds the answer on a model built so that only one layer's K/V matter; question answering
(--qa) scores as SQuAD v2's script does, byte-level and through a tokenizer.json (a fixture of
tests/fixtures/tokenizers/, its answers generate_rkv's greedy text); bad input is refused with a message.

Usage: python3 tests/cli/test_eval_cli.py --train PATH/TO/train_rkv --eval PATH/TO/eval_rkv
       [--generate PATH/TO/generate_rkv]

Standard library only. Tiny 4-layer Llamas trained for a few dozen steps, so the whole file takes
seconds. Prints one line per check, then "N passed, M failed"; exits non-zero if any failed.
"""
import argparse
import collections
import glob
import json
import os
import re
import shutil
import string
import struct
import subprocess
import sys
import tempfile

from test_train_cli import Checks   # the same PASS/FAIL lines

TINY_LLAMA = {
    "model_type": "llama", "vocab_size": 256, "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "max_position_embeddings": 512,
}
TIMEOUT_S = 300
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tokenizers")
checks = Checks()
check = checks.check


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)


def json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def final_val(out):
    """retention -> the last validation loss in OUT/log.jsonl."""
    val = {}
    with open(os.path.join(out, "log.jsonl")) as f:
        for line in f:
            e = json.loads(line)
            if "val_loss" in e:
                val[e["retention"]] = e["val_loss"]
    return val


def zero_attention_except(src, dst, keep, layers):
    """Copies a model.safetensors with the o, k and v projections (weights and biases) of every
    layer but `keep` set to zero: no other layer's attention adds anything, and a layer that
    reads another layer's K/V reads zeros, so its attention output is zero too."""
    with open(src, "rb") as f:
        data = f.read()
    n = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + n])
    body = bytearray(data[8 + n:])
    for layer in range(layers):
        if layer == keep:
            continue
        for proj in ("o_proj", "k_proj", "v_proj"):
            for kind in ("weight", "bias"):
                info = header.get(f"model.layers.{layer}.self_attn.{proj}.{kind}")
                if info:
                    begin, end = info["data_offsets"]
                    body[begin:end] = bytes(end - begin)
    with open(dst, "wb") as f:
        f.write(data[:8 + n] + bytes(body))


# SQuAD v2's official scores, written from its definition: an independent check of eval_rkv's.
def normalize(s):
    s = "".join(c for c in s.lower() if c not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(gold, pred):
    g, p = normalize(gold).split(), normalize(pred).split()
    if not g or not p:
        return float(g == p)
    same = sum((collections.Counter(g) & collections.Counter(p)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def squad_scores(pred, answers):
    golds = [a for a in answers if normalize(a)] or [""]
    return max(float(normalize(a) == normalize(pred)) for a in golds), max(f1(a, pred) for a in golds)


def check_rescored(written, lines, what):
    """EM and F1 of each retention's --qa-out lines, rescored here, against what eval_rkv reported."""
    def mean_scores(rows):   # (EM, F1) over rows
        n = max(len(rows), 1)
        return tuple(sum(squad_scores(w["prediction"], w["answers"])[k] for w in rows) / n for k in (0, 1))

    for line in lines:
        rows = [w for w in written if w["retention"] == line["retention"]]
        em, f1_mean = mean_scores(rows)
        has = [w for w in rows if w["answers"]]
        has_em, has_f1 = mean_scores(has)
        check(len(rows) == line["n"] and abs(em - line["em"]) < 1e-12 and abs(f1_mean - line["f1"]) < 1e-12 and
              line["has_ans_n"] == len(has) and abs(has_em - line["has_ans_em"]) < 1e-12 and
              abs(has_f1 - line["has_ans_f1"]) < 1e-12,
              f"{what} retention {line['retention']}: EM and F1, all and answerable only, rescored from --qa-out "
              "by SQuAD's definitions agree", f"{em} {f1_mean} {has_em} {has_f1} vs {line}")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def check_qa_tokenizer(args, tmp, examples):
    """--qa through a tokenizer.json (a fixture) in a Hugging Face style model folder: the answers are
    generate_rkv's greedy text at the same retention, cut at the first newline, ended at the EOS of
    generation_config.json; scores rescored; refused without a tokenizer when not byte-level."""
    config = os.path.join(tmp, "tiny_1536.json")
    with open(config, "w") as f:
        json.dump(dict(TINY_LLAMA, vocab_size=1536), f)   # holds the fixture's 1503 tokens
    out = os.path.join(tmp, "run_tok")
    p = run([args.train, "--config", config, "--steps", "10", "--val-every", "0", "--device", "cpu", "--out", out,
             "-b", "4", "-t", "64"])
    if not check(p.returncode == 0, "tokenizer: a model with a 1536-token vocabulary trains", p.stderr[-2000:]):
        return
    qa_file = os.path.join(tmp, "qa4.jsonl")
    with open(qa_file, "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in examples[:4])
    tokenizer = os.path.join(FIXTURES, "bytelevel_llama3.json")
    qa = ["--qa", qa_file, "--device", "cpu", "--json", "--max-answer", "8"]
    p = run([args.eval, "--ckpt", out] + qa)
    check(p.returncode == 1 and "not byte-level" in p.stderr and "--tokenizer" in p.stderr and out in p.stderr,
          "tokenizer: --qa on a model of 1536 tokens without a tokenizer.json is refused, naming --tokenizer",
          p.stderr[-500:])

    folder = os.path.join(tmp, "hf_tok")   # a model folder as Hugging Face keeps one
    os.makedirs(folder)
    for name in ("model.safetensors", "config.json"):
        shutil.copy(os.path.join(out, "ckpt_00000010", name), folder)
    shutil.copy(tokenizer, os.path.join(folder, "tokenizer.json"))
    qa_out = os.path.join(tmp, "qa_tok_out.jsonl")
    p = run([args.eval, "--ckpt", folder, "--retention", "1,2", "--qa-out", qa_out] + qa)
    lines = json_lines(p.stdout)
    if not check(p.returncode == 0 and [j.get("retention") for j in lines] == [1, 2] and
                 all(j["n"] == 4 and j["answer_loss"] > 0 for j in lines) and "bytelevel" not in p.stdout and
                 "tokenizer.json" in p.stdout, "tokenizer: --qa on a model folder with its tokenizer.json",
                 f"{lines} {p.stdout[-500:]} {p.stderr[-1000:]}"):
        return
    written = read_jsonl(qa_out)
    check_rescored(written, lines, "tokenizer: --qa")

    def greedy_text(k, prompt):
        g = run([args.generate, "--ckpt", folder, "--prompt", prompt, "--retention", str(k), "--temperature", "0",
                 "--max-new", "8", "--device", "cpu", "--json"])
        return json.loads(g.stdout) if g.returncode == 0 else {"error": g.stderr[-500:]}

    def prompt(e):
        return f"{e['context']}\nQuestion: {e['question']}\nAnswer:"   # the default --qa-template

    want, got = [], []
    for w in written:
        g = greedy_text(w["retention"], prompt(w))
        want.append(g.get("text", [""])[0].split("\n")[0].strip(" \t\r\n") if "text" in g else g)
        got.append(w["prediction"])
    check(want == got, "tokenizer: each answer is generate_rkv's greedy text at its retention, cut at a newline",
          f"{got} vs {want}")
    # The EOS of generation_config.json ends an answer: the 4th new token of the first example's.
    g = greedy_text(1, prompt(written[0]))
    ids = g.get("ids", [[]])[0]
    if check(len(ids) == 8, "tokenizer: 8 greedy tokens for the first example", str(g)):
        with open(os.path.join(folder, "generation_config.json"), "w") as f:
            json.dump({"eos_token_id": [1500, ids[3]]}, f)
        g = greedy_text(1, prompt(written[0]))
        p = run([args.eval, "--ckpt", folder, "--retention", "1", "--qa-out", qa_out] + qa)
        first = read_jsonl(qa_out)[0]["prediction"] if p.returncode == 0 else p.stderr[-500:]
        check(g.get("ended") == ["eos"] and
              first == g["text"][0].split("\n")[0].strip(" \t\r\n") and len(g["ids"][0]) <= 3,
              "tokenizer: an EOS id of generation_config.json ends the answer before it", f"{first!r} vs {g}")
        os.remove(os.path.join(folder, "generation_config.json"))
    # --tokenizer names the file instead; the answer loss does not depend on the batching.
    a = json_lines(run([args.eval, "--ckpt", out, "--tokenizer", tokenizer, "-b", "1"] + qa).stdout)
    b = json_lines(run([args.eval, "--ckpt", folder, "-b", "3"] + qa).stdout)
    check(len(a) == 4 and len(b) == 4 and [j["em"] for j in a] == [j["em"] for j in b] and
          all(abs(x["answer_loss"] - y["answer_loss"]) < 1e-5 * x["answer_loss"] for x, y in zip(a, b)),
          "tokenizer: --tokenizer FILE answers as the folder's tokenizer.json; the loss is the same at -b 1 and 3",
          f"{a} vs {b}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--generate", help="generate_rkv (default: next to --eval)")
    parser.add_argument("--no-cuda", action="store_true", help="the build has no CUDA path: the CPU path only")
    args = parser.parse_args()
    train, evaluate = os.path.abspath(args.train), os.path.abspath(args.eval)
    args.train, args.eval = train, evaluate
    args.generate = os.path.abspath(args.generate or os.path.join(os.path.dirname(evaluate), "generate_rkv"))
    with tempfile.TemporaryDirectory(prefix="eval_cli_") as tmp:
        # The built-in corpus goes to this cache (ctest gives one in the build tree), never the user's.
        os.environ.setdefault("RKV_CACHE_DIR", os.path.join(tmp, "cache"))
        config = os.path.join(tmp, "tiny.json")
        with open(config, "w") as f:
            json.dump(TINY_LLAMA, f)
        shape = ["-b", "4", "-t", "64", "--val-batches", "3"]

        # --- the losses are train_rkv's validation, bitwise --------------------------
        for device in ("cpu",) if args.no_cuda else ("cpu", "cuda"):
            out = os.path.join(tmp, f"run_{device}")
            steps = "20" if device == "cpu" else "3"
            p = run([train, "--config", config, "--steps", steps, "--val-every", steps, "--retention", "1,2,4",
                     "--device", device, "--out", out] + shape)
            check(p.returncode == 0, f"{device}: the training run exits 0", p.stderr[-2000:])
            want = final_val(out)
            model_dir = os.path.join(tmp, f"model_{device}")
            os.makedirs(model_dir)
            ckpt = os.path.join(out, f"ckpt_{int(steps):08d}")
            for name in ("model.safetensors", "config.json"):
                shutil.copy(os.path.join(ckpt, name), model_dir)
            # On the CPU the working copy is the fp32 checkpoint itself, so a model folder
            # (no step) validates the same; on a bf16 CUDA build only the checkpoint has the step
            # whose rounding made training's working copy.
            forms = [("run folder", out), ("checkpoint", ckpt)] + ([("model folder", model_dir)] if device == "cpu"
                                                                    else [])
            for form, path in forms:
                p = run([evaluate, "--ckpt", path, "--retention", "1,2,4", "--device", device, "--json"] + shape)
                got = {j["retention"]: j["val_loss"] for j in json_lines(p.stdout)}
                check(p.returncode == 0 and got == want and len(got) == 3,
                      f"{device}: eval_rkv --ckpt <{form}> gives train_rkv's final validation losses bitwise",
                      f"{got} vs {want}; {p.stderr[-500:]}")
        # Explicit shards as --val: the same as train_rkv with --train/--val.
        corpus = glob.glob(os.path.join(os.environ["RKV_CACHE_DIR"], "corpus-*"))[0]   # the built-in corpus
        out = os.path.join(tmp, "run_shards")
        data = ["--train", os.path.join(corpus, "corpus_train.bin"), "--val", os.path.join(corpus, "corpus_val.bin")]
        p = run([train, "--config", config, "--steps", "5", "--val-every", "5", "--retention", "1,3",
                 "--device", "cpu", "--out", out, "--p-own", "0.5"] + shape + data)
        q = run([evaluate, "--ckpt", out, "--retention", "1,3", "--device", "cpu", "--json",
                 "--val", data[3]] + shape)
        lines = json_lines(q.stdout)
        got = {j["retention"]: j["val_loss"] for j in lines}
        check(p.returncode == 0 and q.returncode == 0 and got == final_val(out),
              "--val GLOB: the losses of train_rkv --val", f"{got} vs {final_val(out)}; {q.stderr[-500:]}")
        check([j.get("kv_bytes_per_token") for j in lines] == [2 * 4 * 16 * 4, 2 * 2 * 16 * 4] and
              [j.get("kept_layers") for j in lines] == [[0, 1, 2, 3], [0, 3]],
              "--json: kept layers and KV bytes per token (2 x kept x NKV*HS x 4 bytes)", f"{lines}")
        p = run([evaluate, "--ckpt", out, "--retention", "2", "--keep-layers", "0,2", "--keep-layers", "0,1,3",
                 "--device", "cpu", "--json", "--val", data[3]] + shape)
        lines = json_lines(p.stdout)
        check(p.returncode == 0 and [j.get("keep_layers") for j in lines] == [None, [0, 2], [0, 1, 3]] and
              lines[0]["val_loss"] == lines[1]["val_loss"] and lines[2]["val_loss"] != lines[1]["val_loss"],
              "--keep-layers (repeated): one line each; layers 0,2 is keep-every-2", f"{lines}")

        # --- the greedy search on a model where one layer's K/V alone matter -----------
        # Trained as an ordinary transformer, then every attention but layer 3's removed: any
        # kept set without layer 3 gives layer 3 zeros to attend to, so {0, 1} and {0, 2} give
        # the same loss and {0, 3} another; with training, a lower one. Ties go to the lower
        # layer, so a search that did not compare would pick layer 1.
        out = os.path.join(tmp, "run_search")
        p = run([train, "--config", config, "--steps", "60", "--val-every", "0", "--p-own", "1", "--device", "cpu",
                 "--out", out] + shape)
        forced = os.path.join(tmp, "forced")
        os.makedirs(forced)
        shutil.copy(os.path.join(out, "ckpt_00000060", "config.json"), forced)
        zero_attention_except(os.path.join(out, "ckpt_00000060", "model.safetensors"),
                              os.path.join(forced, "model.safetensors"), keep=3, layers=4)
        p = run([evaluate, "--ckpt", forced, "--retention", "1", "--keep-layers", "0,1", "--keep-layers", "0,2",
                 "--keep-layers", "0,3", "--device", "cpu", "--json"] + shape)
        loss = {tuple(j["keep_layers"]): j["val_loss"] for j in json_lines(p.stdout) if "keep_layers" in j}
        check(p.returncode == 0 and len(loss) == 3 and loss[(0, 1)] == loss[(0, 2)] and loss[(0, 3)] < loss[(0, 1)],
              "search: the construction holds (only layer 3's own K/V lower the loss)", f"{loss}")
        p = run([evaluate, "--ckpt", forced, "--retention", "1", "--search-kept", "2", "--device", "cpu",
                 "--json"] + shape)
        found = [j for j in json_lines(p.stdout) if "search_kept" in j]
        check(p.returncode == 0 and len(found) == 1 and found[0]["keep_layers"] == [0, 3] and
              found[0]["val_loss"] == loss.get((0, 3)) and found[0]["baseline_keep_layers"] == [0, 2] and
              found[0]["baseline_retention"] == 2 and found[0]["baseline_val_loss"] == loss.get((0, 2)),
              "search: --search-kept 2 finds layers 0,3 and reports keep-every-2 beside it", f"{found}")
        check("found layers 0,3" in p.stdout, "search: the table names the layers found", p.stdout[-600:])

        # --- question answering ----------------------------------------------------------
        qa_dir = os.path.join(tmp, "qa")
        p = run([evaluate, "--write-qa", qa_dir])
        names = sorted(os.listdir(qa_dir)) if os.path.isdir(qa_dir) else []
        check(p.returncode == 0 and names == ["qa_test.jsonl", "qa_test_prompts.jsonl", "qa_train.jsonl",
                                              "qa_train_prompts.jsonl"], "--write-qa writes train and test splits",
              f"{names} {p.stderr}")
        with open(os.path.join(qa_dir, "qa_test.jsonl")) as f:
            examples = [json.loads(line) for line in f][:12]
        check(all(a in e["context"] for e in examples for a in e["answers"]) and
              any(not e["answers"] for e in examples), "the built-in QA set: answers are spans; some unanswerable")
        qa_file = os.path.join(tmp, "qa12.jsonl")
        with open(qa_file, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in examples)
        ckpt = os.path.join(tmp, "run_cpu")
        qa_out = os.path.join(tmp, "qa_out.jsonl")
        qa = [evaluate, "--ckpt", ckpt, "--device", "cpu", "--json", "--max-answer", "12"]
        p = run(qa + ["--retention", "1,2", "--qa", qa_file, "--qa-out", qa_out])
        lines = json_lines(p.stdout)
        check(p.returncode == 0 and [j.get("retention") for j in lines] == [1, 2] and
              all(j["n"] == 12 and 0 <= j["em"] <= 1 and 0 <= j["f1"] <= 1 and j["answer_loss"] > 0 for j in lines),
              "--qa: a JSON line per retention with em, f1 in [0, 1], n and the answer loss", f"{lines} {p.stderr}")
        with open(qa_out) as f:
            written = [json.loads(line) for line in f]
        check(len(written) == 24 and all(w["answers"] == e["answers"] and w["context"] == e["context"]
                                         for w, e in zip(written, examples + examples)),
              "--qa-out: each example per retention with its answers and prediction")
        check_rescored(written, lines, "--qa")
        # Gold answers set to the model's own predictions for the first 6 examples, and to an
        # impossible one for the others: EM is 1/2 at retention 1, by construction. (A prediction
        # that normalizes to nothing makes its gold list empty: unanswerable, which only the empty
        # prediction it is scores, as SQuAD v2 does; so this holds whatever the model answers.)
        preds = [w["prediction"] for w in written if w["retention"] == 1]
        rigged = [dict(e, answers=[preds[i]] if i < 6 else ["zzzz qqqq"]) for i, e in enumerate(examples)]
        rigged_file = os.path.join(tmp, "rigged.jsonl")
        with open(rigged_file, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in rigged)
        p = run(qa + ["--qa", rigged_file, "--retention", "1"])
        lines = json_lines(p.stdout)
        check(p.returncode == 0 and len(lines) == 1 and lines[0]["em"] == 0.5,
              "--qa: gold answers equal to the predictions score EM 1 each (EM 1/2 on half of them)",
              f"{lines} {preds}")
        a = [j["answer_loss"] for j in json_lines(run(qa + ["--retention", "1,2", "--qa", qa_file, "-b", "1"]).stdout)]
        b = [j["answer_loss"] for j in json_lines(run(qa + ["--retention", "1,2", "--qa", qa_file, "-b", "5"]).stdout)]
        check(len(a) == 2 and len(b) == 2 and all(abs(x - y) < 1e-5 * abs(x) for x, y in zip(a, b)),
              "--qa: the answer loss does not depend on how examples are batched", f"{a} vs {b}")
        check_qa_tokenizer(args, tmp, examples)

        # --- bad input ---------------------------------------------------------------
        bad_qa = os.path.join(tmp, "bad_qa.jsonl")
        with open(bad_qa, "w") as f:
            f.write(json.dumps(examples[0]) + "\n" + '{"context": "c", "question": "q"}\n')
        missing = os.path.join(tmp, "no_such_ckpt")
        cases = [
            ("a missing checkpoint", ["--ckpt", missing], [re.escape(missing)]),
            ("a run folder with no checkpoint", ["--ckpt", qa_dir], [re.escape(qa_dir), "nor a run folder"]),
            ("no --ckpt", [], ["--ckpt"]),
            ("--keep-layers without layer 0", ["--ckpt", ckpt, "--keep-layers", "1,2"], ["1,2", "layer 0"]),
            ("--keep-layers out of range", ["--ckpt", ckpt, "--keep-layers", "0,7"], ["0,7", "7"]),
            ("--keep-layers not numbers", ["--ckpt", ckpt, "--keep-layers", "0,x"], ["'x'"]),
            ("--search-kept beyond the depth", ["--ckpt", ckpt, "--search-kept", "5"], ["--search-kept 5", "4 layers"]),
            ("--retention 0", ["--ckpt", ckpt, "--retention", "0"], ["--retention"]),
            ("a bad QA line", ["--ckpt", ckpt, "--qa", bad_qa], [re.escape(bad_qa) + ":2:", "answers"]),
            ("an unknown template placeholder", ["--ckpt", ckpt, "--qa", qa_file, "--qa-template", "{q} {question}"],
             [r"\{q\}"]),
            ("--seq-len beyond the positions", ["--ckpt", ckpt, "-t", "1024"], ["1024", "max_position"]),
            ("--tokenizer without --qa", ["--ckpt", ckpt, "--tokenizer", os.path.join(FIXTURES, "bytelevel_gpt2.json")],
             ["--tokenizer", "--qa"]),
        ]
        for name, flags, mention in cases:
            p = run([evaluate, "--device", "cpu"] + flags)
            err = p.stderr.strip()
            missing_words = [m for m in mention if not re.search(m, err)]
            check(p.returncode > 0 and not missing_words and "Traceback" not in err,
                  f"bad input: {name}: exit {p.returncode}, the message names it", f"{err!r} lacks {missing_words}")
        p = run([train, "--steps", "0", "--out", os.path.join(tmp, "steps0")])
        check(p.returncode > 0 and "--steps" in p.stderr, "train_rkv --steps 0 is refused, naming --steps", p.stderr)

    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
