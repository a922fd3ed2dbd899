"""Covariates of a panel and its rolling origins: static covariates encoded over the training series,
past covariates scaled per series and static features in the pooled windows (by hand), the future
file read per series (its refusals name the series and the file's row), and the backtest's folds
against evaluations of the data cut at each origin."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from cli_cases import one_line_error
from rnnkit.cli import main
from rnnkit.data.panel import panel_from_frame
from rnnkit.errors import ConfigError
from rnnkit.tasks.forecast.panel import prepare_panel
from rnnkit.tasks.forecast.panel_run import fit_global
from rnnkit.tasks.forecast.statics import StaticEncoder

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=4)
QUICK = rnnkit.TrainConfig(epochs=2, batch_size=16)


def table(lengths=(30, 24, 20), seed=0) -> pd.DataFrame:
    """Monthly series a, b, c with a past covariate (temp), a future one (promo) and statics."""
    rng = np.random.default_rng(seed)
    blocks = []
    for k, n in enumerate(lengths):
        t = np.arange(n)
        blocks.append(pd.DataFrame({
            "id": "abc"[k], "date": pd.date_range("2000-01-01", periods=n, freq="MS").strftime("%Y-%m-%d"),
            "y": 10 * (k + 1) + np.sin(t) + rng.normal(0, 0.1, n), "temp": rng.normal(20, 5, n),
            "promo": (t % 4 == 0).astype(int), "region": "NSN"[k], "size": [1, 2, 6][k]}))
    return pd.concat(blocks, ignore_index=True)


def test_static_encoder_by_hand():
    enc = StaticEncoder.fit({"region": ("N", "S", "N"), "size": ("1", "2", "6")}, ("region", "size"))
    assert enc.kinds == ("categorical", "numeric") and enc.names == ["region=N", "region=S", "size"]
    std = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 3)  # over the training series, ddof 0
    np.testing.assert_allclose(enc.features({"region": "S", "size": "4"}), [0, 1, 1 / std], rtol=1e-15)
    np.testing.assert_array_equal(enc.features({"region": "W", "size": "3"}), [0, 0, 0])  # unseen: none of them
    assert StaticEncoder.from_dict(json.loads(json.dumps(enc.to_dict()))) == enc
    assert StaticEncoder.fit({"size": ("5", "5")}, ("size",)).params == ((5.0, 1.0),)  # constant: no division by 0
    with pytest.raises(ConfigError, match="static covariates' encoding is unusable"):
        StaticEncoder.from_dict({**enc.to_dict(), "params": [["N", "S"], [3.0, 0.0]]})


def test_past_covariate_and_static_features_in_the_pooled_windows():
    raw = table()
    dc = rnnkit.DataConfig(id_col="id", time_col="date", targets=("y",), covariates=("temp",),
                           static_covariates=("region", "size"), lookback=4, horizon=2, normalise="window",
                           skip="last")
    panel = panel_from_frame(raw, "id", "y", "date", ("temp",), static_covariates=("region", "size"))
    prep = prepare_panel(dc, SMALL, QUICK, panel, dtype=torch.float64)
    L, H = 4, 2
    assert prep.splits == ((26, 28), (20, 22), (16, 18)) and prep.known_width == 3 + 1  # region=N, =S, size, flag
    X = prep.train.materialise()[0].numpy()  # (W, L + H, values 2 + known 3 + flag 1)
    assert X.shape[1:] == (L + H, 6)
    enc = StaticEncoder.fit({"region": ("N", "S", "N"), "size": ("1", "2", "6")}, ("region", "size"))
    first = 0
    for k, sid in enumerate("abc"):
        end = prep.splits[k][0]
        temp = raw[raw.id == sid].temp.to_numpy()
        scaled = (temp - temp[:end].min()) / np.ptp(temp[:end])  # its own training rows; never normalised per window
        windows = X[first:first + end - L - H + 1]
        first += len(windows)
        for j, w in enumerate(windows):
            np.testing.assert_allclose(w[:L, 1], scaled[j:j + L], rtol=0, atol=1e-12)
            np.testing.assert_array_equal(w[L:, :2], 0.0)  # the values of the horizon are unknown
        statics = enc.features({"region": "NSN"[k], "size": str([1, 2, 6][k])})
        np.testing.assert_allclose(windows[:, :, 2:5], np.broadcast_to(statics, windows[:, :, 2:5].shape), rtol=1e-12)
        np.testing.assert_array_equal(windows[:, :, 5], np.broadcast_to([0] * L + [1] * H, windows[:, :, 5].shape))
    assert first == len(X)


def _future(raw: pd.DataFrame, steps: int) -> pd.DataFrame:
    rows = []
    for sid, part in raw.groupby("id", sort=False):
        last = pd.Timestamp(part.date.iloc[-1])
        rows += [{"id": sid, "date": (last + pd.DateOffset(months=h)).strftime("%Y-%m-%d"), "promo": h % 2}
                 for h in range(1, steps + 1)]
    return pd.DataFrame(rows)


def test_future_file_per_series(tmp_path, capsys):
    raw = table()
    raw.to_csv(tmp_path / "p.csv", index=False)
    run = tmp_path / "run"
    assert main(["fit", str(tmp_path / "p.csv"), "--id-col", "id", "--time-col", "date", "--target", "y",
                 "--future-covariates", "promo", "--lookback", "4", "--horizon", "2", "--epochs", "2",
                 "--hidden", "4", "--quiet", "--out", str(run)]) == 0
    assert not (run / "forecast.csv").exists()  # no future values were given
    # promo has no effect on y here: the F test of its linear effect keeps none (test_panel_linear.py)
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["linear_covariates"] == "auto" and config["meta"]["covariate_effect"] == []
    future = _future(raw, 2)
    future.to_csv(tmp_path / "f.csv", index=False)
    assert main(["forecast", "--run", str(run), "--future", str(tmp_path / "f.csv"), "--out", str(tmp_path / "o.csv")]) == 0
    loaded = rnnkit.load_run(run)
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "o.csv").y.to_numpy(),
                                  loaded.forecast(raw, future=future).y.to_numpy())
    assert "pass them with --future FILE" in one_line_error(capsys, ["forecast", "--run", run])
    future.drop(index=3).to_csv(tmp_path / "gap.csv", index=False)  # b's second step
    err = one_line_error(capsys, ["forecast", "--run", run, "--future", tmp_path / "gap.csv"])
    assert "gap.csv (series 'b'): no row for 2002-02-01" in err
    future[future.id != "c"].to_csv(tmp_path / "no_c.csv", index=False)
    assert "no rows for series 'c'" in one_line_error(capsys, ["forecast", "--run", run, "--future", tmp_path / "no_c.csv"])
    bad = future.astype({"promo": object})
    bad.loc[3, "promo"] = "x"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    err = one_line_error(capsys, ["forecast", "--run", run, "--future", tmp_path / "bad.csv"])
    assert "bad.csv (series 'b'): column 'promo' has the non-numeric value 'x' at data row 4" in err


def test_backtest_folds_are_evaluations_of_the_data_cut_at_each_origin():
    full, H = table(), 2
    cut = lambda d, k: pd.concat([p.iloc[:len(p) - k * H] for _, p in d.groupby("id", sort=False)])  # noqa: E731
    dc = rnnkit.DataConfig(id_col="id", time_col="date", targets=("y",), lookback=4, horizon=H)
    run = fit_global(dc, SMALL, QUICK, cut(full, 1), quiet=True)  # the last horizon of `full` is new to the run
    result = run.backtest(full, folds=2)
    folds = [[{k: v for k, v in e.items() if k != "fold"} for e in result["series"] if e["fold"] == f] for f in (1, 2)]
    assert [e["origin"] for e in folds[0]] == [26, 20, 16] and [e["origin"] for e in folds[1]] == [28, 22, 18]
    assert folds[0] == run.evaluate(cut(full, 1))["series"]  # fold 1: the run's own test horizon
    assert folds[1] == run.evaluate(full)["series"]  # fold 2: the horizon after it
    assert result["summary"]["series"] == 6
    assert result["summary"]["model"]["mase"] == pytest.approx(
        np.mean([e["model"]["mase"] for e in result["series"]]), rel=1e-12)


def test_a_refitted_backtest_fold_is_a_model_fitted_on_the_data_cut_at_its_origin(tmp_path, capsys):
    full, H = table(), 2
    cut = lambda d, k: pd.concat([p.iloc[:len(p) - k * H] for _, p in d.groupby("id", sort=False)])  # noqa: E731
    dc = rnnkit.DataConfig(id_col="id", time_col="date", targets=("y",), lookback=4, horizon=H)
    run = fit_global(dc, SMALL, QUICK, cut(full, 1), quiet=True)
    result = run.backtest(full, folds=2, refit=True)
    for fold, k in ((1, 2), (2, 1)):  # fold 1 forecasts from 2 horizons before the end of `full`
        by_hand = fit_global(run.data_config.replace(test_frac=0.0, val_frac=None), SMALL, QUICK, cut(full, k),
                             quiet=True, evaluate=False)
        forecast = by_hand.forecast(cut(full, k))
        for e in (e for e in result["series"] if e["fold"] == fold):
            actual = full[full.id == e["id"]].y.to_numpy()[e["origin"]:e["origin"] + H]
            mae = np.abs(actual - forecast[forecast.id == e["id"]].y.to_numpy()).mean()
            assert e["model"]["mae"] == pytest.approx(mae, rel=1e-12)
    plain = run.backtest(full, folds=2)
    assert [e["origin"] for e in plain["series"]] == [e["origin"] for e in result["series"]]
    assert plain["series"][0]["seasonal naive (m=12)"] == result["series"][0]["seasonal naive (m=12)"]
    full.to_csv(tmp_path / "full.csv", index=False)
    run.save(tmp_path / "run", data=cut(full, 1))
    assert main(["backtest", "--run", str(tmp_path / "run"), "--data", str(tmp_path / "full.csv"), "--folds", "2",
                 "--refit"]) == 0
    assert "fold 2 of 2" in capsys.readouterr().out


def test_intervals_of_a_panel_with_future_covariates_read_them_after_the_calibration_origin():
    """The calibration model forecasts from an origin inside each series: the future covariates of the
    rows after it are the data's (the calibration fit once asked for a future file there)."""
    raw = pd.concat([table((30, 28, 26), seed=0), table((25, 24, 22), seed=1).assign(id=lambda d: d.id.str.upper())],
                    ignore_index=True)  # six series: a, b, c, A, B, C
    H = 2
    dc = rnnkit.DataConfig(id_col="id", time_col="date", targets=("y",), future_covariates=("promo",), lookback=4,
                           horizon=H)
    run = fit_global(dc, SMALL, QUICK, raw, quiet=True, search=rnnkit.SearchConfig(intervals=(80,)))
    assert run.intervals.levels == (80,) and "intervals" in run.metrics["summary"]
