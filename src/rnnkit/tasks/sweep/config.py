"""A sweep's own settings (:class:`SweepConfig`): how many jobs, where they run, how they are ranked.

What each job trains is forecasting's settings (``DataConfig``, ``ModelConfig``, ``TrainConfig``,
``SearchConfig``): the fixed ones every job shares, and the grid's, which differ between jobs
(:mod:`rnnkit.tasks.sweep.grid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...config import MAX_SEED, Serialisable, check_choice, check_positive
from ...errors import ConfigError

__all__ = ["SweepConfig", "EXECUTORS", "RANK_BY", "MAX_JOBS", "PRUNE"]

#: where the jobs run: processes on this machine, or tasks on a Ray cluster (the ``ray`` extra)
EXECUTORS = ("local", "ray")
#: what the leaderboard can be ranked on (lowest first): the best validation loss of the run's
#: history (the loss early stopping watched, in the network's units), the validation rows' scores
#: in the data's units (comparable between jobs that scale or transform the data differently), and
#: the test rows' scores
RANK_BY = ("val_loss", "val_mae", "val_rmse", "val_mase", "test_mae", "test_rmse", "test_mase", "test_smape")
#: what stops jobs early: nothing, or asynchronous successive halving (:mod:`rnnkit.tasks.sweep.asha`)
PRUNE = ("none", "asha")
#: most jobs one sweep plans: beyond this a grid is a typo (a list pasted twice), and --random
#: samples from it instead
MAX_JOBS = 100_000


@dataclass(frozen=True)
class SweepConfig(Serialisable):
    """How a sweep runs its jobs.

    ``random`` picks that many distinct combinations of the grid (drawn with ``random_seed``)
    instead of every one (a grid with a range needs ``random`` or ``optuna``:
    :mod:`rnnkit.tasks.sweep.ranges`); ``optuna`` lets Optuna's TPE sampler (seeded with ``random_seed``; the
    ``optuna`` extra) choose that many, ``workers`` at a time, each batch from the scores of the
    ones before (:mod:`rnnkit.tasks.sweep.study`). ``per_series`` fits each series of a panel
    (``DataConfig.id_col``) alone, once per combination of the grid (:mod:`rnnkit.tasks.sweep.series`).
    ``workers`` jobs run at once, each in a process of its own with one torch thread (the fused
    trainer runs on one core); ``None`` is the CPUs this process may use.
    ``workers=1`` with the local executor runs the jobs one after another in this process (the
    sequential reference: the same run directories, byte for byte). ``executor="ray"`` runs each
    job as a Ray task of one CPU on the cluster at ``address`` (``"auto"``: the running one;
    ``None``: a local Ray of ``workers`` CPUs, started and stopped by the sweep). The leaderboard
    is ranked on ``rank_by``, lowest first (:data:`RANK_BY`; ``"auto"``: ``val_mase``, in the data's
    units whatever normalisation each job chose; a panel's global model: the mean over its series). ``prune="asha"`` stops jobs whose
    validation loss falls behind at rungs ``grace_epochs x reduction_factor^k`` epochs
    (:mod:`rnnkit.tasks.sweep.asha`).
    """

    random: Optional[int] = field(default=None, metadata={
        "help": "run this many combinations of the grid, drawn at random (no repeats), instead of every one; "
                "a range's values drawn uniformly (log-uniformly with :log)",
        "metavar": "N", "off": "every combination"})
    optuna: Optional[int] = field(default=None, metadata={
        "help": "run this many distinct combinations of the grid chosen by Optuna's TPE sampler, --workers at a "
                "time, each batch from the --rank-by scores of the ones before (pip install 'rnnkit[optuna]')",
        "metavar": "N", "off": "every combination"})
    random_seed: int = field(default=0, metadata={"help": "seed of the --random draw and of --optuna's sampler",
                                                  "metavar": "N"})
    per_series: bool = field(default=False, metadata={
        "help": "DATA is a panel (--id-col): fit each series alone, one job per series (and per combination of "
                "the grid, if any), instead of one global model"})
    workers: Optional[int] = field(default=None, metadata={
        "help": "jobs run at once, each a process with one torch thread; 1 = one after another in this process",
        "metavar": "N", "off": "the usable CPUs"})
    executor: str = field(default="local", metadata={
        "help": "local: processes on this machine; ray: tasks on a Ray cluster (pip install rnnkit[ray])",
        "choices": EXECUTORS})
    address: Optional[str] = field(default=None, metadata={
        "help": "--executor ray: the cluster to join (auto = the running one)",
        "metavar": "ADDR", "off": "a local Ray of --workers CPUs"})
    prune: str = field(default="none", metadata={
        "help": "asha: stop jobs early by asynchronous successive halving (as Ray Tune's ASHA): at epochs "
                "grace x factor^k a job whose best validation loss is not among the best 1/factor of the jobs that "
                "reached that epoch before it stops there (a pruned row, no run directory)", "choices": PRUNE})
    grace_epochs: int = field(default=5, metadata={
        "help": "--prune asha: the first rung, in epochs (no job is stopped before it)", "metavar": "N"})
    reduction_factor: int = field(default=4, metadata={
        "help": "--prune asha: rungs at grace x factor^k epochs; a job goes on from a rung when its loss is among "
                "the best 1/factor there", "metavar": "F"})
    rank_by: str = field(default="auto", metadata={
        "help": "the leaderboard's order, lowest first: val_loss is the best validation loss of the run's "
                "history (in the network's units, which differ between jobs that normalise the data differently); "
                "val_* score the validation rows and test_* the test rows in the data's units; auto: val_mase",
        "choices": ("auto", *RANK_BY)})

    def __post_init__(self) -> None:
        for name in ("random", "optuna"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        if self.random is not None and self.optuna is not None:
            raise ConfigError("random draws the combinations at random, optuna lets Optuna choose them: pass one "
                              "of --random and --optuna")
        if not isinstance(self.per_series, bool):
            raise ConfigError(f"per_series must be true or false; got {self.per_series!r}")
        if self.optuna is not None and self.per_series:
            raise ConfigError("optuna searches one grid for one data set; per_series fits every series of a panel: "
                              "one study per series is not done yet, so pass one of --optuna and --per-series")
        if not isinstance(self.random_seed, int) or isinstance(self.random_seed, bool) \
                or not 0 <= self.random_seed <= MAX_SEED:
            raise ConfigError(f"random_seed must be an integer in [0, 2^63 - 1]; got {self.random_seed!r}")
        if self.workers is not None:
            check_positive("workers", self.workers)
        check_choice("executor", self.executor, EXECUTORS)
        check_choice("rank_by", self.rank_by, ("auto", *RANK_BY))
        check_choice("prune", self.prune, PRUNE)
        check_positive("grace_epochs", self.grace_epochs)
        if not isinstance(self.reduction_factor, int) or isinstance(self.reduction_factor, bool) \
                or self.reduction_factor < 2:
            raise ConfigError(f"reduction_factor must be an integer >= 2; got {self.reduction_factor!r}")
        if self.prune != "none" and self.per_series:
            raise ConfigError("prune compares the jobs' validation losses; --per-series jobs fit different series, "
                              "whose losses do not compare: drop --prune")
        if self.address is not None:
            if not isinstance(self.address, str) or not self.address.strip():
                raise ConfigError(f"address must name a Ray cluster (such as auto or HOST:PORT); got {self.address!r}")
            if self.executor != "ray":
                raise ConfigError("address names a Ray cluster; pass executor='ray' (--executor ray) with it, "
                                  "or drop the address")
