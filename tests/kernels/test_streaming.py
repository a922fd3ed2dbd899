"""The native streaming step (``layer.step`` and the in-place ``layer.step_``) against the layer's
forward: equal outputs and states, pooled states that stay valid, weights changed in every way torch
tracks (and behind its back), states whose memory changed, autograd. Threads, pickling and copies are
in test_streaming_safety.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit import TrainConfig
from rnnkit.kernels import _native
from rnnkit.kernels import stream as stream_kernels
from rnnkit.kernels.trainer import FusedTask
from rnnkit.training.loop import fit
from kernel_models import F64, CELLS, cell_name, states_of

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.skipif(not _native.available(), reason="native kernels unavailable")]


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
    assert stream_kernels.stream_plan(layer) is not None  # the native path ran
    for a, b in zip(state if isinstance(state, tuple) else (state,), h_full if isinstance(h_full, tuple) else (h_full,)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_streaming_step_states_stay_valid_when_kept(kind, monkeypatch):
    """The functional step hands out pooled memory: every state it returns must stay intact
    however many steps follow (past several pool refills), and branching from an old state (a
    beam search) must neither change it nor the states made from it."""
    torch.manual_seed(3)
    for pool_bytes in (1, 4 * 64 * 8 * 3):  # one step per pool, then a few steps per pool
        monkeypatch.setattr(stream_kernels, "STREAM_POOL_BYTES", pool_bytes)
        layer = rnnkit.Recurrent(kind, 2, 8, num_layers=2, dtype=F64)
        x = torch.randn(20, 3, 2, dtype=F64)
        with torch.no_grad():
            full, _ = layer(x)
            state, kept = layer.init_state(3), []
            for t in range(20):
                y, state = layer.step(x[t], state)
                kept.append((y, state))
            assert stream_kernels.stream_plan(layer) is not None
            for t, (y, _) in enumerate(kept):  # nothing was overwritten by later steps
                torch.testing.assert_close(y, full[t], atol=1e-12, rtol=0)
            root = kept[4][1]
            before = [s.clone() for s in states_of(root)]
            branches = [layer.step(torch.full((3, 2), v, dtype=F64), root) for v in (0.5, -0.5)]
            ref = [layer(torch.cat([x[:5], torch.full((1, 3, 2), v, dtype=F64)]))[0][-1] for v in (0.5, -0.5)]
        for (y, _), r in zip(branches, ref):
            torch.testing.assert_close(y, r, atol=1e-12, rtol=0)
        for a, b in zip(states_of(root), before):
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


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_inplace_streaming_step_equals_full_sequence(kind, backend):
    torch.manual_seed(6)
    layer = rnnkit.Recurrent(cell_name(kind), 3, 5, num_layers=2, dtype=F64, backend=backend, **CELLS[kind])
    x = torch.randn(7, 4, 3, dtype=F64)
    with torch.no_grad():
        full, h_full = layer(x)
    state = layer.init_state(4)
    buffers = [t.data_ptr() for t in states_of(state)]
    for t in range(7):
        y = layer.step_(x[t], state)
        torch.testing.assert_close(y, full[t], atol=1e-12, rtol=0)
    assert [t.data_ptr() for t in states_of(state)] == buffers  # updated in place
    for a, b in zip(states_of(state), states_of(h_full)):
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
    assert max(t.untyped_storage().nbytes() for t in (y, h, c)) <= stream_kernels.STREAM_POOL_BYTES


def test_streaming_under_autograd_tracks_every_trainable_weight():
    layer = rnnkit.GRU(2, 3)
    layer.weight_ih_l0.requires_grad_(False)  # frozen; the other weights still train
    y, _ = layer.step(torch.zeros(1, 2))
    assert y.requires_grad


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
    assert agrees() and stream_kernels.stream_plan(model.rnn) is not None
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
