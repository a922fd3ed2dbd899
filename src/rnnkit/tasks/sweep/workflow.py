"""Many forecasting fits at once: :func:`sweep` plans the jobs of a grid, runs them (one process
and one thread each, :mod:`rnnkit.tasks.sweep.executors`) and ranks them; :class:`SweepResult` is
what it returns. The directory it writes, and when an existing one is resumed or replaced:
:mod:`rnnkit.tasks.sweep.sweepdir`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..._version import __version__
from ...config import ModelConfig, TrainConfig
from ...errors import ConfigError, RnnkitError, RunError
from ..forecast.config import DataConfig, SearchConfig
from .asha import Rungs, rungs_of_rows
from .config import MAX_JOBS, SweepConfig
from .executors import ray_available, run_jobs, session, usable_cpus
from .grid import SECTIONS, apply_settings, describe, listed, normalise_grid, plan_jobs
from .leaderboard import plot_leaderboard, rank_rows, settings_text, write_leaderboard
from .ranges import Range, check_ranges, space_size
from .series import SERIES, series_files, series_ids, single_series, write_series
from .study import GridStudy
from .sweepdir import FORMAT_VERSION, prepare, recorded_batch, recorded_rank_by, same_settings, write_record
from .sweepdir import SWEEP_FILES, resume_args  # noqa: F401 (re-exported)

__all__ = ["sweep", "SweepResult", "SWEEP_FILES", "job_name", "resume_args"]


@dataclass
class SweepResult:
    """A finished (or interrupted) sweep: its directory, its settings and its leaderboard's rows,
    best first (each a dict: ``rank``, ``job``, ``status``, ``settings``, the scores, ``message``)."""

    path: Path
    rows: list[dict]
    grid: dict[str, tuple | Range]
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
            from ..forecast.panel_load import load_panel_run
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


def _configs(settings: dict, base: dict, sources: Mapping[str, str]) -> tuple[dict | None, str]:
    """A job's configs (``sources``: a per-series job's table, by series id), or None and why not."""
    if SERIES in settings:
        settings = dict(settings)
        base = {**base, "data": single_series(base["data"], sources[settings.pop(SERIES)])}
    try:
        return apply_settings(base, settings), ""
    except RnnkitError as e:
        return None, " ".join(str(e).split())


def _check_values(jobs: list[dict], configs: list, grid: Mapping[str, tuple]) -> None:
    """Refuse a grid value no combination can use (``lr=-1``): every job holding it is refused."""
    for key, values in listed(grid).items():
        for v in values:
            holding = [c for j, c in zip(jobs, configs) if j[key] == v]
            if holding and all(c[0] is None for c in holding):
                raise ConfigError(f"grid value {key}={describe(v)} is refused in every combination: {holding[0][1]}")





def sweep(data_config: DataConfig, grid: Mapping[str, Any] | str, out: str | os.PathLike,
          model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
          search: SearchConfig | None = None, config: SweepConfig | None = None, *, force: bool = False,
          resume: bool = False, quiet: bool = False, future=None,
          say: Callable[[str], None] | None = None) -> SweepResult:
    """Fit one forecaster per combination of ``grid`` and rank them; see the module docstring.

    ``data_config``, ``model_config``, ``train_config`` and ``search`` are the settings every job
    starts from (as :func:`~rnnkit.fit_forecaster` takes them); ``grid`` maps settings to their
    values (``{"hidden_size": [16, 32], "lr": [1e-3, 3e-3]}``, or the command line's
    ``"hidden_size=16,32;lr=1e-3,3e-3"``; see :mod:`rnnkit.tasks.sweep.grid`) or a number setting
    to a range (``{"lr": {"low": 1e-4, "high": 1e-2, "log": True}}``, ``"lr=1e-4..1e-2:log"``, for
    ``random`` or ``optuna`` to sample; :mod:`rnnkit.tasks.sweep.ranges`); ``config`` says how
    many jobs, where they run and how they are ranked (:class:`SweepConfig`): every combination,
    ``random`` of them, ``optuna`` of them chosen by Optuna (:mod:`rnnkit.tasks.sweep.study`), and
    with ``per_series`` each of them once per series of the panel ``data_config`` names
    (:mod:`rnnkit.tasks.sweep.series`; the grid may then be empty). ``future`` is
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
    grid = normalise_grid(grid) if grid else {}
    if config.rank_by == "auto":  # a resumed sweep keeps the ranking it recorded (an Optuna search's plan has it)
        config = config.replace(rank_by=(recorded_rank_by(out) if resume else None) or "val_mase")
    study = GridStudy(grid, config.random_seed, config.rank_by) if config.optuna else None
    ids = series_ids(base["data"], grid) if config.per_series else None
    if ids is not None and future is not None:
        raise ConfigError("--future is one file of the whole panel; a --per-series job forecasts one series: drop "
                          "--future (forecast each job's run with its own file)")
    if study:  # every combination of the listed values, the ranges at their middles: to check them
        middles = {k: v.middle() for k, v in grid.items() if isinstance(v, Range)}
        combos = [{k: c[k] if k in c else middles[k] for k in grid} for c in plan_jobs(listed(grid))]
    else:
        combos = plan_jobs(grid, config.random, config.random_seed)
    jobs = combos if ids is None else [{SERIES: sid, **c} for sid in ids for c in combos]
    if len(jobs) > MAX_JOBS:
        raise ConfigError(f"{len(ids or ())} series times {len(combos)} combination(s) make {len(jobs)} jobs, more "
                          f"than a sweep runs (at most {MAX_JOBS}); list fewer values or split the panel")
    sources = {} if ids is None else series_files(out, base["data"], ids)
    configs = [_configs(j, base, sources) for j in jobs]
    _check_values(jobs, configs, grid)
    check_ranges(grid, jobs, lambda settings: _configs(settings, base, sources))
    if config.prune != "none" and any(c["search"].auto for c, _ in configs if c is not None):
        raise ConfigError("--prune stops a job by its training's validation loss; an --auto job trains many models "
                          "in its own time budget: drop one of --prune and --auto")
    if config.prune != "none" and any(c["data"].normalise == "auto" and c["data"].id_col is None
                                      and not c["train"].stateful for c, _ in configs if c is not None):
        raise ConfigError("--prune judges one training per job; --normalise auto (the default) trains one per "
                          "normalisation and keeps the better, so the first could stop a job the second would win: "
                          "pass --normalise window or none, or sweep it in the grid (normalise=window,none)")
    if any(c["train"].distributed for c, _ in configs if c is not None):
        raise ConfigError("--distributed trains one model over several processes; a sweep runs many one-process "
                          "jobs: drop --distributed")
    if ids is None:
        _check_data([c for c, _ in configs if c is not None])
    n = min(config.optuna, space_size(grid)) if study else len(jobs)
    names = [job_name(k, n) for k in range(n)]
    plan = {"format_version": FORMAT_VERSION, "kind": "sweep",
            "base": {s: c.to_dict() for s, c in base.items()},
            "grid": {k: v.to_dict() if isinstance(v, Range) else list(v) for k, v in grid.items()},
            "random": config.random, "random_seed": config.random_seed}
    # which jobs are stopped depends on these: a resumed sweep keeps them (None: no pruning, which a
    # pruned sweep's directory, whose stopped jobs would never run, does not resume as)
    plan["prune"] = None if config.prune == "none" else {"method": config.prune, "grace_epochs": config.grace_epochs,
                                                         "reduction_factor": config.reduction_factor}
    if study:  # the plan is what the study chooses: the same for the same trials, ranking and batch size
        batch = recorded_batch(out) if resume else None
        plan.update(optuna=n, rank_by=config.rank_by, optuna_batch=batch or config.workers or usable_cpus())
    else:
        if ids is not None:
            plan["per_series"] = True
        plan["jobs"] = [{"name": m, "settings": j} for m, j in zip(names, jobs)]
    protect = [base["data"].source] if ids is not None else [c["data"].source for c, _ in configs if c is not None]
    finished = prepare(out, plan, force, resume, protect)
    rungs = Rungs(config.grace_epochs, config.reduction_factor, rungs_of_rows(finished.values())) \
        if config.prune != "none" else None
    planned: dict[str, dict] = {}  # the jobs chosen so far: every one at once, or the study's batch by batch
    results: dict[str, dict] = {}
    order = {m: k for k, m in enumerate(names)}

    def record() -> None:  # a study's plan grows batch by batch
        chosen = {"jobs": [{"name": m, "settings": j} for m, j in planned.items()]} if study else {}
        write_record(out, "sweep.json", {**plan, **chosen, "sweep": config.to_dict(), "rnnkit": __version__})

    out.mkdir(parents=True, exist_ok=True)
    record()
    if ids is not None:
        write_series(base["data"], sources)

    def save_rows() -> None:
        write_record(out, "jobs.json", {"format_version": FORMAT_VERSION,
                                        "rows": sorted(results.values(), key=lambda r: order[r["job"]])})

    def done(row: dict) -> None:
        results[row["job"]] = row
        save_rows()
        say(f"[{len(results)}/{n}] {row['job']} {settings_text(row['settings'])}: " + _summary(row, config))
        for w in row.get("warnings", ()):
            print(f"rnnkit: warning: {row['job']}: {w}", file=sys.stderr)

    def run(chosen: list[dict]) -> list[dict]:
        """Run the jobs ``chosen`` (their settings) as the next names; their rows, in order."""
        batch_names = names[len(planned):len(planned) + len(chosen)]
        specs = []
        for name, job in zip(batch_names, chosen):
            planned[name] = job
            c, why = configs[order[name]] if study is None else _configs(job, base, sources)
            old = finished.get(name)
            if old is not None and same_settings(old["settings"], job):  # finished before: kept
                results[name] = old
            elif old is not None and rungs is not None:  # its name now has other settings: its rungs go
                rungs.forget(name)
            elif c is None:  # a combination the configs refuse: a failed job, nothing to run
                results[name] = {"job": name, "settings": job, "status": "failed", "message": why, "warnings": []}
            else:
                specs.append({"name": name, "settings": job, "configs": {s: v.to_dict() for s, v in c.items()},
                              "out": str((out / name).absolute()), "future": future, "prune": rungs is not None})
        record()
        save_rows()
        if study is None:
            say(_start_line(out, config, n, len(finished), n - len(specs) - len(finished), len(specs)))
        if len(specs) > 1 and (config.workers or usable_cpus()) > 1:  # the jobs run elsewhere: this process waits
            _import_plots_meanwhile()
        run_jobs(specs, done, config.executor, config.workers, config.address, rungs)
        return [results[m] for m in batch_names]

    try:
        if study is None:
            run(jobs)
        else:
            say(f"sweep: {n} job(s) in {out} chosen by Optuna (TPE, seed {config.random_seed}), "
                f"{plan['optuna_batch']} at a time, on {config.executor}, ranked on {config.rank_by}")
            with session(config.executor, config.workers, config.address):  # one Ray for all the batches
                study.run(n, plan["optuna_batch"], run, say)
    finally:
        rows = rank_rows([results.get(m) or {"job": m, "settings": j, "status": "interrupted",
                                             "message": "not started: the sweep was stopped"}
                          for m, j in planned.items()], config.rank_by)
        write_leaderboard(rows, ([SERIES] if ids is not None else []) + list(grid), out / "leaderboard.csv")
        plot_leaderboard(rows, config.rank_by, out / "leaderboard.png")
    return SweepResult(out, rows, grid, config)


def _import_plots_meanwhile() -> None:
    """Import matplotlib (the leaderboard's plot) in a thread while the workers run the jobs: this
    process only waits for them, and would otherwise import it after the last job (half a second on
    2 cores, measured with `rnnkit sweep --workers 2`)."""
    import threading
    if "matplotlib.pyplot" in sys.modules:  # loaded already (a notebook's pyplot): nothing to wait for, no backend to touch
        return

    def load() -> None:
        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot  # noqa: F401
    threading.Thread(target=load, name="rnnkit-import-plots", daemon=True).start()


def _start_line(out: Path, config: SweepConfig, n: int, finished: int, refused: int, to_run: int) -> str:
    return (f"sweep: {n} job(s) in {out}" + (f", {finished} finished before" if finished else "")
            + (f", {refused} refused by the configs" if refused else "")
            + f"; {to_run} to run on {config.executor}"
            + (f" ({config.workers} worker(s))" if config.workers else "") + f", ranked on {config.rank_by}"
            + (f"; ASHA stops jobs behind at epochs {config.grace_epochs} x {config.reduction_factor}^k"
               if config.prune != "none" else ""))




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
