"""The command line on a panel (`rnnkit fit FILE --id-col COL`, then forecast/evaluate): a round trip
in a temp dir, and every refusal as one `rnnkit: error:` line with exit status 2 and no run left.
Covariates here only through their refusals (see test_panel_covariates.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_cases import one_line_error
from rnnkit.cli import main

FAST = ["--epochs", "3", "--hidden", "4", "--quiet", "--batch-size", "16"]


def panel_csv(path: Path) -> Path:
    """Four monthly series of 40, 36, 30 and 14 rows, from different months, with a covariate that
    varies within each series."""
    rng = np.random.default_rng(0)
    blocks = []
    for k, (n, start) in enumerate([(40, "2000-01-01"), (36, "2001-05-01"), (30, "1999-02-01"), (14, "2002-01-01")]):
        t = np.arange(n)
        blocks.append(pd.DataFrame({"store": ["north", "south", "east", "short"][k],
                                    "month": pd.date_range(start, periods=n, freq="MS").strftime("%Y-%m-%d"),
                                    "sales": 10 * (k + 1) + np.sin(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(n),
                                    "temp": np.cos(2 * np.pi * t / 12)}))
    pd.concat(blocks).to_csv(path, index=False)
    return path


def fit_args(data, out, *extra):
    return ["fit", str(data), "--id-col", "store", "--time-col", "month", "--target", "sales", "--lookback", "12",
            "--horizon", "3", "--out", str(out), *FAST, *extra]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A panel run fitted from a relative path inside its folder; the tests then run elsewhere."""
    here, folder = Path.cwd(), tmp_path_factory.mktemp("panel")
    panel_csv(folder / "panel.csv")
    os.chdir(folder)
    try:
        code = main(fit_args("panel.csv", "run"))
    finally:
        os.chdir(here)
    assert code == 0
    return folder / "panel.csv", folder / "run"


def test_fit_forecast_evaluate_round_trip(fitted, tmp_path, capsys):
    data, run = fitted
    for name in ("config.json", "weights.safetensors", "scalers.json", "history.csv", "metrics.json",
                 "series_metrics.csv", "forecast.csv"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "panel" and config["data"]["id_col"] == "store"
    assert config["data"]["source"] == str(data)  # absolute: found from any working directory
    assert config["meta"]["ids"] == ["north", "south", "east", "short"] and config["meta"]["trained_series"] == 3
    fc = pd.read_csv(run / "forecast.csv")
    assert list(fc.columns) == ["store", "month", "horizon", "sales"] and len(fc) == 4 * 3
    assert fc[fc.store == "short"].month.tolist() == ["2003-03-01", "2003-04-01", "2003-05-01"]  # after its row 14

    assert main(["forecast", "--run", str(run), "--out", str(tmp_path / "f.csv")]) == 0  # data from the run
    assert "wrote 12 forecast rows (4 series)" in capsys.readouterr().out
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "f.csv").sales.to_numpy(), fc.sales.to_numpy())
    assert main(["forecast", "--run", str(run), "--data", str(data), "--horizon", "5"]) == 0
    assert capsys.readouterr().out.count("short") == 5

    assert main(["evaluate", "--run", str(run), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "metrics.json").read_text())
    assert scores["summary"] == saved["summary"] and scores["summary"]["series"] == 3  # "short" has no test part
    per = pd.read_csv(run / "series_metrics.csv")
    assert per.id.tolist() == ["north", "south", "east"]
    np.testing.assert_allclose(per["model: mase"], [e["model"]["mase"] for e in scores["series"]], rtol=1e-12)
    assert main(["evaluate", "--run", str(run)]) == 0
    table = capsys.readouterr().out
    assert "scored 3 series" in table and "seasonal naive (m=12)" in table and "geometric mean" in table


def test_fit_reports_the_series_too_short_to_train_on(tmp_path, capsys):
    data = panel_csv(tmp_path / "p.csv")
    assert main(fit_args(data, tmp_path / "run", "--ensemble", "3")) == 0
    out = capsys.readouterr().out
    assert "on 4 series (3 long enough to train on;" in out and "ensemble of 3, median" in out
    assert main(["forecast", "--run", str(tmp_path / "run"), "--data", str(data)]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--id-col", "shop"], "no id column 'shop'; the columns are store, month, sales, temp"),
    (["--lookback", "20"], "series 'short' has fewer rows than the lookback 20 (shortest: 14)"),
    (["--horizon", "30"], "no series has 42 rows (lookback 12 + horizon 30)"),
    (["--covariates", "rain"], "(series 'north'): no covariate column 'rain'"),
    (["--static-covariates", "region"], "no static covariate column 'region'"),
    (["--static-covariates", "temp"], "(series 'north'): the static covariate 'temp' must hold one value"),
    (["--transform", "boxcox"], "--transform boxcox: not yet for panels"),
    (["--auto"], "--auto: not yet for panels"),
    (["--ensemble", "2", "--ensemble-lookbacks", "6,12"], "--ensemble-lookbacks: not yet for panels"),
    (["--intervals", "80", "--calibration-spacing", "2"], "as many as the levels (or --calibration-windows) need"),
    (["--intervals", "95", "--calibration-windows", "5"], "--calibration-windows 5 cannot bound a 95 % interval"),
    (["--intervals", "99"], "intervals at 99 % need at least 99 held-out horizons"),
    (["--val-frac", "0.3"], "val_frac=0.3: a panel holds out the last horizon of each series"),
    (["--future", "x.csv"], "this run has no future covariates, so it reads no future file"),
    (["--target", "store"], "column 'store' is the id column"),
])
def test_bad_panel_fit_is_one_line_and_leaves_no_run(tmp_path, capsys, extra, message):
    data = panel_csv(tmp_path / "p.csv")
    err = one_line_error(capsys, fit_args(data, tmp_path / "run", *extra))
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]  # no run directory, no temp folder


def test_calibration_windows_is_a_floor_on_the_windows_a_panel_takes(tmp_path):
    """North, south and east hold a calibration window at every origin and 'short' (14 rows) at none:
    the default, as few origins as bound 80 % (4 windows), takes two (3 + 3); --calibration-windows 100
    every origin that leaves a training window (origin >= lookback + horizon = 15), seven, holding
    7 + 7 + 5 windows, and stops there rather than fit a model on no training window."""
    data = panel_csv(tmp_path / "p.csv")
    for extra, windows in (([], 6), (["--calibration-windows", "100"], 19)):
        assert main(fit_args(data, tmp_path / f"run{windows}", "--intervals", "80", *extra)) == 0
        config = json.loads((tmp_path / f"run{windows}" / "config.json").read_text())
        assert config["meta"]["intervals"]["windows"] == windows
        assert main(["forecast", "--run", str(tmp_path / f"run{windows}")]) == 0  # reloads with the option


def test_forecast_ids_and_backtest_of_one_fold(fitted, capsys):
    data, run = fitted
    assert main(["forecast", "--run", str(run), "--ids", "east,north"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["east"] * 3 + ["north"] * 3  # in the order asked for
    assert main(["evaluate", "--run", str(run), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert main(["backtest", "--run", str(run), "--data", str(data), "--folds", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == scores  # one fold is the evaluation


def test_bad_use_of_a_panel_run_is_one_line(fitted, tmp_path, capsys):
    data, run = fitted
    err = one_line_error(capsys, ["backtest", "--run", run, "--data", data, "--folds", "2"])
    assert "no series of the data has 2 horizon(s) of rows after its training and validation rows" in err
    err = one_line_error(capsys, ["forecast", "--run", run, "--future", data])
    assert "this run has no future covariates, so it reads no future file; drop --future" in err
    assert "no series with id(s) 'west'" in one_line_error(capsys, ["forecast", "--run", run, "--ids", "north,west"])
    pd.read_csv(data).drop(columns="store").to_csv(tmp_path / "no_ids.csv", index=False)
    assert "no id column 'store'" in one_line_error(capsys, ["forecast", "--run", run, "--data", tmp_path / "no_ids.csv"])
    one = pd.read_csv(data)
    one[one.store == "north"].iloc[:8].to_csv(tmp_path / "cut.csv", index=False)
    err = one_line_error(capsys, ["forecast", "--run", run, "--data", tmp_path / "cut.csv"])
    assert "(series 'north'): forecasting needs the 12 rows before the origin" in err
    err = one_line_error(capsys, ["fit", "builtin:sine", "--id-col", "store", "--out", tmp_path / "r", *FAST])
    assert "builtin:sine is one series; --id-col needs a panel file" in err
