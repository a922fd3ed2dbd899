"""A sweep's grid: keys resolved to config fields, values typed by the field, the jobs it plans
(checked against itertools.product and by counting), and the TOML file. Nothing trains here."""

from __future__ import annotations

import itertools
import re

import pytest

from rnnkit import ConfigError, DataConfig, ModelConfig, SearchConfig, SweepConfig, TrainConfig
from rnnkit.tasks.sweep.grid import apply_settings, describe, normalise_grid, parse_grid, plan_jobs, resolve_key
from rnnkit.tasks.sweep.spec import read_spec


@pytest.mark.parametrize("key, field", [
    ("hidden_size", "hidden_size"), ("hidden", "hidden_size"), ("--hidden", "hidden_size"),
    ("model.hidden_size", "hidden_size"), ("batch-size", "batch_size"), ("target", "targets"),
    ("train.lr", "lr"), ("ensemble_lookbacks", "ensemble_lookbacks"), ("layers", "num_layers"),
])
def test_a_key_names_a_field_by_its_name_option_or_section(key, field):
    assert resolve_key(key) == field


@pytest.mark.parametrize("key, needle", [
    ("hiden", "did you mean hidden_size"), ("data.lr", "unknown setting 'data.lr'"),
    ("net.hidden_size", "the sections are data, model, train, search"), ("", "field name"),
])
def test_an_unknown_key_is_refused_with_a_hint(key, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        resolve_key(key)


def test_values_are_typed_by_their_field():
    grid = parse_grid("hidden=16,32; lr=1e-3,3e-3;cell=gru;bidirectional=true,false;lookback=none,12;"
                      "ensemble_lookbacks=12+24,36;clip_norm=none,1")
    assert grid == {"hidden_size": (16, 32), "lr": (0.001, 0.003), "cell": ("gru",), "bidirectional": (True, False),
                    "lookback": (None, 12), "ensemble_lookbacks": ((12, 24), (36,)), "clip_norm": (None, 1.0)}
    assert [type(v) for v in grid["hidden_size"] + grid["lr"] + grid["clip_norm"][1:]] == [int, int, float, float,
                                                                                        float]
    # Python and TOML values: lists are lists of values, a list field's value a list of its items
    assert normalise_grid({"model.hidden_size": [4, 8], "lr": 0.01, "ensemble_lookbacks": [[5, 6], 7]}) == \
        {"hidden_size": (4, 8), "lr": (0.01,), "ensemble_lookbacks": ((5, 6), (7,))}
    assert [describe(v) for v in (None, True, (12, 24), 0.003, "gru")] == ["none", "true", "12+24", "0.003", "gru"]


@pytest.mark.parametrize("spec, needle", [
    ("hidden=16,abc", "hidden_size takes an integer; got 'abc'"), ("hidden=16.5", "takes an integer"),
    ("bidirectional=maybe", "true or false"), ("horizon=none", "horizon takes an integer; got 'none'"),
    ("hidden=16,16", "lists 16 twice"), ("hidden=4;hidden_size=8", "given twice"), ("hidden", "NAME=V1,V2"),
    ("hidden=", "takes an integer"), (" ; ", "no settings"), ("lr=nan", "not a finite number"),
])
def test_a_bad_grid_is_refused_in_one_line(spec, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)) as e:
        parse_grid(spec)
    assert "\n" not in str(e.value)


def test_every_combination_in_order_the_last_key_fastest():
    grid = {"a_": (1, 2, 3), "b_": ("x", "y"), "c_": (True, False)}
    jobs = plan_jobs(grid)
    assert [tuple(j.values()) for j in jobs] == list(itertools.product(*grid.values()))
    assert all(list(j) == list(grid) for j in jobs)


def test_random_draws_distinct_combinations_reproducibly():
    grid = {"a_": tuple(range(7)), "b_": tuple(range(5)), "c_": tuple(range(3))}
    everything = [tuple(j.values()) for j in plan_jobs(grid)]
    drawn = [tuple(j.values()) for j in plan_jobs(grid, random=20, seed=3)]
    assert len(set(drawn)) == 20 and set(drawn) <= set(everything)
    assert drawn == sorted(drawn, key=everything.index)  # in the grid's order
    assert drawn == [tuple(j.values()) for j in plan_jobs(grid, random=20, seed=3)]
    assert drawn != [tuple(j.values()) for j in plan_jobs(grid, random=20, seed=4)]
    assert len(plan_jobs(grid, random=500)) == 105  # no more than there are
    # a grid too large to list is still sampled without listing it
    huge = {f"k{i}_": tuple(range(10)) for i in range(9)}
    assert len(plan_jobs(huge, random=3)) == 3
    with pytest.raises(ConfigError, match="--random N"):
        plan_jobs(huge)


def test_settings_go_into_their_configs_and_stateful_reads_in_order():
    base = {"data": DataConfig(), "model": ModelConfig(), "train": TrainConfig(), "search": SearchConfig()}
    c = apply_settings(base, {"hidden_size": 8, "horizon": 3, "lr": 0.01, "ensemble": 2})
    assert (c["model"].hidden_size, c["data"].horizon, c["train"].lr, c["search"].ensemble) == (8, 3, 0.01, 2)
    assert c["train"].shuffle and not apply_settings(base, {"stateful": True, "strategy": "recursive"})[
        "train"].shuffle
    with pytest.raises(ConfigError, match="num_layers >= 2"):
        apply_settings(base, {"dropout": 0.5})


def test_sweep_config_is_checked():
    for kw, needle in [({"workers": 0}, "workers"), ({"random": 0}, "random"), ({"executor": "dask"}, "executor"),
                       ({"address": "auto"}, "executor='ray'"), ({"rank_by": "loss"}, "rank_by")]:
        with pytest.raises(ConfigError, match=needle):
            SweepConfig(**kw)
    assert SweepConfig(executor="ray", address="auto").address == "auto"


def test_a_toml_file_describes_a_sweep(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('data = "builtin:sine"\nout = "sweeps/s"\nworkers = 2\nrank_by = "val_mae"\n'
                    '[settings]\nhorizon = 3\nmodel.cell = "gru"\n[settings.train]\nepochs = 5\n'
                    '[grid]\nhidden = [4, 8]\nlr = [1e-3, 3e-3]\nensemble_lookbacks = [[5, 6]]\n')
    spec = read_spec(path)
    assert spec["data"] == "builtin:sine" and spec["out"] == "sweeps/s"
    assert spec["sweep"] == {"workers": 2, "rank_by": "val_mae"}
    assert spec["settings"] == {"horizon": 3, "cell": "gru", "epochs": 5}
    assert spec["grid"] == {"hidden_size": (4, 8), "lr": (0.001, 0.003), "ensemble_lookbacks": ((5, 6),)}


@pytest.mark.parametrize("text, needle", [
    ("data = \n", "not valid TOML"), ("grids = 1\n", "unknown key 'grids'"),
    ("[grid]\nhidden = [4, 4.5]\n", "hidden_size takes an integer; got 4.5"),
    ("[settings]\nlr = true\n", "lr takes a number; got True"), ("grid = 3\n", "must be a table"),
    ("[settings]\nhorizn = 3\n", "did you mean horizon"),
])
def test_a_bad_toml_file_is_refused_in_one_line(tmp_path, text, needle):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(needle)) as e:
        read_spec(path)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="no such sweep file"):
        read_spec(tmp_path / "missing.toml")


def test_the_leaderboard_ranks_trained_jobs_then_failed_then_interrupted():
    from rnnkit.tasks.sweep.leaderboard import rank_rows
    rows = [{"job": "job-000", "status": "interrupted"}, {"job": "job-001", "status": "ok", "val_mase": 0.9},
            {"job": "job-002", "status": "failed", "message": "no"}, {"job": "job-003", "status": "ok", "val_mase": None},
            {"job": "job-004", "status": "ok", "val_mase": 0.7}, {"job": "job-005", "status": "ok", "val_mase": 0.9}]
    ranked = rank_rows(rows, "val_mase")
    assert [(r["job"], r["rank"]) for r in ranked] == [
        ("job-004", 1), ("job-001", 2), ("job-005", 3), ("job-003", None), ("job-002", None), ("job-000", None)]
