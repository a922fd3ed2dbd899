"""What a sweep's fork server imports once, before it forks each worker (see
:mod:`rnnkit.tasks.sweep.executors`): every module a job uses, so that a worker starts with them
loaded instead of spending seconds importing them. Imports only: nothing here computes or starts a
thread (the server forks after it)."""

import matplotlib

matplotlib.use("Agg", force=True)  # the run directory's plots; never a window

import matplotlib.pyplot  # noqa: E402,F401

# Not torch._dynamo (about 2 s of imports): torch's optimisers import it when built, and a job built
# one on every fit until the fused trainer stopped needing one (training.schedules). Now only a job
# that trains in the torch loop imports it, once per worker, in parallel on the workers. Measured
# with `rnnkit sweep --workers 2` on 2 cores (benchmarks/suite_sweep.py's 16-job grid, interleaved
# pairs): without it here the fused grid ran 0.2 to 1.7 s faster in each of the 5 pairs timed on an
# otherwise idle machine; the same grid with --engine torch (2 epochs, a loaded machine) showed no
# difference above the noise (median of 4 pairs 0.6 s faster without it).

from ..forecast import panel_run, run, workflow  # noqa: E402,F401
from . import job  # noqa: E402,F401
