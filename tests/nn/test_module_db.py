"""torch's own module tests, run against rnnkit's twins.

Every ``module_db`` ``ModuleInput`` of ``torch.testing._internal.common_modules`` for nn.RNN,
nn.LSTM and nn.GRU (2 x 2 sizes, 2 layers, bias, batch_first, bidirectional, proj_size,
nonlinearity; all unbatched ``(T, F)`` inputs, with and without an initial state: 80 entries) is
fed to the rnnkit twin (same constructor arguments, weights copied with ``load_state_dict``) on
every backend, float32 and float64, and compared with torch: outputs, states, gradients with
respect to every input and parameter, and (float64) second derivatives. The RNNCell/LSTMCell/
GRUCell entries run against rnnkit's cells, which follow the Keras contract
``cell(x, state) -> (y, state)`` rather than torch's (a small adapter maps one onto the other).
The generic module tests are mirrored too: pickle/deepcopy, non-contiguous inputs and
parameters, train/eval, repr. Memory-format tests do not apply to recurrent layers (no
channels). ``backend="fused"`` has no projection: it refuses ``proj_size`` clearly, and that
refusal is what is tested there.

Tolerances: the backends sum in different orders than torch's kernels, so results agree to a
few ulps per operation; with T <= 3 steps, 2 layers and O(1) values, 1e-10 (float64) and 1e-5
(float32) absolute bound that with a wide margin (the house tolerances, DESIGN.md), relative
1e-7 / 1e-5 for the occasional larger second derivative.
"""

from __future__ import annotations

import copy
import pickle
import sys
import types
import unittest

import pytest
import torch
from torch import nn

import rnnkit

if "expecttest" not in sys.modules:  # torch's test helpers import it only as a TestCase base
    try:
        import expecttest  # noqa: F401
    except ImportError:
        sys.modules["expecttest"] = types.SimpleNamespace(TestCase=unittest.TestCase)
try:
    from torch.testing._internal.common_modules import module_db
except Exception as e:  # a private module: a torch version may move it
    pytest.skip(f"torch's module_db is not importable here ({e})", allow_module_level=True)

TWINS = {nn.RNN: rnnkit.RNN, nn.LSTM: rnnkit.LSTM, nn.GRU: rnnkit.GRU}
CELL_TWINS = {nn.RNNCell: rnnkit.ElmanCell, nn.LSTMCell: rnnkit.LSTMCell, nn.GRUCell: rnnkit.GRUCell}
BACKENDS = ("reference", "torch", "fused", "auto")
TOL = {torch.float64: dict(atol=1e-10, rtol=1e-7), torch.float32: dict(atol=1e-5, rtol=1e-5)}


def _entries(classes):
    """(module_info, index of the ModuleInput) for every entry of ``classes``."""
    out = []
    for info in module_db:
        if info.module_cls in classes:
            n = len(info.module_inputs_func(info, device="cpu", dtype=torch.float64, requires_grad=True,
                                            training=True))
            out += [pytest.param(info, i, id=f"{info.name}-{i}") for i in range(n)]
    return out


LAYER_ENTRIES = _entries(TWINS)
CELL_ENTRIES = _entries(CELL_TWINS)


def _module_input(info, i, dtype, training=True):
    return info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True, training=training)[i]


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def _pair(info, i, dtype, backend, training=True):
    """torch's module for entry i, rnnkit's twin with the same weights, and the forward args."""
    mi = _module_input(info, i, dtype, training)
    args, kwargs = mi.constructor_input.args, mi.constructor_input.kwargs
    torch.manual_seed(0)
    ref = info.module_cls(*args, **kwargs).to(dtype)
    twin = TWINS[info.module_cls](*args, **kwargs, backend=backend).to(dtype)
    twin.load_state_dict(ref.state_dict())
    ref.train(training), twin.train(training)
    return ref, twin, mi.forward_input.args


def _refuses(info, i, backend) -> bool:
    """The fused backend has no LSTM projection; it says so (see test_fused_refuses_projection)."""
    return backend == "fused" and _module_input(info, i, torch.float64).constructor_input.kwargs.get("proj_size", 0)


def _grads(module, fargs, n_double: bool = False):
    """Outputs, and gradients of a fixed random projection of them w.r.t. inputs and parameters."""
    out = _flat(module(*fargs))
    leaves = [t for t in _flat(fargs) if t.requires_grad] + [p for _, p in sorted(module.named_parameters())]
    gen = torch.Generator().manual_seed(1)
    cot = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in out]
    grads = torch.autograd.grad(out, leaves, cot, create_graph=n_double, allow_unused=True)
    grads = [torch.zeros_like(l) if g is None else g for g, l in zip(grads, leaves)]
    return out, grads, leaves, gen


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("info, i", LAYER_ENTRIES)
def test_forward_and_grad_match_torch(info, i, backend, dtype):
    ref, twin, fargs = _pair(info, i, dtype, backend)
    if _refuses(info, i, backend):
        with pytest.raises(rnnkit.ConfigError, match="proj_size"):
            twin(*fargs)
        return
    out_r, g_r, _, _ = _grads(ref, fargs)
    out_t, g_t, _, _ = _grads(twin, fargs)
    assert [o.shape for o in out_t] == [o.shape for o in out_r]
    for a, b in zip(out_t + g_t, out_r + g_r):
        torch.testing.assert_close(a, b, **TOL[dtype])


def _gradgrad(module, fargs):
    _, grads, leaves, gen = _grads(module, fargs, n_double=True)
    v = [torch.randn(g.shape, generator=gen, dtype=g.dtype) for g in grads]
    terms = [(g * w).sum() for g, w in zip(grads, v) if g.requires_grad]
    if not terms:  # the first backward built no graph: every second derivative reads as zero
        return [torch.zeros_like(l) for l in leaves]
    gg = torch.autograd.grad(sum(terms), leaves, allow_unused=True)
    return [torch.zeros_like(l) if g is None else g for g, l in zip(gg, leaves)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("info, i", LAYER_ENTRIES)
def test_second_derivatives_match_torch(info, i, backend):
    ref, twin, fargs = _pair(info, i, torch.float64, backend)
    if _refuses(info, i, backend):
        return  # the refusal is test_forward_and_grad_match_torch's
    for a, b in zip(_gradgrad(twin, fargs), _gradgrad(ref, fargs)):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("info, i", LAYER_ENTRIES[::4])  # a quarter of the entries: every kind and option
def test_pickle_deepcopy_state_dict(info, i, backend):
    """Copies compute exactly what the original does (the same code runs on the same numbers)."""
    _, twin, fargs = _pair(info, i, torch.float64, backend)
    if _refuses(info, i, backend):
        return
    with torch.no_grad():
        expected = _flat(twin(*fargs))
        for copied in (copy.deepcopy(twin), pickle.loads(pickle.dumps(twin))):
            assert type(copied) is type(twin) and copied.backend == backend
            for a, b in zip(_flat(copied(*fargs)), expected):
                assert torch.equal(a, b)
        fresh = TWINS[info.module_cls](**_module_input(info, i, torch.float64).constructor_input.kwargs,
                                       backend=backend).double()
        fresh.load_state_dict(twin.state_dict())
        for a, b in zip(_flat(fresh(*fargs)), expected):
            assert torch.equal(a, b)


def _non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values with doubled strides (torch's own non-contiguous test does the same)."""
    wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    out = wide[..., ::2]
    out.copy_(t.detach())
    assert not out.is_contiguous() and torch.equal(out, t)
    return out.requires_grad_(t.requires_grad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("info, i", LAYER_ENTRIES)
def test_non_contiguous_inputs_and_parameters(info, i, backend):
    ref, twin, fargs = _pair(info, i, torch.float64, backend)
    if _refuses(info, i, backend):
        return
    nc_args = tuple(tuple(_non_contiguous(t) for t in a) if isinstance(a, tuple) else _non_contiguous(a)
                    for a in fargs)
    with torch.no_grad():
        for p in twin.parameters():
            p.set_(_non_contiguous(p))
    assert not any(p.is_contiguous() for p in twin.parameters() if p.dim() == 2)
    out_r, g_r, _, _ = _grads(ref, fargs)
    out_t, g_t, _, _ = _grads(twin, nc_args)
    for a, b in zip(out_t + g_t, out_r + g_r):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("info, i", LAYER_ENTRIES[::4])  # a quarter of the entries: every kind and option
def test_train_and_eval_modes_match_torch(info, i, backend):
    for training in (True, False):
        ref, twin, fargs = _pair(info, i, torch.float64, backend, training=training)
        if _refuses(info, i, backend):
            return
        twin.train(not training).train(training)  # toggling back and forth leaves no trace
        assert twin.training is training
        with torch.no_grad():
            for a, b in zip(_flat(twin(*fargs)), _flat(ref(*fargs))):
                torch.testing.assert_close(a, b, **TOL[torch.float64])


@pytest.mark.parametrize("info, i", LAYER_ENTRIES)
def test_repr_is_torchs(info, i):
    """torch's text, then rnnkit's own non-default settings (torch.nn omits the nonlinearity)."""
    ref, twin, _ = _pair(info, i, torch.float32, "auto")
    expected = repr(ref)
    if getattr(ref, "nonlinearity", "tanh") != "tanh":
        expected = expected[:-1] + f", nonlinearity={ref.nonlinearity!r})"
    assert repr(twin) == expected
    assert repr(_pair(info, i, torch.float32, "fused")[1]) == expected[:-1] + ", backend='fused')"


class _CellAdapter(nn.Module):
    """rnnkit's Keras-contract cell (``(y, state)``) seen with torch's cell signature."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, x, hx=None):
        y, state = self.cell(x, hx)
        return state if isinstance(self.cell, rnnkit.LSTMCell) else y


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("info, i", CELL_ENTRIES)
def test_cells_match_torch(info, i, dtype):
    mi = _module_input(info, i, dtype)
    torch.manual_seed(0)
    ref = info.module_cls(*mi.constructor_input.args, **mi.constructor_input.kwargs).to(dtype)
    cell = CELL_TWINS[info.module_cls](*mi.constructor_input.args, **mi.constructor_input.kwargs).to(dtype)
    cell.load_state_dict(ref.state_dict())
    twin = _CellAdapter(cell)
    fargs = mi.forward_input.args
    out_r, g_r, _, _ = _grads(ref, fargs)
    out_t, g_t, _, _ = _grads(twin, fargs)
    for a, b in zip(out_t + g_t, out_r + g_r):
        torch.testing.assert_close(a, b, **TOL[dtype])
    if dtype == torch.float64:
        for a, b in zip(_gradgrad(twin, fargs), _gradgrad(ref, fargs)):
            torch.testing.assert_close(a, b, **TOL[dtype])
