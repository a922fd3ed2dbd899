"""The combination of each member with its own naive forecast (SearchConfig.combine="inverse-mse",
fitting.naive_weight and scale_correction): the weight is the closed form
``L_naive / (L_naive + L_model)`` on the validation windows, the forecast is exactly the weighted
mean of the network's and the naive forecast, ``combine="none"`` is the network alone, and what has
no naive forecast or no validation windows is left alone."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit import DataConfig, ModelConfig, SearchConfig, TrainConfig, fit_forecaster, load_run
from rnnkit.cli import main
from rnnkit.data.series import series_from_frame
from rnnkit.errors import ConfigError
from rnnkit.tasks.forecast.fitting import fall_back, naive_weight, prepare, scale_correction, train_members
from rnnkit.tasks.forecast.run import save_run

from cli_cases import one_line_error

t = np.arange(150)
SERIES = 20 + 0.1 * t + 5 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(3).normal(0, 1.5, size=150)
DC = DataConfig(horizon=6, transform="none", refit="none")
MC = ModelConfig(hidden_size=6)
TC = TrainConfig(epochs=30, patience=5, lr=0.01)


def _data(values=SERIES):
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=len(values), freq="MS").strftime("%Y-%m-%d"),
                          "y": values})
    return series_from_frame(frame, time_col="date")


@pytest.fixture(scope="module")
def runs():
    data = _data()
    combined = fit_forecaster(DC, MC, TC, data=data, quiet=True, dtype=torch.float64)
    alone = fit_forecaster(DC, MC, TC, data=data, quiet=True, dtype=torch.float64,
                           search=SearchConfig(combine="none"))
    return data, combined, alone


def test_the_weight_is_the_closed_form_on_the_validation_windows():
    data = _data()
    prep = prepare(DC, MC, TC, data, dtype=torch.float64)
    (model,), _, (naive,) = train_members(prep, MC, prep.train_config, 1, quiet=True)
    assert not naive and prep.norm.skip != "none"
    x, y = prep.val
    with torch.no_grad():
        pred = model.eval()(x).numpy()
    target = y.numpy()
    own, zero = np.mean((pred - target) ** 2), np.mean(target ** 2)  # the naive forecast is the zero correction
    assert own < zero
    assert naive_weight(model, prep, "mse") == pytest.approx(zero / (zero + own), rel=1e-12)
    own_mae, zero_mae = np.mean(np.abs(pred - target)), np.mean(np.abs(target))
    assert naive_weight(model, prep, "mae") == pytest.approx(zero_mae / (zero_mae + own_mae), rel=1e-12)


def test_the_forecast_is_the_weighted_mean_of_the_network_and_its_naive_forecast(runs):
    data, combined, alone = runs
    (w,) = combined.meta["naive_weights"]
    assert 0.5 < w < 1 and alone.meta["naive_weights"] == [1.0]
    assert combined.meta["member_best_epochs"] == alone.meta["member_best_epochs"]  # the same training
    naive = copy.deepcopy(alone)
    fall_back(naive.model)
    f_net, f_naive = alone.forecast(data)["y"].to_numpy(), naive.forecast(data)["y"].to_numpy()
    assert not np.allclose(f_net, f_naive)  # the network does move away from the naive forecast
    np.testing.assert_allclose(combined.forecast(data)["y"].to_numpy(), w * f_net + (1 - w) * f_naive,
                               rtol=0, atol=1e-9 * np.abs(f_net).max())


def test_a_combined_run_reloads_with_its_weight(runs, tmp_path):
    data, combined, _ = runs
    save_run(combined, tmp_path / "run")
    again = load_run(tmp_path / "run")
    assert again.meta["naive_weights"] == combined.meta["naive_weights"]
    np.testing.assert_array_equal(again.forecast(data)["y"].to_numpy(), combined.forecast(data)["y"].to_numpy())


def test_nothing_to_combine_with_leaves_the_network_alone():
    data = _data()
    # no naive forecast: a globally scaled network without skip or differencing
    prep = prepare(DC.replace(normalise="none", skip="none"), MC, TC, data)
    (model,), _, _ = train_members(prep, MC, prep.train_config, 1, quiet=True)
    assert naive_weight(model, prep, "mse") == 1.0
    # a quantile head keeps its own levels
    mq = ModelConfig(hidden_size=6, quantiles=(0.1, 0.5, 0.9))
    prep = prepare(DC, mq, TC, data)
    (model,), _, _ = train_members(prep, mq, prep.train_config, 1, quiet=True)
    assert naive_weight(model, prep, "mse") == 1.0
    with pytest.raises(ValueError, match="not combined"):
        scale_correction(model, 0.5)
    run = fit_forecaster(DC, mq, TC, data=data, quiet=True)
    assert run.meta["naive_weights"] == [1.0]
    # no validation windows: nothing measured
    prep = prepare(DC.replace(val_frac=0.0), MC, TC, data)
    (model,), _, _ = train_members(prep, MC, prep.train_config, 1, quiet=True)
    assert naive_weight(model, prep, "mse") == 1.0


def test_a_clean_signal_keeps_nearly_all_of_the_network():
    clean = 20 + 5 * np.sin(2 * np.pi * t / 10)  # season 12 by the calendar, so the seasonal naive is poor
    run = fit_forecaster(DC, MC, TC.replace(epochs=80), data=_data(clean), quiet=True)
    (w,) = run.meta["naive_weights"]
    assert w > 0.9


def test_combine_is_a_choice_and_the_cli_reports_the_weight(capsys, tmp_path):
    with pytest.raises(ConfigError, match="combine"):
        SearchConfig(combine="mean")
    line = one_line_error(capsys, ["fit", "builtin:sine", "--combine", "mean", "--out", str(tmp_path / "x")])
    assert "--combine" in line and not (tmp_path / "x").exists()
    pd.DataFrame({"date": pd.date_range("2000-01-01", periods=150, freq="MS").strftime("%Y-%m-%d"),
                  "y": SERIES}).to_csv(tmp_path / "s.csv", index=False)
    args = ["fit", str(tmp_path / "s.csv"), "--time-col", "date", "--horizon", "6", "--transform", "none",
            "--hidden", "6", "--epochs", "30", "--lr", "0.01", "--refit", "none"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    said = capsys.readouterr().out
    assert "combined with the naive forecast" in said and "--combine none" in said
    assert main([*args, "--out", str(tmp_path / "b"), "--combine", "none"]) == 0
    assert "combined with the naive forecast" not in capsys.readouterr().out


@pytest.mark.parametrize("head", [dict(), dict(quantiles=(0.1, 0.5, 0.9)), dict(strategy="recursive")])
def test_scoring_many_windows_in_passes_equals_one_pass(head, monkeypatch):
    """A validation set larger than a pass (passes.OUTPUT_BATCH, made small here) is scored a pass at a time:
    the same numbers as one pass (float64), each window scored once and in order."""
    from rnnkit.tasks.forecast import passes
    from rnnkit.tasks.forecast.model import Forecaster
    model = Forecaster(1, 1, 3, ModelConfig(hidden_size=5, **head), seed=0).double()
    x = torch.randn(23, 8, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model.eval()(x)
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda xb, *a, **k: calls.append(len(xb)) or forward(xb, *a, **k))
    got = passes.outputs(model.train(), x, batch_size=5)
    assert calls == [5, 5, 5, 5, 3] and model.training and not got.requires_grad
    torch.testing.assert_close(got, whole, rtol=1e-12, atol=1e-12)
