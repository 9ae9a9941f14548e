"""The zoo benchmark: every model of scripts/conformance/zoo.py, exported by both torch
exporters, timed in one run against tangermeme 1.6 (torch) and onnxruntime, one thread each.

    .venv-bench/bin/python scripts/benchmarks/zoo_bench.py --loom .build/release/loom [--quick] [--models a,b]

predict over a product of N sequences × M extra inputs, batch 32: Loom as it runs by default
(row sharing: the X-only part of the graph once per distinct sequence) and with --no-share-rows;
tangermeme's apply_product; onnxruntime in a loop that gathers each batch with numpy. Then
deep_lift_shap over a smaller product (8 shuffles): Loom against tangermeme's apply_product.
Loom's time is the whole `loom run` process (start, loading, the job); tangermeme's and
onnxruntime's are the calls alone, after a warm-up. So the table also gives Loom's fixed cost,
*start*: the same unshared `loom run` on one example (process start, loading the model, the
results folder), and *wrm/ort*: onnxruntime's time against Loom's unshared time less that
start. Rates are examples per second; the best of
--repeat runs. Also prints the CPU, OpenBLAS's kernels and the largest difference from tangermeme.
"""
import argparse, contextlib, io, json, logging, os, subprocess, sys, tempfile, time, warnings

import numpy as np

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts", "conformance"))
sys.path.insert(0, os.path.join(ROOT, "Tests", "Fixtures", "conformance"))


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def one_hot(n, length, seed):
    rng = np.random.RandomState(seed)
    x = np.zeros((n, 4, length), np.float32)
    x[np.arange(n)[:, None], rng.randint(0, 4, (n, length)), np.arange(length)[None, :]] = 1
    return x


def timed_process(cmd, repeat):
    best = None
    for _ in range(repeat + 1):   # the first run warms the page cache
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    return best


def timed_call(f, repeat):
    f()
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--models", default="")
    a = ap.parse_args()
    import torch
    import onnxruntime as ort
    from tangermeme.product import apply_product
    from tangermeme.predict import predict
    from tangermeme.deep_lift_shap import deep_lift_shap
    import make_cases as mc
    from zoo import ZOO
    torch.set_num_threads(1)
    repeat = 1 if a.quick else a.repeat
    loom = os.path.abspath(a.loom)
    config = subprocess.run([loom, "inspect", "--kernels"], capture_output=True, text=True).stdout.strip()
    print(f"zoo: CPU {cpu_model()}; {config or 'OpenBLAS kernels: (loom inspect --kernels not available)'}; one thread each", flush=True)
    names = [n for n in ZOO if not a.models or n in a.models.split(",")]
    work = tempfile.mkdtemp(prefix="loom-zoo-bench-")
    # Jobs large enough that a process's start (about 20 ms) is a small part of Loom's time.
    n, m = (8, 8) if a.quick else (64, 128)
    dn, dm, shuffles = (2, 2, 4) if a.quick else (16, 8, 8)
    print(f"predict: {n} sequences x {m} args, batch 32; deep_lift_shap: {dn} x {dm}, {shuffles} shuffles", flush=True)
    print(f"{'model':17} {'export':8} {'loom':>8} {'unshared':>9} {'tgm':>8} {'ort':>8} {'unsh/tgm':>9} {'unsh/ort':>9} {'start':>6} "
          f"{'wrm/ort':>8} {'dflt/tgm':>9} {'dls loom':>9} {'dls tgm':>8} {'dls x':>6} {'max err':>8}", flush=True)
    rows = []
    for name in names:
        make, length, ashape = ZOO[name]
        torch.manual_seed(0)
        model = make().eval()
        X = one_hot(n, length, 1)
        A = np.random.RandomState(2).rand(m, *ashape).astype(np.float32)
        np.save(os.path.join(work, f"{name}_x.npy"), X)
        np.save(os.path.join(work, f"{name}_a.npy"), A)
        np.save(os.path.join(work, f"{name}_x1.npy"), X[:1])
        np.save(os.path.join(work, f"{name}_a1.npy"), A[:1])
        Xt, At = torch.from_numpy(X), torch.from_numpy(A)
        t_tgm = timed_call(lambda: apply_product(predict, model, Xt, args=(At,), batch_size=32, device="cpu"), repeat)
        y_tgm = apply_product(predict, model, Xt, args=(At,), batch_size=32, device="cpu").numpy()
        DX, DA = Xt[:dn], At[:dm]
        np.save(os.path.join(work, f"{name}_dx.npy"), X[:dn])
        np.save(os.path.join(work, f"{name}_da.npy"), A[:dm])
        t_dls_tgm = timed_call(lambda: apply_product(deep_lift_shap, model, DX, args=(DA,), batch_size=32, device="cpu",
                                                     n_shuffles=shuffles, random_state=0), repeat)
        for exporter in ("classic", "dynamo"):
            path = os.path.join(work, f"{name}_{exporter}.onnx")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                mc.export(model, Xt[:2], [At[:2]], path, exporter == "dynamo")
            base = [loom, "run", "--mode", "product", "--model", path, "--x", os.path.join(work, f"{name}_x.npy"),
                    "--arg", os.path.join(work, f"{name}_a.npy"), "--batch-size", "32", "--threads", "1", "--quiet", "--overwrite"]
            out = os.path.join(work, f"out_{name}_{exporter}")
            t_loom = timed_process(base + ["--out", out], repeat)
            t_unsh = timed_process(base + ["--out", out + "_u", "--no-share-rows"], repeat)
            one = [loom, "run", "--mode", "product", "--model", path, "--x", os.path.join(work, f"{name}_x1.npy"),
                   "--arg", os.path.join(work, f"{name}_a1.npy"), "--batch-size", "32", "--threads", "1", "--quiet", "--overwrite",
                   "--no-share-rows", "--out", out + "_1"]
            t_start = timed_process(one, repeat)
            y = np.load(os.path.join(out, "y.npy")).reshape(y_tgm.shape)
            err = float(np.abs(y - y_tgm).max())
            so = ort.SessionOptions()
            so.intra_op_num_threads = so.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            inames = [i.name for i in sess.get_inputs()]
            total = n * m
            def run_ort():
                for lo in range(0, total, 32):
                    e = np.arange(lo, min(lo + 32, total))
                    sess.run(None, {inames[0]: X[e // m], inames[1]: A[e % m]})
            t_ort = timed_call(run_ort, repeat)
            dls = [loom, "run", "--mode", "product", "--func", "deep-lift-shap", "--model", path, "--x", os.path.join(work, f"{name}_dx.npy"),
                   "--arg", os.path.join(work, f"{name}_da.npy"), "--batch-size", "32", "--threads", "1", "--quiet", "--overwrite",
                   "--n-shuffles", str(shuffles), "--random-state", "0", "--out", out + "_dls"]
            t_dls = timed_process(dls, repeat)
            r = dict(model=name, exporter=exporter, loom=total / t_loom, unshared=total / t_unsh, tangermeme=total / t_tgm,
                     onnxruntime=total / t_ort, start_seconds=t_start, dls_loom=dn * dm / t_dls, dls_tangermeme=dn * dm / t_dls_tgm, max_error=err)
            rows.append(r)
            print(f"{name:17} {exporter:8} {r['loom']:8.0f} {r['unshared']:9.0f} {r['tangermeme']:8.0f} {r['onnxruntime']:8.0f} "
                  f"{r['unshared'] / r['tangermeme']:9.2f} {r['unshared'] / r['onnxruntime']:9.2f} {t_start * 1000:6.1f} "
                  f"{t_ort / max(t_unsh - t_start, 1e-9):8.2f} {r['loom'] / r['tangermeme']:9.2f} "
                  f"{r['dls_loom']:9.2f} {r['dls_tangermeme']:8.2f} {r['dls_loom'] / r['dls_tangermeme']:6.2f} {err:8.1e}", flush=True)
    from bench import raw_figures_path
    raw = raw_figures_path("zoo.json")
    with open(raw, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"(rates in examples/s; raw figures in {raw})")


if __name__ == "__main__":
    # Every folder this run makes is inside one scratch folder, removed at the end (also on failure).
    with tempfile.TemporaryDirectory(prefix="loom-bench-") as scratch:
        tempfile.tempdir = scratch
        main()
