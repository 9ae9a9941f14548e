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


def cpu_so_far(pid):
    """CPU seconds a running process has used: the sum over its threads of /proc's schedstat (ns)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except OSError:
        pass
    return total / 1e9


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(loom, work, job_flags, workers, separate_collector=False, tag="job", tcp=False, keep=None, keys=None):
    """Runs one job; returns (manifest, {role: (cpu seconds, max rss kB, cpu seconds after the job started)}, wall seconds).

    tcp: the coordinator binds tcp on 127.0.0.1 (else ipc). keep: a folder to move the result to.
    keys: a folder with coordinator.key/.pub and workers.key/.pub (tcp with CURVE; else --insecure)."""
    d = tempfile.mkdtemp(prefix=f"loom-{tag}-", dir=work)
    out = os.path.join(d, "out")
    coord = f"tcp://127.0.0.1:{free_port()}" if tcp else f"ipc://{d}/coordinator"
    procs = {}
    devnull = subprocess.DEVNULL
    t0 = time.time()
    # Over tcp: CURVE keys when given, else --insecure.
    if keys:
        k = lambda n: os.path.join(keys, n)
        coord_keys = ["--key", k("coordinator.key"), "--allow", k("workers.pub")]
        worker_keys = ["--key", k("workers.key"), "--coordinator-key", k("coordinator.pub")]
    else:
        coord_keys = worker_keys = ["--insecure"] if tcp else []
    cmd = [loom, "coordinator", "--bind", coord, "--quiet", "--log-level", "error"] + coord_keys + job_flags
    if separate_collector:
        coll = f"ipc://{d}/collector"
        procs["collector"] = subprocess.Popen([loom, "collector", "--bind", coll, "--out", out], stdout=devnull, stdin=devnull)
        cmd += ["--collector", coll]
    else:
        cmd += ["--out", out]
    # Workers first, as on a cluster where they wait for coordinators: they keep trying until the
    # coordinator binds, so the job's time is the job's, not the workers' process start-up.
    for i in range(workers):
        procs[f"worker{i}"] = subprocess.Popen([loom, "worker", "--connect", coord, "--log-level", "error"] + worker_keys,
                                               stdout=devnull, stderr=devnull, stdin=devnull)
    time.sleep(0.3)
    procs["coordinator"] = subprocess.Popen(cmd, stdout=devnull, stdin=devnull)
    # The job's clock (elapsed_seconds) starts when the collector claims --out: note every
    # process's CPU time then, so that CPU within the job can be told from start-up CPU.
    claimed = os.path.join(out, "job.json")
    deadline = time.time() + 30
    while not os.path.exists(claimed) and procs["coordinator"].poll() is None and time.time() < deadline:
        time.sleep(0.0005)
    at_start = {role: cpu_so_far(p.pid) for role, p in procs.items()}
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
        usage[role] = (ru.ru_utime + ru.ru_stime, ru.ru_maxrss, ru.ru_utime + ru.ru_stime - at_start[role])
        if status != 0 and not role.startswith("worker"):
            raise SystemExit(f"{role} exited with status {status}")
    wall = time.time() - t0
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    if keep:
        shutil.rmtree(keep, ignore_errors=True)
        shutil.move(out, keep)
    shutil.rmtree(d)
    return manifest, usage, wall


def same_results(a, b):
    """Whether two result folders hold the same bytes in every output file."""
    names = sorted(f for f in os.listdir(a) if f.endswith(".npy"))
    return names == sorted(f for f in os.listdir(b) if f.endswith(".npy")) and all(
        open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read() for f in names)


def curve_cost(loom, work, q):
    """The scheduler-throughput job (40,000 one-example shards, 1 worker) and the scaling job
    (FlattenDense L=1000, product 200 x 50 x 50, batch 32, 1 and 2 workers), with and without keys."""
    keys = os.path.join(work, "keys")
    os.makedirs(keys, mode=0o700, exist_ok=True)
    for name in ("coordinator", "workers"):
        subprocess.run([loom, "keygen", name, "--dir", keys], check=True, stdout=subprocess.DEVNULL)
    n_seq = 200 if q else 2000
    x = save(work, "xc", one_hot(n_seq, 4, 0))
    at = save(work, "ac", np.arange(20, dtype=np.float32).reshape(-1, 1))
    tput = ["--mode", "product", "--model", os.path.join(DATA, "trivial.onnx"), "--x", x, "--arg", at, "--batch-size", "1", "--shard-batches", "1"]
    n, mm = (40, 10) if q else (200, 50)
    xf = save(work, "xcf", one_hot(n, 1000, 1))
    al = save(work, "acl", np.random.RandomState(2).randn(mm, 1).astype(np.float32))
    be = save(work, "acb", np.random.RandomState(3).randn(mm, 1).astype(np.float32))
    scale = ["--mode", "product", "--model", os.path.join(DATA, "flattendense1000.onnx"), "--x", xf, "--arg", al, "--arg", be, "--batch-size", "32"]
    reps = 1 if q else 7
    med = lambda v: float(np.median(v))
    print(f"{'job':34} {'workers':>7} {'keys':>5} {'rate':>12} {'coord CPU in job':>17}", flush=True)
    for label, flags, counts, unit in (("throughput (40,000 shards of 1)", tput, (1,), "shards/s"), ("scaling (FlattenDense, batch 32)", scale, (1, 2), "ex/s")):
        for w in counts:
            runs = {False: [], True: []}
            for _ in range(reps):
                for secure in (False, True):
                    m, usage, wall = run_job(loom, work, flags, w, tag="curve", tcp=True, keys=keys if secure else None)
                    per = m["shards"] if unit == "shards/s" else m["examples"]
                    runs[secure].append((per / m["elapsed_seconds"], usage["coordinator"][2]))
            for secure in (False, True):
                rate = med([r[0] for r in runs[secure]])
                ratio = f" ({rate / med([r[0] for r in runs[False]]):.2f}x)" if secure else ""
                print(f"{label:34} {w:7d} {'CURVE' if secure else 'none':>5} {rate:10.0f} {unit}{ratio} {med([r[1] for r in runs[secure]]):8.3f} s", flush=True)


def many_workers(loom, work, q):
    """The coordinator's cost per shard as workers grow: a trivial model, 40,000 one-example shards,
    real worker processes over tcp on 127.0.0.1; each result compared with the in-process run's bits."""
    n_seq = 200 if q else 2000
    x = save(work, "xm", one_hot(n_seq, 4, 0))
    at = save(work, "am", np.arange(20, dtype=np.float32).reshape(-1, 1))
    flags = ["--mode", "product", "--model", os.path.join(DATA, "trivial.onnx"), "--x", x, "--arg", at, "--batch-size", "1",
             "--shard-batches", "1"]
    ref = os.path.join(work, "many-ref")
    subprocess.run([loom, "run", *flags, "--out", ref, "--quiet"], check=True)
    print(f"{'workers':>7} {'shards':>7} {'wall s':>7} {'job s':>6} {'coord CPU s':>11} {'per shard':>10} {'bitwise':>8}", flush=True)
    for w in ((2, 10) if q else (10, 50, 100, 200)):
        got = os.path.join(work, f"many-{w}")
        m, usage, wall = run_job(loom, work, flags, w, tag=f"many{w}", tcp=True, keep=got)
        cpu = usage["coordinator"][2]
        same = same_results(ref, got)
        print(f"{w:7d} {m['shards']:7d} {wall:7.2f} {m['elapsed_seconds']:6.2f} {cpu:11.2f} {1e6 * cpu / m['shards']:8.1f} µs {'yes' if same else 'NO':>8}", flush=True)
        shutil.rmtree(got)


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
    flags = ["--mode", "product", "--model", os.path.join(DATA, "trivial.onnx"), "--x", x, "--arg", at, "--batch-size", "1",
             "--shard-batches", "1"]
    m, usage, wall = run_job(loom, work, flags, 1, tag="throughput")
    shards = m["shards"]
    print(f"scheduler throughput: {shards} shards of 1 example, 1 worker: {shards / m['elapsed_seconds']:.0f} shards/s "
          f"(job {m['elapsed_seconds']:.2f} s, wall {wall:.2f} s; coordinator+collector CPU {usage['coordinator'][0]:.2f} s, "
          f"worker CPU {usage['worker0'][0]:.2f} s)", flush=True)

    print("\nmany workers: coordinator (with its collector thread) CPU per shard within the job", flush=True)
    many_workers(loom, work, q)

    print("\nCURVE's cost: the same jobs over tcp on 127.0.0.1 with and without keys, alternating (medians)", flush=True)
    curve_cost(loom, work, q)

    # 2. Scaling: FlattenDense L=1000, product 200 x 50 x 50 (and 10x longer, 200 x 500 x 50).
    # A job lasts a fraction of a second, so each configuration runs `reps` (11) times, 1 and 2
    # workers alternating; the table gives medians, and the range of the 2-worker/1-worker ratio
    # over the pairs of consecutive runs.
    n, mm = (40, 10) if q else (200, 50)
    reps = 1 if q else 11
    xf = save(work, "xf", one_hot(n, 1000, 1))
    be = save(work, "beta", np.random.RandomState(3).randn(50 if not q else 10, 1).astype(np.float32))
    fd = os.path.join(DATA, "flattendense1000.onnx")
    med = lambda v: float(np.median(v))
    for factor in ((1,) if q else (1, 10)):
        al = save(work, f"alpha_s{factor}", np.random.RandomState(2).randn(mm * factor, 1).astype(np.float32))
        print(f"\nscaling: FlattenDense L=1000 product {n} x {mm * factor} x {50 if not q else 10} "
              f"(median of {reps if factor == 1 else max(1, reps - 2)} runs)", flush=True)
        print(f"{'rows':9} {'batch':>5} {'shards':>6} {'workers':>7} {'ex/s':>10} {'speed-up':>9} {'range':>11} "
              f"{'coord+coll CPU %':>17} {'in job':>7} {'bytes/example':>14}", flush=True)
        for share in (True, False):
            for batch in ((32, 256) if factor == 1 else (32,)):
                flags = ["--mode", "product", "--model", fd, "--x", xf, "--arg", al, "--arg", be, "--batch-size", str(batch)]
                if not share:
                    flags.append("--no-share-rows")
                label = "shared" if share else "unshared"
                if factor == 1:
                    out = os.path.join(work, "inproc")
                    subprocess.run([loom, "run", *flags, "--out", out, "--overwrite", "--quiet"], check=True)
                    with open(os.path.join(out, "manifest.json")) as f:
                        m = json.load(f)
                    print(f"{label:9} {batch:5d} {m['shards']:6d} {'in-proc':>7} {m['examples'] / m['elapsed_seconds']:10.0f}", flush=True)
                runs = {1: [], 2: []}
                for _ in range(reps if factor == 1 else max(1, reps - 2)):
                    for w in (1, 2):
                        m, usage, wall = run_job(loom, work, flags, w, tag=f"scale{w}")
                        total = sum(u[0] for u in usage.values())
                        during = sum(u[2] for u in usage.values())
                        runs[w].append((m["examples"] / m["elapsed_seconds"], 100 * usage["coordinator"][0] / total,
                                        m["transfer"]["bytes_per_example"], m["shards"], 100 * usage["coordinator"][2] / during))
                ratios = [b[0] / a[0] for a, b in zip(runs[1], runs[2])]
                base = med([r[0] for r in runs[1]])
                for w in (1, 2):
                    rate = med([r[0] for r in runs[w]])
                    span = f"{min(ratios):.2f}-{max(ratios):.2f}" if w == 2 else ""
                    print(f"{label:9} {batch:5d} {runs[w][0][3]:6d} {w:7d} {rate:10.0f} {rate / base:9.2f} {span:>11} "
                          f"{med([r[1] for r in runs[w]]):16.1f}% {med([r[4] for r in runs[w]]):6.1f}% {med([r[2] for r in runs[w]]):14.1f}", flush=True)

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
