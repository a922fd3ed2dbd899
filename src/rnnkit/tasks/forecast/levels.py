"""Interval levels in percent and their split-conformal ranks: the arithmetic of
:mod:`rnnkit.tasks.forecast.conformal` that the settings check (:class:`~.config.SearchConfig`)
needs, in exact rational arithmetic (``95`` is 95, not the float nearest 0.95, so the rank of the
95 % level with 19 windows is exactly ``ceil(20 * 95 / 100) = 19``)."""

from __future__ import annotations

import math
from fractions import Fraction

from ...errors import ConfigError

__all__ = ["REFIT", "check_interval_levels", "level_name", "conformal_rank", "min_windows"]

#: how the calibration errors are made: the pipeline refitted before each origin (K fits), or once,
#: before the first, forecasting from all K (one fit; its model is staler for the later origins)
REFIT = ("each", "first")


def _exact(level) -> Fraction:
    return Fraction(str(float(level)))  # 95 -> 95, 99.9 -> 999/10: no binary rounding in the ranks


def check_interval_levels(levels) -> tuple[float, ...]:
    """``levels`` (percent) as increasing floats strictly between 0 and 100, each once; ConfigError otherwise."""
    try:
        values = tuple(float(v) for v in levels)
    except (TypeError, ValueError):
        raise ConfigError(f"interval levels must be numbers in percent, e.g. 80,95; got {levels!r}") from None
    if not values:
        raise ConfigError("give at least one interval level in percent, e.g. --intervals 80,95")
    for v in values:
        if not (math.isfinite(v) and 0 < v < 100):
            raise ConfigError(f"interval level {v:g} is not a coverage in percent strictly between 0 and 100 "
                              "(80 for an 80 % interval); pass e.g. --intervals 80,95")
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ConfigError(f"interval level {twice[0]:g} is given twice; name each level once, e.g. --intervals 80,95")
    return tuple(sorted(values))


def level_name(level: float) -> str:
    """``80.0`` -> ``"80"``, ``99.5`` -> ``"99.5"``: how a level is named in columns, metrics and files."""
    return f"{float(level):g}"


def conformal_rank(windows: int, level: float) -> int:
    """``ceil((K + 1) a / 100)``: which smallest calibration error is the half-width at level ``a``
    with K ``windows`` (more than K: the interval is unbounded)."""
    return math.ceil((windows + 1) * _exact(level) / 100)


def min_windows(levels) -> int:
    """The fewest calibration windows K for which every level's rank is at most K (its interval
    finite): ``ceil(a / (100 - a))`` for the highest level (80 -> 4, 95 -> 19)."""
    top = _exact(max(check_interval_levels(levels)))
    return max(1, math.ceil(top / (100 - top)))
