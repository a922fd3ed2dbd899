"""Forecast and classification scores, naive baselines, and a plain-text results table.

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
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import ConfigError, DataError, ShapeError

__all__ = [
    "mae", "rmse", "mape", "smape", "mase", "forecast_metrics", "last_value_forecast",
    "seasonal_naive_forecast", "accuracy", "bits_per_char", "format_table",
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


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of equal labels. ``y_pred`` may instead hold scores with one extra last axis
    (classes); its argmax is taken."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if p.ndim == t.ndim + 1:
        p = p.argmax(axis=-1)  # (..., K) scores -> (...) labels
    if t.shape != p.shape:
        raise ShapeError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}; pass "
                         f"labels of the same shape, or scores with one extra class axis")
    if t.size == 0:
        raise ShapeError("y_true and y_pred are empty; there is nothing to score")
    return float(np.mean(t == p))


def bits_per_char(mean_nll_nats: float) -> float:
    """Convert a mean negative log-likelihood per character from nats to bits: nll / ln 2."""
    return float(mean_nll_nats) / math.log(2.0)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float, np.floating, np.integer)):
        v = float(value)
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(value)


def format_table(rows: Mapping[str, Mapping[str, float]],
                 columns: Sequence[str] | None = None) -> str:
    """A plain-text table, one row per model, one column per metric, numbers right-aligned.

    Args:
        rows: ``{"lstm": {"mae": 1.2, ...}, "last value": {...}}``, printed in this order.
        columns: metrics to show, in order; by default every metric that appears, in
            ``METRIC_NAMES`` order first. A metric a row lacks prints as ``-``.

    Example::

        model          mae    rmse
        lstm        1.2000  1.5000
        last value  2.0000  2.5000
    """
    if columns is None:
        seen = [k for row in rows.values() for k in row]
        columns = [c for c in METRIC_NAMES if c in seen]
        columns += [c for c in dict.fromkeys(seen) if c not in columns]
    header = ["model", *columns]
    body = [[str(name), *(_cell(metrics.get(c)) for c in columns)]
            for name, metrics in rows.items()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        first = r[0].ljust(widths[0])
        rest = [cell.rjust(w) for cell, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join(lines)


# --- classification scores (appended for issue 7) ---------------------------------------------
#
# Labels are integer class indices 0..K-1. With C the confusion matrix (rows: true class, columns:
# predicted class), for class k: precision_k = C[k,k] / sum_i C[i,k], recall_k = C[k,k] / sum_j C[k,j],
# F1_k = 2 precision_k recall_k / (precision_k + recall_k); a 0/0 counts as 0 (scikit-learn's
# ``zero_division=0``). Balanced accuracy is the mean recall over the classes present in y_true;
# macro F1 the mean F1 over the classes present in y_true or y_pred (both as scikit-learn).


def _labels_pair(y_true, y_pred, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if p.ndim == t.ndim + 1:
        p = p.argmax(axis=-1)  # (N, K) scores -> (N,) labels
    if t.shape != p.shape or t.ndim != 1:
        raise ShapeError(f"y_true {t.shape} and y_pred {p.shape} must be 1-D arrays of equal length "
                         "(or y_pred scores with one extra class axis)")
    if t.size == 0:
        raise ShapeError("y_true and y_pred are empty; there is nothing to score")
    if not (np.issubdtype(t.dtype, np.integer) and np.issubdtype(p.dtype, np.integer)):
        raise ShapeError("classification labels must be integer class indices 0..K-1")
    k = int(max(t.max(), p.max())) + 1 if n_classes is None else int(n_classes)
    if min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k:
        raise ShapeError(f"class indices must lie in [0, {k}); got values in [{min(t.min(), p.min())}, "
                         f"{max(t.max(), p.max())}]")
    return t.astype(np.int64), p.astype(np.int64), k


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """``(K, K)`` counts: row = true class, column = predicted class."""
    t, p, k = _labels_pair(y_true, y_pred, n_classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    pred, true = cm.sum(0).astype(np.float64), cm.sum(1).astype(np.float64)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    s = precision + recall
    f1 = np.divide(2 * precision * recall, s, out=np.zeros_like(tp), where=s > 0)
    return precision, recall, f1


def balanced_accuracy(y_true, y_pred, n_classes: int | None = None) -> float:
    """Mean recall over the classes that occur in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = cm.sum(1) > 0
    return float(_per_class(cm)[1][present].mean())


def macro_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    """Unweighted mean F1 over the classes that occur in ``y_true`` or ``y_pred``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = (cm.sum(1) + cm.sum(0)) > 0
    return float(_per_class(cm)[2][present].mean())


def classification_report(y_true, y_pred, labels: Sequence[str]) -> dict:
    """Every classification score at once, JSON-ready.

    Returns ``{"n", "accuracy", "balanced_accuracy", "macro_f1", "labels", "confusion_matrix",
    "per_class": {label: {"precision", "recall", "f1", "support"}}}``.
    """
    t, p, k = _labels_pair(y_true, y_pred, len(labels))
    cm = confusion_matrix(t, p, k)
    precision, recall, f1 = _per_class(cm)
    return {"n": int(t.size), "accuracy": accuracy(t, p), "balanced_accuracy": balanced_accuracy(t, p, k),
            "macro_f1": macro_f1(t, p, k), "labels": [str(x) for x in labels],
            "confusion_matrix": cm.tolist(),
            "per_class": {str(lab): {"precision": float(precision[i]), "recall": float(recall[i]),
                                     "f1": float(f1[i]), "support": int(cm[i].sum())}
                          for i, lab in enumerate(labels)}}


def format_confusion(cm, labels: Sequence[str]) -> str:
    """A confusion matrix as text: one row per true class, one column per predicted class."""
    cm = np.asarray(cm)
    names = [str(x) for x in labels]
    w0 = max(len("true \\ predicted"), *(len(n) for n in names))
    widths = [max(len(n), len(str(int(cm[:, j].max()))) if cm.size else 1) for j, n in enumerate(names)]
    lines = ["true \\ predicted".ljust(w0) + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths))]
    for i, n in enumerate(names):
        lines.append(n.ljust(w0) + "  " + "  ".join(str(int(v)).rjust(w) for v, w in zip(cm[i], widths)))
    return "\n".join(lines)


__all__ += ["confusion_matrix", "balanced_accuracy", "macro_f1", "classification_report", "format_confusion"]
