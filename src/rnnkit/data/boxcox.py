"""Variance-stabilising target transforms: log and Box-Cox, exactly invertible, saved in the run.

A series whose swings grow with its level (monthly sales, passengers) is easier to forecast
after a log or Box-Cox transform, which makes the seasonal swings about constant; forecasts are
mapped back with the exact inverse. ``"auto"`` picks the transform from the training rows with
Guerrero's method (Guerrero 1993, as the forecast and statsforecast packages do): the lambda that
makes the ratio of each season's standard deviation to its mean ** (1 - lambda) most nearly
constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["TargetTransform", "TRANSFORMS", "guerrero_lambda"]

TRANSFORMS = ("auto", "none", "log", "boxcox")
#: lambdas "auto" and "boxcox" choose between; "auto" keeps the series as it is unless Guerrero's
#: lambda is clearly below 1 (the variance clearly grows with the level)
_GRID = np.linspace(-1.0, 2.0, 61)
_AUTO_BELOW = 0.5


def guerrero_lambda(y: np.ndarray, period: int) -> float:
    """Guerrero's Box-Cox lambda for positive ``y (N,)`` with seasons of ``period`` rows (at least 2)."""
    period = max(int(period), 2)
    n = len(y) // period
    if n < 2:
        return 1.0
    chunks = np.asarray(y[len(y) - n * period:], dtype=np.float64).reshape(n, period)  # the last whole seasons
    mu, sd = chunks.mean(axis=1), chunks.std(axis=1, ddof=1)
    if not (mu > 0).all() or not (sd > 0).all():
        return 1.0
    ratio = sd[None, :] / mu[None, :] ** (1.0 - _GRID[:, None])  # (lambdas, seasons)
    cv = ratio.std(axis=1, ddof=1) / ratio.mean(axis=1)
    return float(_GRID[int(np.argmin(cv))])


@dataclass(frozen=True)
class TargetTransform:
    """``y -> (y ** lam - 1) / lam`` (``log y`` at ``lam = 0``) per target column; ``lam = 1`` with
    ``name="none"`` is the identity. Only defined for positive values."""

    name: str = "none"
    lam: float = 1.0

    def __post_init__(self) -> None:
        expected = {"none": 1.0, "log": 0.0}.get(self.name)
        if self.name not in TRANSFORMS[1:] or not np.isfinite(self.lam) or expected not in (None, self.lam):
            raise ConfigError(f"target transform {self.name!r} with lambda {self.lam!r} is not one rnnkit makes "
                              "(none: 1, log: 0, boxcox: a finite lambda)")

    @classmethod
    def choose(cls, kind: str, y_train: np.ndarray, period: int) -> "TargetTransform":
        """The transform ``kind`` asks for, fitted on the training target rows ``(N, C)``."""
        if kind not in TRANSFORMS:
            raise ConfigError(f"unknown target transform {kind!r}; use one of {', '.join(TRANSFORMS)}")
        y = np.asarray(y_train, dtype=np.float64)
        positive = bool((y > 0).all())
        if kind == "none" or (kind == "auto" and not positive):
            return cls()
        if not positive:
            raise DataError(f"transform {kind!r} needs positive values, but the training rows hold values down to "
                            f"{y.min():g}; use --transform none (or auto, which leaves such series as they are)")
        if kind == "log":
            return cls("log", 0.0)
        period = period if period > 1 else 4  # non-seasonal: judge the spread over blocks of a few rows
        lams = [guerrero_lambda(y[:, c], period) for c in range(y.shape[1])]
        lam = float(np.median(lams))
        if kind == "auto":
            return cls("log", 0.0) if lam < _AUTO_BELOW else cls()
        return cls("boxcox", round(lam, 2))

    def forward(self, y: np.ndarray) -> np.ndarray:
        if self.name == "none":
            return y
        if (np.asarray(y) <= 0).any():
            raise DataError(f"the {self.name} transform of this run needs positive values, but the data has values "
                            f"down to {np.min(y):g}; the run cannot forecast this series")
        return np.log(y) if self.lam == 0 else (np.power(y, self.lam) - 1.0) / self.lam

    def inverse(self, z: np.ndarray) -> np.ndarray:
        if self.name == "none":
            return z
        if self.lam == 0:
            with np.errstate(over="ignore"):
                return np.exp(z)
        base = np.maximum(self.lam * z + 1.0, 0.0)  # below 0 the inverse does not exist: the forecast is 0
        with np.errstate(over="ignore"):
            return np.power(base, 1.0 / self.lam)
