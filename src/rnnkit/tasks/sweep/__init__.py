"""Sweeps: many independent forecasting fits at once (a grid, random draws from it, Optuna's choices
from it, or one fit per series of a panel), each in a process of its own, ranked in a
leaderboard: :func:`rnnkit.sweep` and ``rnnkit sweep``. See
:mod:`rnnkit.tasks.sweep.workflow` (kept light: ``rnnkit --help`` imports the command line only)."""
