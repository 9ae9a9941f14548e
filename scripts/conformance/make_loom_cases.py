"""More conformance cases, computed by tangermeme 1.6 exactly as the shared ones are.

The shared cases cover every function, but their deep_lift_shap models are linear, so
DeepLIFT's rules (ReLU's rescale, MaxPool's, softmax's) never act. These cases use
non-linear models to check those rules, the inner functions, targets and hypothetical
contributions against tangermeme.

    .venv-bench/bin/python scripts/conformance/make_loom_cases.py Tests/Fixtures/conformance [NAME ...]

Needs the benchmark venv (scripts/bench makes it: tangermeme, torch, onnx, onnxscript, bpnet-lite).
"""
import os, sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Tests", "Fixtures", "conformance"))
import make_cases as mc  # noqa: E402  (the shared case builder)


class ConvPoolSoftmax(torch.nn.Module):
    """Conv, ReLU, overlapping MaxPool (windows 4, stride 2), a dense layer and a softmax over 3 outputs."""
    def __init__(self, length=50):
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 6, 5, padding=2)
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.MaxPool1d(4, 2)
        self.dense = torch.nn.Linear(6 * ((length - 4) // 2 + 1), 3)
        self.softmax = torch.nn.Softmax(dim=-1)

    def forward(self, X, bias):
        h = self.pool(self.relu(self.conv(X)))
        return self.softmax(self.dense(h.reshape(h.shape[0], -1)) + bias)


class SigmoidTanh(torch.nn.Module):
    """Sigmoid and Tanh activations around a dense layer, scaled by an argument."""
    def __init__(self, length=30):
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 5, 3, padding=1)
        self.sig = torch.nn.Sigmoid()
        self.dense = torch.nn.Linear(5 * length, 2)
        self.tanh = torch.nn.Tanh()

    def forward(self, X, scale):
        h = self.sig(self.conv(X))
        return self.tanh(self.dense(h.reshape(h.shape[0], -1))) * scale


def bpnet_counts(n_filters, n_layers, ctl):
    from bpnetlite.bpnet import CountWrapper
    return CountWrapper(mc.bpnet(n_filters, n_layers, ctl))


def loom_cases():
    X100 = mc.ohe((16, 4, 100), 3)
    X60 = mc.ohe((6, 4, 60), 4)
    X50 = mc.ohe((5, 4, 50), 5)
    X30 = mc.ohe((4, 4, 30), 6)
    return [
        dict(name="loom_convpool_pairwise_deep_lift_shap", model=lambda: mc.ConvPoolDense(100), x=X100[:4],
             args=[mc.rs(20, 3, 1)], mode="pairwise", func="deep-lift-shap", batch_size=8, atol=2e-6,
             opts={"target": 1, "n-shuffles": 5, "random-state": 3},
             about="deep_lift_shap through ReLU and MaxPool (non-overlapping windows), target 1, 5 shuffles"),
        dict(name="loom_residual_product_deep_lift_shap_hypothetical", model=lambda: mc.ResidualConv(60), x=X60[:3],
             args=[mc.rs(21, 2, 1)], mode="product", func="deep-lift-shap", batch_size=4, atol=2e-6,
             opts={"n-shuffles": 4, "random-state": 1, "hypothetical": True},
             about="Hypothetical contributions through a residual block (ReLU), batch size 4 splitting references across passes"),
        dict(name="loom_softmax_pairwise_deep_lift_shap", model=lambda: ConvPoolSoftmax(50), x=X50[:3],
             args=[mc.rs(22, 2, 3)], mode="pairwise", func="deep-lift-shap", batch_size=6, atol=2e-6,
             opts={"target": 2, "n-shuffles": 3, "random-state": 7},
             about="deep_lift_shap through overlapping MaxPool windows and tangermeme's softmax rule"),
        dict(name="loom_sigmoid_tanh_product_deep_lift_shap", model=lambda: SigmoidTanh(30), x=X30[:3],
             args=[mc.rs(23, 2, 1)], mode="product", func="deep-lift-shap", batch_size=5, atol=2e-6,
             opts={"target": 1, "n-shuffles": 4, "random-state": 11},
             about="The rescale rule on Sigmoid and Tanh"),
        dict(name="loom_bpnet_count_pairwise_deep_lift_shap", model=lambda: bpnet_counts(8, 3, 2),
             x=mc.ohe((2, 4, 160), 8),
             args=[torch.from_numpy(abs(mc.np.random.RandomState(9).randn(2, 2, 160))).float()],
             mode="pairwise", func="deep-lift-shap", dynamo=True, batch_size=4, atol=1e-7,
             opts={"n-shuffles": 3, "random-state": 2},
             about="A small BPNet's count head (bpnet-lite's CountWrapper), dynamo export, against control tracks"),
        dict(name="loom_convpool_product_ablate_of_deep_lift_shap", model=lambda: mc.ConvPoolDense(100), x=X100[:2],
             args=[mc.rs(24, 2, 1)], mode="product", func="ablate", batch_size=4, atol=2e-6,
             opts={"start": 40, "end": 60, "n": 2, "inner-func": "deep-lift-shap", "n-shuffles": 3, "random-state": 5},
             about="ablate whose inner function is deep_lift_shap: the shuffle seed also seeds the references"),
        dict(name="loom_convdense_product_ablate_two_outputs", model=lambda: mc.ConvDense(100, 3), x=X100[:3],
             args=[mc.rs(25, 2, 1)[:, :, None]], mode="product", func="ablate", batch_size=4,
             opts={"start": 0, "end": -1, "n": 3, "random-state": 9},
             about="ablate of a two-output model over the whole sequence (end -1): nested [before/after][output]"),
        dict(name="loom_threearg_product_saturation_mutagenesis_target", model=lambda: mc.ThreeArg(37, 5),
             x=mc.ohe((2, 4, 37), 10), args=[mc.rs(26, 2, 1), mc.rs(27, 2, 1), mc.rs(28, 1, 1)],
             mode="product", func="saturation-mutagenesis", batch_size=3,
             opts={"start": 5, "end": 20, "target": 2},
             about="Saturation mutagenesis of a region with a target, three args"),
        dict(name="loom_residual_pairwise_saturation_mutagenesis_hypothetical", model=lambda: mc.ResidualConv(60),
             x=X60[:2], args=[mc.rs(29, 3, 1)], mode="pairwise", func="saturation-mutagenesis", batch_size=4,
             opts={"hypothetical": True},
             about="Hypothetical saturation mutagenesis of a non-linear model"),
        dict(name="loom_convpool_pairwise_marginalize_of_deep_lift_shap", model=lambda: mc.ConvPoolDense(100),
             x=X100[:3], args=[mc.rs(30, 2, 1)], mode="pairwise", func="marginalize", batch_size=4, atol=2e-6,
             opts={"motif": "GATTACA", "inner-func": "deep-lift-shap", "n-shuffles": 2, "random-state": 4, "target": 0},
             about="marginalize of deep_lift_shap through ReLU and MaxPool"),
        dict(name="loom_sigmoid_tanh_product_ablate_of_saturation_mutagenesis", model=lambda: SigmoidTanh(30),
             x=mc.ohe((2, 4, 30), 41), args=[mc.rs(42, 2, 1)], mode="product", func="ablate", batch_size=3,
             opts={"start": 10, "end": 20, "n": 2, "random-state": 3, "inner-func": "saturation-mutagenesis"},
             about="ablate whose inner function is saturation_mutagenesis (over the whole sequence)"),
        dict(name="loom_sigmoid_tanh_pairwise_marginalize_of_saturation_mutagenesis", model=lambda: SigmoidTanh(30),
             x=mc.ohe((3, 4, 30), 43), args=[mc.rs(44, 3, 1)], mode="pairwise", func="marginalize", batch_size=4,
             opts={"motif": "GATA", "inner-func": "saturation-mutagenesis", "hypothetical": True},
             about="marginalize whose inner function is hypothetical saturation_mutagenesis"),
    ]


if __name__ == "__main__":
    root = sys.argv[1]
    only = set(sys.argv[2:])
    for c in loom_cases():
        if only and c["name"] not in only:
            continue
        mc.make_case(root, c)
        print("made", c["name"])
