"""The model zoo: the architectures genomics groups train, small and with random weights, each
taking X (batch, 4, L) first and, where it has one, an extra input (a cell state, a control track).

Used by make_zoo_cases.py (conformance cases against tangermeme) and by scripts/bench (speed).
Every model returns (batch, outputs), so deep_lift_shap can attribute it.
"""
import torch
from torch import nn


class Basset(nn.Module):
    """Basset-like: three conv/BN/ReLU/max-pool blocks, two dense layers; a depth scalar added to the output."""
    def __init__(self, length=200, outputs=4):
        super().__init__()
        self.c1, self.b1, self.r1, self.p1 = nn.Conv1d(4, 32, 19, padding=9), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(3)
        self.c2, self.b2, self.r2, self.p2 = nn.Conv1d(32, 32, 11, padding=5), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(4)
        self.c3, self.b3, self.r3, self.p3 = nn.Conv1d(32, 32, 7, padding=3), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(4)
        n = 32 * (((length // 3) // 4) // 4)
        self.fc1, self.r4, self.drop = nn.Linear(n, 64), nn.ReLU(), nn.Dropout(0.3)
        self.fc2 = nn.Linear(64, outputs)

    def forward(self, x, depth):
        h = self.p1(self.r1(self.b1(self.c1(x))))
        h = self.p2(self.r2(self.b2(self.c2(h))))
        h = self.p3(self.r3(self.b3(self.c3(h))))
        return self.fc2(self.drop(self.r4(self.fc1(h.flatten(1))))) + depth


class DeepSEA(nn.Module):
    """DeepSEA/Beluga-like: conv/ReLU/pool stacks and sigmoid heads; a cell state scales the logits."""
    def __init__(self, length=200, outputs=5):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(4, 24, 8), nn.ReLU(), nn.MaxPool1d(4), nn.Conv1d(24, 32, 8), nn.ReLU(), nn.MaxPool1d(4))
        n = 32 * (((length - 7) // 4 - 7) // 4)
        self.head = nn.Sequential(nn.Linear(n, 32), nn.ReLU(), nn.Linear(32, outputs))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x, cell):
        return self.sigmoid(self.head(self.conv(x).flatten(1)) * cell)


class DanQ(nn.Module):
    """DanQ-like: a conv layer, max-pool, a bidirectional LSTM over positions, a dense head with sigmoid."""
    def __init__(self, length=200, outputs=3, hidden=8):
        super().__init__()
        self.conv, self.relu, self.pool = nn.Conv1d(4, 16, 13, padding=6), nn.ReLU(), nn.MaxPool1d(8)
        self.lstm = nn.LSTM(16, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden * (length // 8), outputs)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x, bias):
        h = self.pool(self.relu(self.conv(x))).transpose(1, 2)
        h, _ = self.lstm(h)
        return self.sigmoid(self.fc(h.flatten(1)) + bias)


class Basenji(nn.Module):
    """Basenji/Enformer-like: a conv stem, GELU, average pooling, a dilated residual tower; a track count offset."""
    def __init__(self, length=256, outputs=3, channels=24):
        super().__init__()
        self.stem, self.gelu, self.pool = nn.Conv1d(4, channels, 15, padding=7), nn.GELU(), nn.AvgPool1d(4)
        self.tower = nn.ModuleList(nn.Sequential(nn.GELU(), nn.Conv1d(channels, channels, 3, padding=d, dilation=d),
                                                 nn.BatchNorm1d(channels)) for d in (1, 2, 4, 8))
        self.head = nn.Linear(channels * (length // 4), outputs)

    def forward(self, x, offset):
        h = self.pool(self.gelu(self.stem(x)))
        for block in self.tower:
            h = h + block(h)
        return self.head(h.flatten(1)) + offset


class Transformer(nn.Module):
    """A transformer encoder layer (nn.TransformerEncoderLayer) on a conv stem; a cell-state token added."""
    def __init__(self, length=64, outputs=2, d=16):
        super().__init__()
        self.stem, self.relu, self.pool = nn.Conv1d(4, d, 7, padding=3), nn.ReLU(), nn.MaxPool1d(4)
        self.encoder = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.fc = nn.Linear(d, outputs)

    def forward(self, x, cell):
        h = self.pool(self.relu(self.stem(x))).transpose(1, 2) + cell.unsqueeze(1)
        return self.fc(self.encoder(h).mean(1))


class MixedActivations(nn.Module):
    """ELU, LeakyReLU, Softplus and SiLU modules, and the same activations called functionally."""
    def __init__(self, length=100, outputs=2, functional=False):
        super().__init__()
        self.functional = functional
        self.c1, self.c2, self.c3 = nn.Conv1d(4, 12, 9, padding=4), nn.Conv1d(12, 12, 5, padding=2), nn.Conv1d(12, 8, 5, padding=2)
        self.elu, self.leaky, self.softplus, self.silu = nn.ELU(), nn.LeakyReLU(0.1), nn.Softplus(), nn.SiLU()
        self.fc = nn.Linear(8 * length, outputs)

    def forward(self, x, depth):
        if self.functional:
            h = torch.nn.functional.silu(torch.nn.functional.leaky_relu(torch.nn.functional.elu(self.c1(x)), 0.1))
            h = torch.nn.functional.softplus(self.c2(h))
        else:
            h = self.silu(self.leaky(self.elu(self.c1(x))))
            h = self.softplus(self.c2(h))
        return self.fc(self.c3(h).flatten(1)) * depth


class CellStateLate(nn.Module):
    """A cell-state vector concatenated after the sequence trunk (the args enter late: rows share)."""
    def __init__(self, length=100, outputs=3, cells=6):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv1d(4, 16, 11, padding=5), nn.ReLU(), nn.MaxPool1d(4), nn.Flatten(), nn.Linear(16 * (length // 4), 32), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(32 + cells, 16), nn.ReLU(), nn.Linear(16, outputs))

    def forward(self, x, cell):
        return self.head(torch.cat([self.trunk(x), cell], dim=1))


class CellStateEarly(nn.Module):
    """A cell-state vector broadcast along the sequence and concatenated at the input (the args enter early)."""
    def __init__(self, length=100, outputs=3, cells=2):
        super().__init__()
        self.conv, self.relu, self.pool = nn.Conv1d(4 + cells, 16, 11, padding=5), nn.ReLU(), nn.MaxPool1d(4)
        self.fc = nn.Linear(16 * (length // 4), outputs)

    def forward(self, x, cell):
        c = cell.unsqueeze(-1).expand(-1, -1, x.shape[-1])
        return self.fc(self.pool(self.relu(self.conv(torch.cat([x, c], dim=1)))).flatten(1))


def bpnet(count_head=True, length=256):
    """BPNet from bpnet-lite, with a control track; the count head for deep_lift_shap."""
    from bpnetlite.bpnet import BPNet, CountWrapper
    model = BPNet(n_filters=16, n_layers=4, n_outputs=1, n_control_tracks=1, trimming=(length - 200) // 2)
    return CountWrapper(model) if count_head else model


class ChromBPNetCounts(nn.Module):
    """bpnet-lite's ChromBPNet count head (a bias BPNet and an accessibility BPNet, their counts joined
    through its _Exp and _Log modules) with a read-depth offset as the extra input. ChromBPNet takes no
    control track: its X_ctl is ignored, so the classic exporter drops that input."""
    def __init__(self, length=256):
        super().__init__()
        from bpnetlite.bpnet import BPNet
        from bpnetlite.chrombpnet import ChromBPNet
        trim = (length - 200) // 2
        bias = BPNet(n_filters=8, n_layers=2, n_outputs=1, n_control_tracks=0, trimming=trim)
        accessibility = BPNet(n_filters=16, n_layers=4, n_outputs=1, n_control_tracks=0, trimming=trim)
        self.model = ChromBPNet(bias=bias, accessibility=accessibility)

    def forward(self, x, depth):
        return self.model(x)[1] + depth


# name: (constructor, sequence length, the extra input's per-example shape)
ZOO = {
    "basset": (lambda: Basset(200), 200, (4,)),
    "deepsea": (lambda: DeepSEA(200), 200, (5,)),
    "danq": (lambda: DanQ(200), 200, (3,)),
    "basenji": (lambda: Basenji(256), 256, (3,)),
    "transformer": (lambda: Transformer(64), 64, (16,)),
    "mixed_modules": (lambda: MixedActivations(100), 100, (1,)),
    "mixed_functional": (lambda: MixedActivations(100, functional=True), 100, (1,)),
    "cellstate_late": (lambda: CellStateLate(100), 100, (6,)),
    "cellstate_early": (lambda: CellStateEarly(100), 100, (2,)),
    "bpnet_counts": (lambda: bpnet(True), 256, (1, 256)),
    "chrombpnet_counts": (lambda: ChromBPNetCounts(256), 256, (1,)),
}
