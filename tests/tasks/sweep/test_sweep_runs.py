"""Sweeps that train: run directories byte-identical whatever the workers or executor, failed jobs
recorded while the others go on, the leaderboard's order, and what an existing sweep directory
allows (refused, --resume, --force). Tiny jobs on builtin:sine (a few epochs, hidden 4)."""

from __future__ import annotations

import csv
import json
import os

import pytest

import rnnkit
from rnnkit import ConfigError, DataConfig, ModelConfig, RunError, SweepConfig, TrainConfig
from sweep_cases import local_ray

DATA = DataConfig(source="builtin:sine", lookback=5, horizon=2)
MODEL = ModelConfig(hidden_size=4)
TRAIN = TrainConfig(epochs=3, batch_size=8, patience=0)
#: four jobs: two cells, each on the fused trainer (auto) and on the torch loop, whose numbers
#: depend on torch's thread count (the workers and the sequential sweep both run at one thread)
GRID = {"cell": ["lstm", "gru"], "engine": ["auto", "torch"]}
RUN_FILES = ("weights.safetensors", "metrics.json", "history.csv")


def _sweep(out, grid=GRID, **kw):
    config = kw.pop("config", SweepConfig(workers=1))
    return rnnkit.sweep(DATA, grid, out, MODEL, kw.pop("train", TRAIN), config=config, quiet=True, **kw)


def _bytes(path, jobs):
    return {(j, f): (path / j / f).read_bytes() for j in jobs for f in RUN_FILES}


def _leaderboard(path):
    with open(path / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_workers_write_the_sequential_runs_byte_for_byte(tmp_path):
    seq = _sweep(tmp_path / "seq")
    par = _sweep(tmp_path / "par", config=SweepConfig(workers=2))
    jobs = [f"job-00{k}" for k in range(4)]
    assert sorted(r["job"] for r in seq.rows if r["status"] == "ok") == jobs
    assert _bytes(tmp_path / "seq", jobs) == _bytes(tmp_path / "par", jobs)
    assert [r["job"] for r in seq.rows] == [r["job"] for r in par.rows]
    engines = {r["settings"]["engine"]: r["engine"] for r in seq.rows}
    assert engines["torch"] == "torch" and engines["auto"] in ("fused", "torch")
    # each job is the run `fit_forecaster` makes with its settings
    one = rnnkit.fit_forecaster(DATA, MODEL.replace(cell="gru"), TRAIN.replace(engine="torch"), quiet=True)
    job = next(r["job"] for r in seq.rows if r["settings"] == {"cell": "gru", "engine": "torch"})
    loaded = rnnkit.load_run(tmp_path / "seq" / job)
    assert loaded.forecast().equals(one.forecast())
    assert json.loads((tmp_path / "seq" / job / "metrics.json").read_text()) == json.loads(json.dumps(one.metrics))


@pytest.mark.slow  # Ray's start-up and its fresh worker processes: tens of seconds on 2 cores
def test_a_local_ray_writes_the_same_runs(tmp_path):
    seq = _sweep(tmp_path / "seq")
    with local_ray():
        on_ray = _sweep(tmp_path / "ray", config=SweepConfig(executor="ray"))
    jobs = [r["job"] for r in seq.rows]
    assert all(r["status"] == "ok" for r in on_ray.rows), on_ray.rows
    assert _bytes(tmp_path / "seq", jobs) == _bytes(tmp_path / "ray", jobs)


def test_failed_jobs_are_recorded_and_the_others_go_on(tmp_path):
    # dropout with one layer is refused by ModelConfig; a lookback of 500 finds too few rows when fitting
    grid = {"num_layers": [1, 2], "dropout": [0.0, 0.5], "lookback": [5, 500]}
    result = _sweep(tmp_path / "s", grid)
    status = {tuple(r["settings"].values()): (r["status"], r["message"]) for r in result.rows}
    assert status[(1, 0.5, 5)][0] == "failed" and "num_layers >= 2" in status[(1, 0.5, 5)][1]
    assert status[(2, 0.0, 500)][0] == "failed" and "lookback" in status[(2, 0.0, 500)][1]
    assert {k for k, (s, _) in status.items() if s == "ok"} == {(1, 0.0, 5), (2, 0.0, 5), (2, 0.5, 5)}
    rows = _leaderboard(tmp_path / "s")
    assert [r["status"] for r in rows] == ["ok"] * 3 + ["failed"] * 5
    assert [r["rank"] for r in rows[:3]] == ["1", "2", "3"] and all(r["rank"] == "" for r in rows[3:])
    # ranked on the validation rows' MASE (rank_by "auto" for one series): in the data's units
    assert result.config.rank_by == "val_mase"
    scores = [float(r["val_mase"]) for r in rows[:3]]
    assert scores == sorted(scores) and min(scores) == min(r["val_mase"] for r in result.rows if r.get("val_mase"))
    assert list(rows[0])[:4] == ["rank", "job", "status", "val_loss"] and {"num_layers", "dropout",
                                                                          "lookback"} <= set(rows[0])
    names = sorted(os.listdir(tmp_path / "s"))
    trained = sorted(r["job"] for r in result.rows if r["status"] == "ok")
    assert names == sorted(trained + ["sweep.json", "jobs.json", "leaderboard.csv", "leaderboard.png"])
    assert result.best["job"] == rows[0]["job"] and result.load().data_config.lookback == 5


def test_a_value_refused_in_every_combination_stops_the_sweep_before_it_starts(tmp_path):
    with pytest.raises(ConfigError, match=r"grid value lr=-1 is refused in every combination: lr must be"):
        _sweep(tmp_path / "s", {"hidden_size": [4, 8], "lr": [1e-3, -1]})
    with pytest.raises(rnnkit.DataError, match="no-such.csv"):
        rnnkit.sweep(DATA.replace(source=str(tmp_path / "no-such.csv")), {"hidden_size": [4]}, tmp_path / "s",
                     quiet=True)
    assert not (tmp_path / "s").exists()


def test_an_existing_sweep_is_refused_resumed_or_started_again(tmp_path):
    out, grid = tmp_path / "s", {"lookback": [5, 500]}  # job-001 fails (too few rows)
    _sweep(out, grid)
    kept = (out / "job-000" / "weights.safetensors").stat()
    with pytest.raises(RunError, match="already exists; pass --resume"):
        _sweep(out, grid)
    with pytest.raises(RunError, match="another sweep"):
        _sweep(out, {"lookback": [5, 6]}, resume=True)
    with pytest.raises(ConfigError, match="not both"):
        _sweep(out, grid, resume=True, force=True)
    again = _sweep(out, grid, resume=True)  # job-000 is kept, job-001 is tried again
    assert (out / "job-000" / "weights.safetensors").stat().st_ino == kept.st_ino
    assert [r["status"] for r in again.rows] == ["ok", "failed"]
    fresh = _sweep(out, {"lookback": [6]}, force=True)  # everything again; the old job-001 row is gone
    assert [r["job"] for r in fresh.rows] == ["job-000"] and sorted(os.listdir(out)) == [
        "job-000", "jobs.json", "leaderboard.csv", "leaderboard.png", "sweep.json"]
    assert rnnkit.load_run(out / "job-000").data_config.lookback == 6
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="notes.txt"):
        _sweep(out, grid, force=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("x\n1\n")
    for force in (False, True):
        with pytest.raises(RunError, match="not an rnnkit sweep directory"):
            _sweep(other, grid, force=force)
    assert sorted(os.listdir(other)) == ["data.csv"]


def test_a_resumed_sweep_keeps_the_ranking_it_recorded(tmp_path):
    """rank_by "auto" (the default) is val_mase for a new sweep; a resumed one keeps what its
    sweep.json recorded (an Optuna plan depends on it), here val_loss."""
    out = tmp_path / "s"
    first = _sweep(out, {"cell": ["gru"]}, config=SweepConfig(workers=1, rank_by="val_loss"))
    assert first.config.rank_by == "val_loss"
    assert _sweep(out, {"cell": ["gru"]}, resume=True).config.rank_by == "val_loss"
    assert _sweep(tmp_path / "new", {"cell": ["gru"]}).config.rank_by == "val_mase"
