"""CPU time per process for the distributed benchmark's main job, before and within the job.

    python roles.py --loom .build/release/loom [--workers 2] [--runs 11] [-- extra loom flags]

Runs the issue's scaling job (FlattenDense L=1000, product 200 x 50 x 50, batch 32) the way
cluster.py does (workers started first, `loom coordinator` with its collector thread, ipc
endpoints) and prints, as medians over the runs, the job's elapsed time and each process's
CPU: in all (from wait4) and within the job (after the collector claimed --out). It is how
docs/performance.md splits the coordinator's share into start-up and in-job work.
"""
import argparse, os, sys, tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import one_hot  # noqa: E402
from cluster import run_job, save  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loom", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("extra", nargs="*", help="more flags for the job (after --)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="loom-roles-")
    xf = save(work, "xf", one_hot(200, 1000, 1))
    al = save(work, "alpha", np.random.RandomState(2).randn(50, 1).astype(np.float32))
    be = save(work, "beta", np.random.RandomState(3).randn(50, 1).astype(np.float32))
    fd = os.path.join(HERE, "data", "flattendense1000.onnx")
    flags = ["--mode", "product", "--model", fd, "--x", xf, "--arg", al, "--arg", be, "--batch-size", "32"] + a.extra
    rows, roles = [], []
    for _ in range(a.runs):
        m, usage, _ = run_job(a.loom, work, flags, a.workers, tag="roles")
        roles = sorted(usage)
        rows.append([m["elapsed_seconds"]] + [x for r in roles for x in (usage[r][0], usage[r][2])])
    med = np.median(np.array(rows), axis=0) * 1000
    share = med[1] / sum(med[1 + 2 * i] for i in range(len(roles)))
    print(f"{a.workers} worker(s), median of {a.runs} runs: job {med[0]:.0f} ms; coordinator+collector "
          f"{100 * share:.1f} % of all CPU")
    for i, r in enumerate(roles):
        total, within = med[1 + 2 * i], med[2 + 2 * i]
        print(f"  {r:12} CPU {total:6.1f} ms: {total - within:6.1f} before the job, {within:6.1f} within it")


if __name__ == "__main__":
    main()
