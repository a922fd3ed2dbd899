"""The cell registry (CellSpec) and the minimal GRU that proves a cell is one file.

The generic tests iterate over ``cell_specs()``: a newly registered cell is gradchecked, run step
by step against its layer and in two chunks, and checked for Keras-style init without editing
this file.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

import rnnkit
from rnnkit import ConfigError
from rnnkit.cli import main
from rnnkit.config import CELL_NAMES
from rnnkit.nn.cells import (CellSpec, GRUCell, MinGRUCell, NativeSpec, RecurrentCell, cell_spec, cell_specs,
                             register_cell, spec_of)

pytestmark = pytest.mark.usefixtures("single_thread")

F64 = torch.float64
SPECS = cell_specs()
IDS = [s.name for s in SPECS]
# float64 values of order 1 through a few dozen operations agree to a few ulp (~1e-16) when two
# code paths order their sums differently (a hand-written formula vs F.linear, one step vs a loop);
# 1e-12 leaves ample margin and still catches any wrong term, which moves values by ~1e-2
TOL = dict(atol=1e-12, rtol=0.0)


def _sig(v: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-v))


def _mingru_by_hand(x, h, w_ih, b_ih):
    """One minGRU step written out from the paper's equations, independently of MinGRUCell.step:
    z = sigmoid(W_z x + b_z), h~ = W_h x + b_h, h' = (1 - z) h + z h~ (rows 0..H of W_ih are W_z)."""
    H = h.shape[-1]
    w_z, w_h, b_z, b_h = w_ih[:H], w_ih[H:], b_ih[:H], b_ih[H:]
    z = _sig(x @ w_z.T + b_z)
    h_tilde = x @ w_h.T + b_h
    return (1 - z) * h + z * h_tilde


# --- the minimal GRU against its equations -------------------------------------------------------
def test_mingru_parameters_are_torch_style_and_it_has_no_hidden_weights():
    cell = MinGRUCell(3, 5, dtype=F64)
    assert {n: tuple(p.shape) for n, p in cell.named_parameters()} == {"weight_ih": (10, 3), "bias_ih": (10,)}
    assert [n for n, _ in MinGRUCell(3, 5, bias=False).named_parameters()] == ["weight_ih"]
    bound = 1 / math.sqrt(5)  # torch's rule
    assert all(p.abs().max() <= bound for p in cell.parameters())


def test_mingru_step_and_sequence_equal_the_equations():
    torch.manual_seed(0)
    cell = MinGRUCell(3, 4, dtype=F64)
    x = torch.randn(2, 6, 3, dtype=F64)  # (B, T, I)
    h = torch.randn(2, 4, dtype=F64)
    y, (h1,) = cell(x[:, 0], (h,))
    assert_close(h1, _mingru_by_hand(x[:, 0], h, cell.weight_ih, cell.bias_ih), **TOL)
    assert torch.equal(y, h1)  # the output is the state
    layer = rnnkit.Recurrent("mingru", 3, 4, batch_first=True, dtype=F64)
    layer.load_state_dict({"weight_ih_l0": cell.weight_ih, "bias_ih_l0": cell.bias_ih})
    out, h_n = layer(x, h.unsqueeze(0))
    expected, state = [], h
    for t in range(6):
        state = _mingru_by_hand(x[:, t], state, cell.weight_ih, cell.bias_ih)
        expected.append(state)
    assert_close(out, torch.stack(expected, 1), **TOL)
    assert_close(h_n[0], expected[-1], **TOL)


def test_mingru_two_layers_with_lengths_equal_the_equations():
    torch.manual_seed(1)
    layer = rnnkit.Recurrent("mingru", 2, 3, num_layers=2, batch_first=True, dtype=F64)
    x = torch.randn(3, 5, 2, dtype=F64)
    lengths = torch.tensor([5, 2, 4])
    out, h_n = layer(x, lengths=lengths)
    assert h_n.shape == (2, 3, 3)
    for b, n in enumerate(lengths.tolist()):
        seq = x[b:b + 1, :n]  # (1, n, I): this sequence alone, no padding
        for k in range(2):
            w, bias = getattr(layer, f"weight_ih_l{k}"), getattr(layer, f"bias_ih_l{k}")
            state, outs = torch.zeros(1, 3, dtype=F64), []
            for t in range(n):
                state = _mingru_by_hand(seq[:, t], state, w, bias)
                outs.append(state)
            seq = torch.stack(outs, 1)  # layer k's outputs are layer k+1's inputs
            assert_close(h_n[k, b], state[0], **TOL)
        assert_close(out[b, :n], seq[0], **TOL)
        assert torch.equal(out[b, n:], torch.zeros_like(out[b, n:]))  # padding past the length is zero


def test_mingru_runs_the_reference_loop_and_refuses_the_other_backends():
    x = torch.randn(2, 4, 3)
    assert rnnkit.Recurrent("mingru", 3, 4, batch_first=True).resolved_backend(x) == "reference"
    with pytest.raises(ConfigError, match="no native kernel for MinGRUCell"):
        rnnkit.Recurrent("mingru", 3, 4, batch_first=True, backend="fused")(x)
    with pytest.raises(ConfigError, match="backend='torch' does not support MinGRUCell"):
        rnnkit.Recurrent("mingru", 3, 4, batch_first=True, backend="torch")(x)
    with pytest.raises(ConfigError, match="no torch.nn counterpart"):
        rnnkit.to_torch(rnnkit.Recurrent("mingru", 3, 4))
    assert rnnkit.Recurrent("mingru", 3, 4).mode == "MINGRU"


def test_mingru_is_a_model_config_cell():
    assert "mingru" in CELL_NAMES
    assert rnnkit.ModelConfig(cell="mingru").cell_kwargs() == {}
    with pytest.raises(ConfigError, match="nonlinearity applies to elman and jordan cells"):
        rnnkit.ModelConfig(cell="mingru", nonlinearity="relu")
    with pytest.raises(ConfigError, match="peephole"):
        rnnkit.ModelConfig(cell="mingru", peephole=True)


def test_cli_fit_load_forecast_round_trip_with_mingru(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", "builtin:sine", "--cell", "mingru", "--lookback", "5", "--horizon", "1",
                 "--epochs", "3", "--quiet", "--out", str(out)]) == 0
    assert "with the torch trainer" in capsys.readouterr().out  # the fused trainer has no minGRU
    run = rnnkit.load_run(out)
    assert run.model_config.cell == "mingru" and run.model.rnn.cell_type is MinGRUCell
    first, again = run.forecast(horizon=3), rnnkit.load_run(out).forecast(horizon=3)
    assert len(first) == 3 and first.notna().all().all()
    assert first.equals(again)  # the same code twice: bit for bit
    assert main(["forecast", "--run", str(out), "--horizon", "2"]) == 0


# --- the registry -----------------------------------------------------------------------------------
def test_registry_lookups():
    assert CELL_NAMES == tuple(IDS)  # the command line offers every registered cell
    assert len(set(IDS)) == len(IDS)
    for spec in SPECS:
        assert cell_spec(spec.name) is spec and cell_spec(spec.name.upper()) is spec
        assert spec_of(spec.cell) is spec
        assert rnnkit.Recurrent(spec.name, 2, 3).cell_type is spec.cell
    assert cell_spec("rnn").cell is rnnkit.ElmanCell
    with pytest.raises(ConfigError, match="unknown cell 'nope'; choose one of lstm, gru"):
        cell_spec("nope")
    with pytest.raises(ConfigError, match="unknown cell"):
        rnnkit.Recurrent("nope", 2, 3)


def test_register_cell_refuses_a_taken_name_and_bad_specs():
    class Other(RecurrentCell):
        pass

    with pytest.raises(ConfigError, match="already taken by GRUCell"):
        register_cell(CellSpec("gru", Other))
    with pytest.raises(ConfigError, match="lower-case"):
        register_cell(CellSpec("Other", Other))
    with pytest.raises(ConfigError, match="RecurrentCell subclass"):
        register_cell(CellSpec("other", int))
    with pytest.raises(ConfigError, match="gate_blocks"):
        register_cell(CellSpec("other", Other, gate_blocks=0))
    assert "other" not in [s.name for s in cell_specs()]


def test_register_cell_refuses_native_specs_that_do_not_fit_the_cell():
    class Other(GRUCell):
        pass

    weights = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", None, None)
    with pytest.raises(ConfigError, match="already the gru cell's"):  # one line each in csrc/cells.h
        register_cell(CellSpec("other", Other, 3, native=NativeSpec(3, weights, (1, 1.0))))
    with pytest.raises(ConfigError, match="weight_yh, which Other does not have"):
        register_cell(CellSpec("other", Other, 3, native=NativeSpec(9, ("weight_ih", "weight_yh", None, None, None,
                                                                        None), (1, 1.0))))
    with pytest.raises(ConfigError, match="w_ih and w_hh required"):
        register_cell(CellSpec("other", Other, 3, native=NativeSpec(9, weights[:4], (1, 1.0))))
    with pytest.raises(ConfigError, match="NativeSpec or None"):
        register_cell(CellSpec("other", Other, 3, native=3))
    assert "other" not in [s.name for s in cell_specs()]


@pytest.mark.parametrize("spec", [s for s in SPECS if s.native is not None], ids=lambda s: s.name)
def test_native_weight_order_matches_the_cells_shapes(spec):
    """The kernels take a layer's weights as (w_ih (G, I), w_hh (G, S), b_ih, b_hh, w_hy (S, H), b_y):
    NativeSpec.arrange puts the cell's own weights in that order, by name."""
    cell = spec.cell(3, 4, **({"output_size": 2} if "output_size" in spec.config_kwargs else {}))
    w_ih, w_hh, b_ih, b_hh, w_hy, b_y = spec.native.arrange(cell.weights())
    G, S = spec.gate_blocks * 4, cell.state_sizes[0]
    assert (w_ih.shape, w_hh.shape) == ((G, 3), (G, S))
    assert b_ih.shape == (G,)
    assert (b_hh is None) == (spec.native.weights[3] is None) and (b_hh is None or b_hh.shape == (G,))
    assert (w_hy is None) == (not spec.native.output_layer)
    if w_hy is not None:
        assert w_hy.shape == (S, 4) and b_y.shape == (S,)
    assert spec.native.cell_state == (len(cell.state_sizes) == 2)


def test_keras_init_of_an_unregistered_cell_is_refused():
    class Unregistered(MinGRUCell):
        pass

    cell = Unregistered(2, 3)
    with pytest.raises(ConfigError, match="not registered"):
        cell.reset_parameters(init="keras")


@pytest.mark.parametrize("spec", [s for s in SPECS if s.torch_cell is not None], ids=lambda s: s.name)
def test_torch_twins_share_the_state_dict(spec):
    ours = spec.cell(3, 4)
    twin = spec.torch_cell(3, 4)
    assert list(ours.state_dict()) == list(twin.state_dict())
    ours.load_state_dict(twin.state_dict())
    layer = rnnkit.Recurrent(spec.name, 3, 4, num_layers=2)
    assert type(rnnkit.to_torch(layer)) is spec.torch_layer


# --- every registered cell ----------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_cell_step_gradcheck(spec):
    torch.manual_seed(0)
    cell = spec.cell(2, 3, dtype=F64)
    x = torch.randn(2, 2, dtype=F64, requires_grad=True)
    state = tuple(torch.randn(2, s, dtype=F64, requires_grad=True) for s in cell.state_sizes)
    weights = [None if w is None else w.detach().clone().requires_grad_() for w in cell.weights()]
    present = [i for i, w in enumerate(weights) if w is not None]

    def f(x, *flat):
        s, w = flat[:len(state)], list(weights)
        for i, t in zip(present, flat[len(state):]):
            w[i] = t
        y, new = cell.step(x, tuple(s), w)
        return (y, *new)

    assert torch.autograd.gradcheck(f, (x, *state, *(weights[i] for i in present)))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_cell_step_by_step_equals_layer_equals_two_chunks(spec):
    torch.manual_seed(2)
    layer = rnnkit.Recurrent(spec.name, 3, 4, batch_first=True, dtype=F64)  # backend "auto"
    x = torch.randn(2, 7, 3, dtype=F64)
    out, h_n = layer(x)
    cell, w = layer.cells[0], layer.weights_of(0)
    state = tuple(torch.zeros(2, n, dtype=F64) for n in cell.state_sizes)  # the layer holds the weights
    with torch.no_grad():
        for t in range(7):
            y, state = cell.step(x[:, t], state, w)
            assert_close(y, out[:, t], **TOL)
    finals = h_n if isinstance(h_n, tuple) else (h_n,)
    for a, b in zip(state, finals):
        assert_close(a, b[0], **TOL)
    a, mid = layer(x[:, :3])
    b, end = layer(x[:, 3:], mid)  # the state carried from the first chunk
    assert_close(torch.cat([a, b], 1), out, **TOL)
    for e, f in zip(end if isinstance(end, tuple) else (end,), finals):
        assert_close(e, f, **TOL)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_cell_keras_init_follows_its_gate_blocks(spec):
    torch.manual_seed(3)
    H = 5
    cell = spec.cell(3, H, dtype=F64)
    shapes = cell.parameter_shapes()
    for name in ("weight_ih", "weight_hh"):
        if name in shapes:  # the spec's gate blocks are the rows this cell stacks
            assert shapes[name][0] == spec.gate_blocks * H, f"{name} {shapes[name]} vs {spec.gate_blocks} blocks"
    cell.reset_parameters(init="keras")
    for name, p in cell.named_parameters():
        if name.startswith("bias"):
            forget = p[H:2 * H] if spec.keras_forget_bias else p[:0]
            rest = torch.cat([p[:H], p[2 * H:]]) if spec.keras_forget_bias else p
            assert torch.equal(rest, torch.zeros_like(rest)), name
            assert torch.equal(forget, torch.full_like(forget, 0.5)), name  # b_if + b_hf = 1
            continue
        n = spec.gate_blocks if name in ("weight_ih", "weight_hh") else 1
        rows = p.shape[0] // n
        for k in range(n):
            block = p[k * rows:(k + 1) * rows]
            if name in ("weight_hh", "weight_yh"):  # orthogonal
                gram = block @ block.T if block.shape[0] <= block.shape[1] else block.T @ block
                # torch's QR-based orthogonal_ in float64: W W^T = I to ~1e-15; 1e-10 as test_cells.py
                assert_close(gram, torch.eye(gram.shape[0], dtype=F64), atol=1e-10, rtol=0)
            else:  # Glorot uniform per block
                assert 0 < block.abs().max() <= math.sqrt(6.0 / sum(block.shape)), f"{name} block {k}"
