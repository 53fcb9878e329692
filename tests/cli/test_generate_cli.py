#!/usr/bin/env python3
"""End-to-end tests of ./generate_rkv: a tiny model trained for a few steps by ./train_rkv
serves text at every retention level, the KV cache holds the kept layers only, runs repeat,
a prompt prefilled in any chunking gives the same text, the emulated CUDA path serves too,
and bad input stops with a clear error. With a tokenizer.json in the run folder (a fixture of
tests/fixtures/tokenizers/), the printed text is the tokenizer's decode of the new ids (decoded
here independently, ByteLevel by hand), and generation stops at the EOS of generation_config.json
and at --stop strings.

Usage: python3 tests/cli/test_generate_cli.py --train PATH/TO/train_rkv --generate PATH/TO/generate_rkv

Standard library only; the whole file takes seconds. Prints one line per check, then
"N passed, M failed"; exits non-zero if any check failed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from test_train_cli import TINY_LLAMA, Checks   # the same tiny Llama, the same PASS/FAIL lines

RUN_TIMEOUT_S = 300     # only stops a hang


def run(args):
    return subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=RUN_TIMEOUT_S)


def stats(result):
    """The --json line of a run."""
    return json.loads(result.stdout.strip().splitlines()[-1])


def text(result):
    """What the run generated, per sequence (the --json line's texts)."""
    return stats(result)["text"] if result.returncode == 0 else None


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tokenizers")


def byte_level_decode(tokenizer_json, ids):
    """The ByteLevel decoder, independently: GPT-2's byte <-> character table, added tokens as written,
    invalid UTF-8 as U+FFFD."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    spec = json.load(open(tokenizer_json, encoding="utf-8"))
    token = {i: t for t, i in spec["model"]["vocab"].items()}
    token.update({a["id"]: a["content"] for a in spec["added_tokens"]})
    out = b""
    for i in ids:
        if i not in token:   # the model's vocabulary is larger: ids without a token decode to nothing
            continue
        t = token[i]
        out += bytes(chars[c] for c in t) if all(c in chars for c in t) else t.encode()
    return out.decode("utf-8", errors="replace")


def check_text_generation(checks, args, tmp):
    """A model whose vocabulary holds the fixture tokenizer's 1503 tokens, that tokenizer in its run folder;
    sampled with a seed (the same tokens each run) so that the text varies."""
    config = dict(TINY_LLAMA, vocab_size=1536)
    path = os.path.join(tmp, "llama_text.json")
    with open(path, "w") as f:
        json.dump(config, f)
    run_dir = os.path.join(tmp, "run_text")
    trained = run([args.train, "--config", path, "-b", "2", "-t", "32", "--steps", "10", "--val-every", "0",
                   "--device", "cpu", "--out", run_dir])
    if not checks.check(trained.returncode == 0, "train_rkv trains a model with a 1536-token vocabulary",
                        trained.stderr[-2000:]):
        return
    tokenizer = os.path.join(FIXTURES, "bytelevel_llama3.json")
    shutil.copy(tokenizer, os.path.join(run_dir, "tokenizer.json"))

    def generate(*extra, max_new=24):
        return run([args.generate, "--ckpt", run_dir, "--prompt", "hello world", "--max-new", str(max_new),
                    "--device", "cpu", "--temperature", "1.5", "--seed", "7", *extra])

    r = generate("--json")
    if not checks.check(r.returncode == 0 and len(r.stdout.strip().splitlines()) == 1,
                        "--json prints one line only", r.stderr[-2000:] + r.stdout[-500:]):
        return
    s = stats(r)
    ids, got = s["ids"][0], s["text"][0]
    checks.check(s["prompt_tokens"] == 1 + 2 and len(ids) == 24 and s["ended"] == ["length"],
                 "the prompt is <|begin_of_text|> and its 2 tokens; 24 new tokens", str(s))
    checks.check(got == byte_level_decode(tokenizer, ids), "the text is the tokenizer's decode of the new ids",
                 f"{got!r} vs {byte_level_decode(tokenizer, ids)!r}")
    streamed = generate()
    printed = streamed.stdout.split("kv cache:")[0]
    checks.check(streamed.returncode == 0 and printed == "--- sequence 0\nhello world" + got + "\n",
                 "the streamed text is the same text", f"{printed!r} vs {got!r}")

    # EOS: the first new id not seen before it ends the sequence there.
    k = next((i for i in range(len(ids) // 3, len(ids)) if ids[i] not in ids[:i]), None)
    if checks.check(k is not None, "the text has a new id to make the EOS", str(ids)):
        with open(os.path.join(run_dir, "generation_config.json"), "w") as f:
            json.dump({"eos_token_id": [1502, ids[k]] if ids[k] != 1502 else [ids[k]]}, f)
        r = generate("--json")
        s = stats(r) if r.returncode == 0 else {}
        checks.check(s.get("ids") == [ids[:k]] and s.get("ended") == ["eos"] and
                     s.get("text") == [byte_level_decode(tokenizer, ids[:k])],
                     f"generation stops at the EOS of generation_config.json (after {k} tokens)",
                     r.stderr[-1000:] + str(s))
        os.remove(os.path.join(run_dir, "generation_config.json"))

    # A stop string from the middle of the text: the text ends before its first occurrence.
    stop = got[len(got) // 2:len(got) // 2 + 2]
    if checks.check(len(stop) == 2, "the text is long enough for a stop string", repr(got)):
        want = got[:got.find(stop)]
        r = generate("--json", "--stop", stop, "--stop", "\u2603never")
        s = stats(r) if r.returncode == 0 else {}
        checks.check(s.get("text") == [want] and s.get("ended") == ["stop"], f"generation stops at --stop {stop!r}",
                     r.stderr[-1000:] + str(s))
        streamed = generate("--stop", stop)
        checks.check(streamed.stdout.split("kv cache:")[0] == "--- sequence 0\nhello world" + want + "\n",
                     "the streamed text ends before the stop string too", repr(streamed.stdout[:300]))

    bad = run([args.generate, "--ckpt", run_dir, "--prompt", "x", "--device", "cpu",
               "--tokenizer", os.path.join(FIXTURES, "..", "..", "..", "README.md")])
    checks.check(bad.returncode != 0 and "README.md" in bad.stderr and "JSON" in bad.stderr,
                 "a --tokenizer that is not JSON is refused naming it", bad.stderr[-500:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", required=True)
    parser.add_argument("--generate", required=True)
    parser.add_argument("--no-cuda", action="store_true", help="the build has no CUDA path: check that it says so")
    args = parser.parse_args()
    checks = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "llama.json")
        with open(config, "w") as f:
            json.dump(TINY_LLAMA, f)
        run_dir = os.path.join(tmp, "run")
        trained = run([args.train, "--config", config, "-b", "2", "-t", "32", "--steps", "20", "--val-every", "0",
                       "--device", "cpu", "--out", run_dir])
        if not checks.check(trained.returncode == 0, "train_rkv trains the model to serve", trained.stderr[-2000:]):
            return 1

        def generate(*extra, device="cpu", max_new=20):
            return run([args.generate, "--ckpt", run_dir, "--prompt", "the cat ", "--max-new", str(max_new),
                        "--device", device, "--json", *extra])

        L = TINY_LLAMA["num_hidden_layers"]
        # Keys and values of one position in one kept layer, fp32 on the CPU path; positions: the
        # document start, the 8 prompt bytes and 20 new tokens.
        layer_bytes = 2 * TINY_LLAMA["num_key_value_heads"] * TINY_LLAMA["head_dim"] * 4
        positions = 1 + len("the cat ") + 20
        for k, kept in [(1, 4), (2, 2), (3, 2), (4, 1)]:
            r = generate("--retention", str(k), "--temperature", "0")
            if not checks.check(r.returncode == 0, f"--retention {k} serves", r.stderr[-2000:]):
                continue
            s = stats(r)
            checks.check(s["kept_layers"] == kept and s["kv_bytes_per_token"] == kept * layer_bytes and
                         s["kv_bytes"] == kept * layer_bytes * positions and
                         s["kv_bytes_full_per_token"] == L * layer_bytes,
                         f"--retention {k}: the cache keeps {kept} of {L} layers, {kept}/{L} of the bytes", str(s))
            checks.check(len(text(r)[0]) > 0, f"--retention {k} generates text")

        r = generate("--keep-layers", "0,3", "--temperature", "0")
        checks.check(r.returncode == 0 and stats(r)["kept_layers"] == 2, "--keep-layers 0,3 keeps two layers",
                     r.stderr[-2000:])

        a = generate("--temperature", "0.8", "--seed", "5", "-b", "3")
        b = generate("--temperature", "0.8", "--seed", "5", "-b", "3")
        checks.check(a.returncode == 0 and text(a) == text(b) and len(text(a)) == 3,
                     "the same seed samples the same three sequences", a.stderr[-2000:])
        whole = generate("--temperature", "0", "--retention", "2")
        pieces = generate("--temperature", "0", "--retention", "2", "--chunk", "3")
        checks.check(text(whole) == text(pieces), "a prompt prefilled in chunks of 3 gives the same greedy text",
                     f"{text(whole)!r} vs {text(pieces)!r}")
        top1 = generate("--temperature", "0.8", "--top-k", "1", "--retention", "2")
        checks.check(text(top1) == text(whole), "sampling among the top 1 is the greedy text",
                     f"{text(top1)!r} vs {text(whole)!r}")
        top5 = [generate("--temperature", "1.5", "--top-k", "5", "--seed", "9") for _ in range(2)]
        checks.check(top5[0].returncode == 0 and text(top5[0]) == text(top5[1]), "top-5 sampling repeats with its seed",
                     top5[0].stderr[-2000:])
        tokens = run([args.generate, "--ckpt", run_dir, "--tokens", "0,116,104,101", "--max-new", "4",
                      "--temperature", "0", "--device", "cpu"])
        checks.check(tokens.returncode == 0 and tokens.stdout.startswith("--- sequence 0\nthe"),
                     "--tokens gives the prompt as ids; the text prints without --json", tokens.stderr[-2000:])

        cuda = generate("--retention", "2", "--temperature", "0", device="cuda", max_new=6)
        if args.no_cuda:
            checks.check(cuda.returncode != 0 and "no CUDA path" in cuda.stderr,
                         "--device cuda stops with an error in a build without the CUDA path", cuda.stderr[-2000:])
        else:
            checks.check(cuda.returncode == 0 and stats(cuda)["kept_layers"] == 2,
                         "--device cuda (the emulated kernels) serves with the shared cache", cuda.stderr[-2000:])

        bad = [
            (["--ckpt", os.path.join(tmp, "missing"), "--max-new", "5"], "missing"),
            (["--ckpt", run_dir, "--keep-layers", "1,2", "--max-new", "5"], "layer 0"),
            (["--ckpt", run_dir, "--tokens", "0,256", "--max-new", "5"], "vocabulary"),
            (["--ckpt", run_dir, "--prompt", "x" * 60, "--max-new", "10"], "positions"),
            (["--ckpt", run_dir, "--prompt", "x", "--max-new", "2147483647"], "positions"),
            (["--ckpt", run_dir, "--prompt", "x", "--temperature", "nan"], "--temperature"),
            (["--ckpt", run_dir, "--prompt", "x", "--stop", ""], "--stop"),
        ]
        for extra, words in bad:
            r = run([args.generate, "--device", "cpu", *extra])
            # Options CLI11 refuses itself (named "--...") come without the "generate_rkv: error:" prefix.
            stated = "generate_rkv: error:" in r.stderr or words.startswith("--")
            checks.check(r.returncode != 0 and stated and words in r.stderr,
                         f"refused with an error naming '{words}': {' '.join(extra)[-60:]}",
                         f"rc {r.returncode}, stderr {r.stderr[-500:]!r}")
        check_text_generation(checks, args, tmp)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
