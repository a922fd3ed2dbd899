"""The native kernels against the reference: exp/tanh accuracy, gradcheck, the fused trainer's
history and parameters against the generic torch loop, streaming, and the fallback without them."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rnnkit
from rnnkit import TrainConfig
from rnnkit.kernels import _native
from rnnkit.kernels import fused as fused_kernels
from rnnkit.kernels.trainer import FusedTask
from rnnkit.training.loop import fit

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.skipif(not _native.available(), reason="native kernels unavailable")]
F64, F32 = torch.float64, torch.float32
CELLS = {
    "elman": {}, "elman_relu": {"nonlinearity": "relu"}, "lstm": {}, "gru": {},
    "jordan": {"output_activation": "tanh"},
}


def cell_name(kind: str) -> str:
    return kind.split("_")[0]


@pytest.mark.parametrize("dtype, lo, hi, tol", [(F64, -700.0, 700.0, 1e-15), (F32, -85.0, 85.0, 2e-7)])
def test_exp_relative_accuracy_over_whole_range(dtype, lo, hi, tol):
    lib = _native.library()
    suf = "f64" if dtype == F64 else "f32"
    x = torch.linspace(lo, hi, 400_001, dtype=dtype)
    y = torch.empty_like(x)
    getattr(lib, f"rk_exp_{suf}")(x.data_ptr(), y.data_ptr(), x.numel())
    ref = torch.exp(x.double())
    assert ((y.double() - ref) / ref).abs().max().item() < tol


@pytest.mark.parametrize("dtype, tol", [(F64, 1e-15), (F32, 3e-7)])
def test_tanh_absolute_accuracy_and_saturation(dtype, tol):
    lib = _native.library()
    suf = "f64" if dtype == F64 else "f32"
    x = torch.cat([torch.linspace(-40, 40, 400_001, dtype=dtype), torch.tensor([-1e30, 1e30, 0.0], dtype=dtype)])
    y = torch.empty_like(x)
    getattr(lib, f"rk_tanh_{suf}")(x.data_ptr(), y.data_ptr(), x.numel())
    assert (y.double() - torch.tanh(x.double())).abs().max().item() < tol
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_gradcheck_fused_layer(kind):
    """gradcheck w.r.t. the input, the initial state and every weight, with lengths, both directions."""
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(cell_name(kind), 2, 3, num_layers=2, bidirectional=True, batch_first=True,
                             backend="fused", dtype=F64, **CELLS[kind])
    names = [n for n, _ in layer.named_parameters()]
    x = torch.randn(2, 4, 2, dtype=F64, requires_grad=True)
    h0 = tuple(s.clone().requires_grad_() for s in _states(layer.init_state(2)))
    h0 = tuple(torch.randn_like(s).requires_grad_() for s in h0)
    ws = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())

    def f(x, *rest):
        states, weights = rest[:len(h0)], rest[len(h0):]
        hx = states[0] if len(states) == 1 else states
        out, h = torch.func.functional_call(layer, dict(zip(names, weights)), (x, hx), {"lengths": [4, 3]})
        return (out, *_states(h))
    assert torch.autograd.gradcheck(f, (x, *h0, *ws), eps=1e-6, atol=1e-7)


def _states(h):
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


def twin_runs(kind, config, mode, loss, dtype, layers=2, classes=None, class_weights=None):
    """Train the same seeded model with the generic loop and the fused trainer."""
    P = classes or 3
    x, y = data(dtype=dtype, classes=classes, P=P)
    xv, yv = x[:7], y[:7]
    results = []
    for engine in ("torch", "fused"):
        torch.manual_seed(0)
        model = Net(kind, 2, 4, P, layers, dtype)
        if loss == "ce":
            task_y, task_yv = y, yv
            w = class_weights

            def loss_fn(m, b):
                return F.cross_entropy(m(b[0])[:, -1], b[1], weight=w)
        elif mode == "last":
            task_y, task_yv = y[:, -1], yv[:, -1]
            crit = F.mse_loss if loss == "mse" else F.l1_loss

            def loss_fn(m, b):
                return crit(m(b[0])[:, -1], b[1][:, -1])
        else:
            task_y, task_yv = y, yv
            crit = F.mse_loss if loss == "mse" else F.l1_loss

            def loss_fn(m, b):
                return crit(m(b[0])[:, 2:], b[1][:, 2:])
        task = FusedTask(mode, loss, x, task_y, xv, task_yv, warmup=2 if mode == "all" else 0,
                         class_weights=class_weights)
        h = fit(model, loss_fn, (x, y), (xv, yv), config.replace(engine=engine), quiet=True, fused=task)
        results.append((h, [p.detach().clone() for p in model.parameters()]))
    return results


OPTIMIZERS = [("adam", {}), ("sgd", {"momentum": 0.9}), ("sgd", {}), ("adagrad", {}), ("rmsprop", {}),
              ("rmsprop", {"momentum": 0.5})]


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("opt, extra", OPTIMIZERS)
def test_fused_trainer_equals_generic_loop_float64(kind, opt, extra):
    config = TrainConfig(epochs=4, batch_size=5, lr=0.01, optimizer=opt, weight_decay=0.01, patience=0,
                         clip_norm=1.0, **extra)
    (h1, p1), (h2, p2) = twin_runs(kind, config, "all", "mse", F64)
    assert h1.train_loss == pytest.approx(h2.train_loss, abs=1e-10, rel=0)
    assert h1.val_loss == pytest.approx(h2.val_loss, abs=1e-10, rel=0)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru", "jordan", "elman"])
@pytest.mark.parametrize("mode, loss", [("last", "mse"), ("last", "mae"), ("all", "mae")])
def test_fused_trainer_heads_and_losses(kind, mode, loss):
    config = TrainConfig(epochs=3, batch_size=4, lr=0.01, patience=0, clip_value=0.5)
    (h1, p1), (h2, p2) = twin_runs(kind, config, mode, loss, F64, layers=1)
    assert h1.train_loss == pytest.approx(h2.train_loss, abs=1e-10, rel=0)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("weights", [None, torch.tensor([1.0, 3.0, 0.5], dtype=F64)])
def test_fused_trainer_cross_entropy(weights):
    config = TrainConfig(epochs=3, batch_size=6, lr=0.02, patience=0)
    (h1, p1), (h2, p2) = twin_runs("gru", config, "last", "ce", F64, classes=3, class_weights=weights)
    assert h1.train_loss == pytest.approx(h2.train_loss, abs=1e-10, rel=0)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru", "jordan"])
def test_fused_trainer_float32(kind):
    config = TrainConfig(epochs=3, batch_size=5, lr=0.01, patience=0)
    (h1, p1), (h2, p2) = twin_runs(kind, config, "all", "mse", F32)
    assert h1.train_loss == pytest.approx(h2.train_loss, abs=1e-5, rel=0)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_fused_trainer_releases_parameters():
    """During training the parameters are views of one flat buffer; afterwards each owns its memory."""
    model = Net("gru", 2, 4, 3, 1, F64)
    x, y = data()
    fit(model, lambda m, b: F.mse_loss(m(b[0]), b[1]), (x, y), None, TrainConfig(epochs=1, engine="fused"),
        quiet=True, fused=FusedTask("all", "mse", x, y))
    assert all(p._base is None for p in model.parameters())
    ptrs = [p.data_ptr() for p in model.parameters()]
    assert len(set(ptrs)) == len(ptrs)


def test_engine_fused_insists_with_a_reason():
    model = Net("gru", 2, 4, 3, 1, F64)
    model.rnn = rnnkit.Recurrent("gru", 2, 4, bidirectional=True, batch_first=True, dtype=F64)
    x, y = data()
    task = FusedTask("all", "mse", x, y)
    with pytest.raises(rnnkit.ConfigError, match="unidirectional"):
        fit(model, lambda m, b: F.mse_loss(m(b[0]), b[1]), (x, y), None,
            TrainConfig(epochs=1, engine="fused"), quiet=True, fused=task)


def test_forecaster_uses_fused_trainer_and_matches_torch_loop():
    dc = rnnkit.DataConfig(source="builtin:sine", lookback=5, horizon=2, val_frac=0.2, test_frac=0.2)
    runs = [rnnkit.fit_forecaster(dc, rnnkit.ModelConfig(cell="lstm", hidden_size=8),
                                  TrainConfig(epochs=5, batch_size=5, engine=e, patience=0), quiet=True,
                                  dtype=F64) for e in ("torch", "fused")]
    assert runs[0].history.train_loss == pytest.approx(runs[1].history.train_loss, abs=1e-10, rel=0)


@pytest.mark.parametrize("hidden, batch, expected", [(8, 5, "fused"), (256, 64, "torch")])
def test_auto_engine_uses_the_fused_trainer_only_where_it_pays_off(hidden, batch, expected):
    """Large models train faster in torch's loop (BLAS/oneDNN products): auto must not pick the
    native trainer there, while engine='fused' still insists."""
    x, y = torch.randn(batch, 20, 1), torch.randn(batch, 20, 1)
    task = FusedTask("all", "mse", x, y)
    engines = []
    for engine in ("auto", "fused"):
        h = fit(Net("lstm", 1, hidden, 1, 1, torch.float32), lambda m, b: F.mse_loss(m(b[0]), b[1]), (x, y), None,
                TrainConfig(epochs=1, batch_size=batch, engine=engine, patience=0), quiet=True, fused=task)
        engines.append(h.engine)
    assert engines == [expected, "fused"]


def test_auto_limits_cover_every_cell():
    from rnnkit.kernels import trainer
    for kind in ("lstm", "gru", "elman", "jordan"):
        model = Net(kind, 1, 16, 1, 1, F64)
        small = FusedTask("last", "mse", torch.zeros(5, 5, 1), torch.zeros(5, 1))
        assert trainer.pays_off(model, small, TrainConfig(batch_size=5))
        big = FusedTask("last", "mse", torch.zeros(2048, 400, 1), torch.zeros(2048, 1))
        assert not trainer.pays_off(model, big, TrainConfig(batch_size=2048))


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_streaming_step_equals_full_sequence_without_autograd(kind):
    torch.manual_seed(2)
    layer = rnnkit.Recurrent(cell_name(kind), 3, 5, num_layers=2, dtype=F64, **CELLS[kind])
    x = torch.randn(6, 4, 3, dtype=F64)
    with torch.no_grad():
        full, h_full = layer(x)
        state = layer.init_state(4)
        for t in range(6):
            y, state = layer.step(x[t], state)
            torch.testing.assert_close(y, full[t], atol=1e-12, rtol=0)
    assert fused_kernels.stream_plan(layer) is not None  # the native path ran
    for a, b in zip(state if isinstance(state, tuple) else (state,), h_full if isinstance(h_full, tuple) else (h_full,)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_streaming_step_states_stay_valid_when_kept(kind, monkeypatch):
    """The functional step hands out pooled memory: every state it returns must stay intact
    however many steps follow (past several pool refills), and branching from an old state (a
    beam search) must neither change it nor the states made from it."""
    from rnnkit.kernels import fused
    torch.manual_seed(3)
    for pool_bytes in (1, 4 * 64 * 8 * 3):  # one step per pool, then a few steps per pool
        monkeypatch.setattr(fused, "STREAM_POOL_BYTES", pool_bytes)
        layer = rnnkit.Recurrent(kind, 2, 8, num_layers=2, dtype=F64)
        x = torch.randn(20, 3, 2, dtype=F64)
        with torch.no_grad():
            full, _ = layer(x)
            state, kept = layer.init_state(3), []
            for t in range(20):
                y, state = layer.step(x[t], state)
                kept.append((y, state))
            assert fused_kernels.stream_plan(layer) is not None
            for t, (y, _) in enumerate(kept):  # nothing was overwritten by later steps
                torch.testing.assert_close(y, full[t], atol=1e-12, rtol=0)
            root = kept[4][1]
            before = [s.clone() for s in _states(root)]
            branches = [layer.step(torch.full((3, 2), v, dtype=F64), root) for v in (0.5, -0.5)]
            ref = [layer(torch.cat([x[:5], torch.full((1, 3, 2), v, dtype=F64)]))[0][-1] for v in (0.5, -0.5)]
        for (y, _), r in zip(branches, ref):
            torch.testing.assert_close(y, r, atol=1e-12, rtol=0)
        for a, b in zip(_states(root), before):
            assert torch.equal(a, b)


def test_streaming_step_sees_weight_updates():
    layer = rnnkit.GRU(2, 3, dtype=F64)
    x = torch.randn(1, 2, dtype=F64)
    with torch.no_grad():
        y1, _ = layer.step(x)
        layer.weight_hh_l0.add_(0.5)
        layer.weight_ih_l0.add_(0.5)
        y2, _ = layer.step(x)
        ref, _ = layer(x.unsqueeze(0))
    assert not torch.equal(y1, y2)
    torch.testing.assert_close(y2, ref[0], atol=1e-12, rtol=0)


def test_everything_works_without_native_kernels(tmp_path):
    code = ("import warnings, torch, rnnkit\n"
            "warnings.simplefilter('always')\n"
            "m = rnnkit.GRU(2, 3, backend='fused')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    out, h = m(torch.zeros(4, 1, 2))\n"
            "print(out.shape, len(w), str(w[0].message) if w else '')\n")
    env = {**os.environ, "RNNKIT_NO_NATIVE": "1", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "torch.Size([4, 1, 3]) 1" in proc.stdout and "using the torch backend" in proc.stdout


@pytest.fixture(params=["whole-layer", "torch-gemm"])
def layer_path(request, monkeypatch):
    """Run a test through both fused layer paths: everything native, or native recurrence with
    torch's matrix products for the input projection and weight gradients (large layers)."""
    from rnnkit.kernels import fused
    monkeypatch.setattr(fused, "WHOLE_LAYER_BYTES", 2**62 if request.param == "whole-layer" else 0)
    return request.param


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_both_fused_layer_paths_from_zero_state(kind, layer_path):
    torch.manual_seed(5)
    layer = rnnkit.Recurrent(cell_name(kind), 3, 5, num_layers=2, batch_first=True, dtype=F64, **CELLS[kind])
    x = torch.randn(4, 6, 3, dtype=F64)
    results = []
    for backend in ("reference", "fused"):
        layer.backend = backend
        xr = x.clone().requires_grad_()
        out, h = layer(xr)  # no initial state: zeros
        grads = torch.autograd.grad(out.sum() + sum(s.sum() for s in _states(h)), [xr, *layer.parameters()])
        results.append([out, *_states(h), *grads])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("dtype, atol", [(F64, 1e-10), (F32, 1e-5)])
def test_both_fused_layer_paths_match_reference(kind, dtype, atol, layer_path):
    torch.manual_seed(4)
    layer = rnnkit.Recurrent(cell_name(kind), 3, 5, num_layers=2, bidirectional=True, batch_first=True,
                             dtype=dtype, **CELLS[kind])
    x = torch.randn(4, 6, 3, dtype=dtype)
    h0 = tuple(torch.randn_like(s) for s in _states(layer.init_state(4)))
    results = []
    for backend in ("reference", "fused"):
        layer.backend = backend
        xr = x.clone().requires_grad_()
        hr = tuple(s.clone().requires_grad_() for s in h0)
        out, h = layer(xr, hr[0] if len(hr) == 1 else hr, lengths=[6, 2, 5, 6])
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum() \
            + sum((s * s).sum() for s in _states(h))
        grads = torch.autograd.grad(loss, [xr, *hr, *layer.parameters()])
        results.append([out, *_states(h), *grads])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_inplace_streaming_step_equals_full_sequence(kind, backend):
    torch.manual_seed(6)
    layer = rnnkit.Recurrent(cell_name(kind), 3, 5, num_layers=2, dtype=F64, backend=backend, **CELLS[kind])
    x = torch.randn(7, 4, 3, dtype=F64)
    with torch.no_grad():
        full, h_full = layer(x)
    state = layer.init_state(4)
    buffers = [t.data_ptr() for t in _states(state)]
    for t in range(7):
        y = layer.step_(x[t], state)
        torch.testing.assert_close(y, full[t], atol=1e-12, rtol=0)
    assert [t.data_ptr() for t in _states(state)] == buffers  # updated in place
    for a, b in zip(_states(state), _states(h_full)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_inplace_streaming_sees_weight_updates_and_new_states():
    layer = rnnkit.LSTM(2, 3, dtype=F64)
    x = torch.randn(1, 2, dtype=F64)
    state = layer.init_state(1)
    layer.step_(x, state)
    with torch.no_grad():
        layer.weight_hh_l0.mul_(-1.0)
        expected, _ = layer(x.unsqueeze(0), tuple(s.clone() for s in state))
    torch.testing.assert_close(layer.step_(x, state), expected[0], atol=1e-12, rtol=0)
    fresh = layer.init_state(1)  # another state object: checked and used on its own
    with torch.no_grad():
        ref, _ = layer(x.unsqueeze(0))
    torch.testing.assert_close(layer.step_(x, fresh), ref[0], atol=1e-12, rtol=0)
    with pytest.raises(rnnkit.ConfigError, match="init_state"):
        layer.step_(x, None)


def test_fused_trainer_refuses_lengths_it_cannot_honour():
    from rnnkit.kernels import trainer
    model = Net("gru", 2, 4, 3, 1, F64)
    x, y = data()
    ok = FusedTask("last", "mse", x, y[:, -1], lengths=torch.full((23,), 6))
    assert trainer.unsupported_reason(model, ok, TrainConfig()) is None
    for bad in (FusedTask("all", "mse", x, y, lengths=torch.full((23,), 6)),  # per-step heads
                FusedTask("last", "mse", x, y[:, -1], lengths=torch.full((23,), 7)),  # past the end
                FusedTask("last", "mse", x, y[:, -1], lengths=torch.zeros(23, dtype=torch.int64)),
                FusedTask("last", "mse", x, y[:, -1], lengths=torch.full((5,), 6))):  # wrong count
        assert trainer.unsupported_reason(model, bad, TrainConfig()) is not None


@pytest.mark.parametrize("kind, layers", [("lstm", 2), ("gru", 1), ("elman", 3), ("jordan", 1), ("jordan", 2)])
def test_fused_trainer_stateful_equals_generic_loop(kind, layers):
    """Stateful truncated BPTT: 3 streams of 23 steps in chunks of 5 (the last one 3 long), the
    state carried across chunks and reset every epoch; the loss history equals the torch loop's."""
    from rnnkit.tasks.forecast.workflow import forecast_fused_task, forecast_loss
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 23, 1, generator=g, dtype=F64)
    y = torch.sin(torch.cumsum(x, 1))
    config = TrainConfig(epochs=4, batch_size=3, stateful=True, tbptt=5, shuffle=False, patience=0,
                         optimizer="adam", lr=0.01, clip_norm=0.5)
    histories = []
    for engine in ("torch", "fused"):
        torch.manual_seed(0)
        extra = {"output_size": 3} if kind == "jordan" and layers == 2 else {}  # state width != hidden
        model = rnnkit.Forecaster(1, 1, config=rnnkit.ModelConfig(cell=kind, hidden_size=6, num_layers=layers,
                                                                    strategy="recursive", **extra)).to(F64)
        c = config.replace(engine=engine)
        h = fit(model, forecast_loss(model, c), (x, y), None, c, quiet=True,
                fused=forecast_fused_task(model, c, (x, y), None))
        assert h.engine == engine
        histories.append(h.train_loss)
    assert histories[0] == pytest.approx(histories[1], abs=1e-10, rel=0)


# --- review findings: trusted states, stale pointers, padding, data checks ---------------------------

def test_streaming_never_trusts_a_state_whose_memory_changed():
    """A state the step made (or step_ checked) is trusted by identity, but only while its
    tensors still point where they did: swapping the storage must be caught, never read."""
    layer = rnnkit.Recurrent("gru", 4, 16, num_layers=2, dtype=F64)
    x = torch.randn(8, 4, dtype=F64)
    with torch.no_grad():
        _, s = layer.step(x, layer.init_state(8))
        s.set_(torch.zeros(3, dtype=F64))  # now 3 numbers where 2 x 8 x 16 were
        with pytest.raises(rnnkit.ShapeError):
            layer.step(x, s)
        inplace = layer.init_state(8)
        layer.step_(x, inplace)
        inplace.set_(torch.zeros(3, dtype=F64))
        with pytest.raises(rnnkit.ShapeError):
            layer.step_(x, inplace)


def test_inplace_lstm_step_follows_a_new_cell_state():
    torch.manual_seed(8)
    layer = rnnkit.LSTM(3, 5, dtype=F64)
    x = torch.randn(2, 3, dtype=F64)
    with torch.no_grad():
        h, c = layer.init_state(2)
        layer.step_(x, (h, c))
        c2 = torch.randn_like(c)
        ref, (h_ref, c_ref) = layer.step(x, (h.clone(), c2.clone()))
        y = layer.step_(x, (h, c2)).clone()  # same h object, a new c: must read and write c2
    torch.testing.assert_close(y, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(c2, c_ref, atol=1e-12, rtol=0)


def test_streamed_states_hold_little_memory():
    layer = rnnkit.LSTM(3, 4, num_layers=2)
    with torch.no_grad():
        y, (h, c) = layer.step(torch.zeros(1, 3))
    assert max(t.untyped_storage().nbytes() for t in (y, h, c)) <= fused_kernels.STREAM_POOL_BYTES


def test_streaming_under_autograd_tracks_every_trainable_weight():
    layer = rnnkit.GRU(2, 3)
    layer.weight_ih_l0.requires_grad_(False)  # frozen; the other weights still train
    y, _ = layer.step(torch.zeros(1, 2))
    assert y.requires_grad


def test_fused_trainer_ignores_nan_padding_like_the_torch_loop():
    g = torch.Generator().manual_seed(9)
    x, lengths = torch.randn(12, 7, 2, generator=g, dtype=F64), torch.randint(2, 8, (12,), generator=g)
    x[torch.arange(7).unsqueeze(0) >= lengths.unsqueeze(1)] = float("nan")
    y = torch.randint(0, 3, (12,), generator=g)
    runs = []
    for engine in ("torch", "fused"):
        torch.manual_seed(0)
        model = rnnkit.SequenceClassifier(2, 3, rnnkit.ModelConfig(cell="gru", hidden_size=4)).to(F64)
        from rnnkit.tasks.classify.workflow import classification_loss
        h = fit(model, classification_loss(), (x, lengths, y), None,
                TrainConfig(epochs=3, batch_size=5, engine=engine, patience=0), quiet=True,
                fused=FusedTask("last", "ce", x, y, lengths=lengths))
        runs.append(h.train_loss)
    assert all(map(math.isfinite, runs[1]))
    assert runs[0] == pytest.approx(runs[1], abs=1e-10, rel=0)


def test_fused_trainer_refuses_data_that_do_not_fit_the_model():
    from rnnkit.kernels import trainer
    model = Net("gru", 2, 4, 3, 1, F64)
    x, y = data()
    assert trainer.unsupported_reason(model, FusedTask("all", "mse", x[..., :1], y), TrainConfig())
    assert trainer.unsupported_reason(model, FusedTask("all", "mse", x, y[..., :2]), TrainConfig())
    labels = torch.tensor([0, 1, 3] * 7 + [0, 1])
    assert "labels" in trainer.unsupported_reason(model, FusedTask("last", "ce", x, labels), TrainConfig())


def test_stateful_warmup_is_refused_with_its_reason():
    from rnnkit.tasks.forecast.workflow import forecast_fused_task, forecast_loss
    x = torch.randn(2, 12, 1)
    model = rnnkit.Forecaster(1, 1, config=rnnkit.ModelConfig(hidden_size=4, strategy="recursive"))
    c = TrainConfig(epochs=1, batch_size=2, stateful=True, tbptt=4, warmup=1, shuffle=False, engine="fused")
    with pytest.raises(rnnkit.ConfigError, match="warm-up"):
        fit(model, forecast_loss(model, c), (x, x), None, c, quiet=True,
            fused=forecast_fused_task(model, c, (x, x), None))


def test_streaming_step_sees_weights_changed_behind_torchs_back():
    """The stream plan caches prepared weights: fused training (which writes the parameters'
    memory natively) must be seen, and `.data` changes (untracked by torch) after
    flatten_parameters(), as documented."""
    torch.manual_seed(10)
    model = rnnkit.Forecaster(1, 1, 1, rnnkit.ModelConfig(cell="gru", hidden_size=8))
    x, y = torch.randn(40, 6, 1), torch.randn(40, 1, 1)
    x0 = x[:, 0].contiguous()

    def agrees():
        with torch.no_grad():
            out, _ = model.step(x0)
            return torch.allclose(out, model(x[:, :1]), atol=1e-6, rtol=0)
    assert agrees() and fused_kernels.stream_plan(model.rnn) is not None
    h = fit(model, lambda m, b: F.mse_loss(m(b[0]), b[1]), (x, y), None,
            TrainConfig(epochs=2, batch_size=8, patience=0), quiet=True, fused=FusedTask("last", "mse", x, y[:, 0]))
    assert h.engine == "fused" and agrees()
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(2)  # tracked: seen without help
    assert agrees()
    model.rnn.weight_hh_l0.data = model.rnn.weight_hh_l0.data * 2  # untracked: the documented refresh
    model.rnn.weight_ih_l0.data.mul_(3)
    model.rnn.flatten_parameters()
    assert agrees()


def _native_matmul(a: torch.Tensor, trans_a: bool, b: torch.Tensor, trans_b: bool, c: torch.Tensor) -> torch.Tensor:
    """C += op(A) @ op(B) through the kernels' register-blocked micro-kernel (a copy of c)."""
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    N = b.shape[0] if trans_b else b.shape[1]
    out = c.clone()
    scratch = torch.empty(int(fused_kernels._fn("rk_panel_size", a.dtype)(K, N)), dtype=a.dtype)
    fused_kernels._fn("rk_matmul", a.dtype)(a.data_ptr(), int(trans_a), b.data_ptr(), int(trans_b), out.data_ptr(),
                                            M, K, N, scratch.data_ptr())
    return out


MATMUL_SHAPES = [(M, K, N) for M in (1, 2, 5, 7, 8, 9, 16, 17, 23) for K, N in ((1, 1), (3, 17), (16, 16), (13, 33), (40, 70))]


@pytest.mark.parametrize("dtype, atol", [(F64, 1e-12), (F32, 1e-4)])
def test_matrix_micro_kernel_equals_torch_on_every_edge(dtype, atol):
    """Every row remainder of the register block (M mod 8, 6 and 3), partial panels (N mod 16
    and 8), short and odd K, and both transposed-operand forms the kernels use."""
    g = torch.Generator().manual_seed(0)
    for M, K, N in MATMUL_SHAPES:
        for trans_a in (False, True):
            for trans_b in (False, True):
                a = torch.randn((K, M) if trans_a else (M, K), generator=g, dtype=dtype)
                b = torch.randn((N, K) if trans_b else (K, N), generator=g, dtype=dtype)
                c = torch.randn(M, N, generator=g, dtype=dtype)
                want = c + (a.t() if trans_a else a) @ (b.t() if trans_b else b)
                got = _native_matmul(a, trans_a, b, trans_b, c)
                torch.testing.assert_close(got, want, atol=atol, rtol=0, msg=f"{M}x{K}x{N} {trans_a} {trans_b}")


ISA_CHECK = """
import torch, rnnkit
from rnnkit.kernels import _native, fused
import test_kernels as tk
print('bits', _native.vector_bits())
tk.test_matrix_micro_kernel_equals_torch_on_every_edge(torch.float64, 1e-12)
for cell in ('lstm', 'gru', 'elman'):
    for limit in (2**62, 0):  # the whole-layer kernels and the torch-gemm path
        fused.WHOLE_LAYER_BYTES = limit
        torch.manual_seed(1)
        layer = rnnkit.Recurrent(cell, 3, 17, batch_first=True, dtype=torch.float64)
        x = torch.randn(9, 4, 3, dtype=torch.float64)
        res = []
        for backend in ('reference', 'fused'):
            layer.backend = backend
            xr = x.clone().requires_grad_()
            out, h = layer(xr)
            res.append([out, *torch.autograd.grad(out.sum(), [xr, *layer.parameters()])])
        for a, b in zip(*res):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
print('ok')
"""


@pytest.mark.parametrize("isa, bits", [("generic", 128), ("avx2", 256)])
def test_every_instruction_set_level_matches_the_reference(tmp_path, isa, bits, monkeypatch):
    """The default build is what the rest of this file tests; the lower levels (other CPUs, or
    RNNKIT_NATIVE_ISA) compile different micro-kernels, so build each and check them too."""
    monkeypatch.delenv("RNNKIT_NATIVE_ISA", raising=False)  # what the CPU has, not the cap this suite runs under
    if isa == "avx2" and "-mavx2" not in _native._cpu_flags():
        pytest.skip("this CPU has no AVX2+FMA")
    env = {**os.environ, "RNNKIT_NATIVE_ISA": isa, "RNNKIT_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), str(Path(__file__).parent)])}
    proc = subprocess.run([sys.executable, "-c", ISA_CHECK], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"bits {bits}" in proc.stdout and proc.stdout.rstrip().endswith("ok")


def test_an_unknown_instruction_set_level_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("RNNKIT_NATIVE_ISA", "sse9")
    with pytest.raises(_native.NativeUnavailable, match="generic, avx2, avx512"):
        _native._cpu_flags()


@pytest.mark.parametrize("decorate", ["prune", "weight_norm", "hook"])
def test_fused_trainer_leaves_decorated_models_to_the_torch_loop(decorate):
    """The native loop reads the raw parameters and calls no module: a pruned, parametrized or
    hooked model would train as if undecorated (pruning keeps the parameter count, so nothing
    else notices). auto must take the torch loop, and give exactly its result."""
    from torch.nn.utils import parametrizations, prune
    from rnnkit.kernels import trainer

    def build():
        torch.manual_seed(0)
        model = Net("gru", 2, 4, 3, 1, F64)
        if decorate == "prune":
            prune.l1_unstructured(model.rnn, "weight_hh_l0", amount=0.5)
        elif decorate == "weight_norm":
            parametrizations.weight_norm(model.head, "weight")
        else:
            model.head.register_forward_hook(lambda m, i, o: o * 0.5)
        return model
    x, y = data()
    task = FusedTask("all", "mse", x, y)
    assert "bypass" in trainer.unsupported_reason(build(), task, TrainConfig())
    loss = lambda m, b: F.mse_loss(m(b[0]), b[1])  # noqa: E731
    auto, loop = build(), build()
    h_auto = fit(auto, loss, (x, y), None, TrainConfig(epochs=3), quiet=True, fused=task)
    h_loop = fit(loop, loss, (x, y), None, TrainConfig(epochs=3, engine="torch"), quiet=True)
    assert h_auto.engine == "torch"
    assert [r["train_loss"] for r in h_auto.rows] == [r["train_loss"] for r in h_loop.rows]  # same code twice
    with pytest.raises(rnnkit.RnnkitError, match="bypass"):
        fit(build(), loss, (x, y), None, TrainConfig(epochs=1, engine="fused"), quiet=True, fused=task)
