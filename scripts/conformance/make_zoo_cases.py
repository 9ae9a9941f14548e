"""Conformance cases for the model zoo (zoo.py): each model exported with both torch exporters,
predict and deep_lift_shap over a product, computed by tangermeme 1.6 as the shared cases are.

    .venv-bench/bin/python scripts/conformance/make_zoo_cases.py Tests/Fixtures/conformance [NAME ...]

deep_lift_shap is computed by tangermeme in float64 (float32 noise in tangermeme itself would
otherwise dominate the comparison of random-weight attributions, which are tiny), and compared
with an absolute tolerance of 1e-3 of the largest attribution: a wrong rule (a rescale where
tangermeme takes the gradient, or the reverse) moves attributions by several per cent of it.
The exporters' module metadata (class_hierarchy, name_scopes) is kept: Loom reads it to choose
DeepLIFT's rules. Needs the benchmark venv (scripts/bench makes it).
"""
import json, os, shutil, sys, warnings, contextlib, io, logging

import numpy as np
import torch

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "Tests", "Fixtures", "conformance"))
import make_cases as mc  # noqa: E402
from zoo import ZOO  # noqa: E402
from tangermeme.product import apply_product  # noqa: E402
from tangermeme.predict import predict  # noqa: E402
from tangermeme.deep_lift_shap import deep_lift_shap  # noqa: E402

KEEP = {"pkg.torch.onnx.class_hierarchy", "pkg.torch.onnx.name_scopes"}


def scrub(path):
    """Drops doc strings and stack traces (they name local paths); keeps the module metadata Loom reads."""
    import onnx
    m = onnx.load(path, load_external_data=False)
    m.doc_string = ""
    m.graph.doc_string = ""
    del m.metadata_props[:]
    for n in m.graph.node:
        n.doc_string = ""
        keep = [(p.key, p.value) for p in n.metadata_props if p.key in KEEP]
        del n.metadata_props[:]
        for k, v in keep:
            n.metadata_props.add(key=k, value=v)
    onnx.save(m, path)


def make(root, name, exporter, func):
    make_model, length, ashape = ZOO[name]
    case_name = f"zoo_{name}_{exporter}_{func.replace('-', '_')}"
    d = os.path.join(root, case_name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "expected"))
    torch.manual_seed(0)
    model = make_model().eval()
    x = mc.ohe((3, 4, length), 1)
    a = torch.from_numpy(np.random.RandomState(2).rand(2, *ashape)).float()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        mc.export(model, x, [a], os.path.join(d, "model.onnx"), exporter == "dynamo")
    scrub(os.path.join(d, "model.onnx"))
    np.save(os.path.join(d, "x.npy"), x.numpy())
    np.save(os.path.join(d, "a0.npy"), a.numpy())
    argv = ["--mode", "product", "--func", func, "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy", "--batch-size", "8"]
    if func == "predict":
        y = apply_product(predict, model, x, args=(a,), batch_size=8, device="cpu")
        y = y.detach().numpy().astype(np.float32)
        atol = 1e-4
    else:
        argv += ["--n-shuffles", "4", "--random-state", "0"]
        y = apply_product(deep_lift_shap, model.double(), x.double(), args=(a.double(),), batch_size=8, device="cpu",
                          n_shuffles=4, random_state=0)
        y = y.detach().numpy().astype(np.float32)
        atol = float(1e-3 * np.abs(y).max())
    np.save(os.path.join(d, "expected", "y.npy"), y)
    with open(os.path.join(d, "expected", "manifest.json"), "w") as f:
        json.dump({"outputs": [{"index": [], "file": "y.npy", "shape": list(y.shape), "dtype": "float32"}]}, f, indent=1)
    about = f"{name} exported by the {exporter} exporter: {func} over a product (tangermeme 1.6"
    about += ", float64, compared within 1e-3 of the largest attribution)" if func != "predict" else ")"
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump({"name": case_name, "about": about, "argv": argv, "atol": atol, "rtol": 1e-4}, f, indent=1)
    print(case_name, y.shape, f"atol {atol:.2e}", flush=True)


def main():
    root = sys.argv[1]
    names = sys.argv[2:] or list(ZOO)
    for name in names:
        for exporter in ("classic", "dynamo"):
            for func in ("predict", "deep-lift-shap"):
                make(root, name, exporter, func)


if __name__ == "__main__":
    main()
