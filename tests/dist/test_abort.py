"""A rank that fails brings the whole job down with its message, never a hang.

Runs `mpirun ... dist_abort MODE R` for every mode and failing rank R, each under a timeout,
and checks the exit status (non-zero), the message ("rank R: bad shard on purpose") and that
no rank went past the collective the failed rank never joined.

    python3 test_abort.py --bin dist_abort --modes mpi nccl -- mpirun -np 2 [flags]
"""
import argparse
import subprocess
import sys

TIMEOUT_S = 120  # a hang shows as a timeout; a healthy abort takes seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--modes", nargs="+", required=True)
    parser.add_argument("--ranks", type=int, default=2)
    # Everything after "--" is the mpirun command, its own flags included.
    split = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
    args = parser.parse_args(sys.argv[1:split])
    mpirun = sys.argv[split + 1:]
    if not mpirun:
        parser.error("give the mpirun command after --")

    passed = failed = 0

    def check(ok, what, output=""):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAILED {what}\n{output}", file=sys.stderr)

    for mode in args.modes:
        for rank in range(args.ranks):
            name = f"{mode}, rank {rank} fails"
            try:
                run = subprocess.run(mpirun + [args.bin, mode, str(rank)], capture_output=True, text=True,
                                     timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired as e:
                check(False, f"{name}: still running after {TIMEOUT_S} s (a hang)", str(e.stderr or ""))
                continue
            output = run.stdout + run.stderr
            check(run.returncode != 0, f"{name}: exit status {run.returncode}, want non-zero", output)
            check(f"rank {rank}: bad shard on purpose" in run.stderr, f"{name}: the failing rank's message",
                  output)
            check("passed the collective" not in output, f"{name}: no rank goes on", output)

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
