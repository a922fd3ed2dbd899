"""What the tests of the layers under torch's program transforms share (test_tracing.py,
test_functorch.py): one small layer of each kind, its twin on another backend, and the comparison
with the eager layer (float64 1e-10, float32 1e-5: see test_tracing.py's docstring)."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.kernels import _native

needs_native = pytest.mark.skipif(not _native.available(), reason="native kernels unavailable")
F64, F32 = torch.float64, torch.float32
TOL = {F64: 1e-10, F32: 1e-5}  # see test_tracing.py's docstring; float32: ~1e-7 per operation
KINDS = {  # name -> (layer class, constructor options)
    "rnn_tanh": (rnnkit.RNN, {}), "rnn_relu": (rnnkit.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTM, {}), "gru": (rnnkit.GRU, {}), "jordan": (rnnkit.Jordan, {}),
}
TWINNED = ["rnn_tanh", "lstm", "gru"]  # torch.nn has these, so auto falls back to torch's kernels


def make(kind, backend="auto", dtype=F64, seed=0, **kw):
    torch.manual_seed(seed)
    cls, opts = KINDS[kind]
    return cls(3, 4, backend=backend, dtype=dtype, **opts, **kw)


def twin(layer, backend):
    """The same layer and weights on another backend (the eager reference for a comparison)."""
    other = type(layer)(layer.input_size, layer.hidden_size, layer.num_layers, **twin_options(layer), backend=backend,
                        dtype=layer.weights_of(0)[0].dtype)
    other.load_state_dict(layer.state_dict())
    return other


def twin_options(layer):
    opts = {"bidirectional": layer.bidirectional, "batch_first": layer.batch_first}
    if isinstance(layer, rnnkit.RNN):
        opts["nonlinearity"] = layer.nonlinearity
    return opts


def states(h):
    return h if isinstance(h, tuple) else (h,)


def assert_same(got, want, dtype=F64):
    got, want = (got, want) if isinstance(got, (tuple, list)) else ((got,), (want,))
    for a, b in zip(got, want):
        for x, y in zip(states(a), states(b)):
            torch.testing.assert_close(x, y, atol=TOL[dtype], rtol=0)
