"""The jobs rnnkit runs, registered by kind: forecasting, sequence classification, character models.

Each job is a folder of the same shape (``config.py``, ``model.py``, ``workflow.py``, ``metrics.py``,
``run.py``, ``cli.py``, ...). :data:`JOBS` maps a run's kind (``config.json``'s ``"kind"``) to its
job: the command line module (``register(sub)``, ``COMMANDS``), which ``rnnkit.cli`` collects, and
the run loader, through which :func:`load_run` dispatches. A new job is one folder and one line here.

The command line modules are light (argparse and the config dataclasses); a job's run module loads
torch, so it is imported only when a run is loaded (``rnnkit --help`` stays fast).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from types import ModuleType

from ..training.rundir import consistent_read
from .classify import cli as classify_cli
from .forecast import cli as forecast_cli
from .sweep import cli as sweep_cli
from .text import cli as text_cli

__all__ = ["Job", "JOBS", "TOOLS", "load_run"]


@dataclass(frozen=True)
class Job:
    """One job: its kind, its command line module, and where its run loader lives."""

    kind: str
    cli: ModuleType | None  # None: the kind's commands are another job's (a panel run is a forecast's)
    run_module: str  # imported on first load (it imports torch)
    loader: str

    def load_run(self, path: str | os.PathLike):
        """Load a run directory of this job's kind."""
        return getattr(import_module(self.run_module), self.loader)(path)


#: kind -> job, in the order ``rnnkit --help`` lists their commands
JOBS: dict[str, Job] = {job.kind: job for job in [
    Job("forecast", forecast_cli, f"{__name__}.forecast.run", "load_forecast_run"),
    Job("panel", None, f"{__name__}.forecast.panel_load", "load_panel_run"),
    Job("classify", classify_cli, f"{__name__}.classify.run", "load_classifier_run"),
    Job("text", text_cli, f"{__name__}.text.run", "load_text_run"),
]}

#: command lines that run jobs rather than being one (``rnnkit sweep`` writes forecasting runs), after the jobs'
#: (``rnnkit export``, which loads runs of any kind, is added by rnnkit.cli: its module imports this one)
TOOLS: tuple[ModuleType, ...] = (sweep_cli,)


@consistent_read
def load_run(path: str | os.PathLike):
    """Load any run directory, ready to use: a :class:`~rnnkit.tasks.forecast.workflow.ForecastRun`, a
    :class:`~rnnkit.tasks.classify.workflow.ClassifierRun` or a :class:`~rnnkit.tasks.text.workflow.TextRun`
    by its kind (an unreadable or unknown kind is loaded as a forecast run, whose loader explains
    what is wrong).

    Predictions from the loaded run equal the original's bit for bit on the same machine.
    """
    from ..training.runs import run_kind  # start-up speed: reading a run loads torch
    return JOBS.get(run_kind(path), JOBS["forecast"]).load_run(path)
