"""The drop-in layers behave like torch.nn's where user code touches them (issue 13).

Strides, parametrizations and pruning, argument types, torch's introspection surface,
quantization and TorchScript, PackedSequence and ``lengths=``: each compared with torch.nn itself.
Between two code paths the tolerance is the house one (float64 atol 1e-10: the backends sum in
other orders than torch, a few ulps per step over a handful of steps).
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize, prune
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.errors import ConfigTypeError

KINDS = ("RNN", "LSTM", "GRU")
BACKENDS = ("reference", "torch", "fused", "auto")
F64 = dict(atol=1e-10, rtol=0)


def _twins(kind, backend="auto", dtype=torch.float64, **kw):
    torch.manual_seed(0)
    ref = getattr(nn, kind)(3, 4, **kw).to(dtype)
    twin = getattr(rnnkit, kind)(3, 4, backend=backend, **kw).to(dtype)
    twin.load_state_dict(ref.state_dict())
    return ref, twin


def _states(h):
    return list(h) if isinstance(h, tuple) else [h]


def _close_with_grads(ref, twin, *args, inputs=(), **twin_kw):
    """Outputs, states and the gradients of every input (tensor arguments and ``inputs``) and
    parameter agree with torch's."""
    def run(m, **kw):
        out, h = m(*args, **kw)
        out = out.data if isinstance(out, nn.utils.rnn.PackedSequence) else out
        loss = out.pow(2).sum() + sum(s.pow(2).sum() for s in _states(h))
        leaves = list(inputs) + [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
        leaves += [p for _, p in sorted(m.named_parameters())]
        return [out, *_states(h), *torch.autograd.grad(loss, leaves, retain_graph=True)]  # shared inputs
    for a, b in zip(run(twin, **twin_kw), run(ref), strict=True):
        torch.testing.assert_close(a, b, **F64)


# --- 1. strides ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind, backend, batch_first, bidirectional",
                         list(itertools.product(KINDS, BACKENDS, (False, True), (False, True))))
def test_outputs_are_contiguous_or_have_torchs_strides(kind, backend, batch_first, bidirectional):
    ref, twin = _twins(kind, backend, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    x = x if batch_first else x.transpose(0, 1).contiguous()
    for inp in (x, x[0] if batch_first else x[:, 0]):  # batched and unbatched
        (out, h), (out_ref, _) = twin(inp), ref(inp)
        assert out.is_contiguous() or out.stride() == out_ref.stride()
        assert all(s.is_contiguous() for s in _states(h))
    out, _ = twin(x)
    if not batch_first:  # the PyTorch tutorial's pattern: lstm_out.view(len(seq), -1)
        assert torch.equal(out.view(5, -1), out.reshape(5, -1))


# --- 2. parametrizations, pruning, hooks -------------------------------------------------------
def _decorate(m):
    parametrizations.weight_norm(m, "weight_hh_l0")
    parametrizations.spectral_norm(m, "weight_ih_l1_reverse")
    prune.l1_unstructured(m, "weight_ih_l0", amount=0.3)
    return m


@pytest.mark.parametrize("kind, backend", list(itertools.product(KINDS, BACKENDS)))
def test_parametrized_layer_equals_parametrized_torch_layer(kind, backend):
    ref, twin = _twins(kind, backend, num_layers=2, bidirectional=True)
    _decorate(ref), _decorate(twin)
    assert dict(twin.named_parameters()).keys() == dict(ref.named_parameters()).keys()
    assert twin.state_dict().keys() == ref.state_dict().keys()
    twin.load_state_dict(ref.state_dict())
    ref.eval(), twin.eval()  # spectral_norm's power iteration would step in training mode
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    _close_with_grads(ref, twin, x)
    with torch.no_grad():  # the parametrized weight is read afresh on every forward
        for m in (ref, twin):
            m.parametrizations.weight_hh_l0.original0.mul_(3.0)
    _close_with_grads(ref, twin, x)


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_a_parametrized_layer_uses_the_parametrized_weights(kind):
    ref, twin = _twins(kind, "auto", dtype=torch.float32, num_layers=2)
    for m in (ref, twin):
        parametrizations.weight_norm(m, "weight_hh_l1")
        with torch.no_grad():
            m.parametrizations.weight_hh_l1.original0.mul_(2.0)  # so the parametrization matters
    twin.load_state_dict(ref.state_dict())
    ref.eval(), twin.eval()
    x = torch.randn(6, 1, 3)
    with torch.no_grad():
        expected, _ = ref(x)
        state, ys, state_ = None, [], twin.init_state(1)
        for t in range(6):
            y, state = twin.step(x[t], state)
            ys.append(y)
            torch.testing.assert_close(twin.step_(x[t], state_), y, atol=1e-6, rtol=0)  # float32 ulps
    torch.testing.assert_close(torch.stack(ys), expected, atol=1e-6, rtol=0)


def test_register_parametrization_and_parameter_hooks():
    class Symmetric(nn.Module):
        def forward(self, w):
            return w.triu() + w.triu(1).t()

    m = rnnkit.RNN(4, 4, backend="fused").double()
    parametrize.register_parametrization(m, "weight_hh_l0", Symmetric())
    assert torch.equal(m.weight_hh_l0, m.weight_hh_l0.t())
    twin = rnnkit.to_torch(m)  # torch.nn.RNN with the same parametrization
    assert parametrize.is_parametrized(twin, "weight_hh_l0") and twin.state_dict().keys() == m.state_dict().keys()
    x = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    _close_with_grads(twin, m, x)
    seen = []
    m.parametrizations.weight_hh_l0.original.register_hook(seen.append)
    m(x)[0].sum().backward()
    assert len(seen) == 1 and seen[0].abs().sum() > 0


def test_to_torch_and_from_torch_carry_parametrizations_and_pruning():
    ref, twin = _twins("LSTM", "fused", num_layers=2, bidirectional=True)
    _decorate(ref), _decorate(twin)
    twin.load_state_dict(ref.state_dict())
    back = rnnkit.to_torch(twin)
    assert type(back) is not nn.LSTM and isinstance(back, nn.LSTM)  # torch's Parametrized subclass
    assert back.state_dict().keys() == ref.state_dict().keys()
    again = rnnkit.from_torch(back, backend="fused")
    assert again.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    for m in (back, twin, again):
        m.eval()
    _close_with_grads(back, twin, x)
    _close_with_grads(back, again, x)


def test_named_parameters_and_torch_surface():
    for kind, kw in itertools.product(KINDS, ({}, {"num_layers": 2, "bidirectional": True, "bias": False})):
        ref, twin = _twins(kind, **kw)
        assert [n for n, _ in twin.named_parameters()] == [n for n, _ in ref.named_parameters()]
        assert twin._flat_weights_names == ref._flat_weights_names
        assert twin._all_weights == ref._all_weights
        assert [w.shape for w in twin._flat_weights] == [w.shape for w in ref._flat_weights]
        assert all(a is b for a, b in zip(twin._flat_weights, twin.parameters()))
        assert [[w.shape for w in ws] for ws in twin.all_weights] == [[w.shape for w in ws] for ws in ref.all_weights]
        assert (twin.mode, twin.proj_size) == (ref.mode, ref.proj_size)
        twin.flatten_parameters()
    ref, twin = _twins("LSTM", proj_size=2, num_layers=2)
    assert twin._flat_weights_names == ref._flat_weights_names and twin.proj_size == 2
    assert rnnkit.RNN(3, 4, nonlinearity="relu").mode == "RNN_RELU"
    assert rnnkit.Jordan(3, 4).mode == "JORDAN"


# --- 3. argument types, as torch checks them ----------------------------------------------------
ARGUMENT_CASES = [(kind, name, value) for kind in KINDS for name, values in {
    "input_size": [3.0, "3", None, 0, -1],
    "hidden_size": [4.0, "4", None, 0, -2],
    "num_layers": [0, -1, 2.0, "2", None, True],
    "bias": [0, 1, "True", None],
    "batch_first": ["False", 0, 1, None],
    "dropout": [1.5, -0.1, "0.1", True, None, torch.tensor(0.1)],
    "bidirectional": ["False", 0, 1, None],
    "proj_size": [-1, 4, 5, 2.0, "1", None, True, 1],
    "dtype": ["float32", torch.int64],
    "device": [3.5],
}.items() for value in values] + [("RNN", "nonlinearity", v) for v in ("sigmoid", "TANH", None, 3)]


def _torch_error(kind, name, value):
    """The exception torch.nn raises for this argument (at construction or first use), or None."""
    try:
        m = getattr(nn, kind)(**{"input_size": 3, "hidden_size": 4, name: value})
        m(torch.randn(2, 1, 3, dtype=next(m.parameters()).dtype))
    except Exception as e:  # noqa: BLE001 - whatever torch raises is the expectation
        return e
    return None


@pytest.mark.parametrize("kind, name, value", ARGUMENT_CASES, ids=str)
def test_arguments_are_checked_as_torch_checks_them(kind, name, value):
    expected = _torch_error(kind, name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropout with one layer
        if expected is None:
            m = getattr(rnnkit, kind)(**{"input_size": 3, "hidden_size": 4, name: value})
            m(torch.randn(2, 1, 3))
            return
        with pytest.raises(type(expected)) as info:
            getattr(rnnkit, kind)(**{"input_size": 3, "hidden_size": 4, name: value})
    if name not in ("dtype", "device"):  # those are torch.empty's own errors, as in torch
        assert isinstance(info.value, rnnkit.RnnkitError) and name in str(info.value)


@pytest.mark.parametrize("name", ["input_size", "hidden_size"])
def test_bool_sizes_are_refused_where_torch_takes_them_as_one(name):
    """Deliberately stricter than torch: ``hidden_size=True`` is a mistake, not 1."""
    with pytest.raises(ConfigTypeError, match=name):
        rnnkit.GRU(**{"input_size": 3, "hidden_size": 4, name: True})


def test_torch_accepted_values_are_accepted():
    for kw in ({"dropout": 1.0, "num_layers": 2}, {"dropout": 0}, {"batch_first": True}, {"bias": False}):
        ref, twin = _twins("GRU", **kw)
        assert twin.dropout == ref.dropout and twin.bias is ref.bias and twin.batch_first is ref.batch_first
    with pytest.raises(ConfigTypeError):  # the type error is also a ConfigError, for rnnkit's CLI
        rnnkit.LSTM(3, 4, batch_first="False")
    assert issubclass(ConfigTypeError, rnnkit.ConfigError) and issubclass(ConfigTypeError, TypeError)


def test_parameters_on_another_device_are_an_error_not_a_crash():
    m = rnnkit.GRU(3, 4, device="meta")  # the native kernels would read meta "memory"
    with pytest.raises(rnnkit.ShapeError, match="meta"):
        m(torch.randn(5, 2, 3))
    with pytest.raises(rnnkit.ShapeError, match="meta"):
        rnnkit.GRU(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4, device="meta"))


# --- 4. isinstance, quantization --------------------------------------------------------------
def test_layers_are_not_rnnbase_subclasses_and_quantization_warns():
    m = nn.Sequential(rnnkit.LSTM(3, 8), )
    assert not isinstance(m[0], nn.RNNBase)  # documented in rnnkit.nn.layers and the README
    quantization = pytest.importorskip("torch.ao.quantization")
    x = torch.randn(5, 2, 3)
    expected = m(x)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = quantization.quantize_dynamic(m, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    assert any("rnnkit.to_torch" in str(w.message) for w in caught)
    assert isinstance(q[0], rnnkit.LSTM) and torch.equal(q[0](x)[0], expected)  # unchanged, and said so
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        q = quantization.quantize_dynamic(nn.Sequential(rnnkit.to_torch(m[0])), {nn.LSTM}, dtype=torch.qint8)
    assert type(q[0]).__module__.startswith("torch.ao.nn.quantized.dynamic")


# --- 5. TorchScript -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind, backend", list(itertools.product(KINDS, BACKENDS)))
def test_jit_script_refuses_clearly(kind, backend):
    """TorchScript cannot compile the backend choice, lengths= or the native kernels: a clear error
    at script time (not "Can not create tuple with None type"), also inside a model."""
    m = getattr(rnnkit, kind)(3, 4, backend=backend)
    for target in (m, nn.Sequential(m)):
        with pytest.raises(rnnkit.ConfigError, match="jit.trace or torch.compile.*rnnkit.to_torch"):
            torch.jit.script(target)
    assert isinstance(m(torch.randn(5, 2, 3))[0], torch.Tensor)  # the layer itself is untouched


# --- 7. PackedSequence and lengths= ---------------------------------------------------------------
PACK_CASES = [c for c in itertools.product(KINDS, ("reference", "torch", "fused"), (1, 2), (False, True),
                                           (False, True), ([5, 3, 2], [3, 5, 2], [3, 2, 1]))]


@pytest.mark.parametrize("kind, backend, layers, bidirectional, batch_first, lengths", PACK_CASES, ids=str)
def test_packed_and_lengths_match_torch_packed(kind, backend, layers, bidirectional, batch_first, lengths):
    """A PackedSequence gives torch's PackedSequence (data, batch sizes, order); ``lengths=`` on the
    padded batch gives torch's padded result, with the convention of ``pad_packed_sequence(...,
    total_length=T)``: the output keeps the input's length T (also when every length is below it)
    and is zero past each length; ``h_n`` is each sequence's state at its own last step."""
    ref, twin = _twins(kind, backend, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    B, T = 3, 5
    x = torch.randn(B, T, 3, dtype=torch.float64, requires_grad=True)
    xin = x if batch_first else x.transpose(0, 1)
    n_states = layers * (2 if bidirectional else 1)
    h0 = torch.randn(n_states, B, 4, dtype=torch.float64)
    hx = (h0, torch.randn_like(h0)) if kind == "LSTM" else h0
    enforce_sorted = lengths == sorted(lengths, reverse=True)
    packed = pack_padded_sequence(xin, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=enforce_sorted)
    out_t, _ = twin(packed, hx)
    out_r, _ = ref(packed, hx)
    assert torch.equal(out_t.batch_sizes, out_r.batch_sizes)
    assert (out_t.sorted_indices is None) == (out_r.sorted_indices is None)
    _close_with_grads(ref, twin, packed, hx, inputs=(x,))

    class Padded(nn.Module):  # torch's layer seen through pack -> run -> pad, the lengths= convention
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, xs, h):
            p = pack_padded_sequence(xs, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
            out, h_n = self.m(p, h)
            return pad_packed_sequence(out, batch_first=batch_first, total_length=T)[0], h_n

    _close_with_grads(Padded(ref), twin, xin, hx, lengths=lengths)
    out, _ = twin(xin, hx, lengths=lengths)
    pad = torch.arange(T).unsqueeze(1) >= torch.tensor(lengths)  # (T, B) True past each length
    assert out.shape[:2] == ((B, T) if batch_first else (T, B))
    assert torch.all((out if not batch_first else out.transpose(0, 1))[pad] == 0)
