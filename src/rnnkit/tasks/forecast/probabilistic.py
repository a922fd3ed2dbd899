"""Scores of forecast uncertainty: intervals and quantiles, in original units.

Shapes follow the point metrics (:mod:`.metrics`): ``y_true`` is ``(W, H, C)`` (windows, horizon
steps, target columns); an interval is a pair ``lo, hi`` of that shape; quantile forecasts are
``(W, H, C, Q)`` with ``levels`` the Q quantile levels in (0, 1), increasing.

* coverage = fraction of points with ``lo <= y <= hi`` (a nominal 80 % interval should cover
  about 0.8 of them)
* width    = mean ``hi - lo``
* pinball loss of level q: ``max(q (y - f), (q - 1)(y - f))``, whose expectation the q-quantile
  minimises (Koenker and Bassett, 1978)
* weighted quantile loss (WQL, as in GluonTS and the M5 uncertainty track's scaled form):
  ``2 * sum over points and levels of pinball / (Q * sum |y|)``
* CRPS, approximated from the quantiles: ``2 * mean over levels of the mean pinball loss``; with
  the levels evenly spread over (0, 1) this converges to the continuous ranked probability score
  (Gneiting and Raftery, 2007: CRPS is the integral over q of twice the pinball loss)
"""

from __future__ import annotations

import math

import numpy as np

from ...config import check_levels  # the validator ModelConfig.quantiles uses too
from ...errors import ShapeError

__all__ = ["coverage", "interval_width", "pinball", "weighted_quantile_loss", "crps_from_quantiles",
           "check_levels", "interval_scores", "quantile_scores"]


def _arrays(y_true, *others) -> list[np.ndarray]:
    arrays = [np.asarray(a, dtype=np.float64) for a in (y_true, *others)]
    if arrays[0].size == 0:
        raise ShapeError("y_true is empty; there is nothing to score")
    for a in arrays[1:]:
        if a.shape[:arrays[0].ndim] != arrays[0].shape:
            raise ShapeError(f"y_true has shape {arrays[0].shape} but a forecast has shape {a.shape}; they must match")
    return arrays


def coverage(y_true, lo, hi) -> float:
    """Fraction of points inside the closed interval ``[lo, hi]``."""
    t, lo, hi = _arrays(y_true, lo, hi)
    return float(np.mean((t >= lo) & (t <= hi)))


def interval_width(lo, hi) -> float:
    """Mean width ``hi - lo``."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return float(np.mean(hi - lo))


def pinball(y_true, quantiles, levels) -> np.ndarray:
    """Mean pinball loss of each level: ``(Q,)``, ``quantiles`` of shape ``y_true.shape + (Q,)``."""
    q = check_levels(levels)
    t, f = _arrays(y_true, quantiles)
    if f.shape != t.shape + (len(q),):
        raise ShapeError(f"quantile forecasts must have shape {t.shape + (len(q),)}; got {f.shape}")
    e = t[..., None] - f  # (..., Q)
    loss = np.maximum(q * e, (q - 1.0) * e)
    return loss.reshape(-1, len(q)).mean(axis=0)


def weighted_quantile_loss(y_true, quantiles, levels) -> float:
    """``2 sum pinball / (Q sum |y|)`` over every point and level (nan when every ``y`` is 0)."""
    t = np.asarray(y_true, dtype=np.float64)
    total = float(np.abs(t).sum())
    if total == 0:
        return math.nan
    per_level = pinball(t, quantiles, levels) * t.size  # (Q,) sums over points
    return float(2.0 * per_level.sum() / (len(per_level) * total))


def crps_from_quantiles(y_true, quantiles, levels) -> float:
    """CRPS approximated as twice the mean pinball loss over the levels."""
    return float(2.0 * pinball(y_true, quantiles, levels).mean())


def interval_scores(y_true, lo, hi) -> dict[str, float]:
    """``{"coverage", "width"}`` of one interval."""
    return {"coverage": coverage(y_true, lo, hi), "width": interval_width(lo, hi)}


def quantile_scores(y_true, quantiles, levels) -> dict[str, object]:
    """WQL, CRPS, each level's pinball loss, and the coverage and width of each central interval
    the levels hold (level q with level 1 - q, e.g. 0.1 and 0.9 -> ``"80"``)."""
    q = check_levels(levels)
    t, f = _arrays(y_true, quantiles)
    out: dict[str, object] = {"wql": weighted_quantile_loss(t, f, q), "crps": crps_from_quantiles(t, f, q),
                              "pinball": {f"{v:g}": float(p) for v, p in zip(q, pinball(t, f, q))},
                              "intervals": {}}
    for i, lo_level in enumerate(q):
        j = np.flatnonzero(np.isclose(q, 1.0 - lo_level))
        if lo_level < 0.5 and j.size:
            nominal = f"{round(100 * (1 - 2 * lo_level), 6):g}"
            out["intervals"][nominal] = interval_scores(t, f[..., i], f[..., int(j[0])])
    return out
