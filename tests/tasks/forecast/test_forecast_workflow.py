"""The forecasting workflow through the Python API: learning, determinism, no leakage, reloads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import ConfigError, DataConfig, ModelConfig, TrainConfig, fit_forecaster, load_run
from rnnkit.data.scaler import Scaler
from rnnkit.data.split import split_series

SINE = DataConfig(source="builtin:sine", lookback=5, horizon=1, val_frac=0.0, test_frac=0.5)


@pytest.fixture(scope="module")
def sine_run():
    return fit_forecaster(SINE, ModelConfig(cell="lstm", hidden_size=8),
                          TrainConfig(epochs=120, batch_size=5, lr=0.02, patience=0), quiet=True)


def test_lstm_learns_the_sine(sine_run):
    # 20 training windows, 25 test points; a seeded LSTM(8) after 120 epochs is far below the baselines
    s = sine_run.metrics
    assert s["model"]["overall"]["rmse"] < 0.05
    assert s["model"]["overall"]["rmse"] < 0.2 * s["last value"]["overall"]["rmse"]
    assert sine_run.history.train_loss[-1] < 0.02 * sine_run.history.train_loss[0]


def test_same_seed_identical_history():
    def losses():
        run = fit_forecaster(SINE, ModelConfig(cell="gru", hidden_size=4),
                             TrainConfig(epochs=5, batch_size=5, seed=3), quiet=True)
        return [(r["train_loss"], r["val_loss"]) for r in run.history.rows]
    assert losses() == losses()


def test_scaler_sees_training_rows_only():
    data = rnnkit.load_builtin("nile")
    dc = DataConfig(source="builtin:nile", lookback=10, horizon=2, val_frac=0.1, test_frac=0.2)
    run = fit_forecaster(dc, ModelConfig(hidden_size=4), TrainConfig(epochs=2), quiet=True)
    split = split_series(len(data), 0.1, 0.2)
    expected = Scaler("minmax").fit(data.values[:split.train_end]).to_dict()
    assert run.scaler.to_dict() == expected
    assert run.meta["train_rows"] == split.train_end == 70
    # a huge value in the test rows changes neither the scaler nor the training history
    frame = data.frame.copy()
    frame.iloc[-1, 0] = 1e9
    poisoned = dataclasses.replace(data, frame=frame)
    run2 = fit_forecaster(dc, ModelConfig(hidden_size=4), TrainConfig(epochs=2), data=poisoned, quiet=True)
    assert run2.scaler.to_dict() == expected
    assert [r["train_loss"] for r in run2.history.rows] == [r["train_loss"] for r in run.history.rows]
    assert [r["val_loss"] for r in run2.history.rows] == [r["val_loss"] for r in run.history.rows]


def test_baseline_scores_match_hand_computation(sine_run):
    data = rnnkit.load_builtin("sine")
    y = data.values[:, 0]
    start = sine_run.meta["test_start"]
    actual, last = y[start:], y[start - 1:-1]  # last value: the previous row
    assert sine_run.metrics["last value"]["overall"]["mae"] == pytest.approx(np.abs(actual - last).mean(), rel=1e-12)


def test_saved_run_reproduces_forecasts_bit_for_bit(sine_run, tmp_path):
    data = rnnkit.load_builtin("sine")
    out = rnnkit.save_forecast_run(sine_run, data, tmp_path / "run")
    loaded = load_run(out)
    a, b = sine_run.forecast(data, horizon=7), loaded.forecast(data, horizon=7)
    assert a.equals(b)
    assert loaded.evaluate(data) == sine_run.evaluate(data)
    assert loaded.history.train_loss == pytest.approx(sine_run.history.train_loss, rel=0, abs=0)


def test_recursive_many_to_many_and_warmup_train():
    cfg = ModelConfig(cell="gru", hidden_size=8, strategy="recursive")
    run = fit_forecaster(SINE.replace(lookback=8, horizon=4), cfg,
                         TrainConfig(epochs=60, batch_size=5, lr=0.02, many_to_many=True, warmup=2, patience=0),
                         quiet=True)
    assert run.history.train_loss[-1] < 0.05 * run.history.train_loss[0]
    assert run.forecast(horizon=12).shape == (12, 2)


def test_stateful_training_carries_state():
    cfg = ModelConfig(cell="lstm", hidden_size=8, strategy="recursive")
    tc = TrainConfig(epochs=40, batch_size=2, lr=0.02, stateful=True, tbptt=6, shuffle=False, patience=0)
    run = fit_forecaster(SINE.replace(test_frac=0.3), cfg, tc, quiet=True)
    assert run.history.train_loss[-1] < 0.1 * run.history.train_loss[0]
    with pytest.raises(ConfigError, match="recursive"):
        fit_forecaster(SINE, ModelConfig(strategy="direct"), tc, quiet=True)


def test_recursive_generate_equals_manual_feedback():
    torch.manual_seed(0)
    model = rnnkit.Forecaster(1, 1, 1, ModelConfig(cell="elman", hidden_size=5, strategy="recursive")).double()
    prime = torch.randn(2, 6, 1, dtype=torch.float64)
    out = model.generate(prime, 4)
    seq = prime
    for _ in range(4):  # rerun the whole growing sequence, taking the last prediction each time
        seq = torch.cat([seq, model(seq)[:, -1:]], 1)
    torch.testing.assert_close(out, seq[:, 6:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("strategy, cell, dtype", [("direct", "lstm", torch.float64), ("recursive", "gru", torch.float64),
                                                 ("direct", "gru", torch.float32)])
def test_forecaster_streaming_step_equals_forward_on_the_prefix(strategy, cell, dtype):
    """model.step fed one observation at a time gives what forward gives on everything seen so far."""
    torch.manual_seed(1)
    inputs = 2 if strategy == "direct" else 1  # direct: a covariate too
    model = rnnkit.Forecaster(inputs, 1, 3 if strategy == "direct" else 1,
                              ModelConfig(cell=cell, hidden_size=6, num_layers=2, strategy=strategy)).to(dtype).eval()
    x = torch.randn(4, 7, inputs, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    state = model.init_state(4)
    for t in range(7):
        y, state = model.step(x[:, t], state)
        ref = model(x[:, :t + 1])
        torch.testing.assert_close(y, ref if strategy == "direct" else ref[:, -1], rtol=0, atol=tol)
    with pytest.raises(rnnkit.ShapeError, match=r"\(B, " + str(inputs) + r"\)"):
        model.step(x, state)  # a whole sequence is not one step


def test_bidirectional_forecaster_cannot_stream():
    model = rnnkit.Forecaster(1, 1, 1, ModelConfig(hidden_size=4, bidirectional=True))
    with pytest.raises(ConfigError, match="bidirectional"):
        model.step(torch.zeros(1, 1))


def test_direct_model_extends_horizon_only_without_covariates(sine_run):
    assert len(sine_run.forecast(horizon=4)) == 4  # trained for 1 step: repeats, feeding forecasts back
    run = fit_forecaster(DataConfig(source="builtin:macro", targets=("realgdp",), covariates=("unemp",),
                                    lookback=8, horizon=2),
                         ModelConfig(hidden_size=4), TrainConfig(epochs=1), quiet=True)
    assert run.forecast(horizon=2).shape == (2, 2)
    with pytest.raises(ConfigError, match="covariates"):
        run.forecast(horizon=5)


def test_backtest_batches_equal_per_fold_predictions(sine_run):
    data = rnnkit.load_builtin("sine")
    result = sine_run.backtest(data, folds=4)
    origins = [f["origin"] for f in result["folds"]]
    assert origins == [46, 47, 48, 49]
    vals = data.values
    for fold in result["folds"]:
        o = fold["origin"]
        pred = sine_run.predict_contexts(vals[None, o - 5:o], 1)
        assert fold["scores"]["model"]["overall"]["mae"] == pytest.approx(abs(pred[0, 0, 0] - vals[o, 0]), abs=1e-6)  # float32: batched vs single


def test_backtest_refuses_folds_inside_training_rows(sine_run):
    with pytest.raises(rnnkit.DataError, match="inside"):
        sine_run.backtest(rnnkit.load_builtin("sine"), folds=40)


def test_backtest_with_refit():
    run = fit_forecaster(SINE, ModelConfig(hidden_size=4), TrainConfig(epochs=2, patience=0), quiet=True)
    result = run.backtest(folds=2, refit=True)
    assert [f["train_rows"] for f in result["folds"]] == [48, 49]


def test_peephole_lstm_forecaster_trains_saves_and_reloads(tmp_path):
    """Peephole LSTMs run the whole workflow on the generic loop (no fused trainer for them)."""
    run = fit_forecaster(SINE, ModelConfig(cell="lstm", hidden_size=6, peephole=True),
                         TrainConfig(epochs=30, batch_size=5, lr=0.02, patience=0), quiet=True)
    assert run.history.engine == "torch"
    assert run.history.train_loss[-1] < 0.2 * run.history.train_loss[0]
    data = rnnkit.load_builtin("sine")
    loaded = load_run(rnnkit.save_forecast_run(run, data, tmp_path / "run"))
    assert loaded.model_config.peephole and "rnn.weight_co_l0" in loaded.model.state_dict()
    assert run.forecast(data, horizon=3).equals(loaded.forecast(data, horizon=3))
