"""deep_lift_shap benchmark: Loom against tangermeme 1.6 (torch) on BPNet's count head, one thread each.

    python attributions.py --loom .build/release/loom [--quick] [--reference]

The model is bpnet-lite's BPNet (64 filters, 8 dilated residual layers, 2114 bp in,
2 control tracks) wrapped in its CountWrapper, so the attributed output is the count
head; deep_lift_shap runs with 20 dinucleotide-shuffled references, seed 0, over a
pairwise product of n sequences with one control track. Loom runs in one process
(--workers 0) and on 2 local worker processes; its rate is the job's elapsed time from
manifest.json. tangermeme's is its apply_pairwise(deep_lift_shap, ...) call with
torch.set_num_threads(1). Both see the same inputs; the largest difference between
their attributions is printed.
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
sys.path.insert(0, HERE)
from bench import one_hot  # noqa: E402


def run_loom(loom, x, ctl, workers, batch, out):
    cmd = [loom, "run", "--mode", "pairwise", "--func", "deep-lift-shap", "--model", os.path.join(DATA, "bpnet64x8_counts.onnx"),
           "--x", x, "--arg", ctl, "--random-state", "0", "--n-shuffles", "20", "--batch-size", str(batch),
           "--workers", str(workers), "--threads", "1", "--out", out, "--overwrite", "--quiet"]
    subprocess.run(cmd, check=True)
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    return m["examples"] / m["elapsed_seconds"], np.load(os.path.join(out, "y.npy"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reference", action="store_true")
    a = ap.parse_args()
    n = 2 if a.quick else 8
    work = tempfile.mkdtemp(prefix="loom-bench-dls-")
    x = os.path.join(work, "x.npy")
    ctl = os.path.join(work, "ctl.npy")
    np.save(x, one_hot(n, 2114, 3))
    np.save(ctl, np.abs(np.random.RandomState(4).randn(1, 2, 2114)).astype(np.float32))
    # Batches of 4 examples: passes of 4 example-reference pairs (tangermeme's take 32, but
    # Loom's pass is held to 512 MB, 13 pairs of this model), and 2 shards for 2 workers.
    batch = 2 if a.quick else 4
    run_loom(a.loom, x, ctl, 0, batch, os.path.join(work, "warm"))       # page cache
    one, y1 = run_loom(a.loom, x, ctl, 0, batch, os.path.join(work, "w0"))
    two, y2 = run_loom(a.loom, x, ctl, 2, batch, os.path.join(work, "w2"))
    tgm, diff = None, None
    if a.reference:
        import torch
        import models as M
        from tangermeme.deep_lift_shap import deep_lift_shap
        from tangermeme.product import apply_pairwise
        torch.set_num_threads(1)
        model = M.bpnet_counts()
        X, C = torch.from_numpy(np.load(x)), torch.from_numpy(np.load(ctl))
        k = min(n, 4)   # tangermeme takes ~3 s per example: a rate from 4 is steady
        t0 = time.perf_counter()
        yt = apply_pairwise(deep_lift_shap, model, X[:k], args=(C,), batch_size=32, device="cpu", random_state=0)
        tgm = k / (time.perf_counter() - t0)
        diff = float(np.abs(y1[:k] - yt.numpy()).max())
    fmt = lambda v: f"{v:8.2f}" if v is not None else f"{'skipped':>8}"
    print(f"{'deep_lift_shap, BPNet 64x8 count head':40} {'examples':>8} {'loom':>8} {'loom w2':>8} {'tangermeme':>10} {'loom/tgm':>9} {'w2/tgm':>8} {'w2/loom':>8} {'max |diff|':>10}")
    print(f"{'2114 bp, 20 shuffles, one thread each':40} {n:8d} {one:8.2f} {two:8.2f} {fmt(tgm):>10} "
          f"{(one / tgm if tgm else float('nan')):9.2f} {(two / tgm if tgm else float('nan')):8.2f} {two / one:8.2f} "
          f"{(diff if diff is not None else float('nan')):10.2g}")
    print(f"(examples/s; --workers 2 output bitwise identical to --workers 0: {'yes' if np.array_equal(y1, y2) else 'NO'})")


if __name__ == "__main__":
    # Every folder this run makes is inside one scratch folder, removed at the end (also on failure).
    with tempfile.TemporaryDirectory(prefix="loom-bench-") as scratch:
        tempfile.tempdir = scratch
        main()
