"""What a sweep's fork server imports once, before it forks each worker (see
:mod:`rnnkit.tasks.sweep.executors`): every module a job uses, so that a worker starts with them
loaded instead of spending seconds importing them. Imports only: nothing here computes or starts a
thread (the server forks after it)."""

import matplotlib

matplotlib.use("Agg", force=True)  # the run directory's plots; never a window

import matplotlib.pyplot  # noqa: E402,F401
import torch._dynamo  # noqa: E402,F401  (torch's optimisers import it on first use)

from ..forecast import panel_run, run, workflow  # noqa: E402,F401
from . import job  # noqa: E402,F401
