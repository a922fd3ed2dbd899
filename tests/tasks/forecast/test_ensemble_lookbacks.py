"""Ensembles over several lookbacks (``--ensemble-lookbacks``, issue 15 item 4): member k reads the
k-th lookback (cyclically), trained on windows of that length; the forecast is the median."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit import (ConfigError, DataConfig, DataError, ModelConfig, RnnkitError, SearchConfig, TrainConfig,
                    fit_forecaster, load_run)
from rnnkit.cli import main
from rnnkit.data.series import series_from_frame
from rnnkit.tasks.forecast.fitting import ForecastEnsemble
from rnnkit.tasks.forecast.known import known_rows, known_windows
from rnnkit.tasks.forecast.predict import predict_windows, windows_for

t = np.arange(300)
# growth with a small multiplicative season: "auto" chooses the skip and the transform by lookback
# (here the last value on the log scale for 6 and 12, the drift in the data's units for 24)
SERIES = 100 * np.exp(0.008 * t) * (1 + 0.06 * np.sin(2 * np.pi * t / 12)) * \
    np.exp(0.01 * np.random.default_rng(1).normal(size=300))
# monthly (m=12), calendar features as known inputs: each member must get its own slice of them too
DC = DataConfig(horizon=6, calendar="sincos")
LOOKS = (12, 6, 24)  # 6 < m: that member cannot use the seasonal skip and must choose another
MC, TC = ModelConfig(hidden_size=5), TrainConfig(epochs=12)


def _data(values=SERIES):
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=len(values), freq="MS").strftime("%Y-%m-%d"),
                          "y": values})
    return series_from_frame(frame, time_col="date")


@pytest.fixture(scope="module")
def look_run():
    return fit_forecaster(DC, MC, TC, data=_data(), quiet=True,
                          search=SearchConfig(ensemble=4, ensemble_lookbacks=LOOKS))


def _by_hand(run, data) -> np.ndarray:
    """Each member's forecast after the end of ``data``, from its own last rows and calendar inputs
    through its own transform, scaler and normalisation, in original units: (members, horizon)."""
    out = []
    for member, view in zip(run.model.members, run.model.views):
        L = view.lookback
        rows = known_rows(data.frame.index, data.freq, "sincos", steps=6)  # every row's and the next 6 months'
        known = known_windows(rows, [len(data)], L, 6)  # (1, L + 6, 2): sin and cos of the month
        out.append(predict_windows(member, view.scaler, data.values[None, -L:], 6, 1, norm=view.norm,
                                   transform=view.transform, known=known)[0, :, 0])
    return np.stack(out)


def test_forecast_is_the_median_of_the_members_on_their_own_lookbacks(look_run):
    data, run = _data(), look_run
    assert isinstance(run.model, ForecastEnsemble) and run.model.lookbacks == (12, 6, 24, 12)
    assert run.data_config.lookback == 24 and run.meta["ensemble"] == 4  # the run's lookback: the longest
    skips = {v["lookback"]: v["skip"] for v in run.meta["lookback_members"]}
    assert skips[6] in ("last", "drift")  # the seasonal naive forecast needs a lookback of m = 12
    # the members' pipelines differ (so that the test sees each member use its own)
    assert len({v.transform.name for v in run.model.views}) == 2
    assert len({v.scaler.to_dict()["scale"][0] for v in run.model.views}) == 2
    each = _by_hand(run, data)
    assert not np.allclose(each[0], each[3])  # same lookback, other seed: another member
    # the same operations on the same numbers: equal up to float64 rounding
    np.testing.assert_allclose(run.forecast(data)["y"].to_numpy(), np.median(each, axis=0), rtol=1e-12)


def test_each_member_reads_only_its_last_rows(look_run):
    changed = SERIES.copy()
    changed[-7] *= 1.5  # inside the last 12 and 24 rows, outside the last 6
    before, after = _by_hand(look_run, _data()), _by_hand(look_run, _data(changed))
    np.testing.assert_array_equal(before[1], after[1])  # the lookback-6 member does not see row -7
    assert not np.allclose(before[0], after[0]) and not np.allclose(before[2], after[2])


def test_a_member_is_the_forecaster_its_lookback_and_seed_train(look_run):
    # member 1 (lookback 6, seed 1) is what a single fit with those settings trains: its own windows
    # on the same rows (the split is the default's here: the series is long enough for lookback 24),
    # with the skip and transform "auto" chooses on them, and the ensemble's normalisation
    data = _data()
    one = fit_forecaster(DC.replace(lookback=6, normalise=look_run.data_config.normalise), MC, TC.replace(seed=1),
                         data=data, quiet=True)
    view = look_run.model.views[1]
    assert one.meta["train_rows"] == look_run.meta["train_rows"]
    assert (one.norm, one.transform, one.scaler.to_dict()) == (view.norm, view.transform, view.scaler.to_dict())
    mine, theirs = one.model.state_dict(), look_run.model.members[1].state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    np.testing.assert_array_equal(one.forecast(data)["y"].to_numpy(), _by_hand(look_run, data)[1])


def test_save_and_load_round_trip(look_run, tmp_path):
    data = _data()
    look_run.save(tmp_path / "r", data=data)
    back = load_run(tmp_path / "r")
    assert isinstance(back.model, ForecastEnsemble) and back.model.lookbacks == look_run.model.lookbacks
    assert back.search == SearchConfig(ensemble=4, ensemble_lookbacks=LOOKS)
    for a, b in zip(back.model.views, look_run.model.views):
        assert (a.lookback, a.norm, a.transform, a.scaler.to_dict()) == \
            (b.lookback, b.norm, b.transform, b.scaler.to_dict())
    np.testing.assert_array_equal(back.forecast(data)["y"].to_numpy(), look_run.forecast(data)["y"].to_numpy())
    assert back.evaluate(data) == look_run.evaluate(data)


def test_a_damaged_lookback_record_is_refused(look_run, tmp_path):
    look_run.save(tmp_path / "r", data=_data())
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    cfg["meta"]["lookback_members"][1]["skip"] = "seasonal"  # lookback 6 cannot repeat a season of 12
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RnnkitError, match="lookback_members' lookback 6 is not one a run makes"):
        load_run(tmp_path / "r")
    cfg["meta"]["lookback_members"] = cfg["meta"]["lookback_members"][:2]  # lookback 24 undescribed
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RnnkitError, match="must describe each of the 3 lookbacks"):
        load_run(tmp_path / "r")


@pytest.mark.parametrize("kw, needle", [
    ({"ensemble": 2, "ensemble_lookbacks": (0, 12)}, "each of ensemble_lookbacks must be an integer >= 1"),
    ({"ensemble": 2, "ensemble_lookbacks": (12, 12)}, "twice"),
    ({"ensemble": 2, "ensemble_lookbacks": (6, 12, 24)}, "--ensemble 3 or more"),
    ({"ensemble": 5, "ensemble_lookbacks": (6, 12), "auto": True}, "--auto chooses the lookback"),
])
def test_invalid_lookbacks_are_refused(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        SearchConfig(**kw)


def test_lookbacks_the_data_cannot_hold_are_refused_before_training():
    calls = []
    with pytest.raises(DataError, match="need lookback 400"):  # the series has 300 rows
        fit_forecaster(DC, MC, TC, data=_data(), quiet=True, callbacks=[calls.append],
                       search=SearchConfig(ensemble=2, ensemble_lookbacks=(12, 400)))
    with pytest.raises(ConfigError, match="lookback of at least m"):  # a seasonal skip asked for, lookback 6 < m
        fit_forecaster(DC.replace(skip="seasonal"), MC, TC, data=_data(), quiet=True, callbacks=[calls.append],
                       search=SearchConfig(ensemble=2, ensemble_lookbacks=(12, 6)))
    with pytest.raises(ConfigError, match="--ensemble-lookbacks only"):
        fit_forecaster(DC.replace(lookback=12), MC, TC, data=_data(), quiet=True,
                       search=SearchConfig(ensemble=2, ensemble_lookbacks=(12, 6)))
    assert calls == []  # no epoch was trained


@pytest.mark.parametrize("value, needle", [("0,12", "integer >= 1"), ("12,x", "invalid list"),
                                           ("12,400", "too few rows")])
def test_cli_refuses_bad_lookbacks_in_one_line(tmp_path, capsys, value, needle):
    csv = tmp_path / "s.csv"
    _data().frame.to_csv(csv)
    out = tmp_path / "run"
    code = main(["fit", str(csv), "--time-col", "date", "--horizon", "6", "--ensemble", "2",
                 "--ensemble-lookbacks", value, "--epochs", "2", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err and not out.exists()


def test_cli_trains_and_reloads_a_lookback_ensemble(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    _data().frame.to_csv(csv)
    assert main(["fit", str(csv), "--time-col", "date", "--horizon", "6", "--hidden", "4", "--epochs", "3",
                 "--ensemble", "3", "--ensemble-lookbacks", "12,24", "--out", str(tmp_path / "e"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 3, median" in out and "lookbacks 12 (skip " in out and "; 24 (skip " in out
    assert main(["forecast", "--run", str(tmp_path / "e")]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("2025-")]
    expected = load_run(tmp_path / "e").forecast()["y"].to_numpy()  # the reloaded ensemble, median of 3
    np.testing.assert_allclose([float(r[-1]) for r in rows], expected, rtol=1e-6)  # printed to 6 decimals


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_future_covariates_and_recursive_members_read_their_own_slices(strategy):
    # a known future covariate (its rows are in the data) and the calendar: each member gets the
    # known inputs of its own window; the test windows' forecasts are the median of the members'
    rng = np.random.default_rng(3)
    c = rng.normal(size=300)
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=300, freq="MS").strftime("%Y-%m-%d"),
                          "y": SERIES + 5 * c, "c": c})
    data = series_from_frame(frame, target="y", time_col="date", covariates=["c"])
    run = fit_forecaster(DC.replace(future_covariates=("c",)), MC.replace(strategy=strategy), TC, data=data,
                         quiet=True, search=SearchConfig(ensemble=3, ensemble_lookbacks=(12, 6, 24)))
    start = run.meta["test_start"]
    X, _, starts = windows_for(data.values, 1, 24, 6, 1, start, len(data))  # contexts of the longest lookback
    known = run.known(data, starts)  # (W, 24 + 6, K): the covariate and the month of every row
    each = [predict_windows(m, v.scaler, X[:, 24 - v.lookback:], 6, 1, norm=v.norm, transform=v.transform,
                            known=known[:, 24 - v.lookback:]) for m, v in zip(run.model.members, run.model.views)]
    np.testing.assert_allclose(run.predict_contexts(X, 6, known), np.median(np.stack(each), axis=0), rtol=1e-12)
    assert not np.allclose(each[0], each[1])
    # member 1 is the forecaster a single fit with lookback 6 and seed 1 trains, reading the known
    # inputs that fit cuts for its own windows: the slices above are the right rows
    one = fit_forecaster(DC.replace(future_covariates=("c",), lookback=6, normalise=run.data_config.normalise),
                         MC.replace(strategy=strategy), TC.replace(seed=1), data=data, quiet=True)
    np.testing.assert_array_equal(one.predict_contexts(X[:, -6:], 6, one.known(data, starts)), each[1])
