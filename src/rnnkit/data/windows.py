"""Cutting aligned input and target rows into supervised (lookback, horizon) windows."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError, ShapeError

__all__ = ["make_windows"]


def make_windows(inputs: np.ndarray, targets: np.ndarray, lookback: int, horizon: int,
                 stride: int = 1, start: int = 0,
                 end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut aligned input and target rows into supervised windows.

    Window ``w`` starts at row ``s = s0 + w * stride`` and pairs ``X[w] = inputs[s : s + L]``
    with ``Y[w] = targets[s + L : s + L + H]`` (L = lookback, H = horizon).
    Only windows whose *target* rows all lie in ``[start, end)`` are made, but their input rows
    may reach back before ``start``: validation and test windows use the end of the previous
    part as context, so no target row is lost at a split. ``s0 = max(0, start - lookback)``.

    Args:
        inputs: (N, F_in) rows, usually scaled targets + covariates.
        targets: (N, F_out) rows, usually the scaled target columns.
        lookback, horizon, stride: window length, forecast length, step between windows (>= 1).
        start, end: target rows to cover, 0 <= start < end <= N; end=None means N.

    Returns:
        X (W, lookback, F_in) and Y (W, horizon, F_out), float64, C-contiguous copies.

    Raises:
        ConfigError: lookback, horizon or stride below 1, or start/end out of range.
        ShapeError: inputs or targets not 2-D, or different numbers of rows.
        DataError: too few rows for a single window.
    """
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    for name, value in (("lookback", lookback), ("horizon", horizon), ("stride", stride)):
        if int(value) != value or value < 1:
            raise ConfigError(f"{name}={value} must be a whole number of at least 1")
    if x.ndim != 2 or y.ndim != 2:
        raise ShapeError(f"inputs and targets must be 2-D (N rows, F columns), got shapes "
                         f"{x.shape} and {y.shape}; reshape a single series with .reshape(-1, 1)")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ShapeError(f"inputs have {n} rows but targets have {y.shape[0]}; they must align")
    end = n if end is None else end
    if not 0 <= start < end <= n:
        raise ConfigError(f"start={start}, end={end} must satisfy 0 <= start < end <= {n}")
    first = max(0, start - lookback)
    last = end - lookback - horizon  # the last allowed window start
    if last < first:
        have = end - max(start, lookback)
        if start == 0 and end == n:
            msg = f"lookback {lookback} + horizon {horizon} needs at least " \
                  f"{lookback + horizon} rows, but there are {n}"
        else:
            msg = (f"rows [{start}, {end}) leave {max(have, 0)} target row(s) after the "
                   f"lookback of {lookback}, but horizon {horizon} needs {horizon}")
        raise DataError(f"too few rows for one window: {msg}; use a smaller --lookback or "
                        f"--horizon, or more data")
    s = np.arange(first, last + 1, stride)  # (W,)
    X = x[s[:, None] + np.arange(lookback)]  # (W, lookback, F_in)
    Y = y[s[:, None] + lookback + np.arange(horizon)]  # (W, horizon, F_out)
    return np.ascontiguousarray(X), np.ascontiguousarray(Y)
