"""A sweep's directory: what it holds, when an existing one may be written again, and the plan
it recorded (:func:`rnnkit.tasks.sweep.workflow.sweep` writes it).

A sweep directory holds:

- ``sweep.json``: the plan (every job's name and grid values, the settings they share), written
  before any job starts, so that ``resume`` can tell whether it is the same sweep (an Optuna
  search's, :mod:`rnnkit.tasks.sweep.study`, grows batch by batch: its jobs are chosen as it goes);
- ``series/``: with ``per_series``, each series' table (:mod:`rnnkit.tasks.sweep.series`);
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
from pathlib import Path
from typing import Any

from ...errors import ConfigError, RnnkitError, RunError
from ...training.atomic import TAG, write_file_atomic
from ...training.rundir import check_out, is_run_dir
from ...training.runs import json_safe, read_json, write_json
from .config import RANK_BY, SweepConfig
from .grid import SECTIONS
from .series import SERIES_DIR

__all__ = ["FORMAT_VERSION", "SWEEP_FILES", "prepare", "resume_args", "write_record", "same_settings",
           "recorded_rank_by", "recorded_batch"]

FORMAT_VERSION = 1
#: the files of a sweep directory besides its jobs' run directories
SWEEP_FILES = ("sweep.json", "jobs.json", "leaderboard.csv", "leaderboard.png")


def _ours(name: str) -> bool:
    return name in SWEEP_FILES or name == SERIES_DIR or name.startswith("job-") \
        or (name.startswith(".") and (f"~{TAG}~" in name or name.endswith(f".{TAG}-lock")))


def prepare(out: Path, plan: dict, force: bool, resume: bool, protect: list) -> dict[str, dict]:
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
        if not same_settings(plan, {k: old.get(k) for k in plan}):
            raise RunError(f"{out} holds another sweep (its grid or settings differ); pass --force to replace it, "
                           "or choose another --out")
        try:
            rows = read_json(out / "jobs.json")["rows"] if (out / "jobs.json").exists() else []
        except (OSError, ValueError, KeyError, TypeError):
            rows = []
        kept = {r["job"]: r for r in rows if isinstance(r, dict) and (r.get("status") == "pruned" or (
            r.get("status") == "ok" and is_run_dir(out / str(r.get("job")))))}
        for r in kept.values():  # JSON wrote the rungs' epochs as strings
            if isinstance(r.get("rungs"), dict):
                r["rungs"] = {int(m): v for m, v in r["rungs"].items()}
        return kept
    for n in os.listdir(out):  # force: start again, so no job of the old sweep can pass for one of this one
        if n.startswith("job-") or n == SERIES_DIR:
            shutil.rmtree(out / n)
    for n in ("jobs.json", "leaderboard.csv", "leaderboard.png"):
        if (out / n).exists():
            (out / n).unlink()
    return {}


def resume_args(out: str | os.PathLike) -> dict[str, Any]:
    """:func:`rnnkit.sweep`'s arguments that planned the sweep in ``out`` (its sweep.json), to resume it."""
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


def write_record(out: Path, name: str, obj: Any) -> None:
    """Write ``obj`` as ``out/name``'s JSON, atomically."""
    write_file_atomic(out / name, lambda p: write_json(p, obj))


def same_settings(a: Any, b: Any) -> bool:
    """Whether two jobs' settings are the same (one of them perhaps read back from JSON)."""
    return json.loads(json.dumps(json_safe(a))) == json.loads(json.dumps(json_safe(b)))


def _recorded(out: Path) -> dict:
    """The sweep in ``out``'s recorded plan (its sweep.json), or {} where there is none to read."""
    try:
        record = read_json(Path(out) / "sweep.json")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def recorded_rank_by(out: Path) -> str | None:
    """The ranking the sweep in ``out`` recorded (its sweep.json's), or None."""
    sweep = _recorded(out).get("sweep")
    rank_by = sweep.get("rank_by") if isinstance(sweep, dict) else None
    return rank_by if rank_by in RANK_BY else None


def recorded_batch(out: Path) -> int | None:
    """The batch size of the Optuna sweep in ``out`` (its plan depends on it), or None."""
    batch = _recorded(out).get("optuna_batch")
    return batch if isinstance(batch, int) and batch >= 1 else None
