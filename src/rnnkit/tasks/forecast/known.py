"""Known future inputs: calendar features over the forecast horizon, for direct forecasters.

A direct forecaster reads its context window and emits the whole horizon at once, so what is
known about the horizon in advance (its months, weekdays, hours) must reach it before the head.
It does as extra steps: the input sequence is the context (``L`` steps: targets, covariates and
their calendar features, with a 0 flag) followed by the horizon (``H`` steps: zeros where values
are unknown, the calendar features of the future stamps, a 1 flag), and the head reads the
recurrent layer's output after the last future step. The network stays a recurrent layer and a
linear head, so the native kernels and the fused trainer train it as before. The calendar
features come from :mod:`rnnkit.data.calendar` (sin/cos pairs or one-hot, chosen by frequency).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...data.calendar import calendar_features, future_index

__all__ = ["CALENDAR", "calendar_width", "known_windows", "extend"]

CALENDAR = ("none", "sincos", "onehot")


def calendar_width(freq: str | None, kind: str) -> int:
    """The number of calendar features ``kind`` gives at ``freq`` (0 for ``"none"`` and for yearly data)."""
    if kind == "none" or not freq:
        return 0
    stamps = pd.date_range("2001-01-01", periods=2, freq=freq)
    return calendar_features(stamps, freq, kind)[0].shape[1]


def known_windows(index: pd.Index, freq: str | None, kind: str, starts: np.ndarray, lookback: int,
                  horizon: int) -> np.ndarray | None:
    """Each window's known inputs ``(W, lookback + horizon, K + 1)``: the calendar features of the
    ``lookback`` stamps before each target start in ``starts`` and of the ``horizon`` stamps from it
    (past the end of ``index``, the stamps that follow at ``freq``), then the future flag. None when
    ``kind`` is ``"none"``."""
    if kind == "none" or calendar_width(freq, kind) == 0:
        return None
    stamps = index.append(future_index(index, freq, horizon))  # (N + H,)
    feats = calendar_features(stamps, freq, kind)[0]  # (N + H, K)
    rows = np.asarray(starts)[:, None] - lookback + np.arange(lookback + horizon)  # (W, L + H)
    flag = np.broadcast_to((np.arange(lookback + horizon) >= lookback)[None, :, None], (len(rows), lookback + horizon, 1))
    return np.concatenate([feats[rows], flag.astype(np.float64)], axis=2)


def extend(x: np.ndarray, known: np.ndarray | None) -> np.ndarray:
    """The network's input: context ``x (W, L, F)`` (in the network's units) and its known inputs
    ``(W, L + H, K + 1)`` -> ``(W, L + H, F + K + 1)``; ``x`` unchanged when there are none."""
    if known is None:
        return x
    W, L, F = x.shape
    H = known.shape[1] - L
    values = np.concatenate([x, np.zeros((W, H, F))], axis=1)  # (W, L + H, F): the future is unknown
    return np.concatenate([values, known], axis=2)
