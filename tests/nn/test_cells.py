"""rnnkit.nn.cells against torch.nn.RNNCell/LSTMCell/GRUCell, gradcheck, Jordan golden values, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import rnnkit
from rnnkit import ConfigError, ElmanCell, GRUCell, JordanCell, LSTMCell, ShapeError

pytestmark = pytest.mark.usefixtures("single_thread")

F64, F32 = torch.float64, torch.float32
ATOL = {F64: 1e-10, F32: 1e-5}  # always with rtol=0
TWINS = {  # kind -> (rnnkit cell, torch.nn cell, kwargs)
    "rnn_tanh": (ElmanCell, nn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (ElmanCell, nn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (LSTMCell, nn.LSTMCell, {}),
    "gru": (GRUCell, nn.GRUCell, {}),
}


# --- parity with torch.nn cells ---------------------------------------------------------------
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("with_state", [True, False], ids=["state", "no_state"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", TWINS)
def test_cell_parity_with_torch(kind, dtype, bias, with_state, batched):
    ours_cls, ref_cls, kw = TWINS[kind]
    torch.manual_seed(0)
    ours = ours_cls(3, 5, bias, dtype=dtype, **kw)
    ref = ref_cls(3, 5, bias, dtype=dtype, **kw)  # different weights until copied
    ours.load_state_dict(ref.state_dict())
    lead = (4,) if batched else ()
    x = torch.randn(*lead, 3, dtype=dtype)
    n_states = 2 if kind == "lstm" else 1
    state = tuple(torch.randn(*lead, 5, dtype=dtype) for _ in range(n_states)) if with_state else None

    def leaves():
        return (x.clone().requires_grad_(),
                None if state is None else tuple(s.clone().requires_grad_() for s in state))

    o_x, o_s = leaves()
    y, o_new = ours(o_x, o_s)
    r_x, r_s = leaves()
    r_new = ref(r_x, None if r_s is None else (r_s if n_states == 2 else r_s[0]))
    r_new = r_new if n_states == 2 else (r_new,)
    tol = dict(atol=ATOL[dtype], rtol=0.0)
    assert_close(y, r_new[0], **tol)
    assert len(o_new) == n_states
    for a, b in zip(o_new, r_new):
        assert_close(a, b, **tol)
    g = torch.Generator().manual_seed(1)
    ws = [torch.randn(y.shape, generator=g, dtype=dtype) for _ in range(1 + n_states)]
    sum((w * t).sum() for w, t in zip(ws, (y, *o_new))).backward()
    sum((w * t).sum() for w, t in zip(ws, (r_new[0], *r_new))).backward()
    r_params = dict(ref.named_parameters())
    assert set(dict(ours.named_parameters())) == set(r_params)
    for name, p in ours.named_parameters():
        assert_close(p.grad, r_params[name].grad, **tol, msg=lambda m: f"grad of {name}: {m}")
    assert_close(o_x.grad, r_x.grad, **tol)
    for a, b in zip(o_s or (), r_s or ()):
        assert_close(a.grad, b.grad, **tol)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", TWINS)
def test_cell_state_dict_and_default_init_equal_torch_under_same_seed(kind, bias):
    ours_cls, ref_cls, kw = TWINS[kind]
    torch.manual_seed(11)
    ours = ours_cls(3, 4, bias, **kw)
    torch.manual_seed(11)
    ref = ref_cls(3, 4, bias, **kw)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert ours.state_dict()[k].shape == v.shape
        assert torch.equal(ours.state_dict()[k], v), k


@pytest.mark.parametrize("cls,kw", [(JordanCell, {"output_size": 5}), (LSTMCell, {"proj_size": 4})],
                         ids=["jordan", "lstm_proj"])
def test_cells_without_torch_twin_init_from_torch_distribution(cls, kw):
    """torch's rule, U(-1/sqrt(H), 1/sqrt(H)), also for weights torch.nn has no cell for."""
    torch.manual_seed(0)
    cell = cls(3, 16, dtype=F64, **kw)
    bound = 1 / math.sqrt(16)
    for name, p in cell.named_parameters():
        assert p.abs().max() <= bound, name
    flat = torch.cat([p.flatten() for p in cell.parameters()])
    assert 0.5 < flat.std().item() / (bound / math.sqrt(3)) < 1.5  # std of U(-b, b) is b/sqrt(3)


# --- gradcheck --------------------------------------------------------------------------------
GRADCHECK = {
    "elman_tanh": (ElmanCell, {"nonlinearity": "tanh"}),
    "elman_relu": (ElmanCell, {"nonlinearity": "relu"}),
    "elman_nobias": (ElmanCell, {"bias": False}),
    "jordan_identity": (JordanCell, {"output_size": 2}),
    "jordan_tanh": (JordanCell, {"output_size": 2, "output_activation": "tanh"}),
    "jordan_sigmoid": (JordanCell, {"output_size": 2, "output_activation": "sigmoid"}),
    "jordan_relu_relu": (JordanCell, {"nonlinearity": "relu", "output_activation": "relu"}),
    "lstm": (LSTMCell, {}),
    "lstm_proj": (LSTMCell, {"proj_size": 2}),
    "gru": (GRUCell, {}),
}


@pytest.mark.parametrize("kind", GRADCHECK)
def test_cell_gradcheck(kind):
    cls, kw = GRADCHECK[kind]
    torch.manual_seed(0)
    cell = cls(2, 3, dtype=F64, **kw)
    names = [n for n, _ in cell.named_parameters()]
    x = torch.randn(2, 2, dtype=F64, requires_grad=True)
    state = tuple(torch.randn(2, s, dtype=F64, requires_grad=True) for s in cell.state_sizes)
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]

    def f(x, *flat):
        s, w = flat[:len(state)], dict(zip(names, flat[len(state):]))
        y, new = torch.func.functional_call(cell, w, (x, s))
        return (y, *new)

    assert torch.autograd.gradcheck(f, (x, *state, *params))


# --- Jordan: golden values by hand --------------------------------------------------------------
def _set(module, **values):
    with torch.no_grad():
        for name, v in values.items():
            getattr(module, name).copy_(torch.tensor(v, dtype=F64))


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


PSI = {"identity": lambda v: v, "tanh": math.tanh, "sigmoid": _sigmoid}
GOLDEN_W = dict(weight_ih=[[0.5], [-1.0]], weight_yh=[[0.25], [0.75]], bias_h=[0.1, -0.2],
                weight_hy=[[1.0, -0.5]], bias_y=[0.3])


@pytest.mark.parametrize("out_act", PSI)
def test_jordan_golden_values(out_act):
    """h_t = tanh(W_ih x_t + W_yh y_{t-1} + b_h), y_t = psi(W_hy h_t + b_y), written out by hand."""
    psi = PSI[out_act]
    # step 1: x = 1.0, y_0 = 0.0
    h1a = math.tanh(0.5 * 1.0 + 0.25 * 0.0 + 0.1)
    h1b = math.tanh(-1.0 * 1.0 + 0.75 * 0.0 - 0.2)
    y1 = psi(1.0 * h1a - 0.5 * h1b + 0.3)
    # step 2: x = -0.5
    h2a = math.tanh(0.5 * -0.5 + 0.25 * y1 + 0.1)
    h2b = math.tanh(-1.0 * -0.5 + 0.75 * y1 - 0.2)
    y2 = psi(1.0 * h2a - 0.5 * h2b + 0.3)
    # step 3: x = 2.0
    h3a = math.tanh(0.5 * 2.0 + 0.25 * y2 + 0.1)
    h3b = math.tanh(-1.0 * 2.0 + 0.75 * y2 - 0.2)
    y3 = psi(1.0 * h3a - 0.5 * h3b + 0.3)
    expected = [y1, y2, y3]

    cell = JordanCell(1, 2, output_size=1, output_activation=out_act, dtype=F64)
    _set(cell, **GOLDEN_W)
    state, got = None, []
    for x_t in (1.0, -0.5, 2.0):
        y, state = cell(torch.tensor([[x_t]], dtype=F64), state)
        assert torch.equal(state[0], y)  # the state is the output
        got.append(y.item())
    assert got == pytest.approx(expected, abs=1e-12, rel=0)

    layer = rnnkit.Jordan(1, 2, output_size=1, output_activation=out_act, backend="reference", dtype=F64)
    _set(layer, **{k + "_l0": v for k, v in GOLDEN_W.items()})
    out, y_n = layer(torch.tensor([[[1.0]], [[-0.5]], [[2.0]]], dtype=F64))  # (T=3, B=1, I=1)
    assert out.flatten().tolist() == pytest.approx(expected, abs=1e-12, rel=0)
    assert y_n.shape == (1, 1, 1) and y_n.item() == pytest.approx(y3, abs=1e-12, rel=0)


def test_jordan_state_is_previous_output_entering_through_weight_yh():
    cell = JordanCell(1, 2, output_size=1, dtype=F64)
    _set(cell, weight_ih=[[3.0], [-2.0]], weight_yh=[[0.5], [-1.5]], bias_h=[0.0, 0.0],
         weight_hy=[[2.0, 1.0]], bias_y=[0.0])
    x = torch.zeros(1, 1, dtype=F64)  # no input: only y_prev drives h
    y_prev = torch.tensor([[0.8]], dtype=F64, requires_grad=True)
    y, (state,) = cell(x, (y_prev,))
    ha, hb = math.tanh(0.5 * 0.8), math.tanh(-1.5 * 0.8)
    assert y.item() == pytest.approx(2.0 * ha + 1.0 * hb, abs=1e-12, rel=0)
    assert state.shape == (1, 1)  # (B, O), not (B, H): the state is y, not h
    y.backward()
    dy_dyprev = 2.0 * (1 - ha ** 2) * 0.5 + 1.0 * (1 - hb ** 2) * -1.5
    assert y_prev.grad.item() == pytest.approx(dy_dyprev, abs=1e-12, rel=0)
    _set(cell, weight_yh=[[0.0], [0.0]])  # cut the only path from y_prev
    y_a, _ = cell(x, (torch.tensor([[0.8]], dtype=F64),))
    y_b, _ = cell(x, (torch.tensor([[-3.0]], dtype=F64),))
    assert torch.equal(y_a, y_b)


# --- keras initialisation ---------------------------------------------------------------------------
def assert_keras_init(weights, cls, H):
    """``weights``: name -> tensor for one cell (torch names without layer suffix)."""
    blocks = {LSTMCell: 4, GRUCell: 3}.get(cls, 1)
    for name, p in weights.items():
        if name.startswith("bias"):
            expected = torch.zeros_like(p)
            if cls is LSTMCell:  # forget gate: b_if + b_hf == 1
                assert_close(weights["bias_ih"][H:2 * H] + weights["bias_hh"][H:2 * H],
                             torch.ones(H, dtype=p.dtype), atol=1e-12, rtol=0)
                expected[H:2 * H] = p[H:2 * H]
            assert torch.equal(p, expected), f"{name} must be zero (except the LSTM forget gate)"
            continue
        n = blocks if name in ("weight_ih", "weight_hh") else 1
        rows = p.shape[0] // n
        for k in range(n):
            w = p[k * rows:(k + 1) * rows]
            if name in ("weight_hh", "weight_yh"):  # orthogonal: W W^T = I (or W^T W for tall W)
                gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
                assert_close(gram, torch.eye(gram.shape[0], dtype=p.dtype), atol=1e-10, rtol=0,
                             msg=lambda m: f"{name} block {k} not orthogonal: {m}")
            else:  # Glorot uniform: |w| <= sqrt(6 / (fan_in + fan_out)) per block
                bound = math.sqrt(6.0 / (w.shape[1] + w.shape[0]))
                assert w.abs().max() <= bound, f"{name} block {k} exceeds the Glorot bound"
                assert w.abs().max() > 0, f"{name} block {k} is zero"


KERAS_CELLS = [(ElmanCell, {}), (JordanCell, {"output_size": 3}), (LSTMCell, {}), (LSTMCell, {"proj_size": 2}),
               (GRUCell, {})]
KERAS_IDS = ["elman", "jordan", "lstm", "lstm_proj", "gru"]


@pytest.mark.parametrize("how", ["reset_parameters", "keras_init_"])
@pytest.mark.parametrize("cls,kw", KERAS_CELLS, ids=KERAS_IDS)
def test_keras_init_cell(cls, kw, how):
    torch.manual_seed(0)
    cell = cls(3, 5, dtype=F64, **kw)
    if how == "keras_init_":
        assert rnnkit.keras_init_(cell) is cell
    else:
        cell.reset_parameters(init="keras")
    assert_keras_init(dict(cell.named_parameters()), cls, 5)


@pytest.mark.parametrize("how", ["init_arg", "keras_init_"])
@pytest.mark.parametrize("cls,kw", KERAS_CELLS, ids=KERAS_IDS)
def test_keras_init_layer(cls, kw, how):
    torch.manual_seed(0)
    name = {ElmanCell: "elman", JordanCell: "jordan", LSTMCell: "lstm", GRUCell: "gru"}[cls]
    args = (name, 3, 5)
    opts = dict(num_layers=2, bidirectional=True, dtype=F64, **kw)
    if how == "init_arg":
        layer = rnnkit.Recurrent(*args, init="keras", **opts)
    else:
        layer = rnnkit.Recurrent(*args, **opts)
        assert rnnkit.keras_init_(layer) is layer
    sd = layer.state_dict()
    for suffix in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        weights = {k[:-len(suffix)]: v for k, v in sd.items() if k.endswith(suffix)}
        assert weights, suffix
        assert_keras_init(weights, cls, 5)


# --- errors -----------------------------------------------------------------------------------------
def _raises(exc, fn, *fragments):
    with pytest.raises(exc) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def test_cell_shape_errors_name_expected_and_received():
    cell = LSTMCell(3, 5)
    x = torch.randn(2, 3)
    _raises(ShapeError, lambda: cell(torch.randn(2, 4)), "(B, 3)", "(2, 4)")
    _raises(ShapeError, lambda: cell(torch.randn(2, 1, 3)), "(B, 3)", "(2, 1, 3)")
    _raises(ShapeError, lambda: cell(x, (torch.randn(2, 5), torch.randn(3, 5))), "((2, 5), (2, 5))", "(3, 5)")
    _raises(ShapeError, lambda: cell(x, torch.randn(2, 5)), "((2, 5), (2, 5))", "((2, 5),)")
    _raises(ShapeError, lambda: cell(x.double()), "float32", "float64")
    _raises(ShapeError, lambda: cell(torch.ones(2, 3, dtype=torch.int64)), "int64")
    _raises(ShapeError, lambda: ElmanCell(3, 5)(x, torch.randn(2, 4)), "((2, 5),)", "((2, 4),)")


def test_cell_config_errors():
    _raises(ConfigError, lambda: ElmanCell(3, 5, nonlinearity="gelu"), "gelu")
    _raises(ConfigError, lambda: JordanCell(3, 5, output_activation="softmax"), "softmax")
    _raises(ConfigError, lambda: LSTMCell(3, 5, proj_size=5), "proj_size")
    _raises(ConfigError, lambda: GRUCell(0, 5), "input_size")
    _raises(ConfigError, lambda: GRUCell(3, 5).reset_parameters(init="he"), "he")


# --- peephole LSTM (Gers, Schraudolph & Schmidhuber 2002) -----------------------------------------

def _peephole_by_hand(x, h, c, w_ih, w_hh, b, p_i, p_f, p_o):
    """One step written out gate by gate, independently of LSTMCell.step."""
    H = h.shape[-1]
    z = x @ w_ih.T + h @ w_hh.T + b
    zi, zf, zg, zo = (z[:, k * H:(k + 1) * H] for k in range(4))
    i = 1 / (1 + torch.exp(-(zi + p_i * c)))
    f = 1 / (1 + torch.exp(-(zf + p_f * c)))
    c_new = f * c + i * torch.tanh(zg)
    o = 1 / (1 + torch.exp(-(zo + p_o * c_new)))
    return o * torch.tanh(c_new), c_new


def test_peephole_lstm_step_equals_the_equations():
    torch.manual_seed(5)
    cell = LSTMCell(3, 4, peephole=True, dtype=torch.float64)
    x, h, c = (torch.randn(2, n, dtype=torch.float64) for n in (3, 4, 4))
    y, (h1, c1) = cell(x, (h, c))
    ref_h, ref_c = _peephole_by_hand(x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh,
                                     cell.weight_ci, cell.weight_cf, cell.weight_co)
    assert_close(h1, ref_h, atol=1e-14, rtol=0)
    assert_close(c1, ref_c, atol=1e-14, rtol=0)
    assert y is h1 or torch.equal(y, h1)  # without projection the output is h itself: one tensor
    plain = LSTMCell(3, 4, dtype=torch.float64)  # zero peepholes: the plain LSTM's numbers
    plain.load_state_dict({k: v for k, v in cell.state_dict().items() if not k.startswith("weight_c")})
    with torch.no_grad():
        for name in ("weight_ci", "weight_cf", "weight_co"):
            getattr(cell, name).zero_()
    # two code paths: adding the (zero) peephole terms turns the strided gate views into new
    # tensors, and torch's sigmoid rounds differently on strided and contiguous input depending
    # on the CPU's vector width (2.8e-17 apart under AVX2). float64 values of order 1 through a
    # few ops: a few ulp (~1e-16); 1e-14 leaves ample margin and still catches any real change
    assert_close(cell(x, (h, c))[0], plain(x, (h, c))[0], atol=1e-14, rtol=0)


def test_peephole_lstm_gradcheck_and_keras_init():
    torch.manual_seed(6)
    cell = LSTMCell(2, 3, peephole=True, dtype=torch.float64)
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    ws = [w.detach().clone().requires_grad_() for w in cell.weights() if w is not None]

    def f(x, h, c, *w):
        full = [w[0], w[1], w[2], w[3], None, w[4], w[5], w[6]]
        y, (h1, c1) = cell.step(x, (h, c), full)
        return y, c1
    assert torch.autograd.gradcheck(f, (x, *state, *ws), eps=1e-6, atol=1e-7)
    keras = LSTMCell(2, 3, peephole=True)
    keras.reset_parameters("keras")
    assert all(torch.equal(getattr(keras, n), torch.zeros(3)) for n in ("weight_ci", "weight_cf", "weight_co"))


def test_peephole_lstm_layer_runs_the_reference_loop_only():
    torch.manual_seed(7)
    layer = rnnkit.LSTM(2, 4, num_layers=2, batch_first=True, peephole=True, dtype=torch.float64)
    assert "weight_co_l1" in layer.state_dict() and "weight_ci_l0" in dict(layer.named_parameters())
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    assert layer.resolved_backend(x) == "reference"  # neither torch nor the fused kernels have peepholes
    out, (h, c) = layer(x)
    state = layer.init_state(3)
    with torch.no_grad():
        for t in range(5):
            y, state = layer.step(x[:, t], state)
            assert_close(y, out[:, t], atol=1e-12, rtol=0)
    with pytest.raises(ConfigError, match="peephole"):
        rnnkit.LSTM(2, 4, peephole=True, backend="fused", dtype=torch.float64)(x)
    with pytest.raises(ConfigError, match="does not support"):
        rnnkit.LSTM(2, 4, peephole=True, backend="torch", dtype=torch.float64)(x)
    with pytest.raises(ConfigError, match="peephole"):
        rnnkit.to_torch(layer)
    with pytest.raises(ConfigError, match="peephole"):
        rnnkit.ModelConfig(cell="gru", peephole=True)
    assert "peephole=True" in repr(layer) and "peephole" not in repr(rnnkit.LSTM(2, 4))
