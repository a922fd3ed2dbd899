"""rnnkit.nn.layers.Recurrent's invariants, for every cell (Jordan included): stepping the cells by
hand equals the layer, two chunks with the carried state equal one pass, streaming equals the whole
sequence, lengths equal running each sequence alone, dropout, gradcheck, and the errors for bad
shapes and settings. Parity with torch.nn is in test_dropin.py.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence
from torch.testing import assert_close

import rnnkit
from rnnkit import ConfigError, RnnkitError, ShapeError

pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN"),
              pytest.mark.usefixtures("single_thread")]

F64 = torch.float64
BACKENDS = ["reference", "torch", "fused"]
T, B = 5, 3
LENGTHS = [5, 2, 4]  # unsorted, includes the full length


def _as_tuple(h):
    return (h,) if isinstance(h, torch.Tensor) else tuple(h)


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

