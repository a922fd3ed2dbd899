"""ASHA in sweeps (``prune="asha"``): the rung rule against hand-computed cases and Ray Tune's
ASHAScheduler, the epoch callback, and sweeps that prune (pruned rows, no run directory, the runs
that finish unchanged, resume, the pool and the command line)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

import rnnkit
from rnnkit import ConfigError, DataConfig, ModelConfig, SearchConfig, SweepConfig, TrainConfig
from rnnkit.errors import RnnkitWarning
from rnnkit.tasks.sweep.asha import Pruned, Pruner, Rungs, rungs_of_rows
from sweep_cases import local_ray, needs_optuna

#: one normalisation per job (--prune refuses "auto": it trains one network per normalisation)
DATA = DataConfig(source="builtin:sine", lookback=5, horizon=2, normalise="window")
MODEL = ModelConfig(hidden_size=4)
TRAIN = TrainConfig(epochs=8, batch_size=8, patience=0)
#: job-000 reaches every rung first and goes on; the other three are behind it at epoch 1 on this data
GRID = {"lr": [1e-2, 1e-4, 3e-3, 1e-3]}
ASHA = dict(prune="asha", grace_epochs=1, reduction_factor=2)
RUN_FILES = ("weights.safetensors", "metrics.json", "history.csv")


def _sweep(out, config=None, grid=GRID, **kw):
    config = config or SweepConfig(workers=1, **ASHA)
    return rnnkit.sweep(DATA, grid, out, MODEL, TRAIN, config=config, quiet=True, **kw)


def test_rungs_sit_at_grace_times_powers_of_the_factor():
    r = Rungs(3, 4)
    assert [r.milestone(e) for e in (1, 2, 3, 11, 12, 47, 48, 200)] == [None, None, 3, 3, 12, 12, 48, 192]
    assert [Rungs(1, 2).milestone(e) for e in (1, 2, 3, 4, 7, 8)] == [1, 2, 2, 4, 4, 8]


def test_a_job_behind_the_best_1_over_factor_stops():
    r = Rungs(1, 4, {"": {1: {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}}})
    # the 25th percentile of 1, 2, 3, 4 with linear interpolation: 1 + 0.75 * (2 - 1)
    assert r.cutoff(1) == pytest.approx(1.75)
    assert r.report("e", 1, 1.8) == (True, 1, pytest.approx(1.75), 4)
    # e's loss joined the rung: the 25th percentile of 1, 1.8, 2, 3, 4 is 1.8
    assert r.report("f", 1, 1.7) == (False, 1, pytest.approx(1.8), 5)


def test_the_first_job_at_a_rung_goes_on_and_each_rung_judges_a_job_once():
    r = Rungs(1, 2)
    assert r.report("a", 1, 5.0) == (False, 1, None, 0)
    assert r.report("a", 1, 4.0) == (False, None, None, 0)  # judged at rung 1 already
    assert r.report("b", 1, 6.0)[0] is True
    # rungs jumped over (epoch 5 without a check at 2 or 4): the highest first, the one below at the next check
    assert r.report("c", 5, 1.0) == (False, 4, None, 0)
    assert 2 not in r.recorded[""] and r.recorded[""][4] == {"c": 1.0}
    assert r.report("c", 6, 0.9) == (False, 2, None, 0)
    assert r.report("c", 7, 0.8) == (False, 1, pytest.approx(5.5), 2)  # below the median of a's 5 and b's 6
    assert r.report("c", 8, 0.7) == (False, 8, None, 0)
    assert r.report("d", 1, math.nan) == (False, None, None, 0)  # no validation loss: not judged


def test_the_rule_is_ray_tunes_asha():
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed (pip install 'rnnkit[ray]')")
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler
    rng = np.random.default_rng(0)
    for grace, factor in [(1, 2), (2, 3), (3, 4)]:
        ray_asha = ASHAScheduler(time_attr="epoch", metric="val_loss", mode="min", grace_period=grace,
                                 reduction_factor=factor, max_t=10**6)
        ours = Rungs(grace, factor)
        trials = [SimpleNamespace(trial_id=f"t{k}") for k in range(12)]
        for t in trials:
            ray_asha.on_trial_add(None, t)
        epoch = {t.trial_id: 0 for t in trials}
        live = list(trials)
        decisions = 0
        while live:  # trials interleaved at random, each checking its loss every 1 or 2 epochs
            t = live[rng.integers(len(live))]
            epoch[t.trial_id] += int(rng.integers(1, 3))
            loss = float(rng.gamma(2.0, 1.0))
            theirs = ray_asha.on_trial_result(None, t, {"epoch": epoch[t.trial_id], "val_loss": loss})
            stop, *_ = ours.report(t.trial_id, epoch[t.trial_id], loss)
            assert stop == (theirs == TrialScheduler.STOP), (grace, factor, t.trial_id, epoch[t.trial_id])
            decisions += stop
            if stop or epoch[t.trial_id] >= 40:
                live.remove(t)
        assert decisions > 0


def test_the_pruner_reports_the_best_loss_of_the_first_training_only():
    seen = []

    def report(job, epoch, loss, footing):
        seen.append((epoch, loss))
        assert footing == "raw"
        return False, (epoch if epoch in (1, 4) else None), None, 0
    p = Pruner("j", report)
    for epoch, loss in [(1, 3.0), (2, math.nan), (3, 4.0), (4, 2.0)]:
        p({"epoch": epoch, "val_loss": loss})
    p({"epoch": 1, "val_loss": 0.1})  # the refit on the training and validation rows: not judged
    p({"epoch": 5, "val_loss": 0.1})
    assert seen == [(1, 3.0), (3, 3.0), (4, 2.0)]
    assert p.rungs == {1: 3.0, 4: 2.0}
    stopper = Pruner("k", lambda job, epoch, loss, footing: (True, 1, 0.5, 3))
    with pytest.raises(Pruned, match="epoch 1: its best validation loss 0.7 is above the rung's cutoff 0.5 "
                                     r"\(from 3 job"):
        stopper({"epoch": 1, "val_loss": 0.7})
    # where the fit says how the loss compares with the naive forecast's, that is what is judged
    judged = []
    relative = Pruner("r", lambda job, epoch, loss, footing: judged.append((loss, footing)) or (epoch == 2, 1, 0.5, 1))
    relative({"epoch": 1, "val_loss": 0.3, "val_relative": 0.9, "val_relative_to": "mae"})
    with pytest.raises(Pruned, match="relative to the naive forecast's, 0.8, is above"):
        relative({"epoch": 2, "val_loss": 0.4, "val_relative": 0.8, "val_relative_to": "mae"})
    assert judged == [(0.9, "relative mae"), (0.8, "relative mae")] and relative.best_loss == 0.3
    # the epoch that ends the planned training is not judged: the job has trained (Ray's max_t)
    last = Pruner("l", lambda *a: pytest.fail("judged at its last epoch"), epochs=3)
    for epoch in (1, 2, 3):
        if epoch < 3:
            last.report = lambda job, e, loss, footing: (False, None, None, 0)
        else:
            last.report = lambda *a: pytest.fail("judged at its last epoch")
        last({"epoch": epoch, "val_loss": 1.0})
    # a record that cannot be reached stops the judging of this job, with a warning, not the job
    def gone(*a):
        raise ConnectionError("manager gone")
    lost = Pruner("g", gone)
    with pytest.warns(RnnkitWarning, match="could not be reached.*trains to the end"):
        lost({"epoch": 1, "val_loss": 1.0})
    lost({"epoch": 2, "val_loss": 9.0})  # not judged again (gone would raise)


def test_jobs_are_held_to_the_jobs_of_their_footing_only():
    r = Rungs(1, 2)
    assert r.report("a", 1, 0.5, "relative mse")[0] is False
    assert r.report("b", 1, 5.0, "raw mse/none///") == (False, 1, None, 0)  # first on its own footing
    assert r.report("c", 1, 0.9, "relative mse")[0] is True
    assert r.report("d", 1, 0.9, "relative mae") == (False, 1, None, 0)
    r.forget("a")
    assert "a" not in r.recorded["relative mse"][1] and r.report("e", 1, 2.0, "relative mse") == \
        (True, 1, pytest.approx(0.9), 1)


def test_a_pruning_sweep_stops_jobs_and_keeps_the_finished_runs_unchanged(tmp_path):
    plain = _sweep(tmp_path / "plain", SweepConfig(workers=1))
    pruned = _sweep(tmp_path / "asha")
    status = {r["job"]: r["status"] for r in pruned.rows}
    assert status == {"job-000": "ok", "job-001": "pruned", "job-002": "pruned", "job-003": "pruned"}
    stopped = sorted((r["rungs"][1], r["job"]) for r in pruned.rows if r["status"] == "pruned")
    assert [r["job"] for r in pruned.rows] == ["job-000"] + [j for _, j in stopped]  # pruned: by their rung's loss
    for r in pruned.rows[1:]:
        assert r["rank"] is None and r["epochs"] == 1 and not (tmp_path / "asha" / r["job"]).exists()
        assert r["message"].startswith("stopped by ASHA at epoch 1") and set(r["rungs"]) == {1}
        # the loss it was stopped at is what the same job's full training had after its first epoch
        full = next(p for p in plain.rows if p["job"] == r["job"])
        history = (tmp_path / "plain" / full["job"] / "history.csv").read_text().splitlines()
        assert float(history[1].split(",")[history[0].split(",").index("val_loss")]) == pytest.approx(r["val_loss"])
    best = pruned.rows[0]
    assert best["rank"] == 1 and set(best["rungs"]) == {1, 2, 4}  # not 8: its last epoch
    assert {r["footing"] for r in pruned.rows} == {"relative mse"}
    for f in RUN_FILES:  # pruning changes which jobs finish, never what a finished job trains
        assert (tmp_path / "asha" / "job-000" / f).read_bytes() == (tmp_path / "plain" / "job-000" / f).read_bytes()
    assert json.loads((tmp_path / "asha" / "sweep.json").read_text())["prune"] == {
        "method": "asha", "grace_epochs": 1, "reduction_factor": 2}
    # the same sweep again: the same decisions (one worker), the same bytes
    again = _sweep(tmp_path / "again")
    assert [(r["job"], r["status"], r["val_loss"]) for r in again.rows] == \
        [(r["job"], r["status"], r["val_loss"]) for r in pruned.rows]


def test_resume_keeps_the_pruned_jobs_and_starts_the_rungs_from_the_finished_ones(tmp_path):
    out = tmp_path / "s"
    first = _sweep(out)
    rows = json.loads((out / "jobs.json").read_text())
    assert rungs_of_rows(rows["rows"])["relative mse"][1].keys() == {"job-000", "job-001", "job-002", "job-003"}
    # job-000 and job-002 lost: the resumed sweep runs them again, judged against the others' record
    kept = [r for r in rows["rows"] if r["job"] not in ("job-000", "job-002")]
    (out / "jobs.json").write_text(json.dumps({**rows, "rows": kept}))
    import shutil
    shutil.rmtree(out / "job-000")
    resumed = _sweep(out, resume=True)
    assert [(r["job"], r["status"]) for r in resumed.rows] == [(r["job"], r["status"]) for r in first.rows]
    with pytest.raises(rnnkit.RunError, match="another sweep"):  # other rungs: another plan
        _sweep(out, SweepConfig(workers=1, prune="asha", grace_epochs=2, reduction_factor=2), resume=True)
    with pytest.raises(rnnkit.RunError, match="another sweep"):  # no pruning: its stopped jobs would never run
        _sweep(out, SweepConfig(workers=1), resume=True)
    assert json.loads((out / "sweep.json").read_text())["prune"]["grace_epochs"] == 1  # left as it was


def test_two_workers_prune_and_their_finished_runs_are_the_sequential_runs(tmp_path):
    seq = _sweep(tmp_path / "seq", SweepConfig(workers=1))
    par = _sweep(tmp_path / "par", SweepConfig(workers=2, **ASHA))
    status = {r["job"]: r["status"] for r in par.rows}
    assert status["job-000"] == "ok" and set(status.values()) <= {"ok", "pruned"} and "pruned" in status.values()
    for r in par.rows:
        if r["status"] == "ok":
            for f in RUN_FILES:
                assert (tmp_path / "par" / r["job"] / f).read_bytes() == (tmp_path / "seq" / r["job"] / f).read_bytes()
        else:
            assert not (tmp_path / "par" / r["job"]).exists()


@pytest.mark.parametrize("kw, match", [
    (dict(prune="hyperband"), "prune"), (dict(prune="asha", reduction_factor=1), "reduction_factor"),
    (dict(prune="asha", grace_epochs=0), "grace_epochs"), (dict(prune="asha", per_series=True), "per-series")])
def test_bad_pruning_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        SweepConfig(**kw)


def test_pruning_an_auto_search_or_normalisation_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--auto"):
        rnnkit.sweep(DATA, GRID, tmp_path / "s", MODEL, TRAIN, SearchConfig(auto=True),
                     config=SweepConfig(workers=1, **ASHA), quiet=True)
    with pytest.raises(ConfigError, match="normalise=window,none"):
        rnnkit.sweep(DATA.replace(normalise="auto"), GRID, tmp_path / "s", MODEL, TRAIN,
                     config=SweepConfig(workers=1, **ASHA), quiet=True)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_a_fit_tells_its_callbacks_the_loss_relative_to_the_naive_forecasts(loss):
    import torch
    from rnnkit.tasks.forecast.fitting import prepare
    train = TRAIN.replace(epochs=6, loss=loss)
    rows, plain = [], []

    def asks(row):
        rows.append(row)
    asks.wants_relative = True
    run = rnnkit.fit_forecaster(DATA, MODEL, train, quiet=True, callbacks=[asks, plain.append])
    assert len(plain) == 6 and all("val_relative" not in r for r in plain)  # only for a callback that asks
    y = prepare(DATA, MODEL, train, None, torch.float32).val[1].double().numpy()  # the encoded targets
    naive = float(np.mean(np.abs(y)) if loss == "mae" else np.mean(y ** 2))  # a zero correction's loss
    assert len(rows) == 6 and all(r["val_relative"] == pytest.approx(r["val_loss"] / naive, rel=1e-5) for r in rows)
    # the gate kept the network exactly when its best epoch beat the naive forecast on the same windows
    assert (min(r["val_relative"] for r in rows) < 1) == (run.meta["naive_members"] == 0)
    assert "val_relative" not in run.history.rows[0]  # the run's own history is unchanged



def test_the_command_line_prunes(tmp_path, capsys):
    from rnnkit.cli import main
    out = tmp_path / "s"
    code = main(["sweep", "builtin:sine", "--grid", "lr=1e-2,1e-4,3e-3,1e-3", "--lookback", "5", "--horizon", "2",
                 "--normalise", "window",
                 "--hidden", "4", "--epochs", "8", "--batch-size", "8", "--patience", "0", "--workers", "1",
                 "--prune", "asha", "--grace-epochs", "1", "--reduction-factor", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "1 of 4 job(s) trained, 3 stopped early by ASHA" in text
    assert "job-001 lr=0.0001: pruned: stopped by ASHA at epoch 1" in text


@pytest.mark.slow  # Ray's start-up and its fresh worker processes: tens of seconds on 2 cores
def test_a_local_ray_prunes_through_its_actor(tmp_path):
    seq = _sweep(tmp_path / "seq", SweepConfig(workers=1))
    with local_ray():
        on_ray = _sweep(tmp_path / "ray", SweepConfig(executor="ray", **ASHA))
    status = {r["job"]: r["status"] for r in on_ray.rows}
    assert status["job-000"] == "ok" and "pruned" in status.values() and set(status.values()) <= {"ok", "pruned"}
    for r in on_ray.rows:
        if r["status"] == "ok":
            for f in RUN_FILES:
                assert (tmp_path / "ray" / r["job"] / f).read_bytes() == (tmp_path / "seq" / r["job"] / f).read_bytes()


@needs_optuna
def test_optuna_is_told_which_jobs_were_pruned(tmp_path):
    from rnnkit.tasks.sweep.study import GridStudy
    result = rnnkit.sweep(DATA, GRID, tmp_path / "s", MODEL, TRAIN, quiet=True,
                          config=SweepConfig(optuna=4, workers=1, random_seed=7, **ASHA))
    assert {r["status"] for r in result.rows} == {"ok", "pruned"}
    study = GridStudy(GRID, 0, "val_loss")
    assert study.score({"status": "pruned", "val_loss": 0.5}) == "pruned"
    study._tell(study.study.ask(study.distributions), "pruned")
    assert study.study.trials[-1].state == study.optuna.trial.TrialState.PRUNED


@needs_optuna
def test_optuna_is_told_a_pruned_trials_rung_losses():
    from rnnkit.tasks.sweep.study import GridStudy
    study = GridStudy({"lr": [1e-3, 1e-2]}, 0, "val_mase")

    def run_batch(chosen):
        return [{"status": "pruned", "rungs": {"1": 0.9, "4": 0.8}} if s["lr"] == 1e-2 else
                {"status": "ok", "val_mase": 0.5} for s in chosen]
    study.run(2, 2, run_batch, say=lambda s: None)
    pruned = [t for t in study.study.trials if t.state == study.optuna.trial.TrialState.PRUNED]
    assert len(pruned) == 1 and pruned[0].intermediate_values == {1: 0.9, 4: 0.8}


def test_the_stop_check_follows_both_normalisation_candidates():
    """With --normalise auto, a long enough series trains a second candidate (no normalisation): a
    callback marked every_training (a sweep's Ctrl-C check) sees its epochs too, the others do not."""
    both, first = [], []

    def stop_check(row):
        both.append(row["epoch"])
    stop_check.every_training = True
    run = rnnkit.fit_forecaster(DataConfig(source="builtin:elnino", horizon=6, lookback=12), MODEL,
                                TrainConfig(epochs=3, patience=0), quiet=True,
                                callbacks=[stop_check, lambda r: first.append(r["epoch"])])
    assert set(run.meta["selection"]["normalise"]) == {"window", "none"}  # both candidates trained
    assert first == [1, 2, 3] and both == [1, 2, 3, 1, 2, 3]
