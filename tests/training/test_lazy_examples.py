"""Training on examples gathered on demand (:mod:`rnnkit.training.examples`): chunks of whole
batches in the epoch's order, and fit on both engines training the same weights as on the
tensors themselves; what cannot be gathered is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rnnkit
from rnnkit import ConfigError, TrainConfig
from rnnkit.kernels import _native
from rnnkit.kernels.trainer import FusedTask, unsupported_reason
from rnnkit.training.examples import LazyExamples, batches, chunk_size, column, count
from rnnkit.training.loop import fit


class Held(LazyExamples):
    """Tensors behind the lazy interface, recording the size of every gather."""

    def __init__(self, tensors, chunk: int):
        self.tensors, self.chunk, self.gathers = tensors, chunk, []

    def __len__(self) -> int:
        return len(self.tensors[0])

    def take(self, idx):
        self.gathers.append(len(idx))
        return tuple(t[idx] for t in self.tensors)


class Net(nn.Module):
    """A GRU and a linear head on its last output: a model the fused trainer runs."""

    def __init__(self):
        super().__init__()
        self.rnn = rnnkit.Recurrent("gru", 2, 5, 1, batch_first=True, dtype=torch.float64)
        self.head = nn.Linear(5, 3, dtype=torch.float64)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])  # (B, T, 5) -> (B, 5) -> (B, 3)


def data(n=75):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, 2, generator=g, dtype=torch.float64), torch.randn(n, 3, generator=g, dtype=torch.float64)


def test_chunks_are_whole_batches_in_the_epochs_order():
    x, y = data()
    lazy = Held((x, y), chunk=20)
    assert chunk_size(lazy, 8) == 16 and chunk_size(lazy, 32) == 32  # rounded down to batches, at least one
    assert count(lazy) == count((x, y)) == 75
    order = torch.randperm(75, generator=torch.Generator().manual_seed(2))
    got, want = list(batches(lazy, order, 8)), list(batches((x, y), order, 8))
    assert len(got) == len(want) == 10
    for (i, b), (j, c) in zip(got, want):
        assert torch.equal(i, j) and all(torch.equal(s, t) for s, t in zip(b, c))
    assert lazy.gathers == [16, 16, 16, 16, 11]  # 75 = 4 chunks of 2 batches and the rest
    assert torch.equal(column(lazy, 1), y) and all(torch.equal(a, b) for a, b in zip(lazy.materialise(), (x, y)))


@pytest.mark.parametrize("engine", ["torch", "fused"])
@pytest.mark.parametrize("balanced", [False, True])
def test_fit_on_gathered_examples_trains_the_weights_it_trains_on_the_tensors(engine, balanced):
    if engine == "fused" and not _native.available():
        pytest.skip("native kernels unavailable")
    x, y = data()
    val = (x[:9], y[:9])
    config = TrainConfig(epochs=3, batch_size=8, lr=0.01, engine=engine, patience=0)
    groups = (10, 40, 25) if balanced else None
    runs = []
    for train in (Held((x, y), chunk=20), (x, y)):
        torch.manual_seed(0)
        model = Net()
        if isinstance(train, LazyExamples):
            task = FusedTask("last", "mse", x[:4], y[:4], *val, gather=train.take, n=len(train), chunk=train.chunk)
        else:
            task = FusedTask("last", "mse", x, y, *val)
        h = fit(model, lambda m, b: F.mse_loss(m(b[0]), b[1]), train, val, config, quiet=True, fused=task,
                groups=groups)
        assert h.engine == engine
        runs.append((h, [p.detach().clone() for p in model.parameters()]))
    (h_lazy, w_lazy), (h_full, w_full) = runs
    # the same batches in the same order through the same code: the same weights, exactly
    assert all(torch.equal(a, b) for a, b in zip(w_lazy, w_full))
    assert h_lazy.val_loss == h_full.val_loss
    if engine == "torch":
        assert h_lazy.train_loss == h_full.train_loss
    else:  # the fused epoch's mean loss is summed from its chunks' float64 means
        np.testing.assert_allclose(h_lazy.train_loss, h_full.train_loss, rtol=1e-14, atol=0)


def test_what_cannot_be_gathered_is_refused():
    x, y = data()
    lazy = Held((x, y), chunk=20)
    with pytest.raises(ConfigError, match="stateful training reads whole streams"):
        fit(Net(), lambda m, b: F.mse_loss(m(b[0]), b[1]), lazy, None, TrainConfig(epochs=1, stateful=True), quiet=True)
    task = FusedTask("last", "mse", x[:4], y[:4], gather=lazy.take, n=75, lengths=torch.full((4,), 6))
    assert "gathered on demand" in unsupported_reason(Net(), task, TrainConfig())
