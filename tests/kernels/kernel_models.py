"""What the kernel tests share: the cell settings they run (every cell with native kernels, Elman
with both nonlinearities, a Jordan output activation), and the model shape the fused trainer runs."""

from __future__ import annotations

import torch
from torch import nn

import rnnkit

F64, F32 = torch.float64, torch.float32


CELLS = {
    "elman": {}, "elman_relu": {"nonlinearity": "relu"}, "lstm": {}, "gru": {},
    "jordan": {"output_activation": "tanh"},
}


def cell_name(kind: str) -> str:
    return kind.split("_")[0]


def states_of(h):
    return h if isinstance(h, tuple) else (h,)


class Net(nn.Module):
    """A recurrent stack and a linear head: the model shape the fused trainer runs."""

    def __init__(self, kind, I, H, P, layers, dtype):
        super().__init__()
        self.rnn = rnnkit.Recurrent(cell_name(kind), I, H, layers, batch_first=True, dtype=dtype, **CELLS[kind])
        self.head = nn.Linear(self.rnn.output_size, P, dtype=dtype)

    def forward(self, x):
        return self.head(self.rnn(x)[0])  # (B, T, P)


def data(N=23, T=6, I=2, P=3, dtype=F64, classes=None):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, T, I, generator=g, dtype=dtype)
    if classes:
        return x, torch.randint(0, classes, (N,), generator=g)
    return x, torch.randn(N, T, P, generator=g, dtype=dtype) * 0.5
