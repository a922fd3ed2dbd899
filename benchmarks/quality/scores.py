"""The accuracy measures of `make quality`, on plain numpy arrays (no forecasting library needed).

Definitions, as in the M4 competition (Makridakis et al., 2020):

- **MASE** = mean |y - f| over the horizon / mean |y_t - y_{t-m}| over the *training* part
  (the in-sample seasonal-naive error; m = 1 for non-seasonal series).
- **sMAPE** = 200/h * sum |y - f| / (|y| + |f|), in percent; a step where both are 0 counts 0.
- **relative MASE** = a method's MASE / seasonal naive's MASE on the same series; its geometric
  mean over the series is the headline number (below 1: better than seasonal naive).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from harness import geomean  # benchmarks/harness.py: positive finite values only, NaN when none

__all__ = ["seasonal_naive", "naive_drift", "mase_scale", "mase", "smape", "geomean", "relative_geomean", "wins",
           "worse_than", "accuracy", "summarise_forecasts"]


def seasonal_naive(y_train: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """Repeat the last observed season: f_{T+k} = y_{T+k-m*ceil(k/m)} (the last value for m = 1; also
    for a series shorter than one season)."""
    y = np.asarray(y_train, dtype=np.float64)
    m = m if len(y) >= m else 1
    season = y[-m:]
    return np.array([season[k % m] for k in range(horizon)])


def naive_drift(y_train: np.ndarray, horizon: int) -> np.ndarray:
    """The last value plus k times the mean step over the training part (the random walk with drift)."""
    y = np.asarray(y_train, dtype=np.float64)
    slope = (y[-1] - y[0]) / (len(y) - 1) if len(y) > 1 else 0.0
    return y[-1] + slope * np.arange(1, horizon + 1)


def mase_scale(y_train: np.ndarray, m: int) -> float:
    """Mean absolute seasonal difference of the training part (m falls back to 1 on a series shorter
    than two seasons); NaN when the training part is constant (MASE is then undefined)."""
    y = np.asarray(y_train, dtype=np.float64)
    m = m if len(y) > m else 1
    scale = float(np.mean(np.abs(y[m:] - y[:-m])))
    return scale if scale > 0 else math.nan


def mase(y_true: np.ndarray, y_pred: np.ndarray, scale: float) -> float:
    """Mean absolute error over the horizon divided by :func:`mase_scale`."""
    err = np.abs(np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64))
    return float(np.mean(err)) / scale


def smape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Symmetric MAPE in percent (0 to 200)."""
    y = np.asarray(y_true, dtype=np.float64)
    f = np.asarray(y_pred, dtype=np.float64)
    den = np.abs(y) + np.abs(f)
    term = np.divide(np.abs(y - f), den, out=np.zeros_like(den), where=den > 0)
    return float(200.0 * np.mean(term))


#: scores this close (relative) are one score: forecasts that agree up to floating-point rounding
#: (a transform and its exact inverse round-trip to ~1e-15) tie, in wins and in "worse than"
TIE_RTOL = 1e-9


def _tied(a: float, b: float) -> bool:
    return abs(a - b) <= TIE_RTOL * max(1.0, abs(a), abs(b))


def _finite(*values) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def relative_geomean(scores: Sequence[float], reference: Sequence[float]) -> float:
    """Geometric mean over the series of score / reference score (two aligned lists); a series where
    either is not positive and finite is left out."""
    return geomean([s / r for s, r in zip(scores, reference) if _finite(s, r) and s > 0 and r > 0])


def wins(table: Mapping[str, Sequence[float]]) -> dict[str, int]:
    """For each method (``table``: method -> one score per series, lower is better), on how many series
    it has the lowest score; methods tied with the best (:data:`TIE_RTOL`) all count a win, and
    a method without a finite score on a series is not in the running there."""
    names = list(table)
    count = dict.fromkeys(names, 0)
    n = len(next(iter(table.values()))) if table else 0
    for i in range(n):
        row = {k: table[k][i] for k in names if _finite(table[k][i])}
        if not row:
            continue
        best = min(row.values())
        for k, v in row.items():
            if v <= best or _tied(v, best):
                count[k] += 1
    return count


def worse_than(scores: Sequence[float], reference: Sequence[float]) -> int:
    """On how many series ``scores`` is above ``reference`` (both finite, not tied: :data:`TIE_RTOL`)."""
    return sum(1 for s, r in zip(scores, reference) if _finite(s, r) and s > r and not _tied(s, r))


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Share of equal labels (compared as strings, so 1 and '1' agree)."""
    y_true, y_pred = list(y_true), list(y_pred)
    if len(y_true) != len(y_pred) or not y_true:
        raise ValueError(f"accuracy needs two label lists of one non-zero length, got {len(y_true)} and {len(y_pred)}")
    return sum(str(a) == str(b) for a, b in zip(y_true, y_pred)) / len(y_true)


def summarise_forecasts(records: Sequence[Mapping], reference: str = "seasonal naive") -> dict[str, dict]:
    """Per contender over ``records`` (run.py's per-series results, each ``{"methods": {name: {"mase",
    "smape", "cpu_s", "failure"}}}``): geo-mean relative MASE, mean and median MASE, mean sMAPE, wins,
    series worse than ``reference``, failures, mean CPU seconds. Failed forecasts were already
    replaced by the reference's, so every contender is scored on the same series."""
    if not records:
        return {}
    names = list(records[0]["methods"])
    col = {k: {f: [r["methods"][k][f] for r in records] for f in ("mase", "smape", "cpu_s", "failure")} for k in names}
    nan = lambda v: math.nan if v is None else v  # noqa: E731  (None: a NaN that went through JSON)
    mase_of = {k: [nan(v) for v in col[k]["mase"]] for k in names}
    won = wins(mase_of)
    out = {}
    for k in names:
        m = [v for v in mase_of[k] if math.isfinite(v)]
        s = [v for v in map(nan, col[k]["smape"]) if math.isfinite(v)]
        out[k] = {"n": len(records), "geomean_rel_mase": relative_geomean(mase_of[k], mase_of[reference]),
                  "mean_mase": float(np.mean(m)) if m else math.nan,
                  "median_mase": float(np.median(m)) if m else math.nan,
                  "mean_smape": float(np.mean(s)) if s else math.nan, "wins": won[k],
                  "worse_than_reference": worse_than(mase_of[k], mase_of[reference]),
                  "failures": sum(f is not None for f in col[k]["failure"]),
                  "mean_cpu_s": float(np.mean(col[k]["cpu_s"]))}
    return out
