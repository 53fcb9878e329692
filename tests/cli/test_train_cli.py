#!/usr/bin/env python3
"""End-to-end tests of ./train_rkv: determinism, bitwise resume (after a finished run and
after SIGTERM; a bare --resume takes the run's own settings, and refuses flags that change
them), rejection of bad input (range checks, FIFOs and directories as shards, malformed
state.json), the stop on a NaN/inf loss and the checkpoints it keeps, the retention table
and the built-in corpus's cache, the startup header, the log's records and the ETA,
checkpoints moving between the CPU and the CUDA path, and the CUDA path's attention kernels.

Usage: python3 tests/cli/test_train_cli.py --bin PATH/TO/train_rkv

Standard library only. The runs train a tiny 4-layer Llama (config written to a temp
dir; gpt2-tiny for the config-mismatch case) on -b 2 -t 32 for a handful of steps, on
small shards this script writes (the built-in corpus for the retention table), so the
whole file takes seconds. The built-in corpus is cached under the temp dir (RKV_CACHE_DIR),
never in the user's cache. --keep leaves the runs' temp dir for inspection. Prints one line
per check, then "N passed, M failed"; exits
non-zero if any check failed.
"""
import argparse
import array
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import stat
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
CKPT_FILES = {"model.safetensors", "optimizer.safetensors", "config.json", "generation_config.json", "state.json"}
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


def write_rows(path, rows, T, width=2, magic=20261204, drop_bytes=0):
    """A fine-tuning row file (data/sft_file.h): 256 x int32 header (magic, version 1, bytes per
    token, T, row count), the (R, T) tokens, then the (R, T) mask bytes. rows: (tokens, mask)
    pairs of T each."""
    header = [0] * 256
    header[:5] = [magic, 1, width, T, len(rows)]
    tokens = [t for row, _ in rows for t in row]
    data = (struct.pack("<256i", *header) + struct.pack(f"<{len(tokens)}{'H' if width == 2 else 'I'}", *tokens)
            + bytes(m for _, mask in rows for m in mask))
    with open(path, "wb") as f:
        f.write(data[:len(data) - drop_bytes])


def sft_rows(n, T, seed):
    """n rows of one example each: a prompt, then a completion whose length varies from 1 to
    about 2/3 of the row (so micro-batches carry very different counts of loss tokens), padding."""
    text = text_tokens(n * T, seed)
    state, rows = seed, []
    for i in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        prompt = 1 + (state >> 40) % (T // 3)
        completion = 1 + (state >> 20) % (T - prompt - 1)
        used = prompt + completion
        tokens = text[i * T:i * T + used] + [0] * (T - used)
        rows.append((tokens, [0] * prompt + [1] * completion + [0] * (T - used)))
    return rows


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


def events(log):
    """The step events of a log (train and val records) without the wall-clock fields: what
    two runs of the same computation must log alike."""
    return [{k: v for k, v in r.items() if k not in ("wall_s", "time")} for r in log if "step" in r]


def max_weight(out_dir, name):
    """The largest |w| in the checkpoint's model.safetensors (F32)."""
    with open(os.path.join(out_dir, name, "model.safetensors"), "rb") as f:
        data = f.read()
    header_len = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + header_len])
    biggest = 0.0
    for tensor, info in header.items():
        if tensor != "__metadata__":
            begin, end = info["data_offsets"]
            biggest = max([biggest] + [abs(x) for x in array.array("f", data[8 + header_len + begin:
                                                                             8 + header_len + end])])
    return biggest


def eta_seconds(stdout, step):
    """The ETA printed on the progress line of step ("eta 12.3s" or "eta 3m45s")."""
    m = re.search(rf"^step +{step}/\d+ .*\| eta (?:(\d+)m(\d+)s|([\d.]+)s)$", stdout, re.MULTILINE)
    if not m:
        return None
    return int(m.group(1)) * 60 + int(m.group(2)) if m.group(1) else float(m.group(3))


def first_log_difference(a, b):
    """'' when the logs' step events are equal, else where they first differ."""
    a, b = events(a), events(b)
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"record {i}: {x} vs {y}"
    return "" if len(a) == len(b) else f"{len(a)} vs {len(b)} records"


# ---------------------------------------------------------------------------------------
# The tests

class TrainCliTest:
    def __init__(self, binary, tmp, only=""):
        self.bin, self.tmp, self.checks, self.only = binary, tmp, Checks(), only
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
        self.cache = os.path.join(tmp, "cache")
        self.env = dict(os.environ, RKV_CACHE_DIR=self.cache)

    def out_dir(self, name):
        return os.path.join(self.tmp, name)

    def run(self, args):
        return subprocess.run([self.bin] + args, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=self.env)

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
            proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=self.env)
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

        resumed = self.run(["--out", out, "--resume"])   # the run's own settings
        ref, ref_log = self.train("sigterm_ref", args)
        self.check(resumed.returncode == 0 and ref.returncode == 0, "sigterm: --resume and the reference exit 0",
                   (resumed.stderr + ref.stderr).strip())
        diff = first_log_difference(ref_log, read_log(out))
        self.check(ref_log and not diff, f"sigterm: stopped at {stopped} + resumed equals the uninterrupted run bitwise",
                   diff)

    # --- a bare --resume continues the run as it was started ----------------------------

    def test_resume_remembers(self):
        args = ["--steps", "20", "--schedule", "linear", "--lr", "3e-3", "--warmup", "3", "--min-lr-frac", "0.2",
                "--p-own", "0.6", "--grad-accum", "2", "--seed", "7", "--clip", "0.5", "--wd", "0.05",
                "--val-every", "5", "--ckpt-every", "10", "--retention", "1,2"]
        ref_out = self.out_dir("remember_ref")
        ref, ref_log = self.train("remember_ref", args)
        self.check(ref.returncode == 0 and ckpt_dirs(ref_out) == ["ckpt_00000010", "ckpt_00000020"],
                   "remember: a 20-step run with non-default flags, checkpoints at 10 and 20", ref.stderr.strip())
        # The same run stopped after its checkpoint at step 10, resumed with no flag but --out.
        out = self.out_dir("remember_run")
        shutil.copytree(ref_out, out)
        shutil.rmtree(os.path.join(out, "ckpt_00000020"))
        resumed = self.run(["--resume", "--out", out])
        self.check(resumed.returncode == 0 and f"resumed from {os.path.join(out, 'ckpt_00000010')}" in resumed.stdout,
                   "remember: a bare --resume --out continues from ckpt_00000010", resumed.stderr.strip())
        diff = first_log_difference(ref_log, read_log(out))
        self.check(ref_log and not diff, "remember: stopped at 10 + bare --resume equals the unbroken run bitwise",
                   diff)

        # The settings, the version and the machine: log.jsonl's first line and run.json.
        first = ref_log[0] if ref_log else {}
        run = first.get("run", {})
        machine = first.get("machine", {})
        self.check(first.get("event") == "start" and first.get("version") and run.get("lr") == 3e-3 and
                   run.get("schedule") == "linear" and run.get("warmup") == 3 and run.get("retention") == [1, 2] and
                   run.get("seed") == 7 and run.get("world") == 1 and machine.get("ranks") == 1 and
                   machine.get("device") == "cpu" and machine.get("precision") == "fp32" and machine.get("hostname"),
                   "remember: log.jsonl's first line records the settings, the version and the machine", f"{first}")
        with open(os.path.join(out, "run.json")) as f:
            run_json = json.load(f)
        resumes = [r for r in read_log(out) if r.get("event") == "resume"]
        self.check(run_json.get("run") == run and run_json.get("event") == "resume" and
                   run_json.get("from_step") == 10 and len(resumes) == 1,
                   "remember: run.json holds the settings of the last start, log.jsonl a resume line", f"{run_json}")
        records = train_records(ref_log)
        walls = [r.get("wall_s", -1) for r in records]
        self.check(records and all(r.get("tokens") == r["step"] * 2 * 32 * 2 for r in records) and
                   walls == sorted(walls) and walls[0] > 0 and
                   all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r.get("time", "")) for r in records),
                   "remember: every step line has tokens seen, wall seconds and a UTC time", f"{records[:2]}")

        # Flags that change the run are refused by name with both values; the log is kept.
        log_path = os.path.join(ref_out, "log.jsonl")
        with open(log_path) as f:
            log_before = f.read()
        state = re.escape(os.path.join(ref_out, "ckpt_00000020", "state.json"))
        for flags, mention in [
            (["--lr", "1e-3"], [state, r"--lr 0\.003", r"--lr 0\.001"]),
            (["--p-own", "0.5"], [r"--p-own 0\.6", r"--p-own 0\.5"]),
            (["--schedule", "cosine"], [r"--schedule linear", r"--schedule cosine"]),
            (["--retention", "1,2,3"], [r"--retention 1,2\b", r"--retention 1,2,3"]),
            (["--train", self.val_shard], [r"--train", re.escape(self.val_shard)]),
            (["--device", "cuda"], [r"--device cpu", r"--device cuda"]),
            # --grad-accum changes only with the number of ranks, keeping the global batch.
            (["--grad-accum", "1"], [state, r"global batch is 2 micro-batches", r"give --grad-accum 2"]),
        ]:
            self.expect_rejected(f"--resume {' '.join(flags)} (changes the run)",
                                 ["--resume", "--out", ref_out, "--steps", "30"] + flags, mention, ref_out,
                                 fresh_out=False)
        for flags, mention in [
            (["--steps", "20"], [r"--steps 20", r"step 20 already", r"ckpt_00000020"]),
            (["--steps", "5"], [r"--steps 5", r"step 20 already"]),
            ([], [r"finished", r"step 20 of --steps 20", r"--steps above 20"]),
        ]:
            self.expect_rejected(f"--resume {' '.join(flags)} (nothing left to train)",
                                 ["--resume", "--out", ref_out] + flags, mention, ref_out, fresh_out=False)
        with open(log_path) as f:
            self.check(f.read() == log_before, "remember: the refused resumes left log.jsonl as it was")

        # --steps extends (the schedule then spans the new length), --val-every and --ckpt-every may change.
        ext = self.run(["--resume", "--out", out, "--steps", "24", "--val-every", "2", "--ckpt-every", "0"])
        log = read_log(out)
        vals = sorted({r["step"] for r in log if "val_loss" in r and r["step"] > 20})
        self.check(ext.returncode == 0 and "extending the run from --steps 20 to 24" in ext.stdout and
                   train_records(log)[-1]["step"] == 24 and vals == [22, 24] and
                   ckpt_dirs(out) == ["ckpt_00000010", "ckpt_00000020", "ckpt_00000024"],
                   "remember: --resume --steps 24 --val-every 2 --ckpt-every 0 extends the run and says so",
                   f"exit {ext.returncode}, {ext.stderr.strip()!r}, val at {vals}, {ckpt_dirs(out)}")

    def test_state_json(self):
        # Each damage to the newest checkpoint's state.json stops --resume with the file and the
        # key named, the checkpoints and the log untouched.
        base = self.out_dir("remember_ref")
        for name, edit, mention in [
            ("negative step", lambda st: st.update(step=-3), [r"\"step\"", r"-3"]),
            ("step not an integer", lambda st: st.update(step="ten"), [r"\"step\"", r"ten"]),
            ("step not the checkpoint's", lambda st: st.update(step=7), [r"\"step\" is 7", r"ckpt_00000020"]),
            ("no train_loader", lambda st: st.pop("train_loader"), [r"train_loader"]),
            ("negative loader batch", lambda st: st["train_loader"].update(batch=-1), [r"train_loader\.batch"]),
            ("run.lr a string", lambda st: st["run"].update(lr="fast"), [r"run\.lr", r"fast", r"not a number"]),
            ("run.batch 0", lambda st: st["run"].update(batch=0), [r"run\.batch", r"0 is outside"]),
            ("no run.seed", lambda st: st["run"].pop("seed"), [r"run\.seed", r"missing", r"--seed"]),
            ("not JSON", None, [r"parse|syntax"]),
        ]:
            out = self.out_dir("state_" + re.sub(r"\W+", "_", name))
            shutil.copytree(base, out)
            path = os.path.join(out, "ckpt_00000020", "state.json")
            with open(path) as f:
                st = json.load(f)
            if edit:
                edit(st)
            with open(path, "w") as f:
                f.write(json.dumps(st) if edit else "{\"step\": 20, ")
            with open(os.path.join(out, "log.jsonl")) as f:
                log_before = f.read()
            self.expect_rejected(f"state.json: {name}", ["--resume", "--out", out, "--steps", "30"],
                                 [re.escape(path)] + mention, out, fresh_out=False)
            with open(os.path.join(out, "log.jsonl")) as f:
                self.check(f.read() == log_before, f"state.json: {name}: log.jsonl kept whole")

    # --- the startup header and the ETA --------------------------------------------------

    def test_header_and_eta(self):
        out = self.out_dir("eta")
        p = self.run(self.small + self.data + ["--steps", "4", "--val-every", "2", "--out", out])
        lines = p.stdout.splitlines()
        header = lines[0] if lines else ""
        self.check(p.returncode == 0 and "device cpu" in header and "| 1 rank |" in header and
                   "fp32 storage" in header and out in header,
                   "header: names the device, the ranks, the precision and the run folder", header)
        params = re.search(r"^model llama \((\d+) parameters, 4 layers\)", lines[1] if len(lines) > 1 else "")
        self.check(params and int(params.group(1)) > 0, "header: names the model and its parameter count",
                   lines[1] if len(lines) > 1 else "")
        # The ETA's arithmetic is tests/unit/test_train_log.cpp's; here, that every step prints one.
        etas = [eta_seconds(p.stdout, step) for step in range(1, 5)]
        self.check(all(eta is not None and eta >= 0 for eta in etas), "eta: every progress line ends with one",
                   str(etas))

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
        fifo = os.path.join(tmp, "fifo.bin")
        os.mkfifo(fifo)
        directory = os.path.join(tmp, "directory.bin")
        os.makedirs(directory)
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
            ("a FIFO as train shard", ["--train", fifo, "--val", self.val_shard], [esc(fifo), r"FIFO"]),
            ("a directory as val shard", ["--train", self.train_shard, "--val", directory],
             [esc(directory), r"directory"]),
        ]
        for name, args, mention in cases:
            out, out_args = fresh("bad_" + re.sub(r"\W+", "_", name))
            self.expect_rejected(name, small + run_args + args + out_args, mention, out)

        # Numbers out of range: the option, the value as given and the range, no 309-digit numbers.
        for flags, mention in [
            (["--lr", "1e400"], [r"--lr", r"1e400", r"\[0, inf\)"]),
            (["--lr", "nan"], [r"--lr", r"nan", r"finite"]),
            (["--steps", "-5"], [r"--steps", r"-5", r"\[1, 2147483647\]"]),
            (["--steps", "1e10"], [r"--steps", r"1e10", r"integer"]),
            (["-b", "0"], [r"--batch", r"\b0\b", r"\[1, "]),
            (["--p-own", "2"], [r"--p-own", r"\b2\b", r"\[0, 1\]"]),
            (["--p-own", "nan"], [r"--p-own", r"nan"]),
            (["--beta2", "1"], [r"--beta2", r"\[0, 1\)"]),
            (["--eps", "0"], [r"--eps", r"\(0, inf\)"]),
            (["--seed", "-1"], [r"--seed", r"-1"]),
            (["--retention", "1,0"], [r"--retention", r"\b0\b"]),
        ]:
            out, out_args = fresh("range_" + re.sub(r"\W+", "_", " ".join(flags)))
            p = self.run(flags + out_args)
            err = (p.stdout + p.stderr).strip()
            missing_words = [m for m in mention if not re.search(m, err)]
            self.check(p.returncode > 0 and not missing_words and not re.search(r"\d{25}", err),
                       f"bad input: {' '.join(flags)}: refused, naming the option, the value and the range",
                       f"exit {p.returncode}, {err!r} lacks {missing_words}")

        # A finished gpt2-tiny run, then flags that disagree with its checkpoint.
        out = self.out_dir("bad_resume")
        base = ["-b", "2", "-t", "32", "--val-batches", "2", "--device", "cpu", "--steps", "1"] + self.data
        p = self.run(["--model", "gpt2-tiny"] + base + ["--out", out])
        self.check(p.returncode == 0 and ckpt_dirs(out) == ["ckpt_00000001"],
                   "bad input: the gpt2-tiny run to resume from is written", p.stderr.strip())
        ckpt = re.escape(os.path.join(out, "ckpt_00000001"))
        self.expect_rejected("--resume with --model llama3-tiny (config differs)",
                             ["--model", "llama3-tiny", "--resume", "--steps", "2"] + base[:8] + self.data +
                             ["--out", out],
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
        # lr 1e30: step 1 is finite, but its update throws the weights to ~1e30, so the
        # checkpoint of step 1 has diverged already and is set aside. lr 1e10 with no periodic
        # checkpoint: step 2's loss itself is NaN and there is no checkpoint at all. wd 300 at
        # lr 1e-2 doubles the matrices each step: the loss stays finite for a while (it
        # saturates at ln V), the weights pass 1e5 near step 22, and the loss is NaN by step 66;
        # the checkpoints from the first diverged weights on are set aside, the older ones kept.
        bound = 2 * math.log(TINY_LLAMA["vocab_size"])
        for name, args, expect_good, expect_aside in [
            ("--lr 1e30 --ckpt-every 1", ["--lr", "1e30", "--ckpt-every", "1", "--steps", "10", "--val-every", "5"],
             False, True),
            ("--lr 1e10 --ckpt-every 0", ["--lr", "1e10", "--ckpt-every", "0", "--steps", "10", "--val-every", "5"],
             False, False),
            ("--wd 300 --ckpt-every 2", ["--lr", "1e-2", "--wd", "300", "--schedule", "constant", "--ckpt-every", "2",
                                         "--steps", "300", "--val-every", "0"], True, True),
        ]:
            out_name = "nan_" + re.sub(r"\W+", "_", name)
            out = self.out_dir(out_name)
            p, log = self.train(out_name, args + ["--clip", "0"])
            err = p.stderr.strip()
            bad_step = re.search(r"step (\d+)", err)
            bad_step = int(bad_step.group(1)) if bad_step else None
            self.check(p.returncode > 0 and bad_step and re.search(r"\b-?(nan|inf)\b", err, re.IGNORECASE),
                       f"nan: {name}: exit {p.returncode}, message names the step and nan/inf", repr(err))
            dirs = ckpt_dirs(out)
            good = [n for n in dirs if re.fullmatch(r"ckpt_\d{8}", n)]
            aside = [n for n in dirs if n.endswith(".diverged")]
            self.check(bool(good) == expect_good and bool(aside) == expect_aside and
                       len(good) + len(aside) == len(dirs),
                       f"nan: {name}: good checkpoints {'kept' if expect_good else 'none'}, diverged ones "
                       f"{'set aside as *.diverged' if expect_aside else 'none'}", f"{dirs}")
            if good:
                self.check(os.path.join(out, good[-1]) in err,
                           f"nan: {name}: the message names the last good checkpoint", f"{good}, {err!r}")
            else:
                self.check(re.search(r"no good checkpoint", err, re.IGNORECASE),
                           f"nan: {name}: no good checkpoint, and the message says so", f"{err!r}")
            if aside:
                self.check("diverged" in err and aside[0][:13] in err,
                           f"nan: {name}: the message says what was set aside", repr(err))
            # A kept checkpoint's weights are finite and below 1e5, and the loss they gave at the
            # next step was finite and below 2 ln V; every one set aside is newer.
            losses = {r["step"]: r["train_loss"] for r in train_records(log)}
            self.check(all(ckpt_complete(out, n) and weights_finite(out, n) and max_weight(out, n) <= 1e5 and
                           int(n[5:]) < (bad_step or 0) and losses.get(int(n[5:]) + 1, 0) <= bound for n in good),
                       f"nan: {name}: every kept checkpoint is complete, finite, below 1e5, gave a loss below 2 ln V",
                       f"{[(n, max_weight(out, n), losses.get(int(n[5:]) + 1)) for n in good]}")
            self.check(all(int(g[5:13]) < int(a[5:13]) for g in good for a in aside),
                       f"nan: {name}: the checkpoints set aside are the newest", f"{dirs}")
            self.check(bad_step and all(r["step"] < bad_step for r in train_records(log)),
                       f"nan: {name}: no train record logged for the bad step",
                       f"bad step {bad_step}, last logged {train_records(log)[-1:]}")
            if good:   # --resume takes the last good checkpoint, not a diverged one
                again = self.run(["--resume", "--out", out])
                self.check(f"resumed from {os.path.join(out, good[-1])} " in again.stdout,
                           f"nan: {name}: --resume continues from the last good checkpoint", again.stdout[:500])

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
        self.test_corpus_cache()

    def test_corpus_cache(self):
        # The built-in corpus of the run above sits in the cache (RKV_CACHE_DIR), not the run folder.
        corpora = sorted(os.listdir(self.cache)) if os.path.isdir(self.cache) else []
        cached = os.path.join(self.cache, corpora[0]) if corpora else ""
        files = sorted(os.listdir(cached)) if cached else []
        self.check(len(corpora) == 1 and files == ["corpus_train.bin", "corpus_val.bin"] and
                   not os.path.exists(os.path.join(self.out_dir("table"), "corpus")),
                   "corpus: generated once into the cache, not into the run folder", f"{corpora}, {files}")
        if not files:
            return
        stamp = lambda: {f: (os.stat(os.path.join(cached, f)).st_ino, os.stat(os.path.join(cached, f)).st_mtime_ns)
                         for f in files}
        before = stamp()
        p, _ = self.train("table_again", ["--steps", "1", "--val-every", "0"], data=False)
        self.check(p.returncode == 0 and stamp() == before and cached in p.stdout,
                   "corpus: a second run reads the cached files without writing them", p.stderr.strip())
        # A writer killed before its rename left a temporary; the next one to write removes it.
        dead = subprocess.Popen(["true"])
        dead.wait()
        stale = os.path.join(cached, f"corpus_val.bin.tmp.{socket.gethostname()}.{dead.pid}.1f2e")
        with open(stale, "wb") as f:
            f.write(b"half a shard")
        with open(os.path.join(cached, "corpus_val.bin"), "r+b") as f:
            f.truncate(1000)   # damaged: regenerated
        p, _ = self.train("table_third", ["--steps", "1", "--val-every", "0"], data=False)
        self.check(p.returncode == 0 and sorted(os.listdir(cached)) == files and
                   os.path.getsize(os.path.join(cached, "corpus_val.bin")) == 1024 + 2 * 2**18,
                   "corpus: a damaged file is written again, a dead writer's temporary removed",
                   f"{sorted(os.listdir(cached))}, {p.stderr.strip()!r}")

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
            cuda_out = (p1 if first == "cuda" else p2).stdout
            header = cuda_out.splitlines()[0] if cuda_out else ""
            # Without a GPU in this machine, the CUDA path can only have run on the emulator.
            emulated = "emulated" in header or os.path.exists("/dev/nvidia0")
            self.check("device cuda" in header and emulated, f"{what}: the header names the device, emulated here",
                       header)
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

    # --- training routes: stochastic with a p_own schedule, keep-every:K, layers:... ----

    def test_train_routes(self):
        # Each kind trains 8 steps with a checkpoint at 4; the run resumed from that checkpoint
        # (the same --steps, so the same p_own schedule) gives the 8-step log bitwise.
        kinds = {"schedule": ["--p-own", "0.9", "--p-own-final", "0.1"],
                 "keep-every": ["--train-route", "keep-every:2"],
                 "layers": ["--train-route", "layers:0,3"],
                 "stochastic": ["--p-own", "0.5"]}
        common = ["--steps", "8", "--val-every", "4", "--ckpt-every", "4", "--grad-accum", "2", "--shuffle", "1"]
        logs = {}
        for name, flags in kinds.items():
            out = self.out_dir(f"route_{name}")
            p, log = self.train(f"route_{name}", common + flags)
            ok = p.returncode == 0 and ckpt_dirs(out) == ["ckpt_00000004", "ckpt_00000008"]
            self.check(ok, f"routes: {name}: 8 steps with checkpoints at 4 and 8", p.stderr.strip())
            if not ok:
                continue
            logs[name] = log
            with open(os.path.join(out, "ckpt_00000004", "state.json")) as f:
                run = json.load(f)["run"]
            self.check(run.get("train_route") == {"schedule": "stochastic", "stochastic": "stochastic"}.get(
                name, flags[-1]) and run.get("p_own_final") == (0.1 if name == "schedule" else 0.5),
                f"routes: {name}: the checkpoint records the route and the final p_own", f"{run}")
            for f_name in os.listdir(os.path.join(out, "ckpt_00000008")):
                os.remove(os.path.join(out, "ckpt_00000008", f_name))
            os.rmdir(os.path.join(out, "ckpt_00000008"))
            resumed = self.run(self.small + self.data + common + flags + ["--out", out, "--resume"])
            diff = first_log_difference(log, read_log(out))
            self.check(resumed.returncode == 0 and "ckpt_00000004" in resumed.stdout and not diff,
                       f"routes: {name}: resumed at step 4, the log is the uninterrupted run's bitwise",
                       diff or resumed.stderr.strip())
        train = {name: [r["train_loss"] for r in train_records(log)] for name, log in logs.items()}
        self.check(len(train) == 4 and len({tuple(v) for v in train.values()}) == 4,
                   "routes: every kind trains differently", f"{train}")
        # A resume under another route or schedule is refused, naming it.
        out = self.out_dir("route_layers")
        ckpt = re.escape(os.path.join(out, "ckpt_00000008"))
        for flags, names in ((["--train-route", "keep-every:2"], [ckpt, "--train-route"]),
                             (["--p-own-final", "0.2"], [ckpt, "--p-own-final"]),
                             (["--p-own", "0.5"], ["--p-own", "layers:0,3"])):
            extended = ["10" if i > 0 and common[i - 1] == "--steps" else a for i, a in enumerate(common)]
            self.expect_rejected(f"--resume of a layers:0,3 run with {' '.join(flags)}, extended to 10 steps",
                                 self.small + self.data + extended + flags + ["--out", out, "--resume"],
                                 names, out, fresh_out=False)
        for spec, why in (("keep-every:0", ">= 1"), ("layers:1,2", "layer 0"), ("layers:0,9", "kept layer 9"),
                          ("pairs", "unknown route kind")):
            out = self.out_dir("route_bad_" + re.sub(r"\W+", "_", spec))
            self.expect_rejected(f"--train-route {spec}", self.small + self.data + ["--steps", "2", "--train-route",
                                                                                    spec, "--out", out],
                                 [re.escape(spec), re.escape(why)], out)
        out = self.out_dir("route_bad_p")
        self.expect_rejected("--p-own with a fixed route", self.small + self.data + [
            "--steps", "2", "--train-route", "keep-every:2", "--p-own", "0.5", "--out", out], [r"--p-own"], out)

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

    # --- fine-tuning rows --------------------------------------------------------------

    def test_fine_tuning_rows(self):
        # 24 rows: 6 updates of 2 x 2 rows per epoch, so 8 steps cross into a second epoch.
        tmp = self.tmp
        train, val = os.path.join(tmp, "sft_train.bin"), os.path.join(tmp, "sft_val.bin")
        write_rows(train, sft_rows(24, 32, seed=11), 32)
        write_rows(val, sft_rows(8, 32, seed=12), 32, width=4)
        data = ["--train", train, "--val", val]
        common = ["--config", self.config, "-t", "32", "--device", "cpu", "--p-own", "1", "--shuffle", "1"] + data
        # The loss of an update is the mean over its loss tokens, however they are split into
        # micro-batches: one micro-batch of 2 rows = 2 micro-batches of 1 row (their counts differ).
        runs = {}
        for name, shape in (("b2", ["-b", "2", "--val-batches", "2"]),
                            ("b1x2", ["-b", "1", "--grad-accum", "2", "--val-batches", "4"])):
            out = self.out_dir("sft_" + name)
            p = self.run(common + shape + ["--steps", "6", "--val-every", "3", "--out", out])
            self.check(p.returncode == 0 and "24 rows of 32 tokens" in p.stdout,
                       f"fine-tuning: -{name} trains on the rows and says so", (p.stdout[:300] + p.stderr).strip())
            runs[name] = read_log(out)
        pick = lambda log, key: [r[key] for r in log if key in r]
        close = lambda a, b: len(a) == len(b) > 0 and all(abs(x - y) <= 1e-5 * abs(y) for x, y in zip(a, b))
        for key in ("train_loss", "val_loss"):
            a, b = pick(runs["b2"], key), pick(runs["b1x2"], key)
            self.check(close(a, b), f"fine-tuning: {key} of -b 2 equals -b 1 --grad-accum 2 (token-weighted)",
                       f"{a} vs {b}")

        # Bitwise resume across the epoch boundary (validation where the first run ends, as the
        # end of a run validates).
        args = common + ["-b", "2", "--grad-accum", "2", "--val-batches", "2", "--schedule", "constant",
                         "--val-every", "4"]
        ref = self.run(args + ["--steps", "8", "--out", self.out_dir("sft_ref")])
        first = self.run(args + ["--steps", "4", "--out", self.out_dir("sft_resume")])
        second = self.run(args + ["--steps", "8", "--resume", "--out", self.out_dir("sft_resume")])
        diff = first_log_difference(read_log(self.out_dir("sft_ref")), read_log(self.out_dir("sft_resume")))
        self.check(ref.returncode == first.returncode == second.returncode == 0 and not diff,
                   "fine-tuning: 4 + 4 resumed steps give the 8-step run's log bitwise",
                   diff or (ref.stderr + first.stderr + second.stderr).strip())

        # Bad row files, each named with its problem.
        bad = {k: os.path.join(tmp, f"sft_bad_{k}.bin") for k in ("truncated", "vocab", "mixed_a", "mixed_b")}
        rows = sft_rows(8, 32, seed=13)
        write_rows(bad["truncated"], rows, 32, drop_bytes=5)
        write_rows(bad["vocab"], [([300] + rows[0][0][1:], rows[0][1])] + rows[1:], 32, width=4)
        write_rows(bad["mixed_a"], rows, 32)
        write_shard(bad["mixed_b"], text_tokens(1000, seed=3))
        esc = re.escape
        run_args = ["--config", self.config, "-b", "2", "--val-batches", "2", "--device", "cpu", "--steps", "2"]
        cases = [
            ("truncated row file", ["-t", "32", "--train", bad["truncated"]], [esc(bad["truncated"]), "truncated"]),
            ("token 300 in a row file", ["-t", "32", "--train", bad["vocab"]], [esc(bad["vocab"]), "300", "vocab"]),
            ("rows of 32 with -t 16", ["-t", "16", "--train", train], [esc(train), "rows of 32 tokens", "16"]),
            ("row file and shard in one glob", ["-t", "32", "--train", os.path.join(tmp, "sft_bad_mixed_*.bin")],
             [esc(bad["mixed_b"]), "one kind"]),
        ]
        for name, args, mention in cases:
            out = self.out_dir("sft_bad_" + re.sub(r"\W+", "_", name))
            self.expect_rejected("fine-tuning: " + name, run_args + args + ["--out", out], mention, out)

    # --- a build without the CUDA path ---------------------------------------------------

    def test_no_cuda_path(self):
        p = self.run(["cuda" if a == "cpu" else a for a in self.small] + self.data + ["--steps", "1",
                                                                                      "--out", self.out_dir("nocuda")])
        self.check(p.returncode != 0 and "no CUDA path" in p.stderr,
                   "no CUDA path: --device cuda stops with an error saying so", p.stderr.strip())

    # --- the memory plan ---------------------------------------------------------------

    def test_plan(self):
        # --plan trains nothing: one JSON line whose kinds add up to the total, for a preset.
        out = self.out_dir("plan")
        p = self.run(["--plan", "--json", "--model", "qwen3-1.7b", "-b", "2", "-t", "2048", "--zero", "1",
                      "--plan-ranks", "8", "--plan-gpu-mem", "80GB", "--out", out])
        try:
            plan = json.loads(p.stdout)
        except ValueError:
            plan = {}
        keys = {"total_bytes", "fits", "by_kind", "host_load_bytes", "host_checkpoint_bytes", "suggestion"}
        self.check(p.returncode == 0 and keys <= plan.keys() and len(p.stdout.strip().splitlines()) == 1,
                   "plan: --plan --json prints one JSON line with the keys", (p.stdout + p.stderr)[-2000:])
        kinds = {"weights", "gradients", "master_m_v", "activations", "logits", "attention", "comm", "cublaslt",
                 "kv_route"}
        self.check(kinds <= plan.get("by_kind", {}).keys() and sum(plan["by_kind"].values()) == plan["total_bytes"]
                   and isinstance(plan["fits"], bool) and not os.path.exists(out),
                   "plan: every kind, summing to the total; no run folder", f"{plan}")
        text = self.run(["--plan", "--model", "gpt2-tiny", "-b", "2", "-t", "32", "--plan-gpu-mem", "1GiB"])
        self.check(text.returncode == 0 and "total" in text.stdout and "fits" in text.stdout,
                   "plan: the table names the total and whether it fits", text.stdout + text.stderr)
        for bad in ("80XB", "-5GB", "lots"):
            r = self.run(["--plan", "--model", "gpt2-tiny", "--plan-gpu-mem", bad])
            self.check(r.returncode != 0 and bad in r.stderr and r.stdout == "",
                       f"plan: --plan-gpu-mem {bad} refused by name", r.stderr.strip())
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "hf", "llama-bf16")
        r = self.run(["--plan", "--json", "--init", folder, "-b", "1", "-t", "16"])
        self.check(r.returncode == 0 and json.loads(r.stdout or "{}").get("model_type") == "llama",
                   "plan: of a model folder (--init), from its config", (r.stdout + r.stderr)[-1000:])
        r = self.run(["--plan", "--init", folder, "-t", "64"])
        self.check(r.returncode != 0 and "max_position_embeddings" in r.stderr,
                   "plan: -t beyond the model's positions refused", r.stderr.strip())
        r = self.run(["--json", "--model", "gpt2-tiny"])
        self.check(r.returncode != 0 and "--plan" in r.stderr, "plan: --json without --plan refused", r.stderr.strip())

    # --- activation recomputation -------------------------------------------------------

    def test_recompute(self):
        # --recompute changes the memory, never the numbers: each value logs none's run bitwise,
        # on every device; a resumed run may change it (and a bare --resume keeps the run's).
        args = ["--steps", "3", "--val-every", "3", "--p-own", "0.5", "--ckpt-every", "2", "--retention", "1,2"]
        cuda = self.cuda

        def train(name, device, extra):
            out = self.out_dir(name)
            p = self.run([device if a == "cpu" else a for a in self.small] + self.data + extra + ["--out", out])
            return p, read_log(out)

        for device in ("cpu", "cuda") if cuda else ("cpu",):
            ref, ref_log = train(f"recompute_none_{device}", device, args)
            self.check(ref.returncode == 0 and len(train_records(ref_log)) == 3,
                       f"recompute: {device}: 3 steps with --recompute none", ref.stderr.strip())
            for kind in ("mlp", "layer"):
                p, log = train(f"recompute_{kind}_{device}", device, args + ["--recompute", kind])
                diff = first_log_difference(ref_log, log)
                self.check(p.returncode == 0 and ref_log and not diff and log[0]["run"].get("recompute") == kind,
                           f"recompute: {device}: --recompute {kind} logs none's losses bitwise",
                           diff or p.stderr.strip())
        out = self.out_dir("recompute_resume")
        shutil.copytree(self.out_dir("recompute_layer_cpu"), out)
        shutil.rmtree(os.path.join(out, "ckpt_00000003"))
        p = self.run(["--resume", "--out", out, "--recompute", "mlp"])
        with open(os.path.join(out, "run.json")) as f:
            saved = json.load(f)["run"].get("recompute")
        diff = first_log_difference(read_log(self.out_dir("recompute_none_cpu")), read_log(out))
        self.check(p.returncode == 0 and not diff and saved == "mlp",
                   "recompute: a --recompute layer run resumed with --recompute mlp continues bitwise",
                   diff or p.stderr.strip())
        shutil.rmtree(os.path.join(out, "ckpt_00000003"))
        p = self.run(["--resume", "--out", out])
        with open(os.path.join(out, "run.json")) as f:
            saved = json.load(f)["run"].get("recompute")
        self.check(p.returncode == 0 and saved == "layer", "recompute: a bare --resume keeps the run's --recompute",
                   f"{saved} {p.stderr.strip()}")
        # A checkpoint of an rkv before --recompute: its state.json lacks the key; resume runs.
        shutil.rmtree(os.path.join(out, "ckpt_00000003"))
        state = os.path.join(out, "ckpt_00000002", "state.json")
        with open(state) as f:
            st = json.load(f)
        st["run"].pop("recompute", None)
        with open(state, "w") as f:
            json.dump(st, f)
        p = self.run(["--resume", "--out", out])
        self.check(p.returncode == 0, "recompute: a checkpoint without run.recompute resumes (it changes no number)",
                   p.stderr.strip())
        r = self.run(self.small + ["--recompute", "attention"])
        self.check(r.returncode != 0 and "--recompute" in r.stderr and "attention" in r.stderr,
                   "recompute: an unknown --recompute refused by name", r.stderr.strip())
        if cuda:   # the plan follows the layout, and suggests recomputing when that is what fits
            plans = {}
            for kind in ("none", "mlp", "layer"):
                r = self.run(["--plan", "--json", "--model", "qwen3-1.7b", "-b", "1", "-t", "8192", "--zero", "2",
                              "--plan-ranks", "8", "--recompute", kind])
                plans[kind] = json.loads(r.stdout or "{}")
            acts = {k: v.get("by_kind", {}).get("activations", 0) for k, v in plans.items()}
            self.check(0 < acts["layer"] < acts["mlp"] < acts["none"] and plans["layer"].get("recompute") == "layer",
                       "recompute: --plan --recompute: activations none > mlp > layer", f"{acts}")
            r = self.run(["--plan", "--json", "--model", "qwen3-1.7b", "-b", "1", "-t", "8192", "--zero", "2",
                          "--plan-ranks", "8", "--plan-gpu-mem", str((plans["layer"].get("total_bytes", 0) +
                                                                       plans["mlp"].get("total_bytes", 0)) // 2)])
            suggestion = json.loads(r.stdout or "{}").get("suggestion") or {}
            self.check(suggestion.get("recompute") == "layer" and suggestion.get("batch") == 1,
                       "recompute: --plan suggests --recompute layer where only it fits", r.stdout + r.stderr)

    def run_all(self, cuda=True):
        self.cuda = cuda
        device_tests = ((self.test_device_portability, self.test_attention_kernels, self.test_profile,
                         self.test_plan) if cuda else (self.test_no_cuda_path,))
        for test in (self.test_determinism, self.test_resume_after_finish, self.test_sigterm_resume,
                     self.test_resume_remembers, self.test_state_json, self.test_header_and_eta,
                     self.test_bad_input, self.test_nan_stop, self.test_retention_table) + device_tests + (
                     self.test_fine_tuning_rows, self.test_train_routes, self.test_recompute):
            if self.only and self.only not in test.__name__:
                continue
            try:
                test()
            except Exception as e:       # a crash of one test is one failure, the others still run
                self.check(False, test.__name__, f"{type(e).__name__}: {e}")
        print(f"{self.checks.passed} passed, {self.checks.failed} failed")
        return self.checks.failed == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="path to the train_rkv executable")
    parser.add_argument("--only", default="", help="run only the tests whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir of the runs (its path is printed)")
    parser.add_argument("--no-cuda", action="store_true", help="the build has no CUDA path: check that it says so")
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    if args.keep:
        tmp = tempfile.mkdtemp(prefix="train_cli_")
        print(f"runs kept in {tmp}")
        return 0 if TrainCliTest(binary, tmp, args.only).run_all(not args.no_cuda) else 1
    with tempfile.TemporaryDirectory(prefix="train_cli_") as tmp:
        return 0 if TrainCliTest(binary, tmp, args.only).run_all(not args.no_cuda) else 1


if __name__ == "__main__":
    sys.exit(main())
