"""Optuna's search over a sweep's grid (``SweepConfig(optuna=N)``, ``rnnkit sweep --optuna N``).

Each key of the grid that lists values is one categorical choice among them (to Optuna: the value's
position in the key's list, so that any value, a list field's too, can be chosen); a range
(:mod:`rnnkit.tasks.sweep.ranges`) is Optuna's ``FloatDistribution`` or ``IntDistribution`` (what
``trial.suggest_float``/``suggest_int`` ask, log-scaled with ``:log``), the float drawn rounded as
:meth:`~rnnkit.tasks.sweep.ranges.Range.snap` rounds it. Optuna's TPE sampler,
seeded with ``random_seed`` (modulo 2^32, the seeds numpy takes), asks a batch of ``workers``
trials at a time (with the constant liar, so that trials of one batch spread out); the sweep runs
them as jobs with the executors, and tells each one's ``rank_by`` score back in the order they
were asked (a job that failed, or has no such score, is told as failed). The next batch is asked
from what was told. With the same seed, grid, settings and batch size the plan is the same every
time, since every job is deterministic, and so is the order of what is told.

The sweep trains N distinct combinations (all of them when the grid has no more; a float range
has no end of them). TPE may suggest
a combination again: it is not trained again; the trial is told the earlier job's score (at the
end of the batch, when the earlier job is in the same batch) and does not count towards N. When
:data:`MAX_REPEATS` suggestions in a row were all repeats, the sampler has settled: the search
stops with the jobs it has, and says so.

Resuming replays the search: a new study with the same seed asks the same trials again, and a
trial whose job finished before (same name, same settings) is told its recorded score instead of
being trained; a job that failed is run again.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

from ...errors import ConfigError
from .ranges import Range

__all__ = ["GridStudy", "import_optuna", "MAX_REPEATS"]

#: suggestions in a row that repeat a combination already chosen before the search stops
MAX_REPEATS = 100


def import_optuna():
    """The ``optuna`` module, or a one-line ConfigError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("--optuna needs Optuna: pip install 'rnnkit[optuna]' (or pip install optuna), or sample "
                          "the grid with --random N") from None
    return optuna


class GridStudy:
    """An Optuna study of the grid ``grid`` (key -> values or a
    :class:`~rnnkit.tasks.sweep.ranges.Range`, as :func:`~rnnkit.tasks.sweep.grid.normalise_grid`
    returns it); a trial's combination is a job's settings (key -> value, in the grid's order)."""

    def __init__(self, grid: Mapping[str, Sequence | Range], seed: int, rank_by: str):
        self.optuna = optuna = import_optuna()
        self.grid = dict(grid)
        self.rank_by = rank_by
        self.distributions = {
            k: v.distribution(optuna) if isinstance(v, Range)
            else optuna.distributions.CategoricalDistribution(list(range(len(v)))) for k, v in self.grid.items()}
        with self._quiet():
            sampler = optuna.samplers.TPESampler(seed=seed % 2**32, constant_liar=True)
            self.study = optuna.create_study(direction="minimize", sampler=sampler)

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """No log line per trial, no warning that the constant liar is experimental (Optuna 3)."""
        logging = self.optuna.logging
        before = logging.get_verbosity()
        logging.set_verbosity(logging.WARNING)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", self.optuna.exceptions.ExperimentalWarning)
                yield
        finally:
            logging.set_verbosity(before)

    def _ask(self) -> tuple[Any, dict]:
        trial = self.study.ask(self.distributions)
        return trial, {k: v.snap(trial.params[k]) if isinstance(v, Range) else v[trial.params[k]]
                       for k, v in self.grid.items()}

    def _tell(self, trial, value: float | str | None) -> None:
        if value is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        elif value == "pruned":
            self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, value)

    def score(self, row: dict) -> float | str | None:
        """What a job's row tells the study: its ``rank_by`` score, ``"pruned"`` for a job its rung
        stopped (``--prune asha``: Optuna's pruned state), None (failed) without one."""
        if row["status"] == "pruned":
            return "pruned"
        value = row.get(self.rank_by)
        return float(value) if row["status"] == "ok" and isinstance(value, (int, float)) else None

    def run(self, n: int, batch: int, run_batch: Callable[[list[dict]], list[dict]],
            say: Callable[[str], None]) -> None:
        """Choose and run ``n`` distinct combinations, ``batch`` at a time: ``run_batch(settings)``
        runs the combinations ``settings`` as the next jobs and returns their rows, in order."""
        told: dict[tuple, float | str | None] = {}  # each combination run (its values), and what it told
        repeats, done = 0, 0
        with self._quiet():
            while done < n:
                picks: list[tuple[Any, dict]] = []
                echoes: list[tuple[Any, tuple]] = []  # repeats of a combination of this batch: told after it
                while len(picks) < min(batch, n - done) and repeats < MAX_REPEATS:
                    trial, settings = self._ask()
                    index = tuple(settings.values())
                    if index in told:
                        self._tell(trial, told[index])
                    elif any(index == tuple(s.values()) for _, s in picks):
                        echoes.append((trial, index))
                    else:
                        picks.append((trial, settings))
                        repeats = -1
                    repeats += 1
                if not picks:
                    say(f"optuna: the last {MAX_REPEATS} suggestions all repeated combinations already run; "
                        f"stopping after {done} of {n} job(s)")
                    return
                rows = run_batch([s for _, s in picks])
                for (trial, settings), row in zip(picks, rows):
                    told[tuple(settings.values())] = self.score(row)
                    if row["status"] == "pruned":  # what its rungs judged, so that TPE can tell pruned trials apart
                        for epoch, loss in sorted((int(m), float(v)) for m, v in (row.get("rungs") or {}).items()):
                            trial.report(loss, epoch)
                    self._tell(trial, told[tuple(settings.values())])
                for trial, index in echoes:
                    self._tell(trial, told[index])
                done += len(picks)
