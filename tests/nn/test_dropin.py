"""The drop-in layers (rnnkit.RNN/LSTM/GRU, rnnkit.nn.dropin) against torch.nn.RNN/LSTM/GRU, the
trusted reference, on every backend: outputs, final states and every gradient.

Parity compares outputs, final states and the gradient of every parameter, of the input and of
the initial state, after backpropagating one random weighted sum of all outputs and final states.
The loop's own invariants (for every cell, Jordan included) are in test_layers.py.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

import rnnkit

pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN"),
              pytest.mark.usefixtures("single_thread")]

F64, F32 = torch.float64, torch.float32
ATOL = {F64: 1e-10, F32: 1e-5}  # always with rtol=0
KINDS = ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"]
BACKENDS = ["reference", "torch", "fused"]
T, B = 5, 3
LENGTHS = [5, 2, 4]  # unsorted, includes the full length


# --- helpers ----------------------------------------------------------------------------------
TWINS = {  # kind -> (rnnkit class, torch.nn class, extra kwargs for hidden_size H)
    "rnn_tanh": (rnnkit.RNN, nn.RNN, lambda H: {"nonlinearity": "tanh"}),
    "rnn_relu": (rnnkit.RNN, nn.RNN, lambda H: {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTM, nn.LSTM, lambda H: {}),
    "lstm_proj": (rnnkit.LSTM, nn.LSTM, lambda H: {"proj_size": H // 2}),
    "gru": (rnnkit.GRU, nn.GRU, lambda H: {}),
}


def make_pair(kind, input_size=3, hidden_size=5, *, backend="reference", dtype=F64, device="cpu", **kw):
    if backend == "fused" and (kind == "lstm_proj" or str(device) != "cpu"):
        pytest.skip("the fused kernels cover CPU layers without projection (see test_fused_refuses_projection)")
    """(rnnkit layer, torch.nn twin) with the twin's weights copied into the rnnkit layer."""
    ours_cls, ref_cls, extra = TWINS[kind]
    kw = dict(kw, dtype=dtype, device=device, **extra(hidden_size))
    ours = ours_cls(input_size, hidden_size, backend=backend, **kw)
    ref = ref_cls(input_size, hidden_size, **kw)
    ours.load_state_dict(ref.state_dict())  # strict: every key must match
    return ours, ref


def random_hx(module, batch, dtype, device="cpu"):
    """A random initial state tuple for a torch.nn or rnnkit layer (``batch=None``: unbatched)."""
    LD = module.num_layers * (2 if module.bidirectional else 1)
    lead = (LD,) if batch is None else (LD, batch)
    proj = getattr(module, "proj_size", 0)
    sizes = [proj or module.hidden_size] + ([module.hidden_size] if isinstance(module, (nn.LSTM, rnnkit.LSTM)) else [])
    return tuple(torch.randn(*lead, s, dtype=dtype, device=device) for s in sizes)


def _as_tuple(h):
    return (h,) if isinstance(h, torch.Tensor) else tuple(h)


def _run(module, x, hx, lengths, mode, is_ours):
    """Forward with fresh leaves; returns (out, h_n tuple, x leaf, hx leaves)."""
    x = x.detach().clone().requires_grad_()
    hl = None if hx is None else tuple(h.detach().clone().requires_grad_() for h in hx)
    h_arg = None if hl is None else (hl if len(hl) == 2 else hl[0])
    bf = module.batch_first
    if mode == "none":
        out, hn = module(x, h_arg)
    elif mode == "lengths" and is_ours:
        out, hn = module(x, h_arg, lengths=torch.tensor(lengths))
    elif mode == "lengths":  # torch.nn is fed the packed equivalent, its output padded back
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=bf, enforce_sorted=False)
        out, hn = module(packed, h_arg)
        out = pad_packed_sequence(out, batch_first=bf, total_length=x.shape[1 if bf else 0])[0]
    else:  # "packed": both get the same PackedSequence
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=bf, enforce_sorted=False)
        out, hn = module(packed, h_arg)
    return out, _as_tuple(hn), x, hl


def assert_parity_with_torch(ours, ref, x, hx=None, lengths=None, mode="none", dtype=F64, seed=1):
    """Assert rnnkit ``ours`` == torch ``ref``: outputs, final states and all gradients."""
    ours.load_state_dict(ref.state_dict())
    tol = dict(atol=ATOL[dtype], rtol=0.0)
    o_out, o_hn, o_x, o_hx = _run(ours, x, hx, lengths, mode, True)
    r_out, r_hn, r_x, r_hx = _run(ref, x, hx, lengths, mode, False)
    if mode == "packed":
        assert isinstance(o_out, PackedSequence)
        assert torch.equal(o_out.batch_sizes, r_out.batch_sizes)
        assert torch.equal(o_out.sorted_indices, r_out.sorted_indices)
        assert torch.equal(o_out.unsorted_indices, r_out.unsorted_indices)
        o_out, r_out = o_out.data, r_out.data
    assert o_out.shape == r_out.shape and o_out.dtype == r_out.dtype
    assert_close(o_out, r_out, **tol)
    assert len(o_hn) == len(r_hn)
    for a, b in zip(o_hn, r_hn):
        assert a.shape == b.shape
        assert_close(a, b, **tol)
    g = torch.Generator(device=o_out.device).manual_seed(seed)
    weights = [torch.randn(t.shape, generator=g, dtype=t.dtype, device=t.device) for t in (r_out, *r_hn)]
    for out, hn in ((o_out, o_hn), (r_out, r_hn)):
        sum((w * t).sum() for w, t in zip(weights, (out, *hn))).backward()
    r_params = dict(ref.named_parameters())
    assert set(dict(ours.named_parameters())) == set(r_params)
    for name, p in ours.named_parameters():
        assert p.grad is not None and r_params[name].grad is not None, name
        assert_close(p.grad, r_params[name].grad, **tol, msg=lambda m: f"grad of {name}: {m}")
    assert_close(o_x.grad, r_x.grad, **tol)
    for a, b in zip(o_hx or (), r_hx or ()):
        assert_close(a.grad, b.grad, **tol)


def make_input(batch_first, dtype=F64, device="cpu", input_size=3, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(T, B, input_size, dtype=dtype, device=device)
    return x.transpose(0, 1).contiguous() if batch_first else x


# --- parity with torch.nn -----------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("mode", ["none", "lengths", "packed"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_parity_float64_structure(kind, backend, mode, num_layers, bidirectional):
    ours, ref = make_pair(kind, backend=backend, num_layers=num_layers, bidirectional=bidirectional)
    x = make_input(False)
    assert_parity_with_torch(ours, ref, x, random_hx(ref, B, F64), LENGTHS, mode)


@pytest.mark.parametrize("h0", [False, True], ids=["no_h0", "h0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbf", "bf"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_parity_float64_options(kind, backend, bias, batch_first, h0):
    """bias, batch_first and h0 on the hardest path: 2 layers, bidirectional, with lengths."""
    ours, ref = make_pair(kind, backend=backend, num_layers=2, bidirectional=True, bias=bias,
                          batch_first=batch_first)
    x = make_input(batch_first)
    hx = random_hx(ref, B, F64) if h0 else None
    for mode in ("none", "lengths"):
        assert_parity_with_torch(ours, ref, x, hx, LENGTHS, mode)


SIZES = [pytest.param(k, b, I, H, id=f"{k}-{b}-I{I}H{H}")
         for k, b, I, H in itertools.product(KINDS, BACKENDS, [1, 3], [1, 5, 8])
         if not (k == "lstm_proj" and H == 1)]  # proj_size must be below hidden_size


@pytest.mark.parametrize("kind,backend,input_size,hidden_size", SIZES)
def test_parity_float64_sizes(kind, backend, input_size, hidden_size):
    ours, ref = make_pair(kind, input_size, hidden_size, backend=backend, num_layers=2, bidirectional=True)
    x = make_input(False, input_size=input_size)
    assert_parity_with_torch(ours, ref, x, random_hx(ref, B, F64), LENGTHS, "lengths")


@pytest.mark.parametrize("mode", ["none", "lengths", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_parity_float32(kind, backend, bidirectional, mode):
    ours, ref = make_pair(kind, backend=backend, dtype=F32, num_layers=2, bidirectional=bidirectional)
    x = make_input(False, F32)
    assert_parity_with_torch(ours, ref, x, random_hx(ref, B, F32), LENGTHS, mode, dtype=F32)


@pytest.mark.parametrize("h0", [False, True], ids=["no_h0", "h0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbf", "bf"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_parity_unbatched(kind, backend, batch_first, h0):
    ours, ref = make_pair(kind, backend=backend, num_layers=2, bidirectional=True, batch_first=batch_first)
    torch.manual_seed(0)
    x = torch.randn(T, 3, dtype=F64)  # (T, I) whatever batch_first says, as in torch
    hx = random_hx(ref, None, F64) if h0 else None
    assert_parity_with_torch(ours, ref, x, hx)


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm_proj", "gru"])
def test_parity_on_device(kind, backend, dtype, device):
    ours, ref = make_pair(kind, backend=backend, dtype=dtype, device=device, num_layers=2, bidirectional=True)
    x = make_input(False, dtype, device)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # cuDNN float32 without TF32
        for mode in ("none", "lengths"):
            assert_parity_with_torch(ours, ref, x, random_hx(ref, B, dtype, device), LENGTHS, mode, dtype=dtype)


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"])
def test_torch_backend_matches_reference_in_train_mode(kind):
    """3 layers, bidirectional, lengths, dropout=0 in train mode: the two backends agree in float64."""
    ref_backend, _ = make_pair(kind, backend="reference", num_layers=3, bidirectional=True)
    torch_backend, _ = make_pair(kind, backend="torch", num_layers=3, bidirectional=True)
    ref_backend.train(), torch_backend.train()
    x, hx = make_input(False), random_hx(ref_backend, B, F64)
    for mode in ("lengths", "packed"):  # "lengths": the reference layer is fed the packed input
        assert_parity_with_torch(torch_backend, ref_backend, x, hx, LENGTHS, mode)


@pytest.mark.parametrize("kind", KINDS)
def test_default_init_equals_torch_under_same_seed(kind):
    ours_cls, ref_cls, extra = TWINS[kind]
    torch.manual_seed(7)
    ours = ours_cls(3, 5, num_layers=2, bidirectional=True, **extra(5))
    torch.manual_seed(7)
    ref = ref_cls(3, 5, num_layers=2, bidirectional=True, **extra(5))
    assert list(ours.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert v.shape == ours.state_dict()[k].shape
        assert torch.equal(ours.state_dict()[k], v), k


def test_fused_refuses_projection():
    lstm = rnnkit.LSTM(3, 4, proj_size=2, backend="fused")
    with pytest.raises(rnnkit.ConfigError, match="proj_size"):
        lstm(torch.zeros(2, 1, 3))
