"""Optuna's search over a grid (--optuna N) and one fit per series of a panel (--per-series): the
jobs they run, their determinism, resuming, and their refusals. Tiny jobs (a few epochs, hidden 4)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

import rnnkit
from rnnkit import ConfigError, DataConfig, SweepConfig
from rnnkit.cli import main
from cli_cases import one_line_error
from sweep_cases import DATA, MODEL, TRAIN, job_dirs, job_settings, leaderboard, needs_optuna

GRID = {"hidden_size": [2, 4, 8], "lr": [1e-3, 3e-3, 1e-2]}


def _optuna(out, resume=False, **kw):
    config = SweepConfig(**{"optuna": 4, "workers": 1, "random_seed": 7, **kw})
    return rnnkit.sweep(DATA, GRID, out, MODEL, TRAIN, config=config, quiet=True, resume=resume)


@needs_optuna
def test_optuna_runs_n_distinct_trials_the_same_for_the_same_seed(tmp_path):
    first = _optuna(tmp_path / "a", workers=2)
    assert job_dirs(tmp_path / "a") == [f"job-00{k}" for k in range(4)]
    assert [r["status"] for r in first.rows] == ["ok"] * 4 and [r["rank"] for r in first.rows] == [1, 2, 3, 4]
    chosen = [(s["hidden_size"], s["lr"]) for s in job_settings(first)]
    assert len(set(chosen)) == 4 and all(h in GRID["hidden_size"] and lr in GRID["lr"] for h, lr in chosen)
    rows = leaderboard(tmp_path / "a")
    assert [r["job"] for r in rows] == [r["job"] for r in first.rows] and {"hidden_size", "lr"} <= set(rows[0])
    plan = json.loads((tmp_path / "a" / "sweep.json").read_text())
    assert (plan["optuna"], plan["optuna_batch"], plan["rank_by"]) == (4, 2, "val_mase")  # rank_by auto, one series
    assert [j["settings"] for j in plan["jobs"]] == job_settings(first)
    # the same seed and batch size: the same trials in the same order, and the same runs
    same = _optuna(tmp_path / "b", workers=2)
    assert job_settings(same) == job_settings(first)
    assert all((tmp_path / "a" / j / "weights.safetensors").read_bytes()
               == (tmp_path / "b" / j / "weights.safetensors").read_bytes() for j in job_dirs(tmp_path / "a"))
    assert job_settings(_optuna(tmp_path / "c", workers=2, random_seed=8)) != job_settings(first)


@needs_optuna
def test_an_interrupted_optuna_sweep_resumes_by_replaying_the_study(tmp_path, monkeypatch, interrupt_job):
    whole = _optuna(tmp_path / "whole")
    interrupt_job("job-002")
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        _optuna(out)
    assert job_dirs(out) == ["job-000", "job-001"]
    assert [r["status"] for r in leaderboard(out)] == ["ok", "ok", "interrupted"]
    kept = (out / "job-001" / "weights.safetensors").stat().st_ino
    monkeypatch.undo()  # every job trains again
    resumed = _optuna(out, resume=True)
    assert job_settings(resumed) == job_settings(whole) and job_dirs(out) == job_dirs(tmp_path / "whole")
    assert (out / "job-001" / "weights.safetensors").stat().st_ino == kept  # told its recorded score, not retrained


@needs_optuna
def test_the_study_runs_distinct_combinations_and_tells_repeats_and_failures():
    from rnnkit.tasks.sweep.grid import plan_jobs
    from rnnkit.tasks.sweep.study import MAX_REPEATS, GridStudy
    grid = {"a": (1, 2, 3), "b": ("x", "y")}
    every = plan_jobs(grid)
    batches = []

    def run_batch(chosen):  # the combination at index 3 of the grid fails; the others score their index
        indices = [every.index(s) for s in chosen]
        batches.append(indices)
        return [{"status": "failed"} if k == 3 else {"status": "ok", "val_loss": float(k)} for k in indices]

    study = GridStudy(grid, seed=3, rank_by="val_loss")
    study.run(10, 4, run_batch, say=lambda s: None)  # more trials than combinations: each combination once
    ran = [k for b in batches for k in b]
    assert sorted(ran) == list(range(6)) and [len(b) for b in batches][:1] == [4]
    trials = study.study.trials
    assert len(trials) >= 6 and all(t.state.name in ("COMPLETE", "FAIL") for t in trials)
    assert sum(t.state.name == "FAIL" for t in trials) >= 1
    first, batches[:] = list(batches), []
    GridStudy(grid, seed=3, rank_by="val_loss").run(10, 4, run_batch, say=lambda s: None)
    assert batches == first  # the same seed and scores: the same plan
    said = []
    GridStudy({"a": (1,)}, seed=0, rank_by="val_loss").run(
        3, 1, lambda chosen: [{"status": "ok", "val_loss": 1.0} for _ in chosen], say=said.append)
    assert said and f"last {MAX_REPEATS} suggestions" in said[0] and "after 1 of 3" in said[0]


def test_optuna_without_optuna_installed_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'rnnkit\[optuna\]'"):
        _optuna(tmp_path / "s")
    assert "pip install 'rnnkit[optuna]'" in one_line_error(capsys, [
        "sweep", "builtin:sine", "--grid", "hidden=2,4", "--optuna", "2", "--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


def _panel(path, short=False):
    """A long-format panel of three daily series (ids a, b, c; a static column the sweep ignores),
    and with ``short`` a fourth of 4 rows, too few for any split."""
    rows = []
    for k, sid in enumerate(["a", "b", "c"] + (["d"] if short else [])):
        n = 4 if sid == "d" else 60
        t = np.arange(n)
        rows.append(pd.DataFrame({"store": sid, "date": pd.date_range("2024-01-01", periods=n, freq="D"),
                                  "sales": np.round(10 + (k + 1) * np.sin(t / (3 + k)) + 0.1 * t, 4)}))
    pd.concat(rows).to_csv(path, index=False)
    return path


PANEL = DataConfig(id_col="store", time_col="date", targets=("sales",), lookback=5, horizon=2)


def test_per_series_fits_each_series_alone_as_a_direct_fit_would(tmp_path):
    panel = _panel(tmp_path / "panel.csv")
    out = tmp_path / "s"
    result = rnnkit.sweep(PANEL.replace(source=str(panel)), {}, out, MODEL, TRAIN,
                          config=SweepConfig(per_series=True, workers=2), quiet=True)
    assert sorted((r["job"], r["settings"]["series"], r["status"]) for r in result.rows) == [
        ("job-000", "a", "ok"), ("job-001", "b", "ok"), ("job-002", "c", "ok")]
    rows = leaderboard(out)
    assert sorted((r["job"], r["series"]) for r in rows) == [("job-000", "a"), ("job-001", "b"), ("job-002", "c")]
    assert sorted(os.listdir(out)) == ["job-000", "job-001", "job-002", "jobs.json", "leaderboard.csv",
                                       "leaderboard.png", "series", "sweep.json"]
    raw = pd.read_csv(panel, dtype=str)
    for job, sid in (("job-000", "a"), ("job-001", "b"), ("job-002", "c")):
        alone = tmp_path / f"{sid}.csv"
        raw[raw["store"] == sid].drop(columns="store").to_csv(alone, index=False)
        direct = rnnkit.fit_forecaster(PANEL.replace(source=str(alone), id_col=None), MODEL, TRAIN, quiet=True)
        direct.save(tmp_path / f"direct-{sid}")
        assert (out / job / "weights.safetensors").read_bytes() == \
            (tmp_path / f"direct-{sid}" / "weights.safetensors").read_bytes()
        run = rnnkit.load_run(out / job)  # an ordinary single-series run: it reads its series' own table
        assert run.data_config.id_col is None and run.forecast().equals(direct.forecast())


def test_per_series_times_a_grid_on_the_command_line_with_a_series_too_short(tmp_path, capsys):
    panel = _panel(tmp_path / "panel.csv", short=True)
    out = tmp_path / "s"
    assert main(["sweep", str(panel), "--id-col", "store", "--time-col", "date", "--target", "sales",
                 "--per-series", "--grid", "hidden=2,4", "--lookback", "5", "--horizon", "2", "--epochs", "2",
                 "--workers", "1", "--quiet", "--out", str(out)]) == 0
    assert "6 of 8 job(s) trained, 2 failed" in capsys.readouterr().out
    rows = {(r["series"], r["hidden_size"]): r for r in leaderboard(out)}
    assert sorted(rows) == [(s, h) for s in "abcd" for h in ("2", "4")]
    assert {rows[("d", h)]["status"] for h in ("2", "4")} == {"failed"} and "rows" in rows[("d", "2")]["message"]
    assert [j["settings"] for j in json.loads((out / "sweep.json").read_text())["jobs"]][:2] == [
        {"series": "a", "hidden_size": 2}, {"series": "a", "hidden_size": 4}]
    assert rnnkit.load_run(out / "job-003").model_config.hidden_size == 4  # series b, hidden 4
    assert main(["sweep", "--resume", "--out", str(out), "--quiet"]) == 0  # its own plan: only d is tried again


@pytest.mark.parametrize("args, needle", [
    (["builtin:sine", "--per-series"], "pass --id-col COL"),
    (["P", "--id-col", "store", "--per-series", "--grid", "source=x.csv"], "cannot set source"),
    (["P", "--id-col", "store", "--per-series", "--static-covariates", "store2"], "drop them"),
    (["P", "--id-col", "store", "--per-series", "--future", "f.csv"], "drop --future"),
    (["builtin:sine", "--grid", "hidden=2,4", "--optuna", "2", "--random", "2"], "pass one of --random and --optuna"),
    (["P", "--id-col", "store", "--per-series", "--optuna", "2"], "pass one of --optuna and --per-series"),
    (["builtin:sine", "--grid", "hidden=2,4", "--optuna", "0"], "optuna must be an integer >= 1"),
])
def test_a_bad_search_or_per_series_sweep_is_one_line(tmp_path, capsys, args, needle):
    panel = str(_panel(tmp_path / "panel.csv"))
    args = [panel if a == "P" else a for a in args]
    out = tmp_path / "s"
    assert needle in one_line_error(capsys, ["sweep", *args, "--out", str(out), "--epochs", "1", "--quiet"])
    assert not out.exists()


def test_a_global_sweep_ranks_on_each_series_validation_horizon(tmp_path):
    """A panel's global model: its row's val_* are the mean over the series of the scores of its
    forecast from the end of each series' training rows, checked here by forecasting each series
    cut there (the run's own forecast call) and scoring it by hand."""
    panel = _panel(tmp_path / "panel.csv")
    out = tmp_path / "s"
    result = rnnkit.sweep(PANEL.replace(source=str(panel)), {"hidden_size": [2, 4]}, out, MODEL, TRAIN,
                          config=SweepConfig(workers=1), quiet=True)
    assert result.config.rank_by == "val_mase" and [r["rank"] for r in result.rows] == [1, 2]
    assert result.rows[0]["val_mase"] <= result.rows[1]["val_mase"]
    best = result.load()  # a global model's run (its loader once named a module that does not have it)
    assert best.ids == ("a", "b", "c") and best.forecast(str(panel)).shape[0] == 3 * PANEL.horizon
    raw = pd.read_csv(panel, parse_dates=["date"])
    H = PANEL.horizon
    for row in result.rows:
        run = rnnkit.load_run(out / row["job"])
        maes, mases = [], []
        for sid, (train_end, val_end) in zip(run.ids, run.meta["splits"]):
            values = raw[raw["store"] == sid]["sales"].to_numpy()
            cut = raw[raw["store"] == sid].iloc[:train_end]
            pred = run.forecast(cut)["sales"].to_numpy()
            err = np.abs(values[train_end:train_end + H] - pred)
            m = run.series_seasons(run.load_data(cut))[0]
            scale = np.mean(np.abs(values[m:train_end] - values[:train_end - m]))
            maes.append(err.mean())
            mases.append(err.mean() / scale)
        assert row["val_mae"] == pytest.approx(np.mean(maes), rel=1e-9)
        assert row["val_mase"] == pytest.approx(np.mean(mases), rel=1e-9)
