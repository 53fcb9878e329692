#!/usr/bin/env python3
"""End-to-end tests of ./generate_rkv: a tiny model trained for a few steps by ./train_rkv
serves text at every retention level, the KV cache holds the kept layers only, runs repeat,
a prompt prefilled in any chunking gives the same text, the emulated CUDA path serves too,
and bad input stops with a clear error.

Usage: python3 tests/cli/test_generate_cli.py --train PATH/TO/train_rkv --generate PATH/TO/generate_rkv

Standard library only; the whole file takes seconds. Prints one line per check, then
"N passed, M failed"; exits non-zero if any check failed.
"""
import argparse
import json
import os
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
    """What the run generated: the lines between '--- sequence' and the cache line."""
    return result.stdout.split("kv cache:")[0]


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
            checks.check(len(text(r)) > len("--- sequence 0\nthe cat "), f"--retention {k} prints its text")

        r = generate("--keep-layers", "0,3", "--temperature", "0")
        checks.check(r.returncode == 0 and stats(r)["kept_layers"] == 2, "--keep-layers 0,3 keeps two layers",
                     r.stderr[-2000:])

        a = generate("--temperature", "0.8", "--seed", "5", "-b", "3")
        b = generate("--temperature", "0.8", "--seed", "5", "-b", "3")
        checks.check(a.returncode == 0 and text(a) == text(b) and text(a).count("--- sequence") == 3,
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
        checks.check(tokens.returncode == 0, "--tokens gives the prompt as ids", tokens.stderr[-2000:])

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
        ]
        for extra, words in bad:
            r = run([args.generate, "--device", "cpu", *extra])
            checks.check(r.returncode != 0 and "generate_rkv: error:" in r.stderr and words in r.stderr,
                         f"refused with an error naming '{words}': {' '.join(extra)[-60:]}",
                         f"rc {r.returncode}, stderr {r.stderr[-500:]!r}")
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
