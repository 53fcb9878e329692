"""./train_rkv under mpirun: data parallelism computes what one process computes.

    python3 test_train_mpi.py --bin train_rkv -- mpirun -np 2 [flags]

Checks, on the CPU and the CUDA path (emulated), with routing and shuffling on, with
--zero 0, --zero 1 (ZeRO-1) and --zero 2 (ZeRO-2):
- 2 ranks with --grad-accum 1 give the per-step train and validation losses of 1 process
  with --grad-accum 2 on the same global batch, to 1e-6, also under each --train-route kind
  and a p_own schedule (CPU path);
- 2 ranks with --grad-accum 2: --zero 1 and --zero 2 give the losses and gradient norms of
  --zero 0, to 1e-6, with untied and tied embeddings (ZeRO-2 reduces every micro-batch);
- a run stopped after 4 steps and resumed under mpirun gives bitwise the losses of a run
  that never stopped;
- an error on the ranks ends the whole job with its message and a non-zero exit, never a hang;
- on fine-tuning rows, whose micro-batches carry different numbers of loss tokens, 2 ranks
  still give the losses of 1 process with --grad-accum 2 (the mean over all loss tokens);
- with --zero 1 each rank writes its own optimizer file; a checkpoint of 2 ranks x
  --grad-accum 2 resumes in 1 process with --grad-accum 4 and on 4 ranks with --grad-accum 1
  (resharding; also without --zero, from its one optimizer file), giving the losses of the
  run that never stopped to 1e-6; a missing or truncated rank file and another global batch
  are refused by name, nothing written.
Prints 'N passed, M failed'.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from test_train_cli import Checks, sft_rows, write_rows

TIMEOUT_S = 300
CONFIG = {"model_type": "llama", "vocab_size": 256, "hidden_size": 32, "intermediate_size": 64,
          "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
          "max_position_embeddings": 64}


def grad_norms(out):
    """step -> gradient norm, from OUT/log.jsonl."""
    with open(os.path.join(out, "log.jsonl")) as f:
        return {e["step"]: e["grad_norm"] for e in map(json.loads, f) if "grad_norm" in e}


def losses(out):
    """step -> train loss, (step, retention) -> val loss, from OUT/log.jsonl."""
    train, val = {}, {}
    with open(os.path.join(out, "log.jsonl")) as f:
        for line in f:
            e = json.loads(line)
            if "train_loss" in e:
                train[e["step"]] = e["train_loss"]
            elif "val_loss" in e:   # not the run's start lines
                val[(e["step"], e["retention"])] = e["val_loss"]
    return train, val


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--no-cuda", action="store_true", help="the build has no CUDA path: the CPU path only")
    split = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
    args = parser.parse_args(sys.argv[1:split])
    mpirun = sys.argv[split + 1:]
    checks = Checks()
    check = checks.check

    def run(cmd, what):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        if p.returncode != 0:
            check(False, f"{what} runs", p.stdout[-2000:] + p.stderr[-2000:])
        return p

    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "tiny.json")
        with open(config, "w") as f:
            json.dump(CONFIG, f)
        tied = os.path.join(tmp, "tied.json")
        with open(tied, "w") as f:
            json.dump(dict(CONFIG, tie_word_embeddings=True), f)
        base = [args.bin, "--config", config, "-b", "2", "-t", "32", "--steps", "6", "--val-every", "3",
                "--val-batches", "2", "--p-own", "0.5", "--shuffle", "1"]
        out = lambda name: ["--out", os.path.join(tmp, name)]

        # The CPU path (MPI), and the CUDA path in this build's storage (bf16 unless built
        # with RKV_FP32; emulated, its NCCL over MPI, each layer's all-reduce started as soon
        # as its backward is done).
        for device in ("cpu",) if args.no_cuda else ("cpu", "cuda"):
            common = base + ["--device", device]
            tag = lambda name: f"{device}-{name}"
            run(common + ["--grad-accum", "2"] + out(tag("one")), f"{device}: 1 process, --grad-accum 2")
            t1, v1 = losses(os.path.join(tmp, tag("one")))
            for zero in ("0", "1", "2"):
                name = tag(f"two-zero{zero}")
                run(mpirun + common + ["--grad-accum", "1", "--zero", zero] + out(name),
                    f"{device}: 2 ranks, --zero {zero}")
                t2, v2 = losses(os.path.join(tmp, name))
                check(sorted(t1) == list(range(1, 7)) and sorted(t1) == sorted(t2) and sorted(v1) == sorted(v2),
                      f"{device}, --zero {zero}: both runs log the same steps")
                worst = max([abs(t1[s] - t2[s]) for s in t1] + [abs(v1[k] - v2[k]) for k in v1])
                check(worst < 1e-6, f"{device}, --zero {zero}: 2 ranks x 1 micro-batch = 1 rank x 2 micro-batches "
                                    f"(max difference {worst:.1e})")

            # ZeRO-2 sums each micro-batch over the ranks, then the micro-batches: another order
            # of the same additions as --zero 0 and 1, which sum the micro-batches first.
            for embeddings, cfg in (("untied", config), ("tied", tied)):
                accum = [cfg if a == config else a for a in common] + ["--grad-accum", "2"]
                runs = {}
                for zero in ("0", "1", "2"):
                    name = tag(f"accum-{embeddings}-zero{zero}")
                    run(mpirun + accum + ["--zero", zero] + out(name),
                        f"{device}: 2 ranks, --grad-accum 2, --zero {zero}")
                    runs[zero] = losses(os.path.join(tmp, name)) + (grad_norms(os.path.join(tmp, name)),)
                for zero in ("1", "2"):
                    (t0, v0, g0), (tz, vz, gz) = runs["0"], runs[zero]
                    same = sorted(t0) == list(range(1, 7)) and sorted(t0) == sorted(tz) == sorted(gz) and \
                        sorted(v0) == sorted(vz)
                    worst = max([abs(t0[s] - tz[s]) for s in t0] + [abs(v0[k] - vz[k]) for k in v0] +
                                [abs(g0[s] - gz[s]) / g0[s] for s in g0]) if same else 1.0
                    check(worst < 1e-6, f"{device}, {embeddings} embeddings, --grad-accum 2: --zero {zero} trains as "
                                        f"--zero 0 (max difference {worst:.1e})")

            constant = common[:]
            constant[constant.index("--steps") + 1] = "8"
            constant[constant.index("--val-every") + 1] = "2"   # step 4 validates in both runs
            constant += ["--schedule", "constant", "--grad-accum", "1"]
            for zero in ("0", "1", "2"):
                flags = constant + ["--zero", zero]
                run(mpirun + flags + out(tag(f"straight{zero}")), f"{device}: an uninterrupted 8-step run")
                first = flags[:]
                first[first.index("--steps") + 1] = "4"
                run(mpirun + first + out(tag(f"resumed{zero}")), f"{device}: the first 4 steps")
                p = run(mpirun + flags + out(tag(f"resumed{zero}")) + ["--resume"], f"{device}: the resumed run")
                check("resumed from" in p.stdout,
                      f"{device}, --zero {zero}: the resumed run says where it resumed from", p.stdout[-500:])
                check(losses(os.path.join(tmp, tag(f"straight{zero}"))) ==
                      losses(os.path.join(tmp, tag(f"resumed{zero}"))),
                      f"{device}, --zero {zero}: resume under mpirun is bitwise")
            # The checkpoint holds the whole optimizer state: a ZeRO-1 or 2 run resumes without it.
            t0, _ = losses(os.path.join(tmp, tag("straight0")))
            for zero in ("1", "2"):
                tz, _ = losses(os.path.join(tmp, tag(f"straight{zero}")))
                worst = max(abs(t0[s] - tz[s]) for s in t0)
                check(worst < 1e-6, f"{device}: --zero {zero} trains as --zero 0 does (max difference {worst:.1e})")

        # Sharded checkpoints: 2 ranks x 2 micro-batches write one optimizer file each; the run
        # resumes on 1 and on 4 ranks with the same global batch (CPU path and emulated CUDA path,
        # whose bf16 storage keeps its fp32 master in the rank files). Without --zero the one
        # optimizer.safetensors resumes on other numbers of ranks as well.
        ranks = lambda n: mpirun[:mpirun.index("2")] + [str(n)] + mpirun[mpirun.index("2") + 1:]
        shard_files = ["optimizer-00000-of-00002.safetensors", "optimizer-00001-of-00002.safetensors"]
        resume = ["--resume", "--steps", "8"]
        for device, zero in [("cpu", "1"), ("cpu", "0")] + ([] if args.no_cuda else [("cuda", "1")]):
            flags = base + ["--device", device, "--zero", zero, "--schedule", "constant"]
            for flag, value in (("--steps", "8"), ("--val-every", "2"), ("--val-batches", "4")):
                flags[flags.index(flag) + 1] = value
            tag = lambda name: f"shard-{device}-zero{zero}-{name}"
            what = f"{device}, --zero {zero}"
            run(mpirun + flags + ["--grad-accum", "2"] + out(tag("straight")), f"{what}: 8 steps on 2 ranks")
            first = flags[:]
            first[first.index("--steps") + 1] = "4"
            run(mpirun + first + ["--grad-accum", "2"] + out(tag("first")), f"{what}: 4 steps on 2 ranks")
            ckpt = os.path.join(tmp, tag("first"), "ckpt_00000004")
            files, shards = [], None
            if os.path.isdir(ckpt):
                files = sorted(f for f in os.listdir(ckpt) if f.startswith("optimizer"))
                with open(os.path.join(ckpt, "state.json")) as f:
                    shards = json.load(f).get("optimizer_shards")
            expected = (shard_files, 2) if zero == "1" else (["optimizer.safetensors"], None)
            check((files, shards) == expected, f"{what}: the optimizer files are {expected[0]}", f"{files}, {shards}")
            straight = losses(os.path.join(tmp, tag("straight")))
            for n, accum in ((1, "4"), (4, "1")):
                name = tag(f"on{n}")
                shutil.copytree(os.path.join(tmp, tag("first")), os.path.join(tmp, name))
                cmd = ([args.bin] if n == 1 else ranks(n) + [args.bin]) + resume + ["--grad-accum", accum] + out(name)
                p = run(cmd, f"{what}: resumed on {n} rank(s)")
                (t1, v1), (t2, v2) = straight, losses(os.path.join(tmp, name))
                same = sorted(t1) == list(range(1, 9)) and sorted(t1) == sorted(t2) and sorted(v1) == sorted(v2)
                worst = max([abs(t1[s] - t2[s]) for s in t1] + [abs(v1[k] - v2[k]) for k in v1]) if same else 1
                check(same and worst < 1e-6 and "moves from 2 to" in p.stdout,
                      f"{what}: 2 ranks x --grad-accum 2, resumed on {n} x --grad-accum {accum}, give the losses "
                      f"of the unbroken run (max difference {worst:.1e})", p.stdout[-1000:])

        # Damaged or mismatched: refused by name, the run folder as it was.
        def refused(name, edit, cmd, mention):
            run_dir = os.path.join(tmp, f"shard-bad-{name}")
            shutil.copytree(os.path.join(tmp, "shard-cpu-zero1-first"), run_dir)
            path = edit(os.path.join(run_dir, "ckpt_00000004"))
            with open(os.path.join(run_dir, "log.jsonl")) as f:
                log_before = f.read()
            p = subprocess.run(cmd + resume + ["--out", run_dir], capture_output=True, text=True, timeout=TIMEOUT_S)
            with open(os.path.join(run_dir, "log.jsonl")) as f:
                log_after = f.read()
            check(p.returncode != 0 and all(m in p.stderr for m in [path] + mention) and log_after == log_before
                  and sorted(os.listdir(run_dir)) == ["ckpt_00000004", "log.jsonl", "run.json"],
                  f"sharded checkpoint, {name}: refused naming it, nothing written", p.stderr[-1500:])

        def remove(ckpt):
            os.remove(os.path.join(ckpt, shard_files[1]))
            return os.path.join(ckpt, shard_files[1])

        def truncate(ckpt):
            path = os.path.join(ckpt, shard_files[0])
            os.truncate(path, os.path.getsize(path) - 8)
            return path

        refused("missing rank file", remove, mpirun + [args.bin, "--grad-accum", "2"], ["missing"])
        refused("truncated rank file", truncate, [args.bin, "--grad-accum", "4"], ["truncated"])
        refused("another global batch", lambda ckpt: os.path.join(ckpt, "state.json"),
                ranks(4) + [args.bin, "--grad-accum", "2"], ["global batch is 4 micro-batches", "give --grad-accum 1"])

        rows = os.path.join(tmp, "rows.bin")
        write_rows(rows, sft_rows(24, 32, seed=11), 32)
        sft = base + ["--device", "cpu", "--train", rows, "--val", rows]
        run(sft + ["--grad-accum", "2"] + out("sft-one"), "fine-tuning rows: 1 process, --grad-accum 2")
        run(mpirun + sft + ["--grad-accum", "1"] + out("sft-two"), "fine-tuning rows: 2 ranks")
        (t1, v1), (t2, v2) = losses(os.path.join(tmp, "sft-one")), losses(os.path.join(tmp, "sft-two"))
        worst = max([abs(t1[s] - t2[s]) for s in t1] + [abs(v1[k] - v2[k]) for k in v1]) \
            if sorted(t1) == list(range(1, 7)) and sorted(t1) == sorted(t2) and sorted(v1) == sorted(v2) else 1
        check(worst < 1e-6, f"fine-tuning rows: 2 ranks x 1 micro-batch = 1 rank x 2 micro-batches "
                            f"(max difference {worst:.1e})")
        # Every kind of training route (the p_own schedule, fixed keep-every and layers routes)
        # keys its routes by the update step and the global micro-batch: 2 ranks compute what
        # one process with --grad-accum 2 does.
        routes = {"schedule": ["--p-own-final", "0.1"], "keep-every": ["--train-route", "keep-every:2"],
                  "layers": ["--train-route", "layers:0,3"]}
        for name, flags in routes.items():
            common = [a for a in base if a not in ("--p-own", "0.5")] + ["--device", "cpu"] + flags
            run(common + ["--grad-accum", "2"] + out(f"route-{name}-one"), f"route {name}: 1 process")
            run(mpirun + common + ["--grad-accum", "1"] + out(f"route-{name}-two"), f"route {name}: 2 ranks")
            t1, v1 = losses(os.path.join(tmp, f"route-{name}-one"))
            t2, v2 = losses(os.path.join(tmp, f"route-{name}-two"))
            worst = max([abs(t1[s] - t2[s]) for s in t1] + [abs(v1[k] - v2[k]) for k in v1], default=1.0)
            check(len(t1) == 6 and sorted(t1) == sorted(t2) and sorted(v1) == sorted(v2) and worst < 1e-6,
                  f"route {name}: 2 ranks x 1 micro-batch = 1 rank x 2 micro-batches (max difference {worst:.1e})")

        common = base + ["--device", "cpu"]
        bad = mpirun + common + out("bad")
        bad[bad.index("--val-batches") + 1] = "3"
        try:
            p = subprocess.run(bad, capture_output=True, text=True, timeout=TIMEOUT_S)
            check(p.returncode != 0 and "--val-batches 3 must be a multiple of the 2 ranks" in p.stderr,
                  "an error on the ranks ends the job with its message", p.stderr[-2000:])
        except subprocess.TimeoutExpired:
            check(False, f"an error on the ranks ends the job (still running after {TIMEOUT_S} s)")

    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
