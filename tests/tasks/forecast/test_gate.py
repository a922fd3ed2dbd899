"""The rolling naive gate (SearchConfig.gate_origins, rnnkit/tasks/forecast/gate.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import rnnkit.tasks.forecast.gate as gate
from rnnkit import DataConfig, ModelConfig, TrainConfig, load_run
from rnnkit.data.series import series_from_frame
from rnnkit.errors import ConfigError
from rnnkit.tasks.forecast.config import SearchConfig
from rnnkit.tasks.forecast.workflow import fit_forecaster

rng = np.random.default_rng(5)
WALK = series_from_frame(pd.DataFrame({"y": np.cumsum(rng.normal(size=160))}))
SINE = series_from_frame(pd.DataFrame({"y": np.sin(np.arange(200) * 2 * np.pi / 12) * 5 + 20}))
DC = DataConfig(horizon=4, lookback=12, skip="last")
MC, TC = ModelConfig(hidden_size=6), TrainConfig(epochs=25)


def test_the_origins_tile_the_last_horizons_of_the_fitted_rows():
    np.testing.assert_array_equal(gate.gate_origins(100, 8, 3), [76, 84, 92])


def test_relative_mae_is_the_ratio_of_mean_absolute_errors_averaged_over_columns():
    actual = np.zeros((2, 3, 2))
    pred = np.full((2, 3, 2), 1.0)       # errors 1 in both columns
    naive = np.stack([np.full((2, 3), 2.0), np.full((2, 3), 4.0)], -1)  # errors 2 and 4
    assert gate.relative_mae(actual, pred, naive) == pytest.approx((0.5 + 0.25) / 2)
    assert gate.relative_mae(actual, actual, actual) == 1.0  # a perfect naive forecast cannot be beaten
    assert gate.relative_mae(actual, pred, actual) == np.inf


def _run(monkeypatch, shift: float):
    """A sine run whose gate sees refit forecasts = the truth + ``shift`` (so the outcome is known)."""
    def fake(fit, run, data, origins, horizon, **kw):
        actual = data.values[origins[:, None] + np.arange(horizon)][..., :1]
        return actual + shift, [int(origins[0])] * len(origins)
    monkeypatch.setattr(gate, "refit_forecasts", fake)
    return fit_forecaster(DC, MC, TC, data=SINE, quiet=True, search=SearchConfig(gate_origins=3))


def test_a_pipeline_worse_than_naive_at_the_origins_forecasts_the_naive_forecast(monkeypatch, tmp_path):
    run = _run(monkeypatch, shift=50.0)  # far worse than the last value's errors on a sine of amplitude 5
    record = run.meta["gate"]
    assert record["fell_back"] and record["relative_mae"] > 1 and len(record["origins"]) == 3
    last = np.repeat(SINE.target_values[-1, 0], 4)  # through the float32 network and scaler: to rounding
    np.testing.assert_allclose(run.forecast(SINE)["y"].to_numpy(), last, rtol=1e-6)
    run.save(tmp_path / "r", data=SINE)
    back = load_run(tmp_path / "r")
    assert back.meta["gate"] == record
    np.testing.assert_array_equal(back.forecast(SINE)["y"].to_numpy(), run.forecast(SINE)["y"].to_numpy())


def test_a_pipeline_better_than_naive_at_the_origins_is_kept(monkeypatch):
    run = _run(monkeypatch, shift=0.0)
    assert run.meta["gate"]["fell_back"] is False and run.meta["gate"]["relative_mae"] == 0.0
    assert run.meta["naive_members"] == 0
    assert not np.allclose(run.forecast(SINE)["y"].to_numpy(), SINE.target_values[-1, 0])


def test_the_real_gate_refits_k_times_before_the_fitted_rows_end(monkeypatch):
    """Three refits, on the rows before each origin, without gates of their own; a sine is kept."""
    calls = []
    real = gate.refit_forecasts

    def spy(fit, run, data, origins, horizon, **kw):
        def counted(dc, *a, **k):
            calls.append((len(k["data"]), k["search"].gate_origins))
            return fit(dc, *a, **k)
        return real(counted, run, data, origins, horizon, **kw)
    monkeypatch.setattr(gate, "refit_forecasts", spy)
    run = fit_forecaster(DC, MC, TC, data=SINE, quiet=True, search=SearchConfig(gate_origins=3))
    end = run.meta["test_start"]
    assert sorted(calls) == [(end - 12, 0), (end - 8, 0), (end - 4, 0)]
    assert run.meta["gate"]["fell_back"] is False and run.meta["gate"]["relative_mae"] < 1


def test_naive_model_forecasts_the_fallback_and_leaves_the_model_alone():
    run = fit_forecaster(DC, MC, TC, data=WALK, quiet=True)
    before = run.forecast(WALK)["y"].to_numpy()
    naive = gate.naive_model(run.model)
    X = WALK.values[None, -12:]
    from rnnkit.tasks.forecast.predict import predict_windows
    pred = predict_windows(naive, run.scaler, X, 4, 1, norm=run.norm, transform=run.transform)
    np.testing.assert_array_equal(pred[0, :, 0], np.repeat(WALK.values[-1, 0], 4))
    np.testing.assert_array_equal(run.forecast(WALK)["y"].to_numpy(), before)


def test_a_series_too_short_for_the_refits_skips_the_gate_and_says_why():
    short = series_from_frame(pd.DataFrame({"y": np.sin(np.arange(40) * 0.5)}))
    run = fit_forecaster(DataConfig(horizon=4, lookback=8, skip="last"), MC, TrainConfig(epochs=5), data=short,
                         quiet=True, search=SearchConfig(gate_origins=6))
    assert run.meta["gate"]["origins"] == [] and "too short" in run.meta["gate"]["skipped"]


def test_without_a_naive_forecast_the_gate_is_skipped():
    run = fit_forecaster(DC.replace(skip="none", normalise="none"), MC, TrainConfig(epochs=3), data=SINE, quiet=True,
                         search=SearchConfig(gate_origins=2))
    assert "no naive forecast" in run.meta["gate"]["skipped"]


def test_bad_values_and_panels_are_refused():
    with pytest.raises(ConfigError, match="gate_origins"):
        SearchConfig(gate_origins=-1)
    panel = pd.DataFrame({"id": np.repeat(["a", "b"], 60), "y": np.sin(np.arange(120) * 0.4)})
    with pytest.raises(ConfigError, match="--gate-origins: not yet for panels"):
        fit_forecaster(DataConfig(id_col="id", horizon=4, lookback=8), MC, TrainConfig(epochs=2), data=panel,
                       quiet=True, search=SearchConfig(gate_origins=2))
