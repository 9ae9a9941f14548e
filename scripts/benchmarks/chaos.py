"""Loom's fault-injection suite: every scenario runs a real job with real processes, injects
faults while it runs, and compares the result byte for byte with a clean run of the same job.

    python chaos.py --loom .build/release/loom [--short]

Scenarios (each against the same clean reference):
  kill-workers     a random worker SIGKILLed every ~0.5 s (loom run replaces it)
  stall-worker     one worker SIGSTOPped past its lease, then SIGCONTed
  kill-coordinator the run SIGKILLed once mid-job, then started again with the same command
  kill-collector   a stand-alone collector SIGKILLed and restarted (tcp on 127.0.0.1)
  cut-network      workers reach the coordinator through a TCP proxy that drops every connection for 2 s
  partition        coordinator and workers on two hosts (network namespaces joined by a veth pair);
                   nftables drops every packet between them, both ways, for 3 s mid-job: silent,
                   as a failed link is (needs root, ip and nft; skipped otherwise)
  poison           a test hook crashes every worker that runs shard 7: the job must fail, in bounded time
Prints: faults injected, shards re-issued, duplicates dropped, resumed shards, wall time
against the clean run, and "identical: yes/no".
"""
import argparse, json, os, random, shutil, signal, socket, subprocess, sys, tempfile, time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASE = os.path.join(ROOT, "Tests", "Fixtures", "conformance", "fd100_pairwise_alpha_beta")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def workers_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"--parent-pid" in args:
            i = args.index(b"--parent-pid")
            if i + 1 < len(args) and args[i + 1] == str(pid).encode():
                out.append(int(d))
    return out


class Job:
    def __init__(self, loom, work, shards):
        self.loom = os.path.abspath(loom)
        self.work = work
        for f in ("model.onnx", "x.npy", "a1.npy"):
            shutil.copy(os.path.join(CASE, f), work)
        m = shards * 10 // (5 * 5)           # 5 sequences x m alphas x 5 betas, 10 examples per shard
        np.save(os.path.join(work, "alphas.npy"), (np.arange(m, dtype=np.float32) / 100).reshape(-1, 1))
        self.flags = ["--mode", "product", "--model", "model.onnx", "--x", "x.npy", "--arg", "alphas.npy",
                      "--arg", "a1.npy", "--batch-size", "10", "--shard-batches", "1"]
        self.fast = ["--heartbeat", "0.25", "--liveness", "3"]
        # Each shard of this small model takes microseconds; a test hook makes workers take 2 ms
        # a shard, so that the job lasts long enough to inject faults into.
        self.env = {"SWIFT_BACKTRACE": "enable=no", "LOOM_TEST_SHARD_DELAY_US": "2000"}

    def run(self, out, extra=(), env=None, wait=True):
        cmd = [self.loom, "run", *self.flags, "--out", out, "--quiet", *extra]
        # stderr goes to a file: a pipe nobody drains while faults are injected would fill and block loom.
        log = open(os.path.join(self.work, out + ".stderr"), "w+")
        p = subprocess.Popen(cmd, cwd=self.work, stdout=subprocess.DEVNULL, stderr=log, text=True,
                             env={**os.environ, **self.env, **(env or {})})
        p.log = log
        if wait:
            p.wait(timeout=600)
            return p.returncode, self.stderr(p)
        return p

    @staticmethod
    def stderr(p):
        p.log.seek(0)
        return p.log.read()

    def result(self, out):
        with open(os.path.join(self.work, out, "y.npy"), "rb") as f:
            return f.read()

    def manifest(self, out):
        with open(os.path.join(self.work, out, "manifest.json")) as f:
            return json.load(f)


def wait_workers(p, n, timeout=30):
    deadline = time.time() + timeout
    while len(workers_of(p.pid)) < n and time.time() < deadline:
        time.sleep(0.02)


def scenario_kill_workers(job, short):
    p = job.run("kill-workers", ["--workers", "3", *job.fast], wait=False)
    wait_workers(p, 3)
    faults = 0
    while p.poll() is None:
        time.sleep(random.uniform(0.3, 0.7))
        victims = workers_of(p.pid)
        if victims and p.poll() is None:
            os.kill(random.choice(victims), signal.SIGKILL)
            faults += 1
    return p.wait(), faults, "kill-workers"


def scenario_stall(job, short):
    p = job.run("stall-worker", ["--workers", "2", "--lease", "1", *job.fast], wait=False)
    wait_workers(p, 2)
    time.sleep(0.3)
    victim = workers_of(p.pid)[0]
    os.kill(victim, signal.SIGSTOP)
    time.sleep(1.5)
    os.kill(victim, signal.SIGCONT)
    return p.wait(), 1, "stall-worker"


def scenario_kill_coordinator(job, short):
    p = job.run("kill-coordinator", ["--workers", "2", *job.fast], wait=False)
    wait_workers(p, 2)
    time.sleep(1.0 if short else 2.0)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    journaled = journal_count(os.path.join(job.work, "kill-coordinator"))
    time.sleep(0.3)
    code, err = job.run("kill-coordinator", ["--workers", "2", *job.fast])
    if code != 0:
        print(err, file=sys.stderr)
        return code, 1, "kill-coordinator"
    # Every shard complete at the crash came from the journal: the restart computed no more than
    # the shards that were incomplete then.
    m = job.manifest("kill-coordinator")
    resumed = m.get("reliability", {}).get("resumed_shards", 0)
    if resumed < journaled:
        print(f"kill-coordinator: {journaled} shards were journaled at the crash, only {resumed} resumed", file=sys.stderr)
        return 1, 1, "kill-coordinator"
    print(f"(kill-coordinator: {journaled} of {m['shards']} shards journaled at the crash; the restart computed "
          f"{m['shards'] - resumed}, the {m['shards'] - journaled} incomplete then)", file=sys.stderr, flush=True)
    return code, 1, "kill-coordinator"


def journal_count(out):
    """Shards recorded in a results folder's journal.loom (valid records only, as Loom reads them)."""
    try:
        data = open(os.path.join(out, "journal.loom"), "rb").read()
    except FileNotFoundError:
        return 0
    # Version 2: LOOMJRN2, the job id, then 40-byte records (u32 shard, u32 shard ^ 0xA5A5A5A5, 32-byte digest).
    if data[:8] != b"LOOMJRN2":
        return 0
    shards, offset = set(), 8 + 64
    while offset + 40 <= len(data):
        a = int.from_bytes(data[offset:offset + 4], "little")
        b = int.from_bytes(data[offset + 4:offset + 8], "little")
        if a ^ 0xA5A5A5A5 != b:
            break
        shards.add(a)
        offset += 40
    return len(shards)


def scenario_kill_collector(job, short):
    cport, kport = free_port(), free_port()
    out = os.path.join(job.work, "kill-collector")
    env = {**os.environ, **job.env}
    dn = subprocess.DEVNULL
    coll = subprocess.Popen([job.loom, "collector", "--insecure", "--bind", f"tcp://127.0.0.1:{kport}", "--out", out], stdout=dn, stderr=dn, env=env)
    workers = [subprocess.Popen([job.loom, "worker", "--insecure", "--connect", f"tcp://127.0.0.1:{cport}"], stdout=dn, stderr=dn, env=env) for _ in range(2)]
    log = open(os.path.join(job.work, "kill-collector.stderr"), "w+")
    coord = subprocess.Popen([job.loom, "coordinator", "--insecure", "--bind", f"tcp://127.0.0.1:{cport}", "--collector", f"tcp://127.0.0.1:{kport}",
                              *job.flags, "--quiet"], cwd=job.work, stdout=dn, stderr=log, text=True, env=env)
    coord.log = log
    time.sleep(1.0 if short else 2.0)
    coll.kill()
    coll.wait()
    time.sleep(0.5)
    coll = subprocess.Popen([job.loom, "collector", "--insecure", "--bind", f"tcp://127.0.0.1:{kport}", "--out", out], stdout=dn, stderr=dn, env=env)
    return finish(job, coord, workers + [coll]), 1, "kill-collector"


def finish(job, coord, others):
    """Waits for the coordinator, then gives the other processes 10 s to exit by themselves; returns its exit code."""
    coord.wait(timeout=600)
    for w in others:
        try:
            w.wait(timeout=10)
        except subprocess.TimeoutExpired:
            w.kill()
    if coord.returncode != 0:
        print(job.stderr(coord)[-2000:], file=sys.stderr)
    return coord.returncode


class Proxy:
    """A TCP proxy for the test: forwards 127.0.0.1:listen to 127.0.0.1:target, and can cut every connection."""

    def __init__(self, listen, target):
        import threading
        self.target = target
        self.lock = threading.Lock()
        self.conns = []
        self.refuse_until = 0.0
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", listen))
        self.server.listen(64)
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import threading
        while not self.closed:
            try:
                c, _ = self.server.accept()
            except OSError:
                return
            if time.time() < self.refuse_until:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    def pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.close()
            except OSError:
                pass

    def cut(self, seconds):
        """Drops every connection and refuses new ones for `seconds`."""
        self.refuse_until = time.time() + seconds
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns = []

    def close(self):
        self.closed = True
        self.server.close()


def scenario_cut_network(job, short):
    cport, pport = free_port(), free_port()
    out = os.path.join(job.work, "cut-network")
    env = {**os.environ, **job.env}
    dn = subprocess.DEVNULL
    proxy = Proxy(pport, cport)
    log = open(os.path.join(job.work, "cut-network.stderr"), "w+")
    coord = subprocess.Popen([job.loom, "coordinator", "--insecure", "--bind", f"tcp://127.0.0.1:{cport}", "--out", out, *job.flags, "--quiet",
                              "--heartbeat", "0.25"], cwd=job.work, stdout=dn, stderr=log, text=True, env=env)
    coord.log = log
    # Workers reach the coordinator only through the proxy (the collector directly).
    workers = [subprocess.Popen([job.loom, "worker", "--insecure", "--connect", f"tcp://127.0.0.1:{pport}", "--heartbeat", "0.25"],
                                stdout=dn, stderr=dn, env=env) for _ in range(2)]
    time.sleep(1.0 if short else 3.0)
    proxy.cut(2.0)
    code = finish(job, coord, workers)
    proxy.close()
    return code, 1, "cut-network"


class Lab:
    """Two hosts of the suite's own: network namespaces joined by a veth pair, 198.18.0.1 and
    198.18.0.2 (the benchmarking range, never routed), where nftables can drop packets."""

    @staticmethod
    def available():
        return os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("nft") is not None

    def __init__(self):
        tag = f"{os.getpid() % 100000:05d}"
        self.ns = [f"loomchaos-{tag}-a", f"loomchaos-{tag}-b"]
        self.addr = ["198.18.0.1", "198.18.0.2"]
        ends = [f"lca{tag}", f"lcb{tag}"]
        try:
            self.sh("ip", "link", "add", ends[0], "type", "veth", "peer", "name", ends[1])
            for ns, end, addr in zip(self.ns, ends, self.addr):
                self.sh("ip", "netns", "add", ns)
                self.sh("ip", "link", "set", end, "netns", ns)
                self.sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", end)
                self.sh("ip", "-n", ns, "link", "set", end, "up")
                self.sh("ip", "-n", ns, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    @staticmethod
    def sh(*cmd):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def cut(self):
        ns = self.ns[0]
        self.sh("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "loomchaos")
        for hook, field in (("input", "saddr"), ("output", "daddr")):
            self.sh("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "loomchaos", hook,
                    f"{{ type filter hook {hook} priority 0; policy accept; }}")
            self.sh("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "loomchaos", hook, "ip", field, self.addr[1], "drop")

    def heal(self):
        self.sh("ip", "netns", "exec", self.ns[0], "nft", "delete", "table", "inet", "loomchaos")

    def close(self):
        for ns in self.ns:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def scenario_partition(job, short):
    if not Lab.available():
        return None, 0, "partition"
    lab = Lab()
    try:
        out = os.path.join(job.work, "partition")
        env = {**os.environ, **job.env}
        dn = subprocess.DEVNULL
        a, b = lab.ns
        log = open(os.path.join(job.work, "partition.stderr"), "w+")
        coord = subprocess.Popen(["ip", "netns", "exec", a, job.loom, "coordinator", "--insecure", "--bind", "tcp://*:5555", "--out", out,
                                  *job.flags, "--quiet", *job.fast], cwd=job.work, stdout=dn, stderr=log, text=True, env=env)
        coord.log = log
        workers = [subprocess.Popen(["ip", "netns", "exec", b, job.loom, "worker", "--insecure", "--connect", f"tcp://{lab.addr[0]}:5555", *job.fast],
                                    stdout=dn, stderr=dn, env=env) for _ in range(2)]
        # Under way: the collector has journaled some shards.
        deadline = time.time() + 30
        while journal_count(out) < 10 and time.time() < deadline and coord.poll() is None:
            time.sleep(0.02)
        lab.cut()
        time.sleep(3.0)          # 4x the liveness (0.75 s) on both sides
        lab.heal()
        return finish(job, coord, workers), 1, "partition"
    finally:
        lab.close()


def scenario_poison(job, short):
    t0 = time.time()
    code, err = job.run("poison", ["--workers", "2", *job.fast], env={"LOOM_TEST_CRASH_SHARD": "7"})
    ok = code == 1 and "shard 7 (examples 70..<80) failed 3 times" in err and not os.path.exists(os.path.join(job.work, "poison", "manifest.json"))
    return (0 if ok else 1), 3, "poison", time.time() - t0, err.strip().splitlines()[-1] if err.strip() else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom", required=True)
    ap.add_argument("--short", action="store_true")
    a = ap.parse_args()
    random.seed(1)
    work = tempfile.mkdtemp(prefix="loom-chaos-")
    job = Job(a.loom, work, shards=2000 if a.short else 20000)
    t0 = time.time()
    code, err = job.run("clean", ["--workers", "3"])
    if code != 0:
        sys.exit(f"the clean run failed: {err}")
    clean_wall = time.time() - t0
    # Every other scenario runs 2 workers: its wall time is held against a clean 2-worker run.
    t0 = time.time()
    code, err = job.run("clean-2", ["--workers", "2"])
    if code != 0 or job.result("clean-2") != job.result("clean"):
        sys.exit(f"the clean run with 2 workers failed or differs: {err}")
    clean2_wall = time.time() - t0
    code, err = job.run("in-process", ["--workers", "0"])
    if code != 0 or job.result("in-process") != job.result("clean"):
        sys.exit(f"the clean run with 3 workers differs from the in-process run: {err}")
    reference = job.result("clean")
    print(f"chaos: {job.manifest('clean')['shards']} shards of 10 examples, 2 ms each on a worker; clean runs: 3 workers {clean_wall:.2f} s, "
          f"2 workers {clean2_wall:.2f} s, identical to the in-process run", flush=True)
    print(f"{'scenario':18} {'faults':>6} {'re-issued':>9} {'duplicates':>10} {'resumed':>8} {'wall':>7} {'vs clean':>8}  identical", flush=True)
    failed = 0
    skipped = 0
    for scenario in (scenario_kill_workers, scenario_stall, scenario_kill_coordinator, scenario_kill_collector, scenario_cut_network,
                     scenario_partition):
        t0 = time.time()
        code, faults, name = scenario(job, a.short)
        wall = time.time() - t0
        if code is None:
            print(f"{name:18} skipped: needs root, ip (iproute2) and nft (nftables)", flush=True)
            skipped += 1
            continue
        base = clean_wall if name == "kill-workers" else clean2_wall   # the clean run with as many workers
        if code != 0:
            print(f"{name:18} {faults:6d} {'':>9} {'':>10} {'':>8} {wall:6.2f}s {wall / base:7.1f}x  no (exit {code})", flush=True)
            failed += 1
            continue
        r = job.manifest(name).get("reliability", {})
        same = job.result(name) == reference
        failed += not same
        print(f"{name:18} {faults:6d} {r.get('shards_reissued', 0):9d} {r.get('duplicates_dropped', 0):10d} {r.get('resumed_shards', 0):8d} "
              f"{wall:6.2f}s {wall / base:7.1f}x  {'yes' if same else 'NO'}", flush=True)
    code, faults, name, wall, last = scenario_poison(job, a.short)
    failed += code != 0
    print(f"{name:18} {faults:6d} {'':>9} {'':>10} {'':>8} {wall:6.2f}s {wall / clean2_wall:7.1f}x  "
          f"{'failed as it must' if code == 0 else 'NO: ' + last}", flush=True)
    if failed:
        print(f"(logs kept in {work})")
    else:
        shutil.rmtree(work)
    print(f"{7 - failed - skipped} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
