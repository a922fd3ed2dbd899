"""Forecast scores and the naive baselines every forecast is compared with.

All point metrics take NumPy arrays of the same shape and reduce over every element. Errors are
``e = y_true - y_pred``:

* MAE   = mean |e|
* RMSE  = sqrt(mean e^2)
* MAPE  = 100 * mean(|e| / |y_true|) over the points where y_true != 0 (nan if there are none)
* sMAPE = mean(200 * |e| / (|y_true| + |y_pred|)), a 0/0 term counting as 0; in [0, 200]
* MASE  = mean |e| / mean |y_train[t] - y_train[t - m]| (Hyndman and Koehler, 2006): the error
  relative to the in-sample seasonal-naive forecast with period m. For several columns
  (y_train of shape (N, C), the last axis of y_true being C) each column is scaled by its own
  training differences and the C scaled errors are averaged. A zero scale gives nan.

Forecast arrays are (W, H, C): windows, horizon steps, target columns.
"""

from __future__ import annotations

import math
import numpy as np

from ...errors import ConfigError, DataError, ShapeError

__all__ = [
    "mae", "rmse", "mape", "smape", "mase", "forecast_metrics", "last_value_forecast",
    "seasonal_naive_forecast", "METRIC_NAMES",
]

METRIC_NAMES = ("mae", "rmse", "mape", "smape", "mase")


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ShapeError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}; "
                         f"they must match")
    if t.size == 0:
        raise ShapeError("y_true and y_pred are empty; there is nothing to score")
    return t, p


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over all elements."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error over all elements."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute percentage error in percent, skipping points where y_true == 0.

    Returns nan when every y_true is 0.
    """
    t, p = _pair(y_true, y_pred)
    keep = t != 0
    if not keep.any():
        return math.nan
    return float(100.0 * np.mean(np.abs(t[keep] - p[keep]) / np.abs(t[keep])))


def smape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean(200 |e| / (|y_true| + |y_pred|)), 0/0 counted as 0."""
    t, p = _pair(y_true, y_pred)
    num = 200.0 * np.abs(t - p)
    den = np.abs(t) + np.abs(p)
    terms = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    return float(np.mean(terms))


def _mase_scale(y_train: np.ndarray, m: int) -> np.ndarray:
    """Mean absolute m-step difference of the training series, per column: (C,)."""
    if int(m) != m or m < 1:
        raise ConfigError(f"m={m} must be a whole number of at least 1 (the seasonal period)")
    y = np.asarray(y_train, dtype=np.float64)
    if y.ndim not in (1, 2):
        raise ShapeError(f"y_train must be 1-D (N,) or 2-D (N, C), got shape {y.shape}")
    if y.shape[0] <= m:
        raise DataError(f"MASE with m={m} needs more than {m} training values, got "
                        f"{y.shape[0]}; use a smaller m or a longer training part")
    y = y.reshape(len(y), -1)  # (N,) -> (N, 1)
    return np.mean(np.abs(y[m:] - y[:-m]), axis=0)


def mase(y_true: np.ndarray, y_pred: np.ndarray, y_train: np.ndarray, m: int = 1) -> float:
    """Mean absolute scaled error (see the module docstring); nan if a scale is 0.

    Args:
        y_true, y_pred: matching shapes; with a 2-D ``y_train`` (N, C) the last axis must be C.
        y_train: the training part of the series, in the same units as y_true.
        m: seasonal period (1 = the naive one-step forecast).
    """
    t, p = _pair(y_true, y_pred)
    scale = _mase_scale(y_train, m)  # (C,)
    y_train_ndim = np.ndim(y_train)
    if y_train_ndim == 1:
        err = np.abs(t - p).reshape(-1, 1)  # everything is one series: (n, 1)
    else:
        if t.shape[-1] != len(scale):
            raise ShapeError(f"y_train has {len(scale)} column(s) but y_true's last axis has "
                             f"{t.shape[-1]}; pass the training values of the same columns")
        err = np.abs(t - p).reshape(-1, len(scale))  # (..., C) -> (n, C)
    if (scale == 0).any():
        return math.nan
    return float(np.mean(err.mean(axis=0) / scale))


def _all_metrics(t: np.ndarray, p: np.ndarray, y_train: np.ndarray, m: int) -> dict[str, float]:
    return {"mae": mae(t, p), "rmse": rmse(t, p), "mape": mape(t, p), "smape": smape(t, p),
            "mase": mase(t, p, y_train, m)}


def forecast_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_train: np.ndarray,
                     m: int = 1) -> dict[str, object]:
    """Every metric, overall and for each forecast step.

    Args:
        y_true, y_pred: (W, H, C) in original units (scaling undone).
        y_train: (N, C) or (N,) training values, for MASE.
        m: seasonal period for MASE.

    Returns:
        ``{"overall": {"mae", "rmse", "mape", "smape", "mase"}, "per_step": [H dicts]}`` of
        plain Python floats (nan where a metric is undefined; ``json`` writes it as NaN).
    """
    t, p = _pair(y_true, y_pred)
    if t.ndim != 3:
        raise ShapeError(f"forecast_metrics expects (windows, horizon, columns) arrays, got "
                         f"shape {t.shape}")
    y_train = np.asarray(y_train, dtype=np.float64)
    if y_train.ndim == 1 and t.shape[-1] != 1:
        y_train = y_train.reshape(-1, 1)  # so the column check below explains the mismatch
    return {"overall": _all_metrics(t, p, y_train, m),
            "per_step": [_all_metrics(t[:, h], p[:, h], y_train, m) for h in range(t.shape[1])]}


def _check_context(context: np.ndarray, horizon: int) -> np.ndarray:
    c = np.asarray(context, dtype=np.float64)
    if c.ndim != 3 or c.shape[1] == 0:
        raise ShapeError(f"context must be (windows, lookback, columns) with lookback >= 1, "
                         f"got shape {c.shape}")
    if int(horizon) != horizon or horizon < 1:
        raise ConfigError(f"horizon={horizon} must be a whole number of at least 1")
    return c


def last_value_forecast(context: np.ndarray, horizon: int) -> np.ndarray:
    """Naive forecast: repeat each window's last value. (W, L, C) -> (W, horizon, C)."""
    c = _check_context(context, horizon)
    return np.repeat(c[:, -1:, :], horizon, axis=1)  # (W, 1, C) -> (W, H, C)


def seasonal_naive_forecast(context: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """Seasonal naive forecast: step h repeats the value m steps earlier, cycling through the
    last m context values. (W, L, C) -> (W, horizon, C); needs L >= m."""
    c = _check_context(context, horizon)
    if int(m) != m or m < 1:
        raise ConfigError(f"m={m} must be a whole number of at least 1 (the seasonal period)")
    lookback = c.shape[1]
    if lookback < m:
        raise ConfigError(f"the seasonal naive forecast with m={m} needs a lookback of at least "
                          f"{m}, got {lookback}; raise --lookback or use the last-value baseline")
    steps = lookback - m + np.arange(horizon) % m  # (H,) context rows to repeat
    return c[:, steps, :]
