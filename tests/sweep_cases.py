"""What the sweep tests share: their quick forecasting settings and how they read a sweep's folder."""

from __future__ import annotations

import csv
import importlib.util
import os
from contextlib import contextmanager

import pytest

from rnnkit import DataConfig, ModelConfig, TrainConfig

DATA = DataConfig(source="builtin:sine", lookback=5, horizon=2)
MODEL = ModelConfig(hidden_size=4)
TRAIN = TrainConfig(epochs=3, batch_size=8, patience=0)
needs_optuna = pytest.mark.skipif(not importlib.util.find_spec("optuna"),
                                  reason="Optuna is not installed (pip install 'rnnkit[optuna]')")


def leaderboard(path):
    """The rows of ``path/leaderboard.csv``."""
    with open(path / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


def job_dirs(path):
    """The job folders of the sweep in ``path``, in order."""
    return sorted(n for n in os.listdir(path) if n.startswith("job-"))


def job_settings(result):
    """Each job's settings, in job order."""
    return [r["settings"] for r in sorted(result.rows, key=lambda r: r["job"])]


@contextmanager
def local_ray():
    """A local Ray of 2 CPUs for the block, its workers importing this rnnkit; the test is skipped
    (with the reason) where Ray is not installed or cannot start."""
    import rnnkit
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rnnkit[ray]')")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.path.dirname(os.path.dirname(rnnkit.__file__))}})
    except Exception as e:  # noqa: BLE001 - Ray's own errors: this machine cannot start it
        pytest.skip(f"Ray cannot start here: {type(e).__name__}: {e}")
    try:
        yield ray
    finally:
        ray.shutdown()
