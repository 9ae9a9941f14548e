"""Loom's engine benchmark: examples/s for Loom in one process, tangermeme 1.6 (torch) and
onnxruntime on the same models and inputs, measured in the same run, one thread each.

    python bench.py --loom .build/release/loom [--quick] [--reference]

Loom's rate is measured twice: as it runs by default, computing the X-only part of
the graph once per distinct sequence in a batch, and with --no-share-rows (every
example's whole graph). Its rate is the job's own elapsed time (manifest.json: first shard to last write,
excluding process start and file loading); tangermeme's is the apply_pairwise /
apply_product call; onnxruntime's is a loop that gathers each batch with numpy and runs
the session. Each is warmed up first and the best of --repeat runs is kept.
--reference adds the tangermeme and onnxruntime rows (needs torch, tangermeme,
onnxruntime, bpnet-lite: scripts/bench makes a venv with them).
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def raw_figures_path(name):
    """Where a run's raw figures are kept: .build/bench/NAME in the repository (ignored by git)."""
    d = os.path.join(os.path.dirname(os.path.dirname(HERE)), ".build", "bench")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)
DATA = os.path.join(HERE, "data")


def one_hot(n, length, seed):
    rng = np.random.RandomState(seed)
    idx = rng.randint(0, 4, size=(n, length))
    x = np.zeros((n, 4, length), dtype=np.float32)
    x[np.arange(n)[:, None], idx, np.arange(length)[None, :]] = 1
    return x


def make_inputs(work, quick):
    n = 40 if quick else 200
    m = 10 if quick else 50
    files = {}
    files["x1000"] = one_hot(n, 1000, 0)
    files["alpha"] = np.random.RandomState(1).randn(m, 1).astype(np.float32)
    files["beta"] = np.random.RandomState(2).randn(m, 1).astype(np.float32)
    nb = 8 if quick else 64
    files["x2114"] = one_hot(nb, 2114, 3)
    files["ctl"] = np.abs(np.random.RandomState(4).randn(1, 2, 2114)).astype(np.float32)
    paths = {}
    for k, v in files.items():
        paths[k] = os.path.join(work, k + ".npy")
        np.save(paths[k], v)
    return files, paths


def cases(quick):
    fd = os.path.join(DATA, "flattendense1000.onnx")
    bp = os.path.join(DATA, "bpnet64x8.onnx")
    out = []
    for b in (32, 256):
        out.append(dict(name="FlattenDense L=1000 pairwise", model=fd, mode="pairwise", x="x1000", args=["alpha", "beta"], batch=b, torch="fd"))
        out.append(dict(name="FlattenDense L=1000 product", model=fd, mode="product", x="x1000", args=["alpha", "beta"], batch=b, torch="fd"))
    out.append(dict(name="BPNet 64x8 2114bp predict", model=bp, mode="product", x="x2114", args=["ctl"], batch=32, torch="bpnet"))
    return out


def examples(c, files):
    n = files[c["x"]].shape[0]
    lens = [files[a].shape[0] for a in c["args"]]
    if c["mode"] == "pairwise":
        return n * lens[0]
    total = n
    for l in lens:
        total *= l
    return total


def run_loom(loom, c, paths, repeat, extra=()):
    best = None
    out = tempfile.mkdtemp(prefix="loom-bench-")
    for _ in range(repeat + 1):   # the first run warms the page cache
        cmd = [loom, "run", "--mode", c["mode"], "--func", "predict", "--model", c["model"], "--x", paths[c["x"]]]
        for a in c["args"]:
            cmd += ["--arg", paths[a]]
        cmd += ["--batch-size", str(c["batch"]), "--out", out, "--quiet", "--overwrite", "--threads", "1", *extra]
        subprocess.run(cmd, check=True)
        with open(os.path.join(out, "manifest.json")) as f:
            m = json.load(f)
        t = m["elapsed_seconds"]
        best = t if best is None else min(best, t)
    y = {tuple(o["index"]): np.load(os.path.join(out, o["file"])) for o in m["outputs"]}
    return best, y


def run_tangermeme(c, files, repeat, model):
    import torch
    from tangermeme.predict import predict
    from tangermeme.product import apply_pairwise, apply_product
    torch.set_num_threads(1)
    apply = apply_pairwise if c["mode"] == "pairwise" else apply_product
    X = torch.from_numpy(files[c["x"]])
    args = tuple(torch.from_numpy(files[a]) for a in c["args"])
    apply(predict, model, X[:2], args=args, batch_size=c["batch"], device="cpu")  # warm-up
    best, y = None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        y = apply(predict, model, X, args=args, batch_size=c["batch"], device="cpu")
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    return best, y


def run_onnxruntime(c, files, repeat):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(c["model"], so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    X = files[c["x"]]
    args = [files[a] for a in c["args"]]
    n = X.shape[0]
    lens = [a.shape[0] for a in args]
    total = examples(c, files)

    def coords(lo, hi):
        e = np.arange(lo, hi)
        if c["mode"] == "pairwise":
            return e // lens[0], [e % lens[0]] * len(args)
        idx = []
        rest = e
        for l in reversed(lens):
            idx.append(rest % l)
            rest = rest // l
        return rest, list(reversed(idx))

    def once():
        outs = []
        for lo in range(0, total, c["batch"]):
            xi, ai = coords(lo, min(lo + c["batch"], total))
            feed = {names[0]: X[xi]}
            for k, a in enumerate(args):
                feed[names[k + 1]] = a[ai[k]]
            outs.append(sess.run(None, feed))
        return outs

    once() if total <= 64 else None
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        once()
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom", required=True)
    ap.add_argument("--quick", action="store_true", help="small inputs, one repeat: a smoke test of the script")
    ap.add_argument("--reference", action="store_true", help="also time tangermeme and onnxruntime")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    repeat = 1 if a.quick else a.repeat
    work = tempfile.mkdtemp(prefix="loom-bench-inputs-")
    files, paths = make_inputs(work, a.quick)
    models = {}
    if a.reference:
        sys.path.insert(0, HERE)
        import models as M
        models = {"fd": M.flatten_dense(), "bpnet": M.bpnet()}
    rows = []
    print(f"{'case':34} {'batch':>5} {'examples':>9} {'loom ex/s':>11} {'(unshared)':>11} {'tangermeme':>11} {'onnxruntime':>12} {'loom/tgm':>9} {'loom/ort':>9} {'max |diff|':>10}", flush=True)
    for c in cases(a.quick):
        n = examples(c, files)
        tl, yl = run_loom(a.loom, c, paths, repeat)
        tu, _ = run_loom(a.loom, c, paths, repeat, ["--no-share-rows"])
        row = dict(case=c["name"], batch=c["batch"], examples=n, loom=n / tl, loom_unshared=n / tu)
        if a.reference:
            tt, yt = run_tangermeme(c, files, repeat, models[c["torch"]])
            to = run_onnxruntime(c, files, repeat)
            row.update(tangermeme=n / tt, onnxruntime=n / to)
            leaves = [yt] if not isinstance(yt, list) else yt
            row["diff"] = max(float(np.abs(yl[(k,) if len(yl) > 1 else ()] - t.numpy()).max()) for k, t in enumerate(leaves))
        rows.append(row)
        tg, ox = row.get("tangermeme"), row.get("onnxruntime")
        fmt = lambda v: f"{v:11.0f}" if v is not None else f"{'skipped':>11}"
        print(f"{c['name']:34} {c['batch']:5d} {n:9d} {row['loom']:11.0f} {row['loom_unshared']:11.0f} {fmt(tg)} {fmt(ox):>12} "
              f"{(row['loom'] / tg if tg else float('nan')):9.2f} {(row['loom'] / ox if ox else float('nan')):9.2f} "
              f"{row.get('diff', float('nan')):10.2g}", flush=True)
    raw = raw_figures_path("bench.json")
    with open(raw, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"(raw figures: {raw})")


if __name__ == "__main__":
    # Every folder this run makes is inside one scratch folder, removed at the end (also on failure).
    with tempfile.TemporaryDirectory(prefix="loom-bench-") as scratch:
        tempfile.tempdir = scratch
        main()
