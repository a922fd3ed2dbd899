"""Ensembles (median of members from consecutive seeds) and ``--auto`` (issue 15, item 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnkit import ConfigError, DataConfig, ModelConfig, SearchConfig, TrainConfig, fit_forecaster, load_run
from rnnkit.data.series import series_from_frame
from rnnkit.tasks.forecast.fitting import ForecastEnsemble
from rnnkit.tasks.forecast.predict import predict_windows
from rnnkit.tasks.forecast.search import AUTO_ENSEMBLE

from rnnkit.cli import main

t = np.arange(300)  # 30 validation rows of a horizon of 6: 25 windows, enough for --auto to compare
SERIES = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(size=300)
DC = DataConfig(horizon=6, transform="none", calendar="sincos")


def _data():
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=300, freq="MS").strftime("%Y-%m-%d"),
                          "y": SERIES})
    return series_from_frame(frame, time_col="date")


@pytest.fixture(scope="module")
def ens_run():
    return fit_forecaster(DC, ModelConfig(hidden_size=6), TrainConfig(epochs=15), data=_data(), quiet=True,
                          search=SearchConfig(ensemble=3))


def test_ensemble_forecast_is_the_median_of_its_members(ens_run):
    data = _data()
    assert isinstance(ens_run.model, ForecastEnsemble) and len(ens_run.model.members) == 3
    L = ens_run.data_config.lookback
    ctx = data.values[None, -L:]
    known = ens_run.known(data, [len(data)])  # the calendar features of the context's and the next 6 months
    assert known.shape == (1, L + 6, 2)  # sin, cos of the month (the future flag is added to the network's input)
    each = np.stack([predict_windows(m, ens_run.scaler, ctx, 6, 1, norm=ens_run.norm, transform=ens_run.transform,
                                     known=known) for m in ens_run.model.members])  # (3, 1, 6, 1)
    assert not np.allclose(each[0], each[1])  # different seeds, different members
    np.testing.assert_allclose(ens_run.forecast(data)["y"].to_numpy(), np.median(each, axis=0)[0, :, 0], rtol=1e-6)
    assert ens_run.meta["ensemble"] == 3 and len(ens_run.meta["member_best_epochs"]) == 3


def test_ensemble_is_deterministic_and_reloads_bit_for_bit(ens_run, tmp_path):
    again = fit_forecaster(DC, ModelConfig(hidden_size=6), TrainConfig(epochs=15), data=_data(), quiet=True,
                           search=SearchConfig(ensemble=3))  # trained side by side: the same members
    data = _data()
    np.testing.assert_array_equal(again.forecast(data)["y"].to_numpy(), ens_run.forecast(data)["y"].to_numpy())
    ens_run.save(tmp_path / "r", data=data)
    back = load_run(tmp_path / "r")
    assert isinstance(back.model, ForecastEnsemble) and back.search == SearchConfig(ensemble=3)
    np.testing.assert_array_equal(back.forecast(data)["y"].to_numpy(), ens_run.forecast(data)["y"].to_numpy())


def test_one_member_is_a_plain_forecaster():
    run = fit_forecaster(DC, ModelConfig(hidden_size=4), TrainConfig(epochs=2), data=_data(), quiet=True)
    assert not isinstance(run.model, ForecastEnsemble) and run.meta["ensemble"] == 1


def test_auto_tries_alternatives_and_records_its_choice(tmp_path):
    data = _data()
    run = fit_forecaster(DC, ModelConfig(hidden_size=4), TrainConfig(epochs=5), data=data, quiet=True,
                         search=SearchConfig(auto=True, time_budget=600))
    record = run.meta["selection"]["search"]
    assert record[0]["chosen"] and {"lookback", "hidden_size", "lr", "val_error"} <= set(record[0])
    assert len(record) >= 6  # lookback x2, width x2, lr x2, skip: all tried within a generous budget
    assert all(np.isfinite(r["val_error"]) for r in record)
    assert run.meta["ensemble"] == AUTO_ENSEMBLE
    run.save(tmp_path / "r", data=data)
    back = load_run(tmp_path / "r")
    assert back.model_config == run.model_config and back.data_config == run.data_config
    np.testing.assert_array_equal(back.forecast(data)["y"].to_numpy(), run.forecast(data)["y"].to_numpy())


def test_auto_searches_a_recursive_model_without_the_skip():
    # the naive skip is the direct head's (a recursive model predicts each value itself): not tried
    run = fit_forecaster(DC, ModelConfig(hidden_size=4, strategy="recursive"), TrainConfig(epochs=2), data=_data(),
                         quiet=True, search=SearchConfig(auto=True, time_budget=600))
    record = run.meta["selection"]["search"]
    assert len(record) == 7 and not any("skip" in r for r in record[1:])  # the defaults, lookback, width, lr x2
    assert run.data_config.skip == "none" and run.model.n_known == 2  # the calendar at each step


def test_auto_keeps_the_defaults_on_few_validation_windows():
    frame = _data().frame.iloc[:100]  # 10 validation rows, 5 windows
    data = series_from_frame(frame.reset_index(), time_col="date")
    run = fit_forecaster(DC, ModelConfig(hidden_size=4), TrainConfig(epochs=3), data=data, quiet=True,
                         search=SearchConfig(auto=True, time_budget=600))
    assert len(run.meta["selection"]["search"]) == 1 and run.meta["ensemble"] == AUTO_ENSEMBLE


def test_auto_stops_at_its_budget():
    # a budget smaller than one fit leaves only the defaults (the first candidate always runs)
    run = fit_forecaster(DC, ModelConfig(hidden_size=4), TrainConfig(epochs=3), data=_data(), quiet=True,
                         search=SearchConfig(auto=True, time_budget=1e-6))
    assert len(run.meta["selection"]["search"]) == 1


def test_refusals_and_auto_without_validation():
    with pytest.raises(ConfigError, match="ensemble"):
        SearchConfig(ensemble=0)
    with pytest.raises(ConfigError, match="at most"):
        SearchConfig(ensemble=1000)
    with pytest.raises(ConfigError, match="time_budget"):
        SearchConfig(time_budget=float("nan"))
    run = fit_forecaster(DC.replace(val_frac=0.0), ModelConfig(hidden_size=4), TrainConfig(epochs=2), data=_data(),
                         quiet=True, search=SearchConfig(auto=True))  # nothing to compare on: the defaults
    assert len(run.meta["selection"]["search"]) == 1 and run.meta["ensemble"] == AUTO_ENSEMBLE


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def test_cli_ensemble_and_auto(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    _data().frame.to_csv(csv)
    assert run_cli("fit", csv, "--time-col", "date", "--horizon", "6", "--hidden", "4", "--epochs", "3",
                   "--ensemble", "3", "--out", tmp_path / "e", "--quiet") == 0
    out = capsys.readouterr().out
    assert "ensemble of 3, median" in out and "season m=12" in out
    assert run_cli("fit", csv, "--time-col", "date", "--horizon", "6", "--hidden", "4", "--epochs", "3",
                   "--auto", "--time-budget", "1e-6", "--out", tmp_path / "a", "--quiet") == 0
    assert "auto: tried 1 setting(s)" in capsys.readouterr().out
    assert run_cli("fit", csv, "--ensemble", "0", "--out", tmp_path / "z") == 2
