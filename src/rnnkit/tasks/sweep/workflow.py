"""Many forecasting fits at once: :func:`sweep` plans the jobs of a grid, runs them (one process
and one thread each, :mod:`rnnkit.tasks.sweep.executors`) and ranks them.

A sweep directory holds:

- ``sweep.json``: the plan (every job's name and grid values, the settings they share), written
  before any job starts, so that ``resume`` can tell whether it is the same sweep;
- ``job-000/``, ``job-001/``, ...: one forecasting run directory per trained job, written
  atomically as every run (``rnnkit.load_run`` reads it);
- ``jobs.json``: every finished job's row (scores, or why it failed), rewritten after each job, so
  an interrupted sweep keeps what it did;
- ``leaderboard.csv`` and ``leaderboard.png``: the rows ranked (:mod:`rnnkit.tasks.sweep.leaderboard`),
  written at the end, also when the sweep is interrupted.

An existing sweep directory is refused, unless ``resume`` (run the jobs it has not finished: failed,
interrupted or never started; the plan must be the same) or ``force`` (start again: the old
sweep's job directories and rows are removed first, then every job runs). Only a directory that is
an rnnkit sweep, and holds nothing else, is ever changed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..._version import __version__
from ...config import ModelConfig, TrainConfig
from ...errors import ConfigError, RnnkitError, RunError
from ...training.atomic import TAG, write_file_atomic
from ...training.rundir import check_out, is_run_dir
from ...training.runs import json_safe, read_json, write_json
from ..forecast.config import DataConfig, SearchConfig
from .config import SweepConfig
from .executors import ray_available, run_jobs
from .grid import SECTIONS, apply_settings, describe, normalise_grid, plan_jobs
from .leaderboard import plot_leaderboard, rank_rows, settings_text, write_leaderboard

__all__ = ["sweep", "SweepResult", "SWEEP_FILES", "job_name", "resume_args"]

FORMAT_VERSION = 1
#: the files of a sweep directory besides its jobs' run directories
SWEEP_FILES = ("sweep.json", "jobs.json", "leaderboard.csv", "leaderboard.png")


@dataclass
class SweepResult:
    """A finished (or interrupted) sweep: its directory, its settings and its leaderboard's rows,
    best first (each a dict: ``rank``, ``job``, ``status``, ``settings``, the scores, ``message``)."""

    path: Path
    rows: list[dict]
    grid: dict[str, tuple]
    config: SweepConfig = field(default_factory=SweepConfig)

    @property
    def best(self) -> dict | None:
        """The best-ranked job's row (None when no job trained)."""
        return next((r for r in self.rows if r.get("rank") == 1), None)

    def load(self, job: str | None = None):
        """The run of ``job`` (default: the best), loaded with :func:`rnnkit.load_run`."""
        from ...training.runs import run_kind
        job = job or (self.best or {}).get("job")
        if job is None:
            raise RunError(f"no job of the sweep in {self.path} trained; see its leaderboard.csv for why")
        if run_kind(self.path / job) == "panel":
            from ..forecast.panel_run import load_panel_run
            return load_panel_run(self.path / job)
        from ..forecast.run import load_forecast_run
        return load_forecast_run(self.path / job)

    def frame(self):
        """The leaderboard as a pandas DataFrame (one row per job; the grid's values as columns)."""
        import pandas as pd
        return pd.DataFrame([{"rank": r.get("rank"), "job": r["job"], "status": r["status"],
                              **{k: r.get(k) for k in _score_keys()}, **r["settings"],
                              "message": r.get("message", "")} for r in self.rows])


def _score_keys():
    from .leaderboard import METRICS
    return METRICS


def job_name(k: int, n: int) -> str:
    """``job-007``: three digits, more when the sweep has 1,000 jobs or more."""
    return f"job-{k:0{max(3, len(str(n - 1)))}d}"


def _configs(settings: dict, base: dict) -> tuple[dict | None, str]:
    try:
        return apply_settings(base, settings), ""
    except RnnkitError as e:
        return None, " ".join(str(e).split())


def _check_values(jobs: list[dict], configs: list, grid: Mapping[str, tuple]) -> None:
    """Refuse a grid value no combination can use (``lr=-1``): every job holding it is refused."""
    for key, values in grid.items():
        for v in values:
            holding = [c for j, c in zip(jobs, configs) if j[key] == v]
            if holding and all(c[0] is None for c in holding):
                raise ConfigError(f"grid value {key}={describe(v)} is refused in every combination: {holding[0][1]}")


def _ours(name: str) -> bool:
    return name in SWEEP_FILES or name.startswith("job-") or (name.startswith(".") and f"~{TAG}~" in name) \
        or (name.startswith(".") and name.endswith(f".{TAG}-lock"))


def _prepare(out: Path, plan: dict, force: bool, resume: bool, protect: list) -> dict[str, dict]:
    """Check that the sweep may be written to ``out`` (see the module docstring); the rows of the
    jobs a resumed sweep has finished, {} otherwise."""
    if force and resume:
        raise ConfigError("pass --force (start again) or --resume (finish the jobs left), not both")
    for p in protect:
        if p and not str(p).startswith("builtin:"):
            try:
                Path(p).resolve().relative_to(out.resolve())
            except ValueError:
                continue
            raise RunError(f"refusing to use {out} as a sweep directory: it holds the data {p}; choose another --out")
    if not os.path.lexists(out) or (out.is_dir() and not out.is_symlink() and not any(os.scandir(out))):
        empty = os.path.lexists(out)
        if empty:
            out.rmdir()  # empty: checked as a new run directory would be, and created again
        try:
            check_out(out, force=False, protect=protect)
        finally:
            if empty:
                out.mkdir(exist_ok=True)
        return {}
    record = out / "sweep.json"
    try:
        old = read_json(record)
        ok = isinstance(old, dict) and old.get("kind") == "sweep"
    except (OSError, ValueError):
        ok = False
    if not out.is_dir() or out.is_symlink() or not ok:
        raise RunError(f"{out} exists and is not an rnnkit sweep directory; choose another --out")
    if not (force or resume):
        raise RunError(f"sweep directory {out} already exists; pass --resume to run the jobs it has not finished, "
                       "--force to start again, or choose another --out")
    foreign = sorted(n for n in os.listdir(out) if not _ours(n)
                     or (n.startswith("job-") and not is_run_dir(out / n)))
    if foreign:
        raise RunError(f"{out} holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which is not "
                       "part of an rnnkit sweep; nothing was changed: move it away or choose another --out")
    if resume:
        if json.loads(json.dumps(json_safe(plan))) != {k: old.get(k) for k in plan}:
            raise RunError(f"{out} holds another sweep (its grid or settings differ); pass --force to replace it, "
                           "or choose another --out")
        try:
            rows = read_json(out / "jobs.json")["rows"] if (out / "jobs.json").exists() else []
        except (OSError, ValueError, KeyError, TypeError):
            rows = []
        return {r["job"]: r for r in rows if isinstance(r, dict) and r.get("status") == "ok"
                and is_run_dir(out / str(r.get("job")))}
    for n in os.listdir(out):  # force: start again, so no job of the old sweep can pass for one of this one
        if n.startswith("job-"):
            shutil.rmtree(out / n)
    for n in ("jobs.json", "leaderboard.csv", "leaderboard.png"):
        if (out / n).exists():
            (out / n).unlink()
    return {}


def resume_args(out: str | os.PathLike) -> dict[str, Any]:
    """:func:`sweep`'s arguments that planned the sweep in ``out`` (its sweep.json), to resume it."""
    try:
        record = read_json(Path(out) / "sweep.json")
        base = {s: cls.from_dict(record["base"][s]) for s, cls in SECTIONS.items()}
        config = SweepConfig.from_dict(record.get("sweep", {}))
        grid = record["grid"]
    except FileNotFoundError:
        raise RunError(f"{out} is not a sweep directory (it has no sweep.json); pass DATA and --grid to start "
                       "one") from None
    except (OSError, ValueError, KeyError, TypeError, RnnkitError) as e:
        raise RunError(f"{out}/sweep.json is damaged ({' '.join(str(e).split())[:200]}); pass DATA and --grid "
                       "again, with --force to start again") from None
    return {"data_config": base["data"], "model_config": base["model"], "train_config": base["train"],
            "search": base["search"], "grid": grid, "config": config}


def _write(out: Path, name: str, obj: Any) -> None:
    write_file_atomic(out / name, lambda p: write_json(p, obj))


def sweep(data_config: DataConfig, grid: Mapping[str, Any] | str, out: str | os.PathLike,
          model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
          search: SearchConfig | None = None, config: SweepConfig | None = None, *, force: bool = False,
          resume: bool = False, quiet: bool = False, future=None,
          say: Callable[[str], None] | None = None) -> SweepResult:
    """Fit one forecaster per combination of ``grid`` and rank them; see the module docstring.

    ``data_config``, ``model_config``, ``train_config`` and ``search`` are the settings every job
    starts from (as :func:`~rnnkit.fit_forecaster` takes them); ``grid`` maps settings to their
    values (``{"hidden_size": [16, 32], "lr": [1e-3, 3e-3]}``, or the command line's
    ``"hidden_size=16,32;lr=1e-3,3e-3"``; see :mod:`rnnkit.tasks.sweep.grid`); ``config`` says how
    many jobs, where they run and how they are ranked (:class:`SweepConfig`). ``future`` is
    ``rnnkit fit --future``'s file, for each run's forecast.csv. Progress goes to ``say`` (default:
    stdout) unless ``quiet``. Ctrl-C stops the running jobs within an epoch, writes the leaderboard
    of what finished and raises KeyboardInterrupt; ``resume=True`` later runs what is left.

    Jobs are seeded (``train_config.seed``, the same for every job unless the grid sets ``seed``),
    so the run directories do not depend on the number of workers or the executor: their weights
    and metrics are the bytes a sequential sweep writes (except with ``SearchConfig(auto=True)``,
    whose search stops after a time budget)."""
    from ..forecast.data import absolute_source
    config = config or SweepConfig()
    if isinstance(future, (str, os.PathLike)):  # the workers may not share this process's working directory
        future = str(Path(future).absolute())
    if config.executor == "ray" and not ray_available():
        raise ConfigError("executor 'ray' needs Ray: pip install 'rnnkit[ray]' (or pip install ray), or use the "
                          "local executor")
    say = (lambda s: None) if quiet else (say or (lambda s: print(s, flush=True)))
    out = Path(out)
    base = {"data": data_config.replace(source=absolute_source(data_config.source)),
            "model": model_config or ModelConfig(), "train": train_config or TrainConfig(), "search": search or SearchConfig()}
    for section, cls in SECTIONS.items():
        if not isinstance(base[section], cls):
            raise ConfigError(f"the {section} settings must be a {cls.__name__}; got {type(base[section]).__name__}")
    grid = normalise_grid(grid)
    jobs = plan_jobs(grid, config.random, config.random_seed)
    configs = [_configs(j, base) for j in jobs]
    _check_values(jobs, configs, grid)
    if any(c["train"].distributed for c, _ in configs if c is not None):
        raise ConfigError("--distributed trains one model over several processes; a sweep runs many one-process "
                          "jobs: drop --distributed")
    names = [job_name(k, len(jobs)) for k in range(len(jobs))]
    _check_data([c for c, _ in configs if c is not None])
    plan = {"format_version": FORMAT_VERSION, "kind": "sweep",
            "base": {s: c.to_dict() for s, c in base.items()}, "grid": {k: list(v) for k, v in grid.items()},
            "random": config.random, "random_seed": config.random_seed,
            "jobs": [{"name": n, "settings": j} for n, j in zip(names, jobs)]}
    finished = _prepare(out, plan, force, resume, [c["data"].source for c, _ in configs if c is not None])
    out.mkdir(parents=True, exist_ok=True)
    _write(out, "sweep.json", {**plan, "sweep": config.to_dict(), "rnnkit": __version__})
    results: dict[str, dict] = dict(finished)
    specs = []
    for name, settings, (c, why) in zip(names, jobs, configs):
        if name in finished:
            continue
        if c is None:  # a combination the configs refuse: a failed job, nothing to run
            results[name] = {"job": name, "settings": settings, "status": "failed", "message": why, "warnings": []}
            continue
        specs.append({"name": name, "settings": settings, "configs": {s: v.to_dict() for s, v in c.items()},
                      "out": str((out / name).absolute()), "future": future})
    workers = config.workers
    say(f"sweep: {len(jobs)} job(s) in {out}" + (f", {len(finished)} finished before" if finished else "")
        + (f", {len(jobs) - len(finished) - len(specs)} refused by the configs" if len(results) > len(finished) else "")
        + f"; {len(specs)} to run on {config.executor}"
        + (f" ({workers} worker(s))" if workers else "") + f", ranked on {config.rank_by}")
    order = {n: k for k, n in enumerate(names)}

    def save_rows() -> None:
        _write(out, "jobs.json", {"format_version": FORMAT_VERSION,
                                  "rows": sorted(results.values(), key=lambda r: order[r["job"]])})

    def done(row: dict) -> None:
        results[row["job"]] = row
        save_rows()
        say(f"[{len(results)}/{len(jobs)}] {row['job']} {settings_text(row['settings'])}: " + _summary(row, config))
        for w in row.get("warnings", ()):
            print(f"rnnkit: warning: {row['job']}: {w}", file=sys.stderr)

    save_rows()
    try:
        run_jobs(specs, done, config.executor, workers, config.address)
    finally:
        rows = rank_rows([results.get(n) or {"job": n, "settings": j, "status": "interrupted",
                                            "message": "not started: the sweep was stopped"}
                          for n, j in zip(names, jobs)], config.rank_by)
        write_leaderboard(rows, list(grid), out / "leaderboard.csv")
        plot_leaderboard(rows, config.rank_by, out / "leaderboard.png")
    return SweepResult(out, rows, grid, config)


def _summary(row: dict, config: SweepConfig) -> str:
    if row["status"] != "ok":
        return f"{row['status']}: {row.get('message', '')}"
    shown = [k for k in dict.fromkeys([config.rank_by, "val_loss", "test_mase"]) if row.get(k) is not None]
    return ", ".join(f"{k} {row[k]:.4g}" for k in shown) + f" ({row.get('seconds', 0):.1f} s)"


def _check_data(configs: list[dict]) -> None:
    """Read each data source the jobs use once, so that a missing file or column is refused before
    any job trains (one line naming it), not once per job."""
    from ..forecast.data import load_data
    from ..forecast.panel_run import load_panel
    seen = set()
    for c in configs:
        dc = c["data"]
        key = (dc.source, dc.targets, dc.id_col, dc.time_col, dc.covariates, dc.future_covariates,
               dc.static_covariates, dc.fill)
        if key not in seen:
            seen.add(key)
            load_panel(dc) if dc.id_col is not None else load_data(dc)
