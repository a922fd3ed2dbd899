"""The command line: round trips in a temp dir, and every bad-input case with its exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnkit.cli import main

FAST = ["--epochs", "3", "--hidden", "4", "--quiet", "--batch-size", "16"]


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    """A monthly two-column series with a covariate: 120 rows."""
    t = np.arange(120)
    df = pd.DataFrame({"date": pd.date_range("2010-01-01", periods=120, freq="MS").strftime("%Y-%m-%d"),
                       "sales": 10 + np.sin(2 * np.pi * t / 12) + 0.01 * t,
                       "temp": np.cos(2 * np.pi * t / 12)})
    path = tmp_path / "sales.csv"
    df.to_csv(path, index=False)
    return path


def fit_args(data, out, *extra):
    return ["fit", data, "--target", "sales", "--time-col", "date", "--lookback", "12", "--horizon", "3",
            "--out", out, *FAST, *extra]


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_fit_forecast_evaluate_backtest_round_trip(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(*fit_args(csv, out, "--covariates", "temp")) == 0
    for name in ("config.json", "weights.safetensors", "scaler.json", "history.csv", "metrics.json",
                 "forecast.csv", "learning_curve.png", "forecast.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["targets"] == ["sales"] and config["data"]["covariates"] == ["temp"]
    assert config["train"]["seed"] == 0 and "torch" in config["versions"]
    assert len(config["meta"]["data_sha256"]) == 64
    fc = pd.read_csv(out / "forecast.csv")
    assert list(fc.columns) == ["date", "horizon", "sales"] and len(fc) == 3
    assert fc["date"].iloc[0] == "2020-01-01"  # continues the monthly index
    capsys.readouterr()

    assert run_cli("forecast", "--run", out, "--horizon", "3", "--out", tmp_path / "f.csv") == 0
    again = pd.read_csv(tmp_path / "f.csv")
    np.testing.assert_array_equal(again["sales"].to_numpy(), fc["sales"].to_numpy())  # bit for bit

    capsys.readouterr()
    assert run_cli("evaluate", "--run", out, "--json") == 0
    scores = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())
    assert scores["model"]["overall"] == saved["model"]["overall"]
    assert set(scores) == {"model", "last value", "seasonal naive (m=12)"}  # m from the monthly time column

    assert run_cli("evaluate", "--run", out) == 0
    table = capsys.readouterr().out
    assert "last value" in table and "mase" in table

    assert run_cli("backtest", "--run", out, "--data", csv, "--folds", "3") == 0
    assert "origins at rows [111, 114, 117]" in capsys.readouterr().out


def test_seasonal_period_adds_seasonal_naive(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(*fit_args(csv, out, "--seasonal-period", "12")) == 0
    capsys.readouterr()
    assert run_cli("evaluate", "--run", out, "--json") == 0
    assert "seasonal naive (m=12)" in json.loads(capsys.readouterr().out)


def test_datasets_lists_builtins(capsys):
    assert run_cli("datasets") == 0
    out = capsys.readouterr().out
    for name in ("builtin:sine", "builtin:nile"):
        assert name in out


def test_refuses_to_overwrite_without_force(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(*fit_args(csv, out)) == 0
    before = (out / "weights.safetensors").read_bytes()
    assert run_cli(*fit_args(csv, out, "--seed", "1")) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "weights.safetensors").read_bytes() == before
    assert run_cli(*fit_args(csv, out, "--seed", "1", "--force")) == 0
    assert (out / "weights.safetensors").read_bytes() != before
    assert leftovers(tmp_path) == []


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


BAD_FILES = {
    "empty": ("", "empty"),
    "header_only": ("date,sales\n", "no data rows"),
    "non_numeric": ("date,sales\n2020-01-01,1\n2020-02-01,abc\n", "abc"),
    "nan": ("date,sales\n2020-01-01,1\n2020-02-01,\n2020-03-01,3\n", "--fill"),
    "duplicate": ("date,sales\n2020-01-01,1\n2020-01-01,2\n2020-02-01,3\n", "duplicate"),
    "unsorted": ("date,sales\n2020-02-01,1\n2020-01-01,2\n2020-03-01,3\n", "order"),
    "bad_dates": ("date,sales\nyesterday,1\ntoday,2\n", "date"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_exit_2_with_one_line(case, tmp_path, capsys):
    text, needle = BAD_FILES[case]
    data = _write(tmp_path, f"{case}.csv", text)
    out = tmp_path / "run"
    assert run_cli(*fit_args(data, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1, err
    assert needle.lower() in err.lower(), err
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("args, needle", [
    (["--target", "nope"], "sales"),                     # unknown target: lists the columns
    (["--time-col", "when"], "date"),                    # unknown time column
    (["--covariates", "humidity"], "humidity"),
    (["--lookback", "0"], "lookback"),
    (["--horizon", "0"], "horizon"),
    (["--lookback", "200"], "too few rows"),
    (["--val-frac", "0.6", "--test-frac", "0.5"], "val_frac + test_frac"),
    (["--strategy", "recursive", "--covariates", "temp"], "covariates"),
    (["--strategy", "recursive", "--bidirectional"], "bidirectional"),
    (["--cell", "gru", "--peephole"], "peephole"),
])
def test_bad_settings_exit_2(csv, tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    base = ["fit", csv, "--time-col", "date", "--lookback", "12", "--horizon", "3", "--out", out, *FAST]
    if "--target" not in args:
        base += ["--target", "sales"]
    # later flags win in argparse, so the bad value overrides the good default above
    assert run_cli(*base, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and needle in err, err
    assert not out.exists()


def test_missing_file(tmp_path, capsys):
    assert run_cli(*fit_args(tmp_path / "nope.csv", tmp_path / "run")) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_run_directory_problems(csv, tmp_path, capsys):
    assert run_cli("evaluate", "--run", tmp_path / "missing") == 2
    assert "does not exist" in capsys.readouterr().err
    out = tmp_path / "run"
    assert run_cli(*fit_args(csv, out)) == 0
    capsys.readouterr()
    config = json.loads((out / "config.json").read_text())
    config["format_version"] = 999
    (out / "config.json").write_text(json.dumps(config))
    assert run_cli("forecast", "--run", out) == 2
    assert "format version" in capsys.readouterr().err
    config["format_version"] = 1
    (out / "config.json").write_text(json.dumps(config))
    (out / "weights.safetensors").unlink()
    assert run_cli("forecast", "--run", out) == 2
    assert "incomplete" in capsys.readouterr().err


def test_forecast_with_different_columns(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(*fit_args(csv, out, "--covariates", "temp")) == 0
    other = _write(tmp_path, "other.csv", "date,sales\n" + "".join(
        f"2030-{m:02d}-01,{m}\n" for m in range(1, 13)) + "2031-01-01,1\n")
    capsys.readouterr()
    assert run_cli("forecast", "--run", out, "--data", other) == 2
    assert "temp" in capsys.readouterr().err


def test_diverging_training_stops_with_message(csv, tmp_path, capsys):
    # the learning rate is capped at 10, so divergence comes from unscaled values whose squared
    # errors overflow float32 (largest value about 3.4e38); per-window normalisation would make the
    # values harmless (each window is divided by its own spread), so it is switched off here
    frame = pd.read_csv(csv)
    frame["sales"] *= 1e36
    frame.to_csv(csv, index=False)
    out = tmp_path / "run"
    code = run_cli(*fit_args(csv, out, "--lr", "10", "--optimizer", "sgd", "--scaler", "none",
                            "--normalise", "none", "--skip", "none", "--transform", "none"))
    assert code == 2
    assert "diverged" in capsys.readouterr().err
    assert not out.exists()


def test_help_lists_defaults():
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli", "fit", "--help"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")})
    assert proc.returncode == 0
    assert "default: 100" in proc.stdout and "--patience" in proc.stdout


def test_subprocess_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli", "fit", str(tmp_path / "x.csv"), "--lookback", "3",
                           "--horizon", "1", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("rnnkit: error:")


def test_split_by_dates(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(*fit_args(csv, out, "--val-start", "2017-01-01", "--test-start", "2018-01")) == 0
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert (meta["train_rows"], meta["test_start"]) == (84, 96)  # 2010-01 + 84 months = 2017-01
    capsys.readouterr()
    assert run_cli(*fit_args(csv, tmp_path / "r2", "--test-start", "2030-01")) == 2
    assert "2030-01" in capsys.readouterr().err
    assert run_cli(*fit_args(csv, tmp_path / "r3", "--val-start", "2019-01", "--test-start", "2018-01")) == 2
    assert "after" in capsys.readouterr().err
