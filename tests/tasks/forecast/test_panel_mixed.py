"""A panel of series at different frequencies (monthly, quarterly, yearly): one global model across
them, each series with its own season (its frequency's, unless ``--seasonal-period`` gives one for
all), no calendar features; each series keeps its own frequency for its forecast dates."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from cli_cases import one_line_error
from rnnkit.errors import ConfigError, DataError
from rnnkit.tasks.forecast.fitting import fall_back
from rnnkit.tasks.forecast.normalise import PER_SERIES
from rnnkit.tasks.forecast.panel import prepare_panel
from rnnkit.tasks.forecast.panel_run import SEASONAL_NAIVE, fit_global, load_panel
from rnnkit.tasks.forecast.predict import naive_baselines, predict_scaled, windows_for

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=4)
QUICK = rnnkit.TrainConfig(epochs=2, batch_size=16)
SEASONS = {"m1": 12, "m2": 12, "q1": 4, "q2": 4, "y1": 1}


def mixed_panel(seasonal: bool = False) -> pd.DataFrame:
    """Two monthly, two quarterly and one yearly series (a random walk, or with ``seasonal`` a season of
    their frequency's length on a level, plus noise)."""
    rng = np.random.default_rng(0)
    blocks = []
    for sid, freq, n in (("m1", "MS", 60), ("m2", "MS", 56), ("q1", "QS", 40), ("q2", "QS", 36), ("y1", "YS", 30)):
        dates = pd.date_range("2000-01-01", periods=n, freq=freq).strftime("%Y-%m-%d")
        m, t = SEASONS[sid], np.arange(n)
        y = (50 + 10 * np.sin(2 * np.pi * t / m) * (m > 1) + rng.normal(0, 1, n)) if seasonal \
            else 50 + np.cumsum(rng.normal(0, 1, n))
        blocks.append(pd.DataFrame({"id": sid, "date": dates, "y": y}))
    return pd.concat(blocks, ignore_index=True)


def test_one_model_across_frequencies_with_a_season_given(tmp_path):
    raw = mixed_panel()
    dc = rnnkit.DataConfig(id_col="id", time_col="date", lookback=8, horizon=4, seasonal_period=1)
    run = fit_global(dc, SMALL, QUICK, raw, quiet=True)
    assert run.meta["freq"] is None and run.data_config.seasonal_period == 1 and run.data_config.skip != "seasonal"
    assert not run.per_series_seasons and "seasons" not in run.meta
    fc = run.forecast(raw)
    last = raw.groupby("id", sort=False).date.last()
    for sid, offset in (("m1", pd.DateOffset(months=1)), ("q1", pd.DateOffset(months=3))):
        dates = pd.to_datetime(fc[fc.id == sid].date).tolist()  # each series continues at its own frequency
        assert dates == [pd.Timestamp(last[sid]) + offset * h for h in range(1, 5)]
    run.save(tmp_path / "run", data=raw)
    pd.testing.assert_frame_equal(rnnkit.load_run(tmp_path / "run").forecast(raw), fc)


def test_each_series_trains_on_its_own_season():
    """The training windows: each series' seasonal naive skip with its own m, as its windows made
    alone and encoded with that one season (a season longer than the lookback: none, m = 1)."""
    raw = mixed_panel(seasonal=True)
    dc = rnnkit.DataConfig(id_col="id", time_col="date", lookback=12, horizon=4, skip="seasonal")
    panel = load_panel(dc, raw)
    prep = prepare_panel(dc, SMALL, QUICK, panel, dtype=torch.float64)
    assert prep.data_config.seasonal_period is None and prep.norm.m == PER_SERIES
    assert prep.seasons.tolist() == [SEASONS[s] for s in panel.ids]
    x, y = prep.train.materialise()
    at = 0
    for k, (s, (end, _)) in enumerate(zip(panel.series, prep.splits)):
        z = prep.scalers[k].transform(s.values)
        X, Y, _ = windows_for(z, 1, 12, 4, 1, 0, end)
        one = dataclasses.replace(prep.norm, m=int(prep.seasons[k]))
        Xn, Yn = one.encode(X, Y)
        np.testing.assert_array_equal(x[at:at + len(X)].numpy(), Xn)
        np.testing.assert_array_equal(y[at:at + len(X)].numpy(), Yn)
        at += len(X)
    assert at == len(x)
    short = prepare_panel(dc.replace(lookback=8), SMALL, QUICK, panel, dtype=torch.float64)
    assert short.seasons.tolist() == [1 if SEASONS[s] > 8 else SEASONS[s] for s in panel.ids]


def test_the_naive_model_forecasts_each_series_seasonal_naive(tmp_path):
    """With its correction zeroed (the naive fallback), the global model forecasts each series' own
    seasonal naive forecast (the yearly series: its last value), and the run reloads with the same
    seasons; its evaluation scores each series against its own seasonal naive."""
    raw = mixed_panel(seasonal=True)
    dc = rnnkit.DataConfig(id_col="id", time_col="date", horizon=4, skip="seasonal")
    run = fit_global(dc, SMALL, QUICK, raw, quiet=True, dtype=torch.float64)
    assert run.data_config.lookback == 24 and run.meta["seasons"] == [SEASONS[s] for s in run.ids]
    fall_back(run.model)
    fc = run.forecast(raw)
    for sid, group in raw.groupby("id", sort=False):
        values = group[["y"]].to_numpy()
        ref = naive_baselines(values, np.array([len(values)]), 4, SEASONS[sid])
        expected = ref[f"seasonal naive (m={SEASONS[sid]})"] if SEASONS[sid] > 1 else ref["last value"]
        np.testing.assert_allclose(fc[fc.id == sid].y.to_numpy(), expected[0, :, 0], rtol=1e-12)
    metrics = run.evaluate(raw)
    assert metrics["summary"]["reference"] == SEASONAL_NAIVE
    for e in metrics["series"]:  # the model is each series' seasonal naive: the same scores
        assert e["model"]["mae"] == pytest.approx(e[SEASONAL_NAIVE]["mae"], rel=1e-9)
    assert metrics["summary"]["geomean_relative_mase"] == pytest.approx(1.0, rel=1e-9)
    run.save(tmp_path / "run", data=raw)
    again = rnnkit.load_run(tmp_path / "run")
    assert again.per_series_seasons and again.norm.m == PER_SERIES
    pd.testing.assert_frame_equal(again.forecast(raw), fc)
    contexts = np.stack([g.y.to_numpy()[-24:, None] for _, g in raw.groupby("id", sort=False)])
    np.testing.assert_allclose(again.predict_contexts(contexts, list(again.ids))[:, :, 0],
                               np.stack([fc[fc.id == s].y.to_numpy() for s in again.ids]), rtol=1e-12)


def test_a_trained_model_forecasts_as_its_windows_one_season_each():
    """A trained global model's forecast of each series equals predict_scaled on that series' last
    window with that series' one season (an independent path: one window, one season, no seasons)."""
    raw = mixed_panel(seasonal=True)
    dc = rnnkit.DataConfig(id_col="id", time_col="date", horizon=4, skip="seasonal")
    run = fit_global(dc, SMALL, rnnkit.TrainConfig(epochs=5, lr=0.01), raw, quiet=True, evaluate=False)
    assert run.meta["naive_members"] == 0  # the network's own correction, not the naive fallback
    fc = run.forecast(raw)
    L = run.data_config.lookback
    for sid, group in raw.groupby("id", sort=False):
        scaler = run.scalers[sid]
        z = scaler.transform(group[["y"]].to_numpy())[None, -L:]
        one = dataclasses.replace(run.norm, m=SEASONS[sid])
        with torch.no_grad():
            out = predict_scaled(run.model, z, 4, one, torch.float32)
        np.testing.assert_allclose(fc[fc.id == sid].y.to_numpy(), scaler.inverse_transform(out[0])[:, 0], rtol=1e-6)


def test_a_new_series_takes_its_frequency_season():
    raw = mixed_panel(seasonal=True)
    dc = rnnkit.DataConfig(id_col="id", time_col="date", horizon=4, skip="seasonal")
    run = fit_global(dc, SMALL, QUICK, raw.query("id != 'q2'"), quiet=True, evaluate=False)
    fall_back(run.model)
    fc = run.forecast(raw, ids=["q2"])  # quarterly, never trained on: season 4
    values = raw.query("id == 'q2'")[["y"]].to_numpy()
    expected = naive_baselines(values, np.array([len(values)]), 4, 4)["seasonal naive (m=4)"]
    np.testing.assert_allclose(fc.y.to_numpy(), expected[0, :, 0], rtol=1e-6)


def test_what_one_season_per_series_cannot_do_is_refused(tmp_path):
    raw = mixed_panel()
    dc = rnnkit.DataConfig(id_col="id", time_col="date", lookback=12, horizon=4)
    with pytest.raises(DataError, match="series 'q1' has frequency QS-JAN but series 'm1' has MS.*drop --calendar"):
        fit_global(dc.replace(calendar="sincos"), SMALL, QUICK, raw, quiet=True)
    with pytest.raises(ConfigError, match="different frequencies.*--difference seasonal.*--seasonal-period"):
        fit_global(dc.replace(difference="seasonal"), SMALL, QUICK, raw, quiet=True)
    counts = raw.assign(y=np.arange(len(raw)) % 7)
    with pytest.raises(ConfigError, match="different frequencies.*negbin.*--seasonal-period"):
        fit_global(dc.replace(normalise="none", skip="none"), SMALL.replace(distribution="negbin"), QUICK, counts,
                   quiet=True)
    odd = raw.copy()  # q2's times irregular: its season cannot be inferred
    rows = odd.index[odd.id == "q2"]
    odd.loc[rows[5], "date"] = "2001-04-20"
    with pytest.raises(DataError, match="series 'q2' has irregular times.*--seasonal-period"):
        fit_global(dc, SMALL, QUICK, odd, quiet=True)
    run = fit_global(dc.replace(skip="seasonal"), SMALL, QUICK, mixed_panel(seasonal=True), quiet=True, evaluate=False)
    pytest.importorskip("onnx")
    with pytest.raises(ConfigError, match="different frequencies.*--seasonal-period"):
        rnnkit.export_onnx(run, tmp_path / "model.onnx")


def test_a_tampered_seasons_list_is_refused(tmp_path):
    raw = mixed_panel(seasonal=True)
    dc = rnnkit.DataConfig(id_col="id", time_col="date", horizon=4, skip="seasonal")
    fit_global(dc, SMALL, QUICK, raw, quiet=True).save(tmp_path / "run", data=raw)
    path = tmp_path / "run" / "config.json"
    config = json.loads(path.read_text())
    config["meta"]["seasons"][0] = 99  # longer than the lookback
    path.write_text(json.dumps(config))
    with pytest.raises(rnnkit.RnnkitError, match="seasonal_period and meta.seasons"):
        rnnkit.load_run(tmp_path / "run")


def test_the_command_line(tmp_path, capsys):
    raw = mixed_panel(seasonal=True)
    raw.to_csv(tmp_path / "p.csv", index=False)
    fit = ["fit", str(tmp_path / "p.csv"), "--id-col", "id", "--time-col", "date", "--target", "y", "--horizon", "4",
           "--epochs", "1", "--hidden", "4", "--out", str(tmp_path / "run")]
    assert "drop --calendar" in one_line_error(capsys, fit + ["--calendar", "sincos"])
    assert rnnkit.cli.main(fit) == 0
    assert "a season per series (m=12: 2 series, m=4: 2 series, m=1: 1 series)" in capsys.readouterr().out
    assert (tmp_path / "run" / "forecast.csv").exists()


def test_intervals_and_a_refitted_backtest_keep_each_series_season():
    """The calibration model and each refitted fold are fitted as the run was (a season per series);
    each series' interval scale is its training rows' mean absolute difference at its own season."""
    raw = mixed_panel(seasonal=True)
    dc = rnnkit.DataConfig(id_col="id", time_col="date", horizon=4, skip="seasonal")
    run = fit_global(dc, SMALL, QUICK, raw, quiet=True, search=rnnkit.SearchConfig(intervals=(80,)))
    panel = run.load_data(raw)
    for sid, s, scale in zip(panel.ids, panel.series, run.scales(panel, panel.lengths())):
        y, m = s.target_values[:run.meta["splits"][run.ids.index(sid)][0]], SEASONS[sid]
        np.testing.assert_allclose(scale, np.abs(y[m:] - y[:-m]).mean(axis=0), rtol=1e-12)
    fc = run.forecast(raw)
    assert (fc.y_lo_80 < fc.y).all() and (fc.y < fc.y_hi_80).all()
    folds = run.backtest(raw, folds=1, refit=True)
    assert folds["summary"]["reference"] == SEASONAL_NAIVE and len(folds["series"]) == len(run.evaluate(raw)["series"])
