"""Operator cases: one small ONNX graph per operator and attribute set, with its inputs and the
outputs onnxruntime computes for them, for Tests/LoomONNXTests/OperatorConformanceTests.swift.

    scripts/conformance/make_op_cases          # makes .venv-ops (onnx, onnxruntime, numpy) and runs this

Each case folder holds:
  model.onnx     X (batch, ...) float32 in, the operator's outputs out (bools and ints cast to float32)
  x.npy          X, batch 2
  y0.npy ...     onnxruntime's outputs
  grad.onnx      (when the operator passes gradients) X -> op -> weighted sum -> y (batch, 1), for the
                 gradient checks, which compare Loom's reverse pass with finite differences of its forward
  case.json      {"name", "opset", "outputs", "grad": bool}
The cases are committed; CI does not need onnxruntime.
"""
import json, os, shutil, sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "ops")
rng = np.random.default_rng(7)


def away_from(x, points, margin=0.05):
    """Moves values within `margin` of a kink (0, a clip bound) off it, so finite differences are clean."""
    for p in points:
        near = np.abs(x - p) < margin
        x = np.where(near, p + np.sign(x - p + 1e-9) * margin * 2, x)
    return x.astype(np.float32)


def graph(name, nodes, x_shape, outputs, initializers=(), opset=17):
    """A model with input X (batch, *x_shape[1:]) and `outputs` (name, float) after Casts where needed."""
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", *x_shape[1:]])]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    g = helper.make_graph(nodes, name, inputs, outs, [numpy_helper.from_array(v, k) for k, v in initializers])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def grad_graph(name, nodes, x_shape, output, out_shape, initializers=(), opset=17):
    """X -> nodes -> `output` -> times a fixed random weight -> summed per example -> y (batch, 1)."""
    w = rng.uniform(-1, 1, size=(1, *out_shape[1:])).astype(np.float32)
    # ReduceSum takes its axes as an input from opset 13, as an attribute before.
    reduce = (helper.make_node("ReduceSum", ["gf", "gaxes"], ["y"], keepdims=1) if opset >= 13
              else helper.make_node("ReduceSum", ["gf"], ["y"], keepdims=1, axes=[1]))
    extra = [helper.make_node("Mul", [output, "gw"], ["gm"]), helper.make_node("Flatten", ["gm"], ["gf"], axis=1), reduce]
    inits = list(initializers) + [("gw", w)] + ([("gaxes", np.array([1], dtype=np.int64))] if opset >= 13 else [])
    return graph(name + "_grad", list(nodes) + extra, x_shape, ["y"], inits, opset)


def case(name, nodes, outputs, x, initializers=(), opset=17, grad_output=None):
    """Writes one case: runs the graph on onnxruntime; with `grad_output`, also a gradient model through it."""
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    m = graph(name, nodes, x.shape, outputs, initializers, opset)
    onnx.save(m, os.path.join(d, "model.onnx"))
    np.save(os.path.join(d, "x.npy"), x)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    results = sess.run(None, {"X": x})
    for k, r in enumerate(results):
        np.save(os.path.join(d, f"y{k}.npy"), r.astype(np.float32))
    if grad_output is not None and opset >= 7:   # (before opset 7, Mul broadcast only with an attribute)
        shape = results[outputs.index(grad_output)].shape
        onnx.save(grad_graph(name, nodes, x.shape, grad_output, shape, initializers, opset), os.path.join(d, "grad.onnx"))
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump({"name": name, "opset": opset, "outputs": len(outputs), "grad": grad_output is not None and opset >= 7}, f, indent=1)


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, **attrs)


def as_float(src, dst):
    return node("Cast", [src], [dst], to=TensorProto.FLOAT)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    x = away_from(rng.uniform(-3, 3, size=(2, 3, 6)).astype(np.float32), [0, -3, 3])

    # Activations: one node each, gradient checked.
    for name, op, attrs, opset in [
        ("elu", "Elu", {"alpha": 0.7}, 17), ("leaky_relu", "LeakyRelu", {"alpha": 0.2}, 17), ("selu", "Selu", {}, 17),
        ("celu", "Celu", {"alpha": 1.5}, 17), ("gelu", "Gelu", {}, 20), ("gelu_tanh", "Gelu", {"approximate": "tanh"}, 20),
        ("mish", "Mish", {}, 18), ("hard_sigmoid", "HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, 17),
        ("hard_swish", "HardSwish", {}, 17), ("softsign", "Softsign", {}, 17), ("erf", "Erf", {}, 17),
    ]:
        case(name, [node(op, ["X"], ["Y"], **attrs)], ["Y"], x, opset=opset, grad_output="Y")
    case("reciprocal", [node("Reciprocal", ["X"], ["Y"])], ["Y"], away_from(x, [0], 0.5), grad_output="Y")
    x6 = away_from(x * 3, [0, 6])
    case("clip_relu6", [node("Clip", ["X", "lo", "hi"], ["Y"])], ["Y"], x6,
         [("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))], grad_output="Y")
    case("clip_min_only", [node("Clip", ["X", "lo"], ["Y"])], ["Y"], x, [("lo", np.array(-1, np.float32))], grad_output="Y")
    case("clip_opset6", [node("Clip", ["X"], ["Y"], min=-1.0, max=2.0)], ["Y"], away_from(x, [-1, 2]), opset=6, grad_output="Y")

    # Selection and masks.
    slope = rng.uniform(0, 0.5, size=(3, 1)).astype(np.float32)
    case("prelu", [node("PRelu", ["X", "s"], ["Y"])], ["Y"], x, [("s", slope)], grad_output="Y")
    c = rng.uniform(-1, 1, size=(1, 3, 1)).astype(np.float32)
    case("max_broadcast", [node("Max", ["X", "c"], ["Y"])], ["Y"], x, [("c", c)], grad_output="Y")
    case("min_three", [node("Min", ["X", "c", "d"], ["Y"])], ["Y"], x,
         [("c", c), ("d", np.array([0.5], np.float32))], grad_output="Y")
    case("mod_fmod", [node("Mod", ["X", "m"], ["Y"], fmod=1)], ["Y"], away_from(x, [-1.3, 0, 1.3, -2.6, 2.6]),
         [("m", np.array([1.3], np.float32))], grad_output="Y")
    case("mod_int", [node("Mul", ["X", "ten"], ["t"]), node("Cast", ["t"], ["ti"], to=TensorProto.INT64),
                     node("Mod", ["ti", "three"], ["r"]), as_float("r", "Y")], ["Y"], x,
         [("ten", np.array([10], np.float32)), ("three", np.array([-3], np.int64))])
    for op in ["Greater", "Less", "Equal", "GreaterOrEqual", "LessOrEqual"]:
        case(f"compare_{op.lower()}", [node("Cast", ["X"], ["i"], to=TensorProto.INT64), as_float("i", "r"), node(op, ["r", "c"], ["b"]),
                                       as_float("b", "Y")], ["Y"], x,
             [("c", np.array([[[0], [1], [-1]]], np.float32))], opset=17)
    case("logic", [node("Greater", ["X", "z"], ["p"]), node("Less", ["X", "one"], ["q"]),
                   node("And", ["p", "q"], ["a"]), node("Or", ["p", "q"], ["o"]), node("Xor", ["p", "q"], ["e"]), node("Not", ["p"], ["n"]),
                   as_float("a", "Y0"), as_float("o", "Y1"), as_float("e", "Y2"), as_float("n", "Y3")], ["Y0", "Y1", "Y2", "Y3"], x,
         [("z", np.array([0], np.float32)), ("one", np.array([1], np.float32))])
    case("where_softplus_dynamo", [node("Mul", ["X", "beta"], ["bx"]), node("Softplus", ["bx"], ["sp"]), node("Div", ["sp", "beta"], ["spb"]),
                                   node("Greater", ["bx", "thr"], ["big"]), node("Where", ["big", "X", "spb"], ["Y"])], ["Y"], x * 8,
         [("beta", np.array([1], np.float32)), ("thr", np.array([20], np.float32))], grad_output="Y")
    case("where_broadcast", [node("Greater", ["X", "z"], ["p"]), node("Where", ["p", "X", "h"], ["Y"])], ["Y"], x,
         [("z", np.array([0], np.float32)), ("h", rng.uniform(-1, 1, size=(3, 1)).astype(np.float32))], grad_output="Y")

    # Moving elements.
    pads = np.array([0, 1, 2, 0, 2, 1], np.int64)
    case("pad_constant", [node("Pad", ["X", "p", "v"], ["Y"])], ["Y"], x, [("p", pads), ("v", np.array(0.5, np.float32))], grad_output="Y")
    case("pad_reflect", [node("Pad", ["X", "p"], ["Y"], mode="reflect")], ["Y"], x, [("p", np.array([0, 0, 3, 0, 0, 2], np.int64))],
         grad_output="Y")
    case("pad_edge", [node("Pad", ["X", "p"], ["Y"], mode="edge")], ["Y"], x, [("p", pads)], grad_output="Y")
    case("pad_axes_opset18", [node("Pad", ["X", "p", "", "a"], ["Y"])], ["Y"], x,
         [("p", np.array([2, -1], np.int64)), ("a", np.array([-1], np.int64))], opset=18, grad_output="Y")
    case("pad_opset2", [node("Pad", ["X"], ["Y"], pads=[0, 0, 1, 0, 0, 1], value=-1.0)], ["Y"], x, opset=2, grad_output="Y")
    x1 = rng.uniform(-1, 1, size=(2, 1, 6)).astype(np.float32)
    case("expand", [node("Expand", ["X", "s"], ["Y"])], ["Y"], x1, [("s", np.array([4, 6], np.int64))], grad_output="Y")
    case("expand_rank_up", [node("Expand", ["X", "s"], ["Y"])], ["Y"], x1, [("s", np.array([1, 1, 3, 1], np.int64))])
    case("constant_of_shape", [node("Shape", ["X"], ["s"]), node("ConstantOfShape", ["s"], ["c"],
                                   value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.25])), node("Add", ["X", "c"], ["Y"])], ["Y"], x,
         grad_output="Y")
    case("tile", [node("Tile", ["X", "r"], ["Y"])], ["Y"], x, [("r", np.array([1, 2, 3], np.int64))], grad_output="Y")
    case("split_sizes", [node("Split", ["X", "s"], ["A", "B"], axis=2)], ["A", "B"], x, [("s", np.array([2, 4], np.int64))], grad_output="B")
    case("split_equal_opset13", [node("Split", ["X"], ["A", "B", "C"], axis=1)], ["A", "B", "C"], x, grad_output="C")
    case("split_num_outputs_opset18", [node("Split", ["X"], ["A", "B", "C", "D"], axis=2, num_outputs=4)], ["A", "B", "C", "D"], x,
         opset=18, grad_output="D")
    case("split_attr_opset11", [node("Split", ["X"], ["A", "B"], axis=-1, split=[5, 1])], ["A", "B"], x, opset=11, grad_output="A")

    # Normalization and pooling.
    gamma = rng.uniform(0.5, 1.5, size=(6,)).astype(np.float32)
    beta = rng.uniform(-0.5, 0.5, size=(6,)).astype(np.float32)
    case("layer_norm_last", [node("LayerNormalization", ["X", "g", "b"], ["Y"], epsilon=1e-5)], ["Y"], x, [("g", gamma), ("b", beta)],
         grad_output="Y")
    case("layer_norm_axis1_stats", [node("LayerNormalization", ["X", "g"], ["Y", "M", "I"], axis=1)], ["Y", "M", "I"], x,
         [("g", rng.uniform(0.5, 1.5, size=(3, 6)).astype(np.float32))], grad_output="Y")
    for name, attrs in [("avg_pool", {"kernel_shape": [3], "strides": [2]}),
                        ("avg_pool_pad", {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
                        ("avg_pool_pad_include", {"kernel_shape": [3], "strides": [2], "pads": [1, 1], "count_include_pad": 1}),
                        ("avg_pool_ceil", {"kernel_shape": [4], "strides": [3], "pads": [1, 1], "ceil_mode": 1, "count_include_pad": 1})]:
        case(name, [node("AveragePool", ["X"], ["Y"], **attrs)], ["Y"], x, grad_output="Y")
    # Recurrent layers, as torch exports DanQ's: X (batch, channels, length) -> (length, batch, channels).
    hidden = 4
    for name, op, gates, attrs in [("lstm_bidirectional", "LSTM", 4, {"direction": "bidirectional"}),
                                   ("lstm_forward_no_bias", "LSTM", 4, {}),
                                   ("gru_reverse_lbr", "GRU", 3, {"direction": "reverse", "linear_before_reset": 1}),
                                   ("gru_bidirectional", "GRU", 3, {"direction": "bidirectional"})]:
        dirs = 2 if attrs.get("direction") == "bidirectional" else 1
        w = rng.uniform(-0.5, 0.5, size=(dirs, gates * hidden, 3)).astype(np.float32)
        r = rng.uniform(-0.5, 0.5, size=(dirs, gates * hidden, hidden)).astype(np.float32)
        b = rng.uniform(-0.5, 0.5, size=(dirs, 2 * gates * hidden)).astype(np.float32)
        ins = ["T", "w", "r"] + ([] if "no_bias" in name else ["b"])
        inits = [("w", w), ("r", r)] + ([] if "no_bias" in name else [("b", b)])
        outs = ["Y", "Yh", "Yc"] if op == "LSTM" else ["Y", "Yh"]
        nodes = [node("Transpose", ["X"], ["T"], perm=[2, 0, 1]), node(op, ins, outs, hidden_size=hidden, **attrs)]
        # The batch is axis 2 of Y and axis 1 of the states: put it first for the gradient's weighted sum.
        case(name, nodes + [node("Transpose", ["Y"], ["Yb"], perm=[2, 0, 1, 3])], outs + ["Yb"], x * 0.5, inits, grad_output="Yb")
        case(name + "_state", nodes + [node("Transpose", [outs[-1]], ["Sb"], perm=[1, 0, 2])], outs + ["Sb"], x * 0.5, inits,
             grad_output="Sb")
    # Convolutions beyond 1-D: 2-D Conv (tangermeme's tests use it) and 1-D ConvTranspose. A random
    # stream of their own, so that adding them changed no earlier case.
    r2 = np.random.default_rng(11)
    def normal(*shape):
        return r2.standard_normal(shape).astype(np.float32)
    x4 = normal(2, 3, 6, 7)
    case("conv2d", [node("Conv", ["X", "w", "b"], ["Y"], kernel_shape=[3, 2], pads=[1, 0, 1, 1])], ["Y"], x4,
         [("w", normal(4, 3, 3, 2)), ("b", normal(4))], grad_output="Y")
    case("conv2d_strided_dilated", [node("Conv", ["X", "w"], ["Y"], kernel_shape=[3, 2], strides=[2, 1], dilations=[1, 2], pads=[0, 1, 1, 0])],
         ["Y"], x4, [("w", normal(4, 3, 3, 2))], grad_output="Y")
    case("conv2d_grouped_same", [node("Conv", ["X", "w"], ["Y"], kernel_shape=[3, 3], group=3, auto_pad="SAME_UPPER")], ["Y"], x4,
         [("w", normal(6, 1, 3, 3))], grad_output="Y")
    x3 = normal(2, 4, 9)
    case("conv_transpose", [node("ConvTranspose", ["X", "w", "b"], ["Y"], kernel_shape=[5], strides=[2], pads=[1, 2], output_padding=[1])],
         ["Y"], x3, [("w", normal(4, 3, 5)), ("b", normal(3))], grad_output="Y")
    case("conv_transpose_grouped_dilated", [node("ConvTranspose", ["X", "w"], ["Y"], kernel_shape=[3], strides=[3], dilations=[2], group=2)],
         ["Y"], x3, [("w", normal(4, 2, 3))], grad_output="Y")
    # Einsum, as hand-written attention exports it: two operands (X twice: a bilinear form), an
    # operand and a constant, `...`, an implicit output, one operand summed or transposed. Its own stream.
    r3 = np.random.default_rng(13)
    def normal3(*shape):
        return r3.standard_normal(shape).astype(np.float32)
    xa = normal3(2, 3, 4, 5)
    case("einsum_attention_scores", [node("Einsum", ["X", "X"], ["Y"], equation="bhqd,bhkd->bhqk")], ["Y"], xa, grad_output="Y")
    case("einsum_weights", [node("Einsum", ["X", "w"], ["Y"], equation="bhid,de->bihe")], ["Y"], xa, [("w", normal3(5, 6))], grad_output="Y")
    case("einsum_ellipsis_implicit", [node("Einsum", ["X", "w"], ["Y"], equation="...ij,jk")], ["Y"], xa, [("w", normal3(5, 2))],
         grad_output="Y")
    case("einsum_sum_transpose", [node("Einsum", ["X"], ["Y"], equation="bhij->bjh")], ["Y"], xa, grad_output="Y")
    case("einsum_broadcast_ellipsis", [node("Einsum", ["X", "w"], ["Y"], equation="b...ij,...jk->b...ik")], ["Y"], xa,
         [("w", normal3(1, 5, 3))], grad_output="Y")
    print(f"wrote {len(os.listdir(OUT))} cases to {OUT}")


if __name__ == "__main__":
    main()
