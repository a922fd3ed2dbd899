"""One job of a sweep, as a worker runs it: one :func:`fit_forecaster` call with the job's settings,
its run directory written atomically (:meth:`ForecastRun.save`), and the job's row of the leaderboard.

:func:`run_job` takes and returns plain data (dicts of JSON values), so it runs the same in this
process, in a pool's worker process and in a Ray task. It never raises for the job's own failure:
a :class:`~rnnkit.errors.RnnkitError` (or any other exception) becomes a ``failed`` row with its
message, and Ctrl-C an ``interrupted`` row, with no run directory written (the directory is written
through a temporary that is removed on the way out).

A worker process starts with :func:`init_worker`: one torch thread (the fused trainer runs on one
core, and the torch loop's numbers depend on the thread count: with one thread everywhere the
sequential sweep and the parallel one write the same bytes), Ctrl-C ignored between jobs, and the
sweep's stop event, checked before a job starts and after every epoch.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ...errors import RnnkitError

__all__ = ["run_job", "init_worker", "job_row", "one_thread", "STATUSES"]

#: a job's status: trained and saved; stopped early by its rung (``--prune asha``, no run
#: directory); refused or failed (the message says why); stopped by Ctrl-C or not started before
#: the sweep stopped
STATUSES = ("ok", "pruned", "failed", "interrupted")
#: the sweep's stop event in a worker process (set by the parent on Ctrl-C), from init_worker
_STOP: Any = None
#: the sweep's rung record in a worker process when it prunes (a manager's proxy), from init_worker
_RUNGS: Any = None


def init_worker(stop=None, rungs=None) -> None:
    """A pool worker's set-up: one torch thread, Ctrl-C left to the parent between jobs (it sets
    ``stop``, which the jobs check), the sweep's rung record (``--prune``) and rnnkit's one-line
    warnings."""
    global _STOP, _RUNGS
    _STOP, _RUNGS = stop, rungs
    import torch
    torch.set_num_threads(1)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stopping() -> bool:
    return _STOP is not None and _STOP.is_set()


class _Stopped(KeyboardInterrupt):
    """Raised from an epoch callback when the sweep's stop event is set (as Ctrl-C would be)."""


def _check_stop(row: dict) -> None:
    if _stopping():
        raise _Stopped()


#: called after every epoch of every training of the job (the second normalisation candidate's too)
_check_stop.every_training = True


@contextmanager
def one_thread() -> Iterator[None]:
    """torch at one thread inside the block (the sequential sweep runs its jobs as the workers do)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt inside the job (a worker ignores it between jobs)."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    if main and before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if main and before == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def job_row(spec: dict, status: str, message: str = "", **scores: Any) -> dict:
    """A job's row: its name, settings, status and message, and its scores where it trained."""
    return {"job": spec["name"], "settings": spec["settings"], "status": status, "message": message, **scores}


def _validation_scores(run, data) -> dict:
    """The model's scores on the validation rows in the data's units (windows whose targets lie in
    them; a panel's global model: each series' validation horizon, the mean over the series), so
    that jobs scaling or transforming the data differently compare; {} with fewer validation rows
    than the horizon."""
    from ..forecast.predict import score_forecasts, windows_for
    meta, dc = run.meta, run.data_config
    if dc.id_col is not None:
        from ..forecast.panel_scores import validation_scores
        return {f"val_{k}": _finite(v) for k, v in validation_scores(run, data).items() if k != "smape"}
    if "train_rows" not in meta or meta["test_start"] - meta["train_rows"] < dc.horizon:
        return {}
    C = len(run.targets)
    X, Y, starts = windows_for(data.values, C, dc.lookback, dc.horizon, 1, meta["train_rows"], meta["test_start"])
    pred = run.predict_contexts(X, dc.horizon, run.known(data, starts, horizon=dc.horizon))
    scores = score_forecasts(Y, pred, {}, data.values[:meta["train_rows"], :C], run.seasonal_period)
    return {f"val_{k}": _finite(scores["model"]["overall"][k]) for k in ("mae", "rmse", "mase")}


def _test_scores(metrics: dict | None) -> dict:
    if not metrics:
        return {}
    model = metrics["summary"]["model"] if "summary" in metrics else metrics["model"]["overall"]
    return {f"test_{k}": _finite(model.get(k)) for k in ("mae", "rmse", "mase", "smape")}


def _reporter(rungs):
    """``rungs.report`` as a plain call: a :class:`~.asha.Rungs`, a manager's proxy of one, or a Ray actor."""
    report = rungs.report
    if hasattr(report, "remote"):  # a Ray actor's method
        import ray
        return lambda job, epoch, loss, footing: ray.get(report.remote(job, epoch, loss, footing))
    return report


def _raw_footing(configs: dict) -> str:
    """What a job's raw validation loss is measured in (:class:`~.asha.Pruner`): its loss and head, and
    how its targets reach the network; jobs whose raw losses compare share it."""
    d, m, t = configs["data"], configs["model"], configs["train"]
    parts = [t.get("loss") or "", m.get("distribution", "none"), ",".join(map(str, m.get("quantiles") or ())),
             d.get("normalise", ""), d.get("skip", ""), d.get("scaler", ""), d.get("transform", ""),
             d.get("difference", "")]
    return "raw " + "/".join(str(x) for x in parts)


def _train(spec: dict, pruner=None) -> dict:
    from ..forecast.data import load_data
    from ..forecast.panel_run import load_panel
    from ..forecast.workflow import fit_forecaster
    from .grid import SECTIONS
    c = {section: cls.from_dict(spec["configs"][section]) for section, cls in SECTIONS.items()}
    dc = c["data"]
    data = load_panel(dc) if dc.id_col is not None else load_data(dc)
    run = fit_forecaster(dc, c["model"], c["train"], data=data, quiet=True, search=c["search"],
                         callbacks=[_check_stop] + ([pruner] if pruner is not None else []))
    run.save(spec["out"], force=True, data=data, future=spec.get("future"))
    h = run.history
    val = [v for v in h.val_loss if _finite(v) is not None]
    return {"val_loss": min(val) if val else None,
            **_validation_scores(run, data), **_test_scores(run.metrics),
            "best_epoch": h.best_epoch, "epochs": len(h.rows), "engine": h.engine,
            **({"rungs": pruner.rungs, "footing": pruner.footing} if pruner is not None else {})}


def _remove_stale_run(out: str) -> None:
    """A pruned job has no run directory: one of its name left by an earlier sweep in this directory
    (a resumed Optuna search can give the name other settings) is removed, if it is a run."""
    from ...training.rundir import is_run_dir
    import shutil
    if is_run_dir(Path(out)):
        shutil.rmtree(out)


def run_job(spec: dict, rungs=None) -> dict:
    """Train and save one job; its leaderboard row (see the module docstring).

    ``spec``: ``name``, ``settings`` (the grid's values, for the row), ``configs`` (section ->
    the config's ``to_dict()``), ``out`` (the run directory, replaced if it exists: a job retried
    writes the same run), ``future`` (forecast's future covariates file, or None) and ``prune``
    (whether the sweep's rungs judge it: ``rungs``, or the worker's from :func:`init_worker`)."""
    if _stopping():
        return job_row(spec, "interrupted", "not started: the sweep was stopped")
    from .asha import Pruned, Pruner
    rungs = rungs if rungs is not None else _RUNGS
    pruner = Pruner(spec["name"], _reporter(rungs), spec["configs"]["train"].get("epochs"),
                    _raw_footing(spec["configs"])) if spec.get("prune") and rungs is not None else None
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _interruptible():
                if _stopping():  # set while this job was being handed over
                    raise _Stopped()
                row = job_row(spec, "ok", **_train(spec, pruner))
        except Pruned as e:  # its rung stopped it: no run directory (written only at the end)
            _remove_stale_run(spec["out"])
            row = job_row(spec, "pruned", str(e), val_loss=pruner.best_loss, epochs=e.epoch, rungs=pruner.rungs,
                          footing=pruner.footing)
        except KeyboardInterrupt:  # Ctrl-C, or the stop event: the run directory was not written
            row = job_row(spec, "interrupted", "stopped by Ctrl-C before it finished")
        except RnnkitError as e:
            row = job_row(spec, "failed", " ".join(str(e).split()))
        except Exception as e:  # noqa: BLE001 - one job's bug must not stop the other jobs
            where = traceback.extract_tb(e.__traceback__)[-1]
            row = job_row(spec, "failed", f"internal error {type(e).__name__}: {' '.join(str(e).split())} "
                                          f"(at {Path(where.filename).name}:{where.lineno}); please report it")
    row["seconds"] = round(time.perf_counter() - t0, 3)
    row["warnings"] = sorted({" ".join(str(w.message).split()) for w in caught
                              if issubclass(w.category, UserWarning)})
    return row
