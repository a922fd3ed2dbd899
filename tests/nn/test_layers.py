"""rnnkit.nn.layers against torch.nn.RNN/LSTM/GRU (the trusted reference), and the loop's invariants.

Parity compares outputs, final states and the gradient of every parameter, of the input and of
the initial state, after backpropagating one random weighted sum of all outputs and final states.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

import rnnkit
from rnnkit import ConfigError, RnnkitError, ShapeError

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


# --- invariants of the loop, for every cell (Jordan included) --------------------------------------
CELLS = {  # id -> (Recurrent cell name, cell class, cell kwargs); hidden_size 4, input 3
    "elman_tanh": ("elman", rnnkit.ElmanCell, {"nonlinearity": "tanh"}),
    "elman_relu": ("elman", rnnkit.ElmanCell, {"nonlinearity": "relu"}),
    "jordan": ("jordan", rnnkit.JordanCell, {}),
    "jordan_out3_tanh": ("jordan", rnnkit.JordanCell, {"output_size": 3, "output_activation": "tanh"}),
    "lstm": ("lstm", rnnkit.LSTMCell, {}),
    "lstm_proj": ("lstm", rnnkit.LSTMCell, {"proj_size": 2}),
    "gru": ("gru", rnnkit.GRUCell, {}),
}
# torch has no Jordan kernel; the fused kernels have no LSTM projection (test_fused_refuses_projection)
WITH_BACKENDS = [(k, b) for k in CELLS for b in BACKENDS
                 if b == "reference" or (b == "torch" and "jordan" not in k) or (b == "fused" and k != "lstm_proj")]
EXACT = dict(atol=1e-12, rtol=0.0)  # float64, same math in a different loop


def make_layer(kind, backend="reference", **kw):
    torch.manual_seed(3)
    name, _, cell_kw = CELLS[kind]
    return rnnkit.Recurrent(name, 3, 4, backend=backend, dtype=F64, **kw, **cell_kw)


def random_state(layer, batch):
    LD = layer.num_layers * layer.num_directions
    states = tuple(torch.randn(LD, batch, s, dtype=F64) for s in layer.state_sizes)
    return states[0] if len(states) == 1 else states


def standalone_cells(layer, kind):
    """One free-standing cell per layer, holding that layer's weights (unidirectional layers)."""
    _, cls, cell_kw = CELLS[kind]
    cells, in_size = [], layer.input_size
    for l in range(layer.num_layers):
        cell = cls(in_size, layer.hidden_size, layer.bias, dtype=F64, **cell_kw)
        sfx = f"_l{l}"
        cell.load_state_dict({k[:-len(sfx)]: v for k, v in layer.state_dict().items() if k.endswith(sfx)})
        cells.append(cell)
        in_size = cell.output_size
    return cells


@pytest.mark.parametrize("kind", CELLS)
def test_cells_stepped_by_hand_equal_the_layer(kind):
    layer = make_layer(kind, num_layers=2, batch_first=True)
    x, h0 = torch.randn(B, T, 3, dtype=F64), random_state(layer, B)
    out, hn = layer(x, h0)
    seq, finals = x, []
    for l, cell in enumerate(standalone_cells(layer, kind)):
        state = tuple(s[l] for s in _as_tuple(h0))
        ys = []
        for t in range(T):
            y, state = cell(seq[:, t], state)
            ys.append(y)
        seq = torch.stack(ys, 1)  # T x (B, O) -> (B, T, O)
        finals.append(state)
    assert_close(out, seq, **EXACT)
    for i, h in enumerate(_as_tuple(hn)):
        assert_close(h, torch.stack([f[i] for f in finals]), **EXACT)


@pytest.mark.parametrize("kind,backend", WITH_BACKENDS)
def test_two_chunks_with_carried_state_equal_one_pass(kind, backend):
    layer = make_layer(kind, backend, num_layers=2)
    x, h0 = torch.randn(T, B, 3, dtype=F64), random_state(layer, B)
    out, hn = layer(x, h0)
    out1, s1 = layer(x[:2], h0)
    out2, s2 = layer(x[2:], s1)
    assert_close(torch.cat([out1, out2]), out, **EXACT)
    for a, b in zip(_as_tuple(s2), _as_tuple(hn)):
        assert_close(a, b, **EXACT)


@pytest.mark.parametrize("kind,backend", WITH_BACKENDS)
def test_streaming_step_equals_full_sequence(kind, backend):
    layer = make_layer(kind, backend, num_layers=2, batch_first=True)
    x = torch.randn(B, T, 3, dtype=F64)
    out, hn = layer(x)
    state = None
    for t in range(T):
        y, state = layer.step(x[:, t], state)
        assert_close(y, out[:, t], **EXACT)
    for a, b in zip(_as_tuple(state), _as_tuple(hn)):
        assert_close(a, b, **EXACT)


@pytest.mark.parametrize("kind,backend", WITH_BACKENDS)
def test_lengths_equal_running_each_sequence_alone(kind, backend):
    layer = make_layer(kind, backend, num_layers=2, bidirectional=True, batch_first=True)
    x, h0 = torch.randn(B, T, 3, dtype=F64), random_state(layer, B)
    out, hn = layer(x, h0, lengths=LENGTHS)
    O = layer.output_size
    for b, n in enumerate(LENGTHS):
        h0_b = tuple(s[:, b:b + 1] for s in _as_tuple(h0))
        out_b, hn_b = layer(x[b:b + 1, :n], h0_b[0] if len(h0_b) == 1 else h0_b)
        assert_close(out[b, :n], out_b[0], **EXACT)
        assert torch.equal(out[b, n:], torch.zeros_like(out[b, n:])), "output past the end must be 0"
        for a, a_b in zip(_as_tuple(hn), _as_tuple(hn_b)):
            assert_close(a[:, b], a_b[:, 0], **EXACT)
        # forward direction of the last layer: h_n is the state at step n-1, which is y_{n-1}
        assert_close(_as_tuple(hn)[0][-2, b], out[b, n - 1, :O], **EXACT)


# --- dropout ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,backend", WITH_BACKENDS)
def test_dropout_is_off_in_eval_mode(kind, backend):
    dropped = make_layer(kind, backend, num_layers=3, dropout=0.5).eval()
    plain = make_layer(kind, backend, num_layers=3, dropout=0.0).eval()
    plain.load_state_dict(dropped.state_dict())
    x = torch.randn(T, B, 3, dtype=F64)
    assert torch.equal(dropped(x)[0], plain(x)[0])


@pytest.mark.parametrize("kind,backend", WITH_BACKENDS)
def test_dropout_acts_between_layers_in_train_mode(kind, backend):
    layer = make_layer(kind, backend, num_layers=2, dropout=0.5)
    x = torch.randn(T, B, 3, dtype=F64)
    torch.manual_seed(0)
    out_train = layer.train()(x)[0]
    out_eval = layer.eval()(x)[0]
    assert not torch.allclose(out_train, out_eval), "dropout had no effect in train mode"
    if CELLS[kind][2].get("nonlinearity") != "relu":  # relu outputs are legitimately 0
        assert (out_train != 0).all(), "the last layer's output must not be dropped"


def test_dropout_with_one_layer_warns_and_does_nothing():
    with pytest.warns(UserWarning, match="num_layers=1"):
        layer = rnnkit.GRU(3, 4, num_layers=1, dropout=0.5, backend="reference", dtype=F64)
    x = torch.randn(T, B, 3, dtype=F64)
    assert torch.equal(layer.train()(x)[0], layer.eval()(x)[0])


# --- gradcheck through the whole layer ------------------------------------------------------------
@pytest.mark.parametrize("kind", CELLS)
def test_layer_gradcheck_with_lengths(kind):
    torch.manual_seed(0)
    name, _, cell_kw = CELLS[kind]
    cell_kw = dict(cell_kw, proj_size=1) if "proj_size" in cell_kw else cell_kw
    cell_kw = dict(cell_kw, output_size=2) if "output_size" in cell_kw else cell_kw
    layer = rnnkit.Recurrent(name, 2, 2, num_layers=2, bidirectional=True, backend="reference",
                             dtype=F64, **cell_kw)
    names = [n for n, _ in layer.named_parameters()]
    x = torch.randn(3, 2, 2, dtype=F64, requires_grad=True)  # (T, B, I)
    hx = tuple(t.requires_grad_() for t in _as_tuple(random_state(layer, 2)))
    lengths = torch.tensor([3, 2])

    def f(x, *flat):
        h = flat[:len(hx)]
        params = dict(zip(names, flat[len(hx):]))
        out, hn = torch.func.functional_call(layer, params, (x, h[0] if len(h) == 1 else h), {"lengths": lengths})
        return (out, *_as_tuple(hn))

    flat = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(f, (x, *hx, *flat))


# --- errors ---------------------------------------------------------------------------------------
def test_error_classes():
    assert issubclass(ShapeError, RnnkitError) and issubclass(ConfigError, RnnkitError)


def _raises(exc, fn, *fragments):
    with pytest.raises(exc) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def test_shape_errors_name_expected_and_received():
    lstm = rnnkit.LSTM(3, 5, num_layers=2)
    x = torch.randn(4, 2, 3)
    _raises(ShapeError, lambda: lstm(torch.randn(4, 2, 7)), "F=3", "(4, 2, 7)")
    _raises(ShapeError, lambda: lstm(torch.randn(4, 2, 1, 3)), "F=3", "(4, 2, 1, 3)")
    _raises(ShapeError, lambda: lstm(x, (torch.randn(1, 2, 5), torch.randn(2, 2, 5))), "(2, 2, 5)", "(1, 2, 5)")
    _raises(ShapeError, lambda: lstm(x, torch.randn(2, 2, 5)), "2 tensor", "(2, 2, 5)")
    _raises(ShapeError, lambda: lstm(x.double()), "float32", "float64")
    _raises(ShapeError, lambda: lstm(torch.ones(4, 2, 3, dtype=torch.int64)), "int64")
    _raises(ShapeError, lambda: lstm(x, lengths=[4, 0]), "[1, 4]", "[4, 0]")
    _raises(ShapeError, lambda: lstm(x, lengths=[4, 5]), "[1, 4]", "[4, 5]")
    _raises(ShapeError, lambda: lstm(x, lengths=[4, 3, 2]), "(2,)", "(3,)")
    _raises(ShapeError, lambda: lstm(x[:, 0], (torch.randn(2, 1, 5), torch.randn(2, 1, 5))), "(2, 5)", "(2, 1, 5)")
    rnn = rnnkit.RNN(3, 5, batch_first=True)
    _raises(ShapeError, lambda: rnn(torch.randn(2, 4, 3), torch.randn(1, 3, 5)), "(1, 2, 5)", "(1, 3, 5)")
    _raises(ShapeError, lambda: rnn(torch.randn(2, 4, 3), torch.randn(1, 2, 5, dtype=F64)), "float64")


def test_config_errors():
    x = torch.randn(4, 2, 3)
    _raises(ConfigError, lambda: rnnkit.Recurrent("transformer", 3, 5), "transformer")
    _raises(ConfigError, lambda: rnnkit.LSTM(3, 5, num_layers=0), "num_layers")
    _raises(ConfigError, lambda: rnnkit.GRU(3, 5, num_layers=2, dropout=1.5), "dropout")
    _raises(ConfigError, lambda: rnnkit.RNN(3, 5, backend="cudnn"), "cudnn")
    _raises(ConfigError, lambda: rnnkit.RNN(3, 5, init="xavier"), "xavier")
    _raises(ConfigError, lambda: rnnkit.Jordan(3, 5, backend="torch")(x), "Jordan")
    _raises(ConfigError, lambda: rnnkit.LSTM(3, 5, bidirectional=True).step(x[0]), "bidirectional")
    packed = pack_padded_sequence(x, torch.tensor([4, 3]))
    _raises(ConfigError, lambda: rnnkit.GRU(3, 5)(packed, lengths=[4, 3]), "lengths")


@pytest.mark.parametrize("kind,backend", WITH_BACKENDS)
def test_padding_values_never_matter(kind, backend):
    """NaN in the padding gives the same outputs and (finite) gradients as zero padding."""
    layer = make_layer(kind, backend, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(B, T, 3, dtype=F64)
    results = []
    for fill in (0.0, float("nan")):
        xp = x.clone()
        for b, n in enumerate(LENGTHS):
            xp[b, n:] = fill
        xp.requires_grad_()
        layer.zero_grad()
        out, hn = layer(xp, lengths=LENGTHS)
        (out.sum() + sum(h.sum() for h in _as_tuple(hn))).backward()
        results.append([out, *_as_tuple(hn), xp.grad, *(p.grad for p in layer.parameters())])
    for a, b in zip(*results):
        assert_close(a, b, atol=1e-12, rtol=0)  # assert_close also fails on any NaN


def test_fused_refuses_projection():
    lstm = rnnkit.LSTM(3, 4, proj_size=2, backend="fused")
    with pytest.raises(rnnkit.ConfigError, match="proj_size"):
        lstm(torch.zeros(2, 1, 3))
