"""``rnnkit sweep``: many forecasting fits at once, ranked (see :mod:`rnnkit.tasks.sweep.workflow`).

Its options are ``rnnkit fit``'s (the settings every job shares; built from the configs) and the
sweep's own (built from :class:`~rnnkit.tasks.sweep.config.SweepConfig`), plus ``--grid`` and
``--config FILE.toml`` (:mod:`rnnkit.tasks.sweep.spec`). What is given on the command line
overrides the file; the grid's values override both, job by job.
"""

from __future__ import annotations

import argparse
import dataclasses

from ...cli_parse import GIVEN, config_arg, config_values
from ...config import ModelConfig, TrainConfig
from ..forecast.cli import add_fit_options
from ..forecast.config import DataConfig, SearchConfig
from .config import SweepConfig

__all__ = ["register", "COMMANDS"]

_W = SweepConfig()
_CLASSES = (DataConfig, ModelConfig, TrainConfig, SearchConfig)


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="fit one forecaster per combination of settings (or per series of a panel), in parallel, "
                      "and rank them",
        description="Fit one forecaster per combination of the grid's settings (each job a run directory "
                    "SWEEPDIR/job-NNN, trained in a process of its own with one thread), and rank them in "
                    "SWEEPDIR/leaderboard.csv and leaderboard.png. --random N and --optuna N run N of the "
                    "combinations (drawn at random, or chosen by Optuna's TPE sampler from the scores so far) "
                    "and sample the grid's ranges (NAME=LOW..HIGH); "
                    "--per-series fits each series of a panel (--id-col) alone, times the grid if one is given. "
                    "The other options are `rnnkit fit`'s: the settings every job shares.")
    g = p.add_argument_group("sweep")
    g.add_argument("--grid", metavar="SPEC", help="the settings to sweep and their values: NAME=V1,V2,... separated by "
                   "';', such as \"hidden_size=16,32;lr=1e-3,3e-3\" (NAME: a field or option name of the settings "
                   "below; a list value's items joined by '+'), or for a number setting a range "
                   "NAME=LOW..HIGH[:int][:log] that --random N or --optuna N samples, such as "
                   "\"lr=1e-4..1e-2:log;hidden=16..128:int;dropout=0..0.3\" (:int for an integer setting, :log "
                   "log-uniform); overrides the --config file's [grid] keys")
    g.add_argument("--config", metavar="FILE.toml", help="a TOML file with data, out, [settings] and [grid] "
                   "(and any option of this group); options given here override it")
    for name in ("random", "optuna", "random_seed", "per_series", "workers", "executor", "address", "rank_by",
                 "prune", "grace_epochs", "reduction_factor"):
        config_arg(g, _W, name)
    p.add_argument("--out", metavar="SWEEPDIR", help="sweep directory to create (or the --config file's out)")
    p.add_argument("--force", action="store_true", help="start an existing sweep directory again: its job "
                   "directories removed, every job run")
    p.add_argument("--resume", action="store_true", help="run the jobs an existing sweep directory has not finished "
                   "(failed, interrupted or not started); with --out alone, its own settings")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_fit_options(p, data_optional=True)  # --future included: each run's forecast.csv, as `rnnkit fit` writes it


def _given(a: argparse.Namespace, cls: type) -> dict:
    """The options of ``cls``'s fields that were typed (a switch: turned on)."""
    given = getattr(a, GIVEN, None) or set()
    bools = {f.name for f in dataclasses.fields(cls) if f.type in ("bool", bool)}
    return {k: v for k, v in config_values(a, cls).items()
            if f"{cls.__name__}.{k}" in given or (k in bools and v is True)}


def _resume_alone(a: argparse.Namespace) -> bool:
    """``rnnkit sweep --resume --out DIR`` and nothing else of the sweep: its own settings."""
    return a.resume and a.out and not (a.data or a.grid or a.config or any(_given(a, c) for c in _CLASSES)
                                       or a.future)


def cmd_sweep(a: argparse.Namespace) -> int:
    from ...errors import ConfigError
    from .grid import apply_settings, normalise_grid
    from .spec import read_spec
    from .workflow import resume_args, sweep
    if _resume_alone(a):  # the sweep directory's own plan, run with this command line's workers and executor
        kw = resume_args(a.out)
        kw["config"] = kw["config"].replace(**_given(a, SweepConfig))
        return _report(sweep(**kw, out=a.out, resume=True, quiet=a.quiet), a.quiet)
    spec = read_spec(a.config) if a.config else {"data": None, "out": None, "settings": {}, "grid": {}, "sweep": {}}
    data, out = a.data or spec["data"], a.out or spec["out"]
    if data is None:
        raise ConfigError("pass the data to fit (DATA, or data = \"...\" in the --config file)")
    if out is None:
        raise ConfigError("pass the sweep directory to create: --out SWEEPDIR (or out = \"...\" in the --config file)")
    grid = {**spec["grid"], **(normalise_grid(a.grid, "--grid") if a.grid else {})}
    config = SweepConfig(**{**spec["sweep"], **_given(a, SweepConfig)})
    if not grid and not config.per_series:
        raise ConfigError("pass the settings to sweep: --grid \"hidden_size=16,32;lr=1e-3,3e-3\" (or a [grid] table "
                          "in the --config file), or --per-series to fit each series of a panel")
    settings = dict(spec["settings"])
    for cls in _CLASSES:
        settings.update(_given(a, cls))
    both = next((k for k in grid if k in settings), None)
    if both is not None:
        raise ConfigError(f"{both} is both a setting every job shares and in the grid; give it in one place")
    defaults = {"data": DataConfig(source=data), "model": ModelConfig(), "train": TrainConfig(),
                "search": SearchConfig()}
    base = apply_settings(defaults, settings)
    result = sweep(base["data"], grid, out, base["model"], base["train"], base["search"], config,
                   force=a.force, resume=a.resume, quiet=a.quiet, future=a.future)
    return _report(result, a.quiet)


def _report(result, quiet: bool) -> int:
    import sys
    from .leaderboard import settings_text
    rows, rank_by = result.rows, result.config.rank_by
    trained = [r for r in rows if r["status"] == "ok"]
    if not quiet and trained:
        shown = list(dict.fromkeys([rank_by, "val_loss", "val_mase", "test_mase"]))
        table = [["rank", "job", *shown, "settings"]] + [
            [str(r["rank"] or "-"), r["job"], *("-" if r.get(k) is None else f"{r[k]:.4g}" for k in shown),
             settings_text(r["settings"])] for r in trained[:10]]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
        for row in table:
            print("  ".join([row[0].rjust(widths[0]), row[1].ljust(widths[1]),
                             *(c.rjust(w) for c, w in zip(row[2:-1], widths[2:])), row[-1]]))
    failed = [r for r in rows if r["status"] == "failed"]
    pruned = sum(r["status"] == "pruned" for r in rows)
    print(f"{len(trained)} of {len(rows)} job(s) trained" + (f", {pruned} stopped early by ASHA" if pruned else "")
          + (f", {len(failed)} failed" if failed else "")
          + f"; leaderboard: {result.path / 'leaderboard.csv'}"
          + (f"; best: {result.best['job']}" if result.best else ""))
    if not trained:
        first = failed[0]["message"] if failed else "none finished"
        print(f"rnnkit: error: no job trained ({first}); see {result.path / 'leaderboard.csv'}", file=sys.stderr)
        return 2
    return 0


COMMANDS = {"sweep": cmd_sweep}
