"""The benchmark models, built with fixed seeds so that the ONNX files shipped in
scripts/benchmarks/data and the torch modules the benchmark rebuilds have the same weights.

    python models.py export DIR     # write flattendense1000.onnx, bpnet64x8.onnx(+.data), bpnet64x8_counts.onnx(+.data), trivial.onnx
    python models.py trivial DIR    # only trivial.onnx (needs onnx, not torch)

Needs torch, onnx, onnxscript and bpnet-lite (scripts/bench makes a venv with them).
"""
import os, sys, warnings

warnings.filterwarnings("ignore")

try:
    import torch
    Module = torch.nn.Module
except ImportError:          # trivial() needs only onnx
    torch = None
    Module = object


class FlattenDense(Module):
    """The seed tutorial's model: a dense layer over the flattened one-hot sequence, scaled by beta, shifted by alpha."""
    def __init__(self, length=1000, n_outputs=3):
        super().__init__()
        self.dense = torch.nn.Linear(length * 4, n_outputs)

    def forward(self, X, alpha, beta):
        return self.dense(X.reshape(X.shape[0], -1)) * beta + alpha


def flatten_dense():
    torch.manual_seed(0)
    return FlattenDense(1000, 3).eval()


def bpnet():
    """bpnet-lite's BPNet: 64 filters, 8 dilated residual layers, 2114 bp in, 1000 bp profile out, 2 control tracks."""
    from bpnetlite import BPNet
    torch.manual_seed(0)
    return BPNet(n_filters=64, n_layers=8, n_outputs=2, n_control_tracks=2).eval()


def bpnet_counts():
    """The same BPNet's count head alone (bpnet-lite's CountWrapper): the model deep_lift_shap explains."""
    from bpnetlite.bpnet import CountWrapper
    return CountWrapper(bpnet()).eval()


def trivial(out):
    """A trivial model for scheduler throughput: y = sum(X) + a0, per example."""
    import onnx
    from onnx import TensorProto, helper
    nodes = [
        helper.make_node("Flatten", ["X"], ["flat"], axis=1),
        helper.make_node("ReduceSum", ["flat", "axes"], ["s"], keepdims=1),
        helper.make_node("Add", ["s", "a0"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "trivial",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4, 4]),
         helper.make_tensor_value_info("a0", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="loom-bench")
    m.ir_version = 8
    onnx.save(m, os.path.join(out, "trivial.onnx"))


def export(out):
    os.makedirs(out, exist_ok=True)
    fd = flatten_dense()
    x = torch.zeros(2, 4, 1000)
    a = torch.zeros(2, 1)
    axes = {n: {0: "batch"} for n in ["X", "a0", "a1", "y"]}
    torch.onnx.export(fd, (x, a, a), os.path.join(out, "flattendense1000.onnx"), input_names=["X", "a0", "a1"],
                      output_names=["y"], dynamic_axes=axes, dynamo=False, opset_version=17)
    bp = bpnet()
    x = torch.zeros(2, 4, 2114)
    c = torch.zeros(2, 2, 2114)
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(bp, (x, c), os.path.join(out, "bpnet64x8.onnx"), input_names=["X", "a0"],
                      dynamic_shapes=({0: batch}, {0: batch}), dynamo=True, external_data=True)
    torch.onnx.export(bpnet_counts(), (x, c), os.path.join(out, "bpnet64x8_counts.onnx"), input_names=["X", "a0"],
                      dynamic_shapes=({0: batch}, {0: batch}), dynamo=True, external_data=True)
    for f in ("flattendense1000.onnx", "bpnet64x8.onnx", "bpnet64x8_counts.onnx"):
        scrub(os.path.join(out, f))


def scrub(path):
    """Drop exporter doc strings and metadata (they name local paths)."""
    import onnx
    m = onnx.load(path, load_external_data=False)
    m.doc_string = ""
    del m.metadata_props[:]
    for n in m.graph.node:
        n.doc_string = ""
        del n.metadata_props[:]
    for v in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        v.doc_string = ""
        del v.metadata_props[:]
    onnx.save(m, path)


if __name__ == "__main__":
    if sys.argv[1:2] == ["export"]:
        export(sys.argv[2])
        trivial(sys.argv[2])
    elif sys.argv[1:2] == ["trivial"]:
        trivial(sys.argv[2])
