"""Two loom binaries side by side on the distributed runtime: scheduler throughput (40,000
one-example shards, 1 worker) and the scaling job (FlattenDense L=1000, product 200 x 50 x 50,
batch 32, 1 and 2 workers), alternating, over ipc.

    python3 scripts/benchmarks/compare_binaries.py OLD_LOOM NEW_LOOM [--rounds 11]
"""
import argparse, sys, os, tempfile, shutil, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster
from bench import one_hot
work = tempfile.mkdtemp()
D = cluster.DATA
x = cluster.save(work, "xt", one_hot(2000, 4, 0))
at = cluster.save(work, "at", np.arange(20, dtype=np.float32).reshape(-1, 1))
tput = ["--mode", "product", "--model", os.path.join(D, "trivial.onnx"), "--x", x, "--arg", at, "--batch-size", "1", "--shard-batches", "1"]
xf = cluster.save(work, "xf", one_hot(200, 1000, 1))
al = cluster.save(work, "al", np.random.RandomState(2).randn(50, 1).astype(np.float32))
be = cluster.save(work, "be", np.random.RandomState(3).randn(50, 1).astype(np.float32))
scale = ["--mode", "product", "--model", os.path.join(D, "flattendense1000.onnx"), "--x", xf, "--arg", al, "--arg", be, "--batch-size", "32"]
ap = argparse.ArgumentParser()
ap.add_argument("old")
ap.add_argument("new")
ap.add_argument("--rounds", type=int, default=11)
a = ap.parse_args()
bins = {"old": os.path.abspath(a.old), "new": os.path.abspath(a.new)}
res = {k: {"tput": [], "s1": [], "s2": [], "cpu": []} for k in bins}
for rep in range(a.rounds):
    for name, b in bins.items():
        m, u, w = cluster.run_job(b, work, tput, 1, tag="t")
        res[name]["tput"].append(m["shards"] / m["elapsed_seconds"]); res[name]["cpu"].append(u["coordinator"][2])
        m1, _, _ = cluster.run_job(b, work, scale, 1, tag="s1")
        m2, _, _ = cluster.run_job(b, work, scale, 2, tag="s2")
        res[name]["s1"].append(m1["examples"] / m1["elapsed_seconds"]); res[name]["s2"].append(m2["examples"] / m2["elapsed_seconds"])
med = lambda v: float(np.median(v))
for name in bins:
    r = res[name]
    ratios = [b / a for a, b in zip(r["s1"], r["s2"])]
    print(f"{name:12} throughput {med(r['tput']):8.0f} shards/s (coord CPU in job {med(r['cpu']):.3f} s); scaling 1w {med(r['s1']):9.0f} 2w {med(r['s2']):9.0f} ex/s, 2w/1w median {med(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
shutil.rmtree(work)
