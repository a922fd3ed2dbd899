"""The seed tutorials reproduced in examples/, each run end to end (marked slow), plus fast checks.

Every slow test calls the example's ``main([...])`` with a temporary output directory and asserts
the numbers it returns against the targets in docs/seeds.md. The fast tests check what needs no
training: the min-char-rnn regression's gradients against a NumPy transcription of the
tutorial's backward pass, and the POSTECH network's parameter count against the formula.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.nn.layers import BACKENDS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"rnnkit_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- 000: ReNom sine -------------------------------------------------------------------------

@pytest.mark.slow
def test_renom_sine(tmp_path):
    numbers = load_example("renom_sine").main(["--out", str(tmp_path)])
    assert (numbers["n_train"], numbers["n_test"]) == (22, 23)  # the tutorial's split
    lstm, elman = numbers["lstm"], numbers["elman"]
    assert lstm["test_mse"] <= 0.003  # tutorial: ReNom test loss 0.00198 at epoch 1000 (half-MSE)
    # the stopping rule checks every 200 epochs, so training ends on a check (or at 2000)
    for r in (lstm, elman):
        assert r["epochs_run"] % 200 == 0 and r["epochs_run"] <= 2000
        assert math.isfinite(r["test_mse"]) and math.isfinite(r["recursive_mse"])
    assert elman["test_mse"] <= 0.003
    assert (tmp_path / "lstm.png").stat().st_size > 0 and (tmp_path / "elman.png").stat().st_size > 0


# --- 001: Keras blog: Jordan, Elman, usage modes, stateful LSTM ------------------------------

@pytest.mark.slow
def test_keras_blog(tmp_path):
    numbers = load_example("keras_blog_elman_jordan_lstm").main(["--out", str(tmp_path)])
    jordan = numbers["jordan"]
    assert jordan["train_mse_before"] / jordan["train_mse_after"] >= 10  # the Jordan network trains
    assert numbers["elman"]["train_mse_before"] / numbers["elman"]["train_mse_after"] >= 10
    modes = numbers["modes"]
    # many-to-one beats "the next value equals the last one"
    assert modes["many_to_one"]["test_mse"] < modes["last_value_baseline_test_mse"]
    # skipped warm-up steps are worse than the scored ones; priming on 10 values beats priming on 1
    assert modes["skip_warmup"]["test_mse_scored_steps"] < modes["skip_warmup"]["test_mse_warmup_steps"]
    assert modes["prime_then_generate"]["rmse"] < modes["output_fed_back"]["rmse"]
    # the post's stateful LSTM: 36 free-running steps against sin(36..71)
    assert numbers["stateful"]["rmse"] <= 0.1
    assert len(numbers["stateful"]["generated"]) == 36
    assert (tmp_path / "stateful_lstm.png").exists() and (tmp_path / "jordan_elman_modes.png").exists()


# --- 002: POSTECH stacked LSTM ---------------------------------------------------------------

def lstm_parameters(inputs: int, hidden: int) -> int:
    """torch's layout: 4 gates, each with W_ih (H x I), W_hh (H x H), b_ih and b_hh (H each)."""
    return 4 * (hidden * inputs + hidden * hidden + 2 * hidden)


def postech_parameters() -> int:
    dense = 100 * 100 + 100
    return lstm_parameters(100, 100) + lstm_parameters(100, 100) + 2 * dense


def test_postech_parameter_count():
    module = load_example("postech_stacked_lstm")
    model = module.StackedLSTM()
    assert sum(p.numel() for p in model.parameters()) == postech_parameters() == 181_800
    # Keras has one bias per gate (4H per layer fewer): the tutorial's 181,000
    assert postech_parameters() - 2 * 4 * 100 == 181_000
    table = rnnkit.summary(model, (1, 25, 100), print_fn=None)
    assert "Total params: 181,800" in table


@pytest.mark.slow
def test_postech_stacked_lstm(tmp_path):
    numbers = load_example("postech_stacked_lstm").main(["--out", str(tmp_path)])
    assert numbers["n_params"] == postech_parameters()
    assert numbers["n_samples"] == 5000 and len(numbers["train_loss_per_epoch"]) == 3
    assert numbers["train_mse"] < numbers["repeat_last_chunk_mse"]
    assert math.isfinite(numbers["generated_25_chunks_mse"])
    assert (tmp_path / "generated.png").exists()


# --- 003: hidden-state tutorial, SimpleRNN ---------------------------------------------------

@pytest.mark.slow
def test_hidden_state_simplernn(tmp_path):
    numbers = load_example("hidden_state_simplernn").main(["--out", str(tmp_path), "--seeds", "5"])
    assert len(numbers["val_mse"]["keras"]) == len(numbers["val_mse"]["torch"]) == 5
    assert numbers["median_val_mse"]["keras"] <= 0.09  # tutorial: val_loss 0.0897 after 20 epochs
    assert numbers["median_val_mse"]["keras"] < numbers["median_val_mse"]["torch"]
    assert numbers["n_params"] == 20 * 1 + 20 * 20 + 2 * 20 + 20 + 1  # Keras: 461, one bias fewer
    assert (tmp_path / "prediction.png").exists()


# --- 004: min-char-rnn regression ------------------------------------------------------------

def tutorial_bptt(Wxh, Whh, Why, bh, by, inputs, targets, hprev):
    """The tutorial's lossFun, re-derived here with row vectors: gradients of
    0.5 * sum_t (y_t - target_t)^2 for h_t = tanh(Wxh x_t + Whh h_{t-1} + bh), y_t = Why h_t + by."""
    T = len(inputs)
    h = np.zeros((T + 1, len(bh)))
    h[0] = hprev  # h[t + 1] is the hidden state after input t
    y = np.zeros(T)
    for t in range(T):
        h[t + 1] = np.tanh(Wxh[:, 0] * inputs[t] + Whh @ h[t] + bh)
        y[t] = Why[0] @ h[t + 1] + by[0]
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    carry = np.zeros_like(bh)  # dL/dh_t arriving from step t + 1
    for t in range(T - 1, -1, -1):
        dy = y[t] - targets[t]
        dWhy[0] += dy * h[t + 1]
        dby[0] += dy
        da = (1.0 - h[t + 1] ** 2) * (Why[0] * dy + carry)  # through tanh
        dbh += da
        dWxh[:, 0] += da * inputs[t]
        dWhh += np.outer(da, h[t])
        carry = Whh.T @ da
    return {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}


def _window(rng, steps=20, scale=1.0):
    start = rng.random() * (100 - (steps + 1) * 0.01)
    y = np.cos(start + np.arange(steps + 1) * 0.01) * scale
    return y[:-1], y[1:]


@pytest.mark.parametrize("backend", [b for b in ("auto", "reference", "torch", "fused")
                                     if b in BACKENDS])
@pytest.mark.parametrize("hidden", [1, 7, 100])
def test_min_char_rnn_gradients_match_numpy_bptt(backend, hidden):
    rng = np.random.default_rng(hidden)
    torch.manual_seed(hidden)
    rnn = rnnkit.RNN(1, hidden, batch_first=True, backend=backend, dtype=torch.float64)
    out = nn.Linear(hidden, 1, dtype=torch.float64)
    with torch.no_grad():  # weights well away from zero so every term of the gradient matters
        for p in list(rnn.parameters()) + list(out.parameters()):
            p.copy_(torch.as_tensor(rng.normal(0.0, 0.7 / math.sqrt(hidden), p.shape)))
    inputs, targets = _window(rng)
    h0 = rng.normal(0.0, 0.5, hidden)
    x = torch.as_tensor(inputs).view(1, -1, 1)
    pred = out(rnn(x, torch.as_tensor(h0).view(1, 1, hidden))[0])[0, :, 0]
    loss = 0.5 * ((pred - torch.as_tensor(targets)) ** 2).sum()
    loss.backward()

    g = tutorial_bptt(rnn.weight_ih_l0.detach().numpy(), rnn.weight_hh_l0.detach().numpy(),
                      out.weight.detach().numpy(), (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy(),
                      out.bias.detach().numpy(), inputs, targets, h0)
    tol = {"rtol": 0, "atol": 1e-8}
    np.testing.assert_allclose(rnn.weight_ih_l0.grad.numpy(), g["Wxh"], **tol)
    np.testing.assert_allclose(rnn.weight_hh_l0.grad.numpy(), g["Whh"], **tol)
    np.testing.assert_allclose(rnn.bias_ih_l0.grad.numpy(), g["bh"], **tol)
    np.testing.assert_allclose(rnn.bias_hh_l0.grad.numpy(), g["bh"], **tol)
    np.testing.assert_allclose(out.weight.grad.numpy(), g["Why"], **tol)
    np.testing.assert_allclose(out.bias.grad.numpy(), g["by"], **tol)
    # the gradient is not trivially small: the comparison above has something to compare
    assert max(np.abs(v).max() for v in g.values()) > 1e-2


def test_min_char_rnn_gradients_cell_by_cell_and_clipped():
    """The same check stepping rnnkit.ElmanCell by hand, then the tutorial's clip to [-5, 5]."""
    rng = np.random.default_rng(0)
    H = 16
    cell = rnnkit.ElmanCell(1, H, dtype=torch.float64)
    out = nn.Linear(H, 1, dtype=torch.float64)
    with torch.no_grad():
        for p in list(cell.parameters()) + list(out.parameters()):
            p.copy_(torch.as_tensor(rng.normal(0.0, 0.5, p.shape)))
    inputs, targets = _window(rng, scale=5.0)  # large targets, so that some gradients exceed 5
    h = torch.zeros(1, H, dtype=torch.float64)
    loss = 0
    for t in range(len(inputs)):
        y_t, (h,) = cell(torch.tensor([[inputs[t]]], dtype=torch.float64), h)
        loss = loss + 0.5 * (out(y_t)[0, 0] - targets[t]) ** 2
    loss.backward()
    params = list(cell.parameters()) + list(out.parameters())
    torch.nn.utils.clip_grad_value_(params, 5.0)  # what TrainConfig(clip_value=5) does each step
    g = tutorial_bptt(cell.weight_ih.detach().numpy(), cell.weight_hh.detach().numpy(),
                      out.weight.detach().numpy(), (cell.bias_ih + cell.bias_hh).detach().numpy(),
                      out.bias.detach().numpy(), inputs, targets, np.zeros(H))
    assert max(np.abs(v).max() for v in g.values()) > 5  # clipping is exercised
    clipped = {k: np.clip(v, -5, 5) for k, v in g.items()}
    tol = {"rtol": 0, "atol": 1e-8}
    np.testing.assert_allclose(cell.weight_ih.grad.numpy(), clipped["Wxh"], **tol)
    np.testing.assert_allclose(cell.weight_hh.grad.numpy(), clipped["Whh"], **tol)
    np.testing.assert_allclose(cell.bias_ih.grad.numpy(), clipped["bh"], **tol)
    np.testing.assert_allclose(cell.bias_hh.grad.numpy(), clipped["bh"], **tol)
    np.testing.assert_allclose(out.weight.grad.numpy(), clipped["Why"], **tol)
    np.testing.assert_allclose(out.bias.grad.numpy(), clipped["by"], **tol)


@pytest.mark.slow
def test_min_char_rnn_regression(tmp_path):
    numbers = load_example("min_char_rnn_regression").main(["--out", str(tmp_path)])
    assert numbers["gradient_max_abs_diff"] < 1e-8
    assert numbers["steps"] == 20_000
    assert numbers["train_mse_per_epoch"][-1] < numbers["train_mse_per_epoch"][0]
    assert numbers["test_one_step_mse"] < 1e-3
    assert (tmp_path / "training_and_test.png").exists()
