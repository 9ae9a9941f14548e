"""Loom's distributed-runtime benchmark: scheduler throughput, scaling over workers, coordinator
memory, and bytes on the wire. Real processes over ipc endpoints on this machine.

    python cluster.py --loom .build/release/loom [--quick]

Each job runs as `loom coordinator` plus `loom worker` processes started here (and, for the
memory figure, a separate `loom collector`), so that each process's CPU time and peak RSS
come from wait4(). Rates use the job's elapsed time from manifest.json.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
sys.path.insert(0, HERE)
from bench import one_hot  # noqa: E402


def save(work, name, array):
    path = os.path.join(work, name + ".npy")
    np.save(path, array)
    return path


def run_job(loom, work, job_flags, workers, separate_collector=False, tag="job"):
    """Runs one job; returns (manifest, {role: (cpu seconds, max rss kB)}, wall seconds)."""
    d = tempfile.mkdtemp(prefix=f"loom-{tag}-", dir=work)
    out = os.path.join(d, "out")
    coord = f"ipc://{d}/coordinator"
    procs = {}
    devnull = subprocess.DEVNULL
    t0 = time.time()
    cmd = [loom, "coordinator", "--bind", coord, "--quiet"] + job_flags
    if separate_collector:
        coll = f"ipc://{d}/collector"
        procs["collector"] = subprocess.Popen([loom, "collector", "--bind", coll, "--out", out], stdout=devnull, stdin=devnull)
        cmd += ["--collector", coll]
    else:
        cmd += ["--out", out]
    # Workers first, as on a cluster where they wait for coordinators: they keep trying until the
    # coordinator binds, so the job's time is the job's, not the workers' process start-up.
    for i in range(workers):
        procs[f"worker{i}"] = subprocess.Popen([loom, "worker", "--connect", coord], stdout=devnull, stdin=devnull)
    time.sleep(0.3)
    procs["coordinator"] = subprocess.Popen(cmd, stdout=devnull, stdin=devnull)
    usage = {}
    # The coordinator (and collector) first: the job is over when they are.
    for role, p in sorted(procs.items(), key=lambda kv: kv[0].startswith("worker")):
        if role.startswith("worker"):
            # A worker that joined after the end waits for a coordinator; stop it once the job is done.
            deadline = time.time() + 3
            while time.time() < deadline:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(0.02)
            else:
                p.terminate()
                pid, status, ru = os.wait4(p.pid, 0)
        else:
            _, status, ru = os.wait4(p.pid, 0)
        p.returncode = status
        usage[role] = (ru.ru_utime + ru.ru_stime, ru.ru_maxrss)
        if status != 0 and not role.startswith("worker"):
            raise SystemExit(f"{role} exited with status {status}")
    wall = time.time() - t0
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    shutil.rmtree(d)
    return manifest, usage, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    loom = os.path.abspath(a.loom)
    work = tempfile.mkdtemp(prefix="loom-cluster-bench-")
    q = a.quick

    # 1. Scheduler throughput: a trivial model, one example per shard, one worker.
    n_seq = 200 if q else 2000
    x = save(work, "xt", one_hot(n_seq, 4, 0))
    at = save(work, "at", np.arange(20, dtype=np.float32).reshape(-1, 1))
    flags = ["--mode", "product", "--model", os.path.join(DATA, "trivial.onnx"), "--x", x, "--arg", at, "--batch-size", "1"]
    m, usage, wall = run_job(loom, work, flags, 1, tag="throughput")
    shards = m["shards"]
    print(f"scheduler throughput: {shards} shards of 1 example, 1 worker: {shards / m['elapsed_seconds']:.0f} shards/s "
          f"(job {m['elapsed_seconds']:.2f} s, wall {wall:.2f} s; coordinator+collector CPU {usage['coordinator'][0]:.2f} s, "
          f"worker CPU {usage['worker0'][0]:.2f} s)", flush=True)

    # 2. Scaling: FlattenDense L=1000, product 200 x 50 x 50.
    n, mm = (40, 10) if q else (200, 50)
    xf = save(work, "xf", one_hot(n, 1000, 1))
    al = save(work, "alpha", np.random.RandomState(2).randn(mm, 1).astype(np.float32))
    be = save(work, "beta", np.random.RandomState(3).randn(50 if not q else 10, 1).astype(np.float32))
    fd = os.path.join(DATA, "flattendense1000.onnx")
    print(f"\nscaling: FlattenDense L=1000 product {n} x {mm} x {50 if not q else 10}", flush=True)
    print(f"{'rows':10} {'batch':>5} {'workers':>7} {'ex/s':>10} {'speed-up':>9} {'coord+coll CPU %':>17} {'bytes/example':>14}", flush=True)
    for share in (True, False):
        for batch in (32, 256):
            base = None
            for w in (0, 1, 2):
                flags = ["--mode", "product", "--model", fd, "--x", xf, "--arg", al, "--arg", be, "--batch-size", str(batch)]
                if not share:
                    flags.append("--no-share-rows")
                if w == 0:
                    out = os.path.join(work, "inproc")
                    subprocess.run([loom, "run", *flags, "--out", out, "--overwrite", "--quiet"], check=True)
                    with open(os.path.join(out, "manifest.json")) as f:
                        m = json.load(f)
                    rate = m["examples"] / m["elapsed_seconds"]
                    print(f"{'shared' if share else 'unshared':10} {batch:5d} {'in-proc':>7} {rate:10.0f} {'':>9} {'':>17} {'':>14}", flush=True)
                    continue
                m, usage, wall = run_job(loom, work, flags, w, tag=f"scale{w}")
                rate = m["examples"] / m["elapsed_seconds"]
                if w == 1:
                    base = rate
                total = sum(c for c, _ in usage.values())
                share_cpu = 100 * usage["coordinator"][0] / total if total else 0
                print(f"{'shared' if share else 'unshared':10} {batch:5d} {w:7d} {rate:10.0f} {rate / base:9.2f} {share_cpu:16.1f}% "
                      f"{m['transfer']['bytes_per_example']:14.1f}", flush=True)

    # 3. Coordinator memory: the same job with m ten times larger (separate collector).
    print("\ncoordinator memory (separate collector process), batch 256:", flush=True)
    rss = {}
    for factor in (1, 10):
        alf = save(work, f"alpha{factor}", np.random.RandomState(2).randn(mm * factor, 1).astype(np.float32))
        flags = ["--mode", "product", "--model", fd, "--x", xf, "--arg", alf, "--arg", be, "--batch-size", "256"]
        m, usage, wall = run_job(loom, work, flags, 2, separate_collector=True, tag=f"mem{factor}")
        rss[factor] = usage["coordinator"][1]
        print(f"  m = {mm * factor:5d}: {m['examples']:9d} examples, {m['shards']:6d} shards, coordinator peak RSS {rss[factor] / 1024:.1f} MiB, "
              f"collector {usage['collector'][1] / 1024:.1f} MiB", flush=True)
    print(f"  coordinator RSS growth for 10x m: {100 * (rss[10] - rss[1]) / rss[1]:+.1f}%")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
