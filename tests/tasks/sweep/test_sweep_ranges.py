"""Numeric ranges in a sweep's grid (lr=1e-4..1e-2:log, hidden=16..128:int): read from the command
line, TOML and Python alike; each refusal in one line; the draws of --random (seeded, within the
range, against the closed-form distributions); --random and --optuna sweeps over ranges, and
resuming them. Tiny jobs (a few epochs, hidden 2-8)."""

from __future__ import annotations

import json
import math
import random
import re

import pytest

import rnnkit
from rnnkit import ConfigError, SweepConfig
from rnnkit.cli import main
from rnnkit.tasks.sweep.grid import describe, normalise_grid, parse_grid, plan_jobs
from rnnkit.tasks.sweep.ranges import DIGITS, Range
from rnnkit.tasks.sweep.spec import read_spec
from cli_cases import one_line_error
from sweep_cases import DATA, MODEL, TRAIN, job_dirs, job_settings, leaderboard, needs_optuna

LR = Range(1e-4, 1e-2, log=True)
HIDDEN = Range(2, 8, integer=True)


# --- reading ---------------------------------------------------------------------------------------

def test_a_range_reads_the_same_from_the_command_line_toml_and_python(tmp_path):
    text = parse_grid("lr=1e-4..1e-2:log; hidden=16..128:int; layers=1..4:int:log; dropout=0..0.3; cell=lstm,gru")
    assert text == {"lr": Range(1e-4, 1e-2, log=True), "hidden_size": Range(16, 128, integer=True),
                    "num_layers": Range(1, 4, log=True, integer=True), "dropout": Range(0.0, 0.3),
                    "cell": ("lstm", "gru")}
    assert [type(text["hidden_size"].low), type(text["dropout"].low)] == [int, float]
    path = tmp_path / "sweep.toml"
    path.write_text('data = "builtin:sine"\n[grid]\nlr = {low = 1e-4, high = 1e-2, log = true}\n'
                    'hidden = {low = 16, high = 128, int = true}\nlayers = "1..4:int:log"\n'
                    'cell = ["lstm", "gru"]\n[grid.model]\ndropout = {low = 0, high = 0.3}\n')
    toml = read_spec(path)["grid"]
    assert toml == text and list(toml) == ["lr", "hidden_size", "num_layers", "cell", "dropout"]
    python = normalise_grid({"lr": LR, "hidden": {"low": 16, "high": 128, "int": True},
                             "num_layers": "1..4:log:int", "dropout": {"low": 0, "high": 0.3}, "cell": "lstm,gru"})
    assert python == text
    # a range as the command line writes it reads back as itself; as sweep.json holds it, too
    assert all(parse_grid(f"{k}={describe(r)}")[k] == r for k, r in text.items() if isinstance(r, Range))
    assert normalise_grid({k: r.to_dict() for k, r in text.items() if isinstance(r, Range)}) == \
        {k: r for k, r in text.items() if isinstance(r, Range)}
    # '..' in a value of a field that is not a number, but no range: an ordinary value
    assert normalise_grid({"source": "../data.csv"}) == {"source": ("../data.csv",)}


@pytest.mark.parametrize("spec, needle", [
    ("cell=1..3", "cell is not a number setting, so it takes no range"),
    ("strategy=0..1", "strategy is not a number setting"),
    ("bidirectional=0..1", "bidirectional is not a number setting"),
    ("ensemble_lookbacks=12..24", "ensemble_lookbacks is not a number setting"),
    ("lr=1e-2..1e-4", "lr=1e-2..1e-4: the low end must be below the high end"),
    ("lr=1e-3..1e-3", "for one value write lr=0.001"),
    ("lr=0..1e-2:log", "a :log range needs a low end above 0"),
    ("hidden=0..8:int:log", "a :log range needs a low end above 0"),
    ("hidden=16..128", "hidden_size takes an integer: mark the range as an integer one"),
    ("lr=1..4:int", "lr takes any number, not only integers: drop :int"),
    ("hidden=1.5..4:int", "a range needs integers at both ends"),
    ("lr=1e-4..", "a range needs finite numbers at both ends"), ("lr=1e-4..inf", "finite numbers"),
    ("lr=x..1", "finite numbers"), ("lr=1e-4..1e-2:logg", "unknown flag ':logg'"),
    ("lr=1e-4..1e-2,0.1", "lr mixes a range with other values"),
])
def test_a_bad_range_is_refused_in_one_line_naming_its_key(spec, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)) as e:
        parse_grid(spec)
    assert "\n" not in str(e.value) and str(e.value).startswith("--grid: ")


@pytest.mark.parametrize("value, needle", [
    ({"low": 1e-4}, "lacks low or high"), ({"low": 1, "high": 2, "step": 1}, "has the key 'step'"),
    ({"low": 1e-4, "high": 1e-2, "log": "yes"}, "log is true or false"),
    ({"low": True, "high": 2.0}, "finite numbers at both ends"),
])
def test_a_bad_range_table_is_refused_in_one_line(tmp_path, value, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        normalise_grid({"lr": value})
    path = tmp_path / "s.toml"
    path.write_text("[grid]\ncell = {low = 1, high = 2}\n")
    with pytest.raises(ConfigError, match=re.escape("[grid]: cell is not a number setting")):
        read_spec(path)


# --- drawing ---------------------------------------------------------------------------------------

def _ks(u):
    """The Kolmogorov-Smirnov distance of the sample ``u`` from the uniform on [0, 1]."""
    u, n = sorted(u), len(u)
    return max(max((k + 1) / n - x, x - k / n) for k, x in enumerate(u))


def test_random_draws_are_seeded_rounded_and_within_the_range():
    grid = {"lr": LR, "hidden_size": HIDDEN, "dropout": Range(0.0, 0.3), "cell": ("lstm", "gru")}
    jobs = plan_jobs(grid, random=200, seed=5)
    assert len(jobs) == 200 and all(list(j) == list(grid) for j in jobs)
    assert jobs == plan_jobs(grid, random=200, seed=5) and jobs != plan_jobs(grid, random=200, seed=6)
    assert len({tuple(j.values()) for j in jobs}) == 200
    for j in jobs:
        assert 1e-4 <= j["lr"] <= 1e-2 and 0 <= j["dropout"] <= 0.3 and 2 <= j["hidden_size"] <= 8
        assert type(j["hidden_size"]) is int and type(j["lr"]) is float and j["cell"] in ("lstm", "gru")
        assert j["lr"] == float(f"{j['lr']:.{DIGITS}g}")  # what the leaderboard shows is what was trained
        assert float(describe(j["lr"])) == j["lr"]
    # the jobs are the draws of random.Random(seed), key by key in the grid's order
    rng = random.Random(5)
    first = {"lr": LR.draw(rng), "hidden_size": HIDDEN.draw(rng), "dropout": Range(0.0, 0.3).draw(rng),
             "cell": ("lstm", "gru")[rng.randrange(2)]}
    assert jobs[0] == first


def test_a_log_range_is_uniform_in_log_space_and_a_linear_one_uniform():
    # 4000 draws: the Kolmogorov-Smirnov distance from the closed-form CDF is below 1.63 / sqrt(n)
    # at the 1 % level (a seeded draw: the same numbers every run); a log range read linearly is far off
    n, rng = 4000, random.Random(0)
    log = [LR.draw(rng) for _ in range(n)]
    assert _ks([math.log(v / 1e-4) / math.log(100) for v in log]) < 1.63 / math.sqrt(n)
    # read linearly, the same draws are at the two CDFs' distance, largest at v = (hi - lo) / ln(hi / lo)
    v = (1e-2 - 1e-4) / math.log(100)
    assert abs(_ks([(x - 1e-4) / (1e-2 - 1e-4) for x in log])
               - (math.log(v / 1e-4) / math.log(100) - (v - 1e-4) / (1e-2 - 1e-4))) < 1.63 / math.sqrt(n)
    lin = [Range(-2.0, 3.0).draw(rng) for _ in range(n)]
    assert _ks([(v + 2) / 5 for v in lin]) < 1.63 / math.sqrt(n)


@pytest.mark.parametrize("r, p", [
    (Range(1, 6, integer=True), lambda k: 1 / 6),
    # log-uniform over [low - 0.5, high + 0.5], rounded: each integer gets its rounding interval's share
    (Range(1, 8, log=True, integer=True), lambda k: math.log((k + 0.5) / (k - 0.5)) / math.log(8.5 / 0.5)),
])
def test_an_integer_range_draws_each_integer_with_its_closed_form_probability(r, p):
    n, rng = 20000, random.Random(1)
    counts = {k: 0 for k in r.values()}
    for _ in range(n):
        counts[r.draw(rng)] += 1
    chi2 = sum((c - n * p(k)) ** 2 / (n * p(k)) for k, c in counts.items())
    assert abs(sum(p(k) for k in counts) - 1) < 1e-12
    assert chi2 < 24.3  # the chi-square 0.1 % point with 7 degrees of freedom (at most 7 here)


def test_integer_ranges_no_larger_than_n_run_every_value_and_a_full_grid_is_refused():
    grid = {"hidden_size": Range(2, 4, integer=True), "cell": ("lstm", "gru")}
    assert plan_jobs(grid, random=10) == plan_jobs({"hidden_size": (2, 3, 4), "cell": ("lstm", "gru")})
    with pytest.raises(ConfigError, match=re.escape("hidden_size=2..4:int is a range") + ".*needs --random N or "
                       "--optuna N"):
        plan_jobs(grid)


# --- sweeps ----------------------------------------------------------------------------------------

def _random(out, resume=False, **kw):
    config = SweepConfig(**{"random": 3, "workers": 1, "random_seed": 11, **kw})
    return rnnkit.sweep(DATA, "lr=1e-3..1e-1:log;hidden=2..8:int", out, MODEL, TRAIN, config=config, quiet=True,
                        resume=resume)


def test_a_random_sweep_over_ranges_trains_the_drawn_values_and_resumes(tmp_path, monkeypatch, interrupt_job):
    whole = _random(tmp_path / "whole")
    drawn = plan_jobs(parse_grid("lr=1e-3..1e-1:log;hidden=2..8:int"), random=3, seed=11)
    assert job_settings(whole) == drawn and job_dirs(tmp_path / "whole") == ["job-000", "job-001", "job-002"]
    by_job = {r["job"]: r["settings"] for r in whole.rows}
    for r in leaderboard(tmp_path / "whole"):  # the leaderboard shows the values drawn
        s = by_job[r["job"]]
        assert (float(r["lr"]), int(r["hidden_size"])) == (s["lr"], s["hidden_size"])
        run = rnnkit.load_run(tmp_path / "whole" / r["job"])
        assert (run.train_config.lr, run.model_config.hidden_size) == (s["lr"], s["hidden_size"])
    plan = json.loads((tmp_path / "whole" / "sweep.json").read_text())
    assert plan["grid"] == {"lr": {"low": 1e-3, "high": 1e-1, "log": True, "int": False},
                            "hidden_size": {"low": 2, "high": 8, "log": False, "int": True}}
    interrupt_job("job-001")
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        _random(out)
    kept = (out / "job-000" / "weights.safetensors").stat().st_ino
    monkeypatch.undo()
    assert job_settings(_random(out, resume=True)) == drawn and job_dirs(out) == job_dirs(tmp_path / "whole")
    assert (out / "job-000" / "weights.safetensors").stat().st_ino == kept  # not retrained
    assert (out / "job-002" / "weights.safetensors").read_bytes() == \
        (tmp_path / "whole" / "job-002" / "weights.safetensors").read_bytes()
    assert main(["sweep", "--resume", "--out", str(out), "--quiet"]) == 0  # its own plan (sweep.json): nothing left
    assert (out / "job-000" / "weights.safetensors").stat().st_ino == kept


@pytest.mark.parametrize("grid, extra, needle", [
    ("lr=1e-4..1e-2:log", [], "lr=0.0001..0.01:log is a range, which has no list of values to run one by one: "
                              "a range needs --random N or --optuna N"),
    ("dropout=0..1", ["--random", "2", "--layers", "2"], "grid range dropout=0..1 is refused at its high end 1 in "
                                                         "every combination: dropout must be"),
    ("dropout=0..0.3", ["--random", "2"], "refused at its high end 0.3 in every combination: dropout (0.3) acts "
                                          "between stacked layers"),
    ("lr=0..1e-2", ["--random", "2"], "grid range lr=0..0.01 is refused at its low end 0 in every combination"),
    ("cell=0..2", ["--random", "2"], "--grid: cell is not a number setting"),
    ("hidden=4..8", ["--random", "2"], "hidden_size takes an integer"),
])
def test_a_range_the_sweep_cannot_run_is_one_line_and_writes_nothing(capsys, tmp_path, grid, extra, needle):
    out = tmp_path / "s"
    assert needle in one_line_error(capsys, ["sweep", "builtin:sine", "--grid", grid, *extra, "--lookback", "5",
                                             "--horizon", "1", "--epochs", "1", "--workers", "1", "--quiet",
                                             "--out", out])
    assert not out.exists()


def _optuna(out, resume=False, **kw):
    config = SweepConfig(**{"optuna": 4, "workers": 1, "random_seed": 7, **kw})
    grid = {"lr": LR, "hidden_size": HIDDEN, "cell": ["lstm", "gru"]}
    return rnnkit.sweep(DATA, grid, out, MODEL, TRAIN, config=config, quiet=True, resume=resume)


@needs_optuna
def test_optuna_searches_ranges_the_same_for_the_same_seed_and_resumes(tmp_path, monkeypatch, interrupt_job):
    first = _optuna(tmp_path / "a")
    chosen = job_settings(first)
    assert job_dirs(tmp_path / "a") == ["job-000", "job-001", "job-002", "job-003"] and len(chosen) == 4
    assert [r["status"] for r in first.rows] == ["ok"] * 4
    for s in chosen:
        assert 1e-4 <= s["lr"] <= 1e-2 and s["lr"] == float(f"{s['lr']:.{DIGITS}g}")
        assert type(s["hidden_size"]) is int and 2 <= s["hidden_size"] <= 8 and s["cell"] in ("lstm", "gru")
    assert len({s["lr"] for s in chosen}) == 4  # a float range: distinct draws
    plan = json.loads((tmp_path / "a" / "sweep.json").read_text())
    assert [j["settings"] for j in plan["jobs"]] == chosen and plan["grid"]["lr"]["log"] is True
    assert {(float(r["lr"]), int(r["hidden_size"]), r["cell"]) for r in leaderboard(tmp_path / "a")} == \
        {(s["lr"], s["hidden_size"], s["cell"]) for s in chosen}
    assert job_settings(_optuna(tmp_path / "b")) == chosen
    assert job_settings(_optuna(tmp_path / "c", random_seed=8)) != chosen
    # interrupted at its third job (in this process: workers=1), resumed: the study replays the
    # same trials, the two finished told their recorded scores
    interrupt_job("job-002")
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        _optuna(out)
    assert job_dirs(out) == ["job-000", "job-001"]
    kept = (out / "job-001" / "weights.safetensors").stat().st_ino
    monkeypatch.undo()
    assert job_settings(_optuna(out, resume=True)) == chosen and job_dirs(out) == job_dirs(tmp_path / "a")
    assert (out / "job-001" / "weights.safetensors").stat().st_ino == kept


@needs_optuna
def test_the_study_suggests_range_values_as_optuna_distributions():
    from rnnkit.tasks.sweep.study import GridStudy
    grid = {"lr": LR, "hidden_size": Range(1, 64, log=True, integer=True), "cell": ("lstm", "gru")}

    def search(seed):
        asked = []

        def run_batch(chosen):  # the best: lr near 1e-3, hidden near 8
            asked.extend(chosen)
            return [{"status": "ok", "val_loss": math.log10(s["lr"] / 1e-3) ** 2
                     + math.log2(s["hidden_size"] / 8) ** 2} for s in chosen]
        study = GridStudy(grid, seed=seed, rank_by="val_loss")
        study.run(30, 3, run_batch, say=lambda s: None)
        return study, asked

    study, asked = search(2)
    assert len(asked) == 30 and len({tuple(s.values()) for s in asked}) == 30
    dists = study.study.trials[0].distributions
    assert (type(dists["lr"]).__name__, dists["lr"].log, dists["lr"].low, dists["lr"].high) == \
        ("FloatDistribution", True, 1e-4, 1e-2)
    assert (type(dists["hidden_size"]).__name__, dists["hidden_size"].log, dists["hidden_size"].low,
            dists["hidden_size"].high) == ("IntDistribution", True, 1, 64)
    for trial, s in zip(study.study.trials, asked):  # the value trained is the trial's, rounded
        assert s["lr"] == LR.snap(trial.params["lr"]) and s["hidden_size"] == trial.params["hidden_size"]
        assert s["cell"] == grid["cell"][trial.params["cell"]]
    assert search(2)[1] == asked and search(3)[1] != asked  # the same seed and scores: the same plan
