"""Optuna's search over a sweep's grid (``SweepConfig(optuna=N)``, ``rnnkit sweep --optuna N``).

Each key of the grid is one categorical choice among its values (to Optuna: the value's position
in the key's list, so that any value, a list field's too, can be chosen). Optuna's TPE sampler,
seeded with ``random_seed`` (modulo 2^32, the seeds numpy takes), asks a batch of ``workers``
trials at a time (with the constant liar, so that trials of one batch spread out); the sweep runs
them as jobs with the executors, and tells each one's ``rank_by`` score back in the order they
were asked (a job that failed, or has no such score, is told as failed). The next batch is asked
from what was told. With the same seed, grid, settings and batch size the plan is the same every
time, since every job is deterministic, and so is the order of what is told.

The sweep trains N distinct combinations (all of them when the grid has no more). TPE may suggest
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
    """An Optuna study of the grid ``grid`` (key -> values, as :func:`~rnnkit.tasks.sweep.grid.plan_jobs`
    takes it); a trial's combination is its index in ``plan_jobs(grid)``."""

    def __init__(self, grid: Mapping[str, Sequence], seed: int, rank_by: str):
        self.optuna = optuna = import_optuna()
        self.sizes = {k: len(v) for k, v in grid.items()}
        self.rank_by = rank_by
        self.distributions = {k: optuna.distributions.CategoricalDistribution(list(range(n)))
                              for k, n in self.sizes.items()}
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

    def _ask(self) -> tuple[Any, int]:
        trial = self.study.ask(self.distributions)
        index = 0
        for key, n in self.sizes.items():  # mixed radix, the last key least significant (as plan_jobs)
            index = index * n + trial.params[key]
        return trial, index

    def _tell(self, trial, value: float | None) -> None:
        if value is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def score(self, row: dict) -> float | None:
        """What a job's row tells the study: its ``rank_by`` score, None (failed) without one."""
        value = row.get(self.rank_by)
        return float(value) if row["status"] == "ok" and isinstance(value, (int, float)) else None

    def run(self, n: int, batch: int, run_batch: Callable[[list[int]], list[dict]],
            say: Callable[[str], None]) -> None:
        """Choose and run ``n`` distinct combinations, ``batch`` at a time: ``run_batch(indices)``
        runs the combinations ``indices`` as the next jobs and returns their rows, in order."""
        told: dict[int, float | None] = {}  # each combination run, and what it told
        repeats, done = 0, 0
        with self._quiet():
            while done < n:
                picks: list[tuple[Any, int]] = []
                echoes: list[tuple[Any, int]] = []  # repeats of a combination of this batch: told after it
                while len(picks) < min(batch, n - done) and repeats < MAX_REPEATS:
                    trial, index = self._ask()
                    if index in told:
                        self._tell(trial, told[index])
                    elif any(index == k for _, k in picks):
                        echoes.append((trial, index))
                    else:
                        picks.append((trial, index))
                        repeats = -1
                    repeats += 1
                if not picks:
                    say(f"optuna: the last {MAX_REPEATS} suggestions all repeated combinations already run; "
                        f"stopping after {done} of {n} job(s)")
                    return
                rows = run_batch([k for _, k in picks])
                for (trial, index), row in zip(picks, rows):
                    told[index] = self.score(row)
                    self._tell(trial, told[index])
                for trial, index in echoes:
                    self._tell(trial, told[index])
                done += len(picks)
