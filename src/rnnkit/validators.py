"""The validators the settings are built with: each refuses a bad value with a :class:`ConfigError`
that names the field and the allowed values (a choice, a positive integer, a finite real number in a
range, a fraction, quantile levels, an ensemble's size, a device name), and :func:`refuse_setting`,
the message of a setting a job does not use. :mod:`rnnkit.config` (``ModelConfig``, ``TrainConfig``)
and each job's ``tasks/X/config.py`` validate with them; ``rnnkit.config`` re-exports them.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["check_choice", "check_positive", "check_ensemble", "check_real", "check_levels", "check_fraction",
           "check_device_name", "refuse_setting", "MAX_ENSEMBLE", "DEVICES_HELP"]

#: most members an ensemble (of forecasters or classifiers) may have: beyond a few dozen their
#: combined prediction no longer moves
MAX_ENSEMBLE = 100


def check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def check_positive(name: str, value: Any, zero_ok: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if zero_ok else value >= 1)
    if not ok:
        raise ConfigError(f"{name} must be an integer {'>= 0' if zero_ok else '>= 1'}; got {value!r}")


def check_ensemble(value: Any) -> None:
    """An ensemble's number of members: an integer in [1, :data:`MAX_ENSEMBLE`]."""
    check_positive("ensemble", value)
    if value > MAX_ENSEMBLE:
        raise ConfigError(f"ensemble={value} is more members than rnnkit trains (at most {MAX_ENSEMBLE}); "
                          "pass a smaller number")


def check_real(name: str, value: Any, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False,
          what: str = "a number") -> None:
    """``value`` must be a finite real number in the interval from ``lo`` to ``hi`` (open or closed
    at each end as given): NaN, infinities, booleans and strings are refused with the range."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(f"{name} must be {what} in {rng}; got {value!r}")


def check_levels(levels, what: str = "quantile levels") -> np.ndarray:
    """``levels`` as a float array, strictly increasing inside (0, 1); ConfigError otherwise.
    (Here, with the other validators, because ModelConfig.quantiles uses it;
    :mod:`rnnkit.tasks.forecast.probabilistic` scores with it.)"""
    q = np.asarray(levels, dtype=np.float64).reshape(-1)
    if q.size == 0 or not np.all((q > 0) & (q < 1)) or np.any(np.diff(q) <= 0):
        raise ConfigError(f"{what} must be increasing numbers strictly between 0 and 1; got {list(map(float, q))}")
    return q


def check_fraction(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be a fraction in [0, 1); got {value!r}")


def refuse_setting(job: str, what: str, why: str) -> None:
    """Raise :class:`ConfigError`: the setting ``what`` does not apply to ``job``, because ``why``.
    Each job refuses what it would ignore or replace (its ``tasks/X/config.py``'s
    ``refuse_unsupported``); a setting at its dataclass default counts as "not set"."""
    raise ConfigError(f"{what} does not apply to {job}: {why}")


#: TrainConfig.device's names (rnnkit/training/devices.py resolves them)
DEVICES_HELP = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name) -> None:
    """Refuse a device name outside :data:`DEVICES_HELP` (the syntax only: whether this machine has
    the device is checked when training starts, so a run's settings load on any machine)."""
    if name is not None and (not isinstance(name, str) or not _DEVICE.match(name)):
        raise ConfigError(f"device must be one of {DEVICES_HELP} (or None: where the model is); got {name!r}")
