#!/usr/bin/env python3
"""End-to-end tests of ./train_rkv: determinism, bitwise resume (after a finished run and
after SIGTERM), rejection of bad input, the stop on a NaN/inf loss, the retention table,
checkpoints moving between the CPU and the CUDA path, and the CUDA path's attention kernels.

Usage: python3 tests/cli/test_train_cli.py --bin PATH/TO/train_rkv

Standard library only. The runs train a tiny 4-layer Llama (config written to a temp
dir; gpt2-tiny for the config-mismatch case) on -b 2 -t 32 for a handful of steps, on
small shards this script writes (the built-in corpus for the retention table), so the
whole file takes seconds. --keep leaves the runs' temp dir for inspection. Prints one line per check, then "N passed, M failed"; exits
non-zero if any check failed.
"""
import argparse
import array
import hashlib
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time

TINY_LLAMA = {
    "model_type": "llama", "vocab_size": 256, "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "max_position_embeddings": 64,
}
CKPT_FILES = {"model.safetensors", "optimizer.safetensors", "config.json", "state.json"}
RUN_TIMEOUT_S = 120     # no single run should come near this; it only stops a hang


class Checks:
    """Counts and prints the result of each check."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, name, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        sys.stdout.flush()
        return ok


# ---------------------------------------------------------------------------------------
# Files: shards, logs, checkpoints

def write_shard(path, tokens, version=1, magic=None, drop_bytes=0):
    """An llm.c token shard: 256 x int32 header (magic, version, count), then the tokens
    (uint16 for version 1, uint32 for version 7). magic overrides the header's magic;
    drop_bytes cuts that many bytes off the end (a truncated file)."""
    header = [0] * 256
    header[0] = magic if magic is not None else (20240520 if version == 1 else 20240801)
    header[1] = version
    header[2] = len(tokens)
    data = struct.pack("<256i", *header) + struct.pack(f"<{len(tokens)}{'H' if version == 1 else 'I'}", *tokens)
    with open(path, "wb") as f:
        f.write(data[:len(data) - drop_bytes])


def text_tokens(n, seed):
    """n byte tokens of pseudo-random sentences (a fixed LCG, so every run sees the same)."""
    words = ["the", "cat", "sat", "on", "a", "mat", "key", "is", "value", "red", "blue", "seven"]
    state, out = seed, bytearray()
    while len(out) < n:
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        out += (words[(state >> 33) % len(words)] + (". " if (state >> 20) % 5 == 0 else " ")).encode()
    return list(out[:n])


def read_log(out_dir):
    """The complete lines of OUT/log.jsonl as dicts (a line still being written is skipped)."""
    path = os.path.join(out_dir, "log.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.read().split("\n")
    return [json.loads(line) for line in lines[:-1] if line]   # lines[-1]: after the last '\n'


def train_records(log):
    return [r for r in log if "train_loss" in r]


def ckpt_dirs(out_dir):
    """Names of the checkpoint entries in out_dir (ckpt_XXXXXXXX, and any .tmp leftovers)."""
    if not os.path.isdir(out_dir):
        return []
    return sorted(n for n in os.listdir(out_dir) if n.startswith("ckpt_"))


def ckpt_digest(out_dir):
    """{relative path: sha256} of every file under the checkpoint dirs of out_dir."""
    digest = {}
    for name in ckpt_dirs(out_dir):
        for root, _, files in os.walk(os.path.join(out_dir, name)):
            for f in files:
                path = os.path.join(root, f)
                with open(path, "rb") as fh:
                    digest[os.path.relpath(path, out_dir)] = hashlib.sha256(fh.read()).hexdigest()
    return digest


def ckpt_complete(out_dir, name):
    """A checkpoint dir holds all its files, and its state.json's step matches its name."""
    path = os.path.join(out_dir, name)
    if not re.fullmatch(r"ckpt_\d{8}", name) or set(os.listdir(path)) != CKPT_FILES:
        return False
    with open(os.path.join(path, "state.json")) as f:
        return json.load(f).get("step") == int(name[5:])


def weights_finite(out_dir, name):
    """Every parameter in the checkpoint's model.safetensors (F32) is finite."""
    with open(os.path.join(out_dir, name, "model.safetensors"), "rb") as f:
        data = f.read()
    header_len = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + header_len])
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        values = array.array("f", data[8 + header_len + begin:8 + header_len + end])
        if info["dtype"] != "F32" or not all(map(math.isfinite, values)):
            return False
    return True


def first_log_difference(a, b):
    """'' when the logs are equal, else where they first differ."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"record {i}: {x} vs {y}"
    return "" if len(a) == len(b) else f"{len(a)} vs {len(b)} records"


# ---------------------------------------------------------------------------------------
# The tests

class TrainCliTest:
    def __init__(self, binary, tmp):
        self.bin, self.tmp, self.checks = binary, tmp, Checks()
        self.check = self.checks.check
        self.config = os.path.join(tmp, "tiny_llama.json")
        with open(self.config, "w") as f:
            json.dump(TINY_LLAMA, f)
        # 8192 training tokens = 127 windows of B*T = 64: the SIGTERM test's resumed run
        # wraps into a second epoch, whose window order is drawn afresh.
        self.train_shard = os.path.join(tmp, "train.bin")
        self.val_shard = os.path.join(tmp, "val.bin")
        write_shard(self.train_shard, text_tokens(8192, seed=1))
        write_shard(self.val_shard, text_tokens(2048, seed=2))
        self.data = ["--train", self.train_shard, "--val", self.val_shard]
        self.small = ["--config", self.config, "-b", "2", "-t", "32", "--val-batches", "2", "--device", "cpu"]

    def out_dir(self, name):
        return os.path.join(self.tmp, name)

    def run(self, args):
        return subprocess.run([self.bin] + args, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)

    def train(self, name, args, data=True):
        """A run of the tiny model into a fresh dir; returns (process, log)."""
        out = self.out_dir(name)
        p = self.run(self.small + (self.data if data else []) + args + ["--out", out])
        return p, read_log(out)

    # --- determinism ----------------------------------------------------------------

    def test_determinism(self):
        args = ["--steps", "6", "--val-every", "3", "--p-own", "0.5", "--shuffle", "1"]
        p1, log1 = self.train("det_a", args + ["--seed", "5"])
        p2, log2 = self.train("det_b", args + ["--seed", "5"])
        p3, log3 = self.train("det_c", args + ["--seed", "6"])
        self.check(p1.returncode == 0 and p2.returncode == 0 and p3.returncode == 0, "determinism: runs exit 0",
                   (p1.stderr + p2.stderr + p3.stderr).strip())
        vals = sorted({(r["step"], r["retention"]) for r in log1 if "val_loss" in r})
        expect = sorted((s, k) for s in (0, 3, 6) for k in (1, 2, 3, 4))
        self.check(len(train_records(log1)) == 6 and vals == expect,
                   "determinism: log.jsonl has 6 train records and val at steps 0,3,6 x retention 1..4",
                   f"{len(train_records(log1))} train records, val at {vals}")
        diff = first_log_difference(log1, log2)
        self.check(log1 and not diff, "determinism: same seed gives identical log.jsonl", diff)
        losses = lambda log: [r["train_loss"] for r in train_records(log)]
        self.check(losses(log1) != losses(log3), "determinism: another --seed gives other train losses")

    # --- resume after a finished run -------------------------------------------------

    def test_resume_after_finish(self):
        # The LR schedule depends on --steps: constant, so 4 then 8 steps is one schedule.
        args = ["--schedule", "constant", "--val-every", "4", "--p-own", "0.5", "--grad-accum", "2"]
        ref, ref_log = self.train("resume_ref", args + ["--steps", "8"])
        first, _ = self.train("resume_run", args + ["--steps", "4"])
        second, log = self.train("resume_run", args + ["--steps", "8", "--resume"])
        self.check(ref.returncode == 0 and first.returncode == 0 and second.returncode == 0,
                   "resume: 8 steps, 4 steps, then --resume to 8 all exit 0",
                   (ref.stderr + first.stderr + second.stderr).strip())
        self.check("resumed from" in second.stdout and "ckpt_00000004" in second.stdout,
                   "resume: the resumed run says it continues from ckpt_00000004", second.stdout[:300])
        diff = first_log_difference(ref_log, log)
        self.check(ref_log and not diff, "resume: 4 + 4 resumed steps give the 8-step run's log bitwise", diff)

    # --- SIGTERM and resume ----------------------------------------------------------

    def test_sigterm_resume(self):
        # Default cosine schedule, routing and shuffling on, two micro-batches per step
        # (each draws its own route); 100 steps x 2 micro-batches cross an epoch.
        args = ["--steps", "100", "--val-every", "25", "--p-own", "0.5", "--shuffle", "1", "--grad-accum", "2"]
        out = self.out_dir("sigterm_run")
        cmd = [self.bin] + self.small + self.data + args + ["--out", out]
        with open(os.path.join(self.tmp, "sigterm.stdout"), "w") as so, \
                open(os.path.join(self.tmp, "sigterm.stderr"), "w") as se:
            proc = subprocess.Popen(cmd, stdout=so, stderr=se)
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while len(train_records(read_log(out))) < 3 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=RUN_TIMEOUT_S)
        log = read_log(out)
        stopped = train_records(log)[-1]["step"] if train_records(log) else None
        self.check(rc == 128 + signal.SIGTERM, "sigterm: exit code 143", f"exit code {rc}, stopped at {stopped}")
        self.check(ckpt_dirs(out) == [f"ckpt_{stopped:08d}"] if stopped else False,
                   "sigterm: one checkpoint, at the last logged step, no .tmp left",
                   f"{ckpt_dirs(out)}, last logged step {stopped}")
        self.check(all(ckpt_complete(out, n) for n in ckpt_dirs(out)) and ckpt_dirs(out) != [],
                   "sigterm: the checkpoint is complete")

        resumed = self.run(self.small + self.data + args + ["--out", out, "--resume"])
        ref, ref_log = self.train("sigterm_ref", args)
        self.check(resumed.returncode == 0 and ref.returncode == 0, "sigterm: --resume and the reference exit 0",
                   (resumed.stderr + ref.stderr).strip())
        diff = first_log_difference(ref_log, read_log(out))
        self.check(ref_log and not diff, f"sigterm: stopped at {stopped} + resumed equals the uninterrupted run bitwise",
                   diff)

    # --- bad input --------------------------------------------------------------------

    def expect_rejected(self, name, args, must_mention, out, fresh_out=True):
        """Runs train_rkv with args; it must exit non-zero (not crash) with a stderr message
        matching every regex in must_mention, and leave the checkpoints in out as they were
        (none at all when fresh_out)."""
        before = ckpt_digest(out)
        p = self.run(args)
        err = p.stderr.strip()
        missing = [m for m in must_mention if not re.search(m, err, re.IGNORECASE)]
        self.check(p.returncode > 0 and not missing, f"bad input: {name}: exit {p.returncode}, message names it",
                   f"stderr {err!r} lacks {missing}" if missing else f"stderr {err!r}")
        after = ckpt_digest(out)
        self.check(after == before and (not fresh_out or ckpt_dirs(out) == []),
                   f"bad input: {name}: no checkpoint written or changed", f"{ckpt_dirs(out)}")

    def test_bad_input(self):
        tmp, small = self.tmp, self.small
        ok_tokens = text_tokens(1000, seed=3)
        bad = {}
        for name, kwargs in {"truncated": dict(drop_bytes=100), "magic": dict(magic=12345)}.items():
            bad[name] = os.path.join(tmp, f"bad_{name}.bin")
            write_shard(bad[name], ok_tokens, **kwargs)
        bad["vocab"] = os.path.join(tmp, "bad_vocab.bin")
        write_shard(bad["vocab"], ok_tokens[:500] + [300] + ok_tokens[501:], version=7)
        missing = os.path.join(tmp, "no_such_shard.bin")
        run_args = ["--steps", "2", "--val-every", "1"]

        def fresh(name):
            return self.out_dir(name), ["--out", self.out_dir(name)]

        esc = re.escape
        cases = [
            ("truncated train shard", ["--train", bad["truncated"], "--val", self.val_shard],
             [esc(bad["truncated"]), r"truncated|short"]),
            ("wrong magic in train shard", ["--train", bad["magic"], "--val", self.val_shard],
             [esc(bad["magic"]), r"magic"]),
            ("wrong magic in val shard", ["--train", self.train_shard, "--val", bad["magic"]],
             [esc(bad["magic"]), r"magic"]),
            ("token id 300 >= vocab 256 (version 7)", ["--train", bad["vocab"], "--val", self.val_shard],
             [esc(bad["vocab"]), r"300", r"vocab"]),
            ("missing train file", ["--train", missing, "--val", self.val_shard],
             [esc(missing), r"cannot open|no such file"]),
            ("unknown option", self.data + ["--bogus-option", "3"], [r"--bogus-option"]),
            ("infinite learning rate", self.data + ["--lr", "inf"], [r"--lr", r"finite"]),
        ]
        for name, args, mention in cases:
            out, out_args = fresh("bad_" + re.sub(r"\W+", "_", name))
            self.expect_rejected(name, small + run_args + args + out_args, mention, out)

        # A finished gpt2-tiny run, then flags that disagree with its checkpoint.
        out = self.out_dir("bad_resume")
        base = ["-b", "2", "-t", "32", "--val-batches", "2", "--device", "cpu", "--steps", "1"] + self.data
        p = self.run(["--model", "gpt2-tiny"] + base + ["--out", out])
        self.check(p.returncode == 0 and ckpt_dirs(out) == ["ckpt_00000001"],
                   "bad input: the gpt2-tiny run to resume from is written", p.stderr.strip())
        ckpt = re.escape(os.path.join(out, "ckpt_00000001"))
        self.expect_rejected("--resume with --model llama3-tiny (config differs)",
                             ["--model", "llama3-tiny", "--resume"] + base + ["--out", out],
                             [ckpt, r"config"], out, fresh_out=False)
        self.expect_rejected("--resume with -b 4 (batch differs)",
                             ["--model", "gpt2-tiny", "--resume"] + base[2:] + ["-b", "4", "--out", out],
                             [ckpt, r"batch"], out, fresh_out=False)
        self.expect_rejected("fresh run into an --out that holds checkpoints",
                             ["--model", "gpt2-tiny"] + base + ["--out", out],
                             [re.escape(out), r"checkpoint"], out, fresh_out=False)
        empty = self.out_dir("bad_empty")
        os.makedirs(empty)
        self.expect_rejected("--resume on an empty dir", small + run_args + self.data + ["--resume", "--out", empty],
                             [re.escape(empty), r"no checkpoint"], empty)

    # --- NaN / inf --------------------------------------------------------------------

    def test_nan_stop(self):
        # lr 1e30: step 1 is finite, step 2's gradient is not. lr 1e10 with no periodic
        # checkpoint: step 2's loss itself is NaN and there is no good checkpoint to name.
        for name, args, names_ckpt in [
            ("--lr 1e30 --ckpt-every 1", ["--lr", "1e30", "--ckpt-every", "1"], True),
            ("--lr 1e10 --ckpt-every 0", ["--lr", "1e10", "--ckpt-every", "0"], False),
        ]:
            out_name = "nan_" + re.sub(r"\W+", "_", name)
            out = self.out_dir(out_name)
            p, log = self.train(out_name, args + ["--clip", "0", "--steps", "10", "--val-every", "5"])
            err = p.stderr.strip()
            bad_step = re.search(r"step (\d+)", err)
            bad_step = int(bad_step.group(1)) if bad_step else None
            self.check(p.returncode > 0 and bad_step and re.search(r"\b-?(nan|inf)\b", err, re.IGNORECASE),
                       f"nan: {name}: exit {p.returncode}, message names the step and nan/inf", repr(err))
            dirs = ckpt_dirs(out)
            if names_ckpt:
                self.check(dirs and os.path.join(out, dirs[-1]) in err,
                           f"nan: {name}: the message names the last good checkpoint", f"{dirs}, {err!r}")
            else:
                self.check(dirs == [] and re.search(r"no checkpoint", err, re.IGNORECASE),
                           f"nan: {name}: no checkpoint, and the message says so", f"{dirs}, {err!r}")
            self.check(all(ckpt_complete(out, n) and weights_finite(out, n) and int(n[5:]) < (bad_step or 0)
                           for n in dirs),
                       f"nan: {name}: every checkpoint is complete, has finite weights, is older than the bad step",
                       f"{dirs}")
            self.check(bad_step and all(r["step"] < bad_step for r in train_records(log)),
                       f"nan: {name}: no train record logged for the bad step",
                       f"bad step {bad_step}, last logged {train_records(log)[-1:]}")

    # --- retention table --------------------------------------------------------------

    def test_retention_table(self):
        # The default data: the built-in corpus, generated into OUT/corpus.
        p, log = self.train("table", ["--steps", "2", "--val-every", "1", "--retention", "1,2,4"], data=False)
        lines = p.stdout.splitlines()
        at = next((i for i, l in enumerate(lines) if "validation loss per KV-cache retention" in l), None)
        # Rows follow the title and a column header: "1/k  kept/L  loss  delta".
        rows = [l.split() for l in lines[at + 2:]] if at is not None else []
        got = [(r[0], r[1]) for r in rows if r]
        self.check(p.returncode == 0 and got == [("1/1", "4/4"), ("1/2", "2/4"), ("1/4", "1/4")],
                   "retention table: one row per --retention 1,2,4 with 4/4, 2/4, 1/4 cached layers",
                   f"exit {p.returncode}, rows {got}, stderr {p.stderr.strip()!r}")
        last = {r["retention"]: r["val_loss"] for r in log if "val_loss" in r}
        table = {int(r[0][2:]): float(r[2]) for r in rows if r}
        self.check(table and all(abs(table[k] - last[k]) < 5e-5 for k in table),
                   "retention table: losses are the last val_loss per retention in log.jsonl", f"{table} vs {last}")

    # --- checkpoints move between the CPU and the CUDA path ------------------------------

    def test_device_portability(self):
        # Checkpoints hold fp32 weights (the master copy on a bf16 CUDA build): a run on one
        # path starts another from them and validates to the loss the first one ended with,
        # up to bf16's rounding of activations (a few 1e-4 here).
        def on(device, name, args):
            small = [device if a == "cpu" else a for a in self.small]
            out = self.out_dir(name)
            p = self.run(small + self.data + args + ["--out", out])
            return p, read_log(out)

        def final_val(log):
            last = max(r["step"] for r in log if "val_loss" in r)
            return {r["retention"]: r["val_loss"] for r in log if "val_loss" in r and r["step"] == last}

        def start_val(log):
            return {r["retention"]: r["val_loss"] for r in log if "val_loss" in r and r["step"] == 0}

        for first, second in (("cuda", "cpu"), ("cpu", "cuda")):
            what = f"portability: a {first} checkpoint starts a {second} run"
            p1, log1 = on(first, f"port_{first}", ["--steps", "3", "--val-every", "3", "--p-own", "0.5"])
            ckpt = os.path.join(self.out_dir(f"port_{first}"), "ckpt_00000003")
            p2, log2 = on(second, f"port_{first}_{second}", ["--steps", "1", "--val-every", "1", "--init", ckpt])
            self.check(p1.returncode == 0 and p2.returncode == 0, f"{what}: both runs exit 0",
                       (p1.stderr + p2.stderr).strip())
            a, b = final_val(log1), start_val(log2)
            self.check(a and a.keys() == b.keys() and all(abs(a[k] - b[k]) < 5e-3 for k in a),
                       f"{what}: it validates to the loss the first run ended with", f"{a} vs {b}")

    # --- the CUDA path's attention kernels ----------------------------------------------

    def test_attention_kernels(self):
        # --attention picks the kernel. At head dim 64 (a 2-head, 128-wide Llama) wgmma, mma and
        # plain each train, to the same losses up to bf16 rounding and summation order.
        config = os.path.join(self.tmp, "hd64_llama.json")
        with open(config, "w") as f:
            json.dump(dict(TINY_LLAMA, hidden_size=128, num_attention_heads=2, num_key_value_heads=1, head_dim=64), f)
        losses = {}
        for kernel in ("wgmma", "mma", "plain"):
            out = self.out_dir(f"attention_{kernel}")
            p = self.run(["--config", config, "-b", "2", "-t", "32", "--steps", "3", "--val-every", "0",
                          "--device", "cuda", "--attention", kernel] + self.data + ["--out", out])
            self.check(p.returncode == 0, f"attention: --attention {kernel} trains", p.stderr.strip())
            losses[kernel] = [r["train_loss"] for r in train_records(read_log(out))]
        worst = max((abs(a - b) for k in ("mma", "plain") for a, b in zip(losses["wgmma"], losses[k])), default=0.0)
        self.check(all(len(v) == 3 for v in losses.values()) and worst < 5e-3,
                   "attention: wgmma, mma and plain give the same losses (bf16)", f"{losses}")
        self.check(losses["plain"] != losses["wgmma"], "attention: the flag changes the kernel (other rounding)",
                   f"{losses}")
        p = self.run(self.small + self.data + ["--attention", "flash", "--out", self.out_dir("attention_bad")])
        self.check(p.returncode != 0 and "--attention" in p.stderr, "attention: an unknown kernel is refused",
                   p.stderr.strip())

    # --- --profile --------------------------------------------------------------------

    def test_profile(self):
        # The CUDA path times each layer operation; timing must not change what is computed.
        args = ["cuda" if a == "cpu" else a for a in self.small] + self.data + ["--steps", "3", "--val-every", "0",
                                                                               "--p-own", "0.5"]
        plain = self.run(args + ["--out", self.out_dir("profile_off")])
        timed = self.run(args + ["--profile", "--out", self.out_dir("profile_on")])
        self.check(plain.returncode == 0 and timed.returncode == 0, "profile: runs with and without --profile exit 0",
                   (plain.stderr + timed.stderr).strip())
        rows = {}   # operation: (calls per step, ms per step)
        for line in timed.stdout.split("device time per step by layer operation")[-1].splitlines():
            cells = line.split()
            if len(cells) == 4 and cells[3].endswith("%"):
                rows[cells[0]] = (float(cells[1]), float(cells[2]))
        L = TINY_LLAMA["num_hidden_layers"]
        calls = {"attention_forward": L, "attention_backward": L, "fused_classifier": 1, "sum_squares": 1}
        self.check(all(op in rows and rows[op][0] == n and rows[op][1] >= 0 for op, n in calls.items()),
                   "profile: a table of the operations with their calls per step", timed.stdout[-2000:])
        self.check("device time" not in plain.stdout, "profile: no table without --profile")
        losses = [[r["train_loss"] for r in train_records(read_log(self.out_dir(d)))]
                  for d in ("profile_off", "profile_on")]
        self.check(len(losses[0]) == 3 and losses[0] == losses[1],
                   "profile: the same losses, bit for bit, with and without --profile", f"{losses}")
        p = self.run(self.small + self.data + ["--steps", "1", "--profile", "--out", self.out_dir("profile_cpu")])
        self.check(p.returncode != 0 and "--profile" in p.stderr, "profile: refused on the CPU path", p.stderr.strip())

    # --- a build without the CUDA path ---------------------------------------------------

    def test_no_cuda_path(self):
        p = self.run(["cuda" if a == "cpu" else a for a in self.small] + self.data + ["--steps", "1",
                                                                                      "--out", self.out_dir("nocuda")])
        self.check(p.returncode != 0 and "no CUDA path" in p.stderr,
                   "no CUDA path: --device cuda stops with an error saying so", p.stderr.strip())

    def run_all(self, cuda=True):
        device_tests = ((self.test_device_portability, self.test_attention_kernels, self.test_profile) if cuda
                        else (self.test_no_cuda_path,))
        for test in (self.test_determinism, self.test_resume_after_finish, self.test_sigterm_resume,
                     self.test_bad_input, self.test_nan_stop, self.test_retention_table) + device_tests:
            try:
                test()
            except Exception as e:       # a crash of one test is one failure, the others still run
                self.check(False, test.__name__, f"{type(e).__name__}: {e}")
        print(f"{self.checks.passed} passed, {self.checks.failed} failed")
        return self.checks.failed == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="path to the train_rkv executable")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir of the runs (its path is printed)")
    parser.add_argument("--no-cuda", action="store_true", help="the build has no CUDA path: check that it says so")
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    if args.keep:
        tmp = tempfile.mkdtemp(prefix="train_cli_")
        print(f"runs kept in {tmp}")
        return 0 if TrainCliTest(binary, tmp).run_all(not args.no_cuda) else 1
    with tempfile.TemporaryDirectory(prefix="train_cli_") as tmp:
        return 0 if TrainCliTest(binary, tmp).run_all(not args.no_cuda) else 1


if __name__ == "__main__":
    sys.exit(main())
