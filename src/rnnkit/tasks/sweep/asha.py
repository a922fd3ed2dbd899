"""Stopping a sweep's bad jobs early: asynchronous successive halving (``SweepConfig(prune="asha")``,
``rnnkit sweep --prune asha``).

ASHA (Li et al., "A system for massively parallel hyperparameter tuning", MLSys 2020) puts *rungs*
at epochs ``grace x factor^k`` (k = 0, 1, ...). The first time a job's training reaches a rung
(the first epoch at or after it that checked the validation loss), its best validation loss so
far is compared with those of the jobs that reached the rung before it: if it is worse than the
``1 - 1/factor`` quantile of theirs (with factor 4: not among the best quarter), the job stops
there; either way its loss joins the rung's record. No job waits for another, so the workers stay
busy; a job that reached a rung first always goes on. The rule, the rungs and the quantile are
those of Ray Tune's ``ASHAScheduler`` with one bracket (``grace_period``, ``reduction_factor``,
``mode="min"``, no ``max_t``: a job ends when its own training ends), checked against it in
``tests/tasks/sweep/test_sweep_asha.py``; the loss compared is the best so far because a fit keeps
its best weights (early stopping), so that is what the job would end with.

A stopped job is a ``pruned`` row of the leaderboard (its best validation loss, its epochs, no run
directory: it did not finish training); only the jobs that finished are ranked. What each job
recorded at each rung is kept in its row (``rungs``), so that ``--resume`` starts the rungs from
the jobs that finished or were stopped before, and does not run a pruned job again.

The record is shared by every job of the sweep: :class:`Rungs` itself when the jobs run one after
another in this process, a manager process's :class:`Rungs` for the local pool's workers
(:func:`local_rungs`), a Ray actor for Ray tasks (:func:`ray_rungs`). With one worker the decisions
(and so the run directories) are the same every time; with several, which job reaches a rung first
depends on timing, so which jobs are stopped may differ from run to run (the jobs that finish are
still byte for byte the same runs).
"""

from __future__ import annotations

import math
import threading
import warnings
from contextlib import contextmanager
from multiprocessing.managers import BaseManager
from typing import Callable, Iterator, Mapping

import numpy as np

from ...errors import RnnkitWarning

__all__ = ["Rungs", "Pruned", "Pruner", "local_rungs", "ray_rungs", "rungs_of_rows"]

class Pruned(Exception):
    """Raised from a job's epoch callback when its rung stops it (never reaches the caller of a job)."""

    def __init__(self, epoch: int, loss: float, cutoff: float, others: int, relative: bool = False):
        what = f"relative to the naive forecast's, {loss:.4g}," if relative else f"{loss:.4g}"
        super().__init__(f"stopped by ASHA at epoch {epoch}: its best validation loss {what} is above the rung's "
                         f"cutoff {cutoff:.4g} (from {others} job(s) that reached it before)")
        self.epoch, self.loss, self.cutoff, self.others = epoch, loss, cutoff, others


class Rungs:
    """The record of one sweep's rungs, ``footing -> milestone -> {job: loss}``, and ASHA's decision.

    A *footing* names what a loss is measured in (:class:`Pruner`): jobs are held only to the jobs of
    their footing, so a loss relative to the naive forecast's is never compared with a raw one, nor an
    MSE ratio with an MAE ratio. One call at a time (a lock: a manager serves each connection from a
    thread of its own)."""

    def __init__(self, grace: int, factor: int,
                 recorded: Mapping[str, Mapping[int, Mapping[str, float]]] | None = None):
        self.grace, self.factor = int(grace), int(factor)
        self.recorded: dict[str, dict[int, dict[str, float]]] = {
            str(f): {int(m): dict(r) for m, r in rungs.items()} for f, rungs in (recorded or {}).items()}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def milestone(self, epoch: int) -> int | None:
        """The highest rung at or below ``epoch`` (None below the first)."""
        if epoch < self.grace:
            return None
        m = self.grace
        while m * self.factor <= epoch:
            m *= self.factor
        return m

    def cutoff(self, milestone: int, footing: str = "") -> float | None:
        """The loss above which a job of ``footing`` reaching ``milestone`` now is stopped (None: no job
        of that footing reached it yet)."""
        losses = list(self.recorded.get(footing, {}).get(milestone, {}).values())
        return float(np.percentile(losses, 100.0 / self.factor)) if losses else None

    def report(self, job: str, epoch: int, loss: float, footing: str = "") -> tuple[bool, int | None, float | None, int]:
        """Job ``job``'s best validation loss ``loss`` (measured on ``footing``) at ``epoch``: whether it
        stops, the rung it was judged at (None: not judged now), the cutoff it was held to (None: first
        at the rung) and how many jobs made that cutoff. A job is judged once per rung, at the highest
        rung it has reached and not been judged at (as Ray Tune's ASHA: a rung jumped over, between
        two checks of the validation loss, is judged at the next check)."""
        with self._lock:
            rungs = self.recorded.setdefault(footing, {})
            m = self.milestone(int(epoch))
            while m is not None and job in rungs.get(m, {}):
                m = m // self.factor if m > self.grace else None
            if m is None or not math.isfinite(loss):
                return False, None, None, 0
            record = rungs.setdefault(m, {})
            cut, others = self.cutoff(m, footing), len(record)
            record[job] = float(loss)
            return cut is not None and loss > cut, m, cut, others

    def forget(self, job: str) -> None:
        """Drop what ``job`` recorded (a resumed sweep that runs it again, with other settings)."""
        with self._lock:
            for rungs in self.recorded.values():
                for record in rungs.values():
                    record.pop(job, None)

    def state(self) -> dict[str, dict[int, dict[str, float]]]:
        with self._lock:
            return {f: {m: dict(r) for m, r in rungs.items()} for f, rungs in self.recorded.items()}


def rungs_of_rows(rows) -> dict[str, dict[int, dict[str, float]]]:
    """The rung record kept in finished jobs' rows (their ``rungs``: milestone -> loss, on their
    ``footing``), to resume from."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for r in rows:
        for m, loss in (r.get("rungs") or {}).items():
            out.setdefault(str(r.get("footing", "")), {}).setdefault(int(m), {})[r["job"]] = float(loss)
    return out


class Pruner:
    """A job's epoch callback: reports the best validation loss so far to ``report`` (a
    :meth:`Rungs.report`, local or remote) at the epochs that checked it, raises :class:`Pruned`
    when the rung says stop. Only the job's first training is judged (the one with validation rows):
    the epochs start again at 1 for the refit on the training and validation rows, which are not.
    Nor is the epoch that ends the planned training (``epochs``): the job has trained by then (as
    Ray Tune's ASHA at ``max_t``). Where the fit gives the loss relative to the naive forecast's, that
    is judged, on the footing ``relative <loss>``; else the raw loss, on ``raw_footing`` (what the
    job's raw loss is measured in). A rung record that cannot be reached (its process gone) stops
    the pruning of this job, with a warning, not the job."""

    #: the fit adds ``val_relative`` to the rows it hands this callback
    #: (:func:`~rnnkit.tasks.forecast.combine.relative_callbacks`)
    wants_relative = True

    def __init__(self, job: str, report: Callable[..., tuple], epochs: int | None = None, raw_footing: str = "raw"):
        self.job, self.report, self.epochs, self.raw_footing = job, report, epochs, raw_footing
        self.best, self.best_loss, self.last, self.done = math.inf, math.inf, 0, False
        self.rungs: dict[int, float] = {}
        self.footing = raw_footing

    def __call__(self, row: dict) -> None:
        epoch = int(row["epoch"])
        if self.done or epoch <= self.last:
            self.done = True
            return
        self.last = epoch
        loss = row.get("val_loss")
        if loss is None or not math.isfinite(loss):
            return
        self.best_loss = min(self.best_loss, float(loss))
        relative = "val_relative" in row  # the loss over the naive forecast's (see the module docstring)
        self.best = min(self.best, float(row["val_relative"] if relative else loss))
        if self.epochs is not None and epoch >= self.epochs:
            return
        self.footing = f"relative {row.get('val_relative_to', '')}".strip() if relative else self.raw_footing
        try:
            stop, milestone, cutoff, others = self.report(self.job, epoch, self.best, self.footing)
        except Exception as e:  # noqa: BLE001 - the manager's or actor's transport: the job goes on unjudged
            self.done = True
            warnings.warn(f"ASHA: the sweep's rung record could not be reached ({type(e).__name__}: {e}); this job "
                          "trains to the end", RnnkitWarning, stacklevel=2)
            return
        if milestone is not None:
            self.rungs[milestone] = self.best
        if stop:
            raise Pruned(epoch, self.best, cutoff, others, relative)


class _Manager(BaseManager):
    """Serves one :class:`Rungs` to the local pool's workers (:func:`local_rungs`)."""


_Manager.register("Rungs", Rungs)


@contextmanager
def local_rungs(ctx, rungs: Rungs) -> Iterator[object]:
    """``rungs`` served by a manager process of ``ctx`` for the pool's workers: yields a proxy whose
    ``report`` is :meth:`Rungs.report`, one call at a time; the record is copied back into ``rungs``
    at the end."""
    manager = _Manager(ctx=ctx)
    manager.start()
    try:
        proxy = manager.Rungs(rungs.grace, rungs.factor, rungs.state())
        try:
            yield proxy
        finally:
            _copy_back(rungs, proxy.state)
    finally:
        manager.shutdown()


@contextmanager
def ray_rungs(rungs: Rungs) -> Iterator[object]:
    """``rungs`` held by a Ray actor for the sweep's tasks (Ray started); copied back at the end."""
    import ray
    actor = ray.remote(num_cpus=0)(Rungs).remote(rungs.grace, rungs.factor, rungs.state())
    try:
        yield actor
    finally:
        try:
            _copy_back(rungs, lambda: ray.get(actor.state.remote()))
        finally:
            ray.kill(actor)


def _copy_back(rungs: Rungs, state: Callable[[], dict]) -> None:
    """The shared record into ``rungs`` (kept as it was, with a warning, when it cannot be read: the
    jobs' rows keep what they recorded, and --resume rebuilds it from them)."""
    try:
        rungs.recorded = Rungs(rungs.grace, rungs.factor, state()).recorded
    except Exception as e:  # noqa: BLE001 - the manager's or actor's transport
        warnings.warn(f"ASHA: the sweep's rung record could not be read back ({type(e).__name__}: {e})",
                      RnnkitWarning, stacklevel=2)
