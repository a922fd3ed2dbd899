"""Known future inputs: what is known in advance about the rows a forecaster predicts.

Two kinds exist: the *future covariates* (columns of the data whose values are known ahead, such as
a price, a promotion or a holiday flag; ``DataConfig.future_covariates``) and the *calendar
features* of each row's time stamp (:mod:`rnnkit.data.calendar`; ``DataConfig.calendar``). Both are
one row of ``K`` numbers per time step, the covariates (in the run's scaled units) first. They
reach the network as extra inputs, in one of two layouts:

* **direct** models read the context window and emit the whole horizon at once, so what is known
  about the horizon must reach them before the head. The input runs on over the horizon: ``L``
  context steps (values: targets and past covariates; then the step's known inputs; a 0 flag)
  followed by ``H`` horizon steps (zeros where the values are unknown, the future rows' known
  inputs, a 1 flag), and the head reads the recurrent layer's output after the last step.
* **recursive** models predict one step at a time, so each step's input carries the known inputs
  of the step it predicts: step ``t`` reads the values of row ``t`` and the known inputs of row
  ``t + 1``, in training as in generation, where each forecast is fed back with the known inputs
  of the next row.

Either way the network stays a recurrent layer and a linear head, so the native kernels and the
fused trainer train it as before. The functions here are general: :func:`known_rows` builds the
rows of one series (its own stamps and covariate values), :func:`known_windows` cuts the block of
any window starts out of them, and :func:`model_input` lays it out for either kind of model; a
panel of series calls the first two once per series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...data.calendar import calendar_features, future_index
from ...errors import ConfigError, DataError

__all__ = ["CALENDAR", "calendar_width", "known_width", "known_names", "known_rows", "known_windows",
           "model_input", "generation_inputs", "resolve_calendar"]

CALENDAR = ("none", "sincos", "onehot")


def calendar_width(freq: str | None, kind: str) -> int:
    """The number of calendar features ``kind`` gives at ``freq`` (0 for ``"none"`` and for yearly data)."""
    if kind == "none" or not freq:
        return 0
    stamps = pd.date_range("2001-01-01", periods=2, freq=freq)
    return calendar_features(stamps, freq, kind)[0].shape[1]


def known_names(freq: str | None, calendar: str, future_covariates: tuple[str, ...] = ()) -> list[str]:
    """The names of the known inputs per step, in the network's order: the future covariates, then
    the calendar features (``month_sin``, ...)."""
    names = list(future_covariates)
    if calendar != "none" and freq and calendar_width(freq, calendar):
        names += calendar_features(pd.date_range("2001-01-01", periods=2, freq=freq), freq, calendar)[1]
    return names


def known_width(freq: str | None, calendar: str, n_future: int = 0, recursive: bool = False) -> int:
    """Features per input step the known inputs add: the future covariates' and the calendar's, plus
    a direct model's future flag (0 without any known input)."""
    K = n_future + calendar_width(freq, calendar)
    return K + 1 if K and not recursive else K


def known_rows(index: pd.Index, freq: str | None, calendar: str, covariates: np.ndarray | None = None,
               steps: int = 0) -> np.ndarray | None:
    """The known inputs of every row of one series, ``(N + steps, K)``: its ``N`` rows (stamps
    ``index``) and the ``steps`` rows after them (the stamps that follow at ``freq``).

    ``covariates`` are the future covariates' values for all ``N + steps`` rows, in the network's
    units, ``(N + steps, Kc)``; the calendar features ``calendar`` of the stamps follow them. None
    when there is neither.
    """
    parts = []
    if covariates is not None and covariates.shape[1]:
        if len(covariates) != len(index) + steps:
            raise ConfigError(f"the future covariates cover {len(covariates)} rows; the known inputs need "
                              f"{len(index) + steps} ({len(index)} of the data and {steps} after it)")
        parts.append(np.asarray(covariates, dtype=np.float64))
    if calendar != "none" and calendar_width(freq, calendar):
        stamps = index.append(future_index(index, freq, steps)) if steps else index  # (N + steps,)
        parts.append(calendar_features(stamps, freq, calendar)[0])
    return np.concatenate(parts, axis=1) if parts else None


def known_windows(rows: np.ndarray | None, starts, lookback: int, horizon: int) -> np.ndarray | None:
    """The known inputs of windows whose targets start at rows ``starts``: ``(W, lookback + horizon,
    K)``, the rows ``s - lookback .. s + horizon - 1`` of :func:`known_rows`'s ``rows`` for each start
    ``s``. None when ``rows`` is None."""
    if rows is None:
        return None
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) and (starts.min() < lookback or starts.max() + horizon > len(rows)):
        need = int(starts.max()) + horizon - len(rows)
        raise DataError(f"the known inputs end {need} row(s) before the last window's horizon; forecasting "
                        "past the data needs the future covariates' values of those rows (--future FILE)")
    idx = starts[:, None] - lookback + np.arange(lookback + horizon)  # (W, L + H)
    return rows[idx]


def model_input(x: np.ndarray, known: np.ndarray | None, n_values: int, recursive: bool) -> np.ndarray:
    """The network's input from context windows ``x (W, L, F)`` (network units) and their known
    inputs ``known (W, L + H, K)`` (:func:`known_windows`); ``x`` itself when there are none.

    The network reads the first ``n_values`` columns of ``x`` as values (targets, then past
    covariates; the future covariates' own columns arrive through ``known``). Direct:
    ``(W, L + H, n_values + K + 1)``, the values then zeros over the horizon, the known inputs and the
    future flag. Recursive: ``(W, L, n_values + K)``, each step's values and the next row's known
    inputs (the last step carries the first target row's).
    """
    if known is None:
        return x
    W, L, _ = x.shape
    values = x[..., :n_values]
    if recursive:
        return np.concatenate([values, known[:, 1:L + 1]], axis=2)
    H = known.shape[1] - L
    values = np.concatenate([values, np.zeros((W, H, n_values))], axis=1)  # (W, L + H, V): the future is unknown
    flag = np.broadcast_to((np.arange(L + H) >= L)[None, :, None], (W, L + H, 1)).astype(np.float64)
    return np.concatenate([values, known, flag], axis=2)


def generation_inputs(known: np.ndarray, lookback: int, horizon: int) -> np.ndarray:
    """What a recursive model feeds back with its forecasts ``2 .. horizon``: the known inputs of the
    rows after the first target row, ``(W, horizon - 1, K)`` from ``known (W, lookback + horizon', K)``."""
    if known.shape[1] < lookback + horizon:
        raise ConfigError(f"the known inputs cover {known.shape[1] - lookback} forecast step(s); {horizon} "
                          "were asked for")
    return known[:, lookback + 1:lookback + horizon]


def resolve_calendar(dc, data) -> str:
    """The calendar features ``dc`` asks for, checked: they need dated rows, and are none at a
    frequency without a cycle (yearly). Direct models read them over the horizon, recursive ones
    at each step. ``dc`` is a :class:`~.config.DataConfig`, ``data`` a
    :class:`~rnnkit.data.series.SeriesData`.

    They are off by default: measured on ``make quality`` (14 real series), sin/cos calendar
    features on top of the seasonal skip gave a geo-mean relative MASE of 0.847 against 0.820
    without them: where the lookback holds a season, the naive skip already carries the cycle."""
    dated = isinstance(data.frame.index, pd.DatetimeIndex) and bool(data.freq)
    if dc.calendar != "none" and dated and not known_width(data.freq, dc.calendar):
        return "none"  # yearly data: no cycle to describe
    if dc.calendar != "none" and not dated:
        raise ConfigError(f"calendar={dc.calendar!r} needs dated rows at a regular frequency; pass --time-col (or "
                          "use --calendar none)")
    return dc.calendar
