"""Series data: read and validate a table, split it in time, scale it, cut it into windows.

Data flows one way (see DESIGN.md)::

    read_series -> split_series / split_at -> Scaler.fit(train rows) -> make_windows

Reading and the builtin series live in :mod:`rnnkit.datasets` and are re-exported here, so
``from rnnkit.data import read_series`` is the usual import. Row indices are 0-based
positions in the series everywhere in this module; messages about *files* count data rows from
1 (see :mod:`rnnkit.datasets._read`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .datasets import (BuiltinInfo, SeriesData, list_builtins, load_builtin, read_series,
                       series_from_frame)
from .errors import ConfigError, DataError, RnnkitError, ShapeError

__all__ = [
    "SeriesData", "read_series", "series_from_frame", "BuiltinInfo", "list_builtins",
    "load_builtin", "Split", "split_series", "split_at", "Scaler", "make_windows",
]


@dataclass(frozen=True)
class Split:
    """Chronological row ranges: train = [0, train_end), val = [train_end, val_end),
    test = [val_end, n). Any of val and test may be empty; train never is."""

    train_end: int
    val_end: int
    n: int

    def __post_init__(self) -> None:
        if not 0 < self.train_end <= self.val_end <= self.n:
            raise ConfigError(f"invalid split {self}: need 0 < train_end <= val_end <= n")

    @property
    def train(self) -> slice:
        return slice(0, self.train_end)

    @property
    def val(self) -> slice:
        return slice(self.train_end, self.val_end)

    @property
    def test(self) -> slice:
        return slice(self.val_end, self.n)


def _round_rows(n: int, frac: float) -> int:
    """n * frac rounded to the nearest whole row, halves up (n=25, frac=0.1 -> 3)."""
    return math.floor(round(n * frac, 9) + 0.5)


def split_series(n: int, val_frac: float = 0.1, test_frac: float = 0.2,
                 min_train: int = 1) -> Split:
    """Split ``n`` rows in time order: the first rows train, then validation, then test.

    The validation and test sizes are ``n * frac`` rounded to the nearest row (halves up), so a
    small fraction of a short series can round to zero rows; training gets the rest.

    Raises:
        ConfigError: a fraction outside [0, 1), or fractions summing to 1 or more.
        DataError: fewer than ``min_train`` rows would be left for training.
    """
    for name, frac in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0.0 <= frac < 1.0:
            raise ConfigError(f"{name}={frac} must be at least 0 and below 1 (a fraction of "
                              f"the rows, e.g. 0.2)")
    if val_frac + test_frac >= 1.0:
        raise ConfigError(f"val_frac + test_frac = {val_frac + test_frac:g} leaves no rows "
                          f"for training; make their sum smaller than 1")
    n_val, n_test = _round_rows(n, val_frac), _round_rows(n, test_frac)
    n_train = n - n_val - n_test
    if n_train < max(min_train, 1):
        raise DataError(f"only {n_train} of {n} rows are left for training, {max(min_train, 1)}"
                        f" needed; use a longer series or smaller --val-frac/--test-frac")
    return Split(train_end=n_train, val_end=n_train + n_val, n=n)


def _position(index: pd.Index, when: Any, flag: str) -> int:
    """The first row at or after ``when`` (a date for a DatetimeIndex, else an index label)."""
    if isinstance(index, pd.DatetimeIndex):
        try:
            when = pd.Timestamp(when)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{flag} {when!r} is not a date; write it like 1950-01-31") from exc
    elif isinstance(when, str):
        try:
            when = int(when)
        except ValueError as exc:
            raise DataError(f"{flag} {when!r} is not a row number; the series has no time "
                            f"column, so give a row index between 0 and {len(index) - 1}") from exc
    if len(index) == 0 or not index[0] <= when <= index[-1]:
        span = f"{index[0]} .. {index[-1]}" if len(index) else "empty"
        raise DataError(f"{flag} {when} is outside the series ({span}); choose a time inside it")
    return int(index.searchsorted(when, side="left"))


def split_at(index: pd.Index, val_start: Any = None, test_start: Any = None) -> Split:
    """Split at given times: validation starts at the first row at or after ``val_start``,
    test at the first row at or after ``test_start``.

    ``index`` is ``SeriesData.frame.index``. Dates may be strings ("1950-01"). For a series
    without a time column, give index labels (row numbers from 0). None means that part is
    empty: no ``test_start`` -> no test rows; no ``val_start`` -> no validation rows.

    Raises:
        DataError: a time outside the series, or no training rows before the first split.
        ConfigError: ``val_start`` after ``test_start``.
    """
    n = len(index)
    val_end = n if test_start is None else _position(index, test_start, "--test-start")
    train_end = val_end if val_start is None else _position(index, val_start, "--val-start")
    if train_end > val_end:
        raise ConfigError(f"--val-start {val_start} is after --test-start {test_start}; "
                          f"validation must come before test")
    if train_end == 0:
        first = val_start if val_start is not None else test_start
        raise DataError(f"no training rows before {first}; choose a later start so the series "
                        f"begins with training rows")
    return Split(train_end=train_end, val_end=val_end, n=n)


class Scaler:
    """Per-column affine scaling, fitted on training rows only: ``(x - offset) / scale``.

    Kinds:
        ``"minmax"``: offset = column min, scale = max - min, so training values map to [0, 1]
        (later values may fall outside it). ``"standard"``: offset = mean, scale = population
        standard deviation (ddof=0). ``"none"``: offset 0, scale 1.
        A constant column gets scale 1, so nothing divides by zero.

    ``transform`` and ``inverse_transform`` take arrays whose LAST axis holds the columns, with any
    leading axes (N, F) or (W, T, F). ``columns=[0]`` applies only the parameters of the listed
    columns, e.g. to undo the scaling of the target columns of a scaler fitted on targets +
    covariates.
    """

    KINDS = ("minmax", "standard", "none")

    def __init__(self, kind: str = "minmax") -> None:
        if kind not in self.KINDS:
            raise ConfigError(f"unknown scaler {kind!r}; use one of {', '.join(self.KINDS)}")
        self.kind = kind
        self.offset: np.ndarray | None = None  # (F,)
        self.scale: np.ndarray | None = None  # (F,)

    @property
    def fitted(self) -> bool:
        return self.offset is not None

    def fit(self, values: np.ndarray) -> Scaler:
        """Fit per-column parameters on ``values`` of shape (N, F); returns self."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ShapeError(f"Scaler.fit needs a 2-D array (N rows, F columns) with N > 0, "
                             f"got shape {x.shape}; reshape a single series with .reshape(-1, 1)")
        if not np.isfinite(x).all():
            raise DataError("Scaler.fit got NaN or infinite values; fill them first "
                            "(read_series(..., fill='ffill'))")
        constant = np.ptp(x, axis=0) == 0
        if self.kind == "minmax":
            offset, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
        elif self.kind == "standard":
            offset, scale = x.mean(axis=0), x.std(axis=0, ddof=0)
        else:
            offset, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        self.offset, self.scale = offset, np.where(constant, 1.0, scale)
        return self

    def _params(self, x: np.ndarray, columns: Sequence[int] | None) -> tuple[np.ndarray, ...]:
        if self.offset is None or self.scale is None:
            raise RnnkitError("this Scaler is not fitted; call fit(train_values) first")
        cols = np.arange(len(self.offset)) if columns is None else np.asarray(columns, dtype=int)
        if cols.ndim != 1 or (len(cols) and (cols.min() < 0 or cols.max() >= len(self.offset))):
            raise ShapeError(f"columns={list(np.atleast_1d(cols))} must be indices below "
                             f"{len(self.offset)}, the number of fitted columns")
        if x.ndim == 0 or x.shape[-1] != len(cols):
            raise ShapeError(f"expected the last axis to hold {len(cols)} column(s), got shape "
                             f"{x.shape}; pass columns=[...] to scale a subset of the columns")
        return self.offset[cols], self.scale[cols]

    def transform(self, values: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:
        """Scale ``values`` (..., F) or (..., len(columns)); returns a new float64 array."""
        x = np.asarray(values, dtype=np.float64)
        offset, scale = self._params(x, columns)
        return (x - offset) / scale

    def inverse_transform(self, values: np.ndarray,
                          columns: Sequence[int] | None = None) -> np.ndarray:
        """Undo :meth:`transform`: ``x * scale + offset``, same shapes as transform."""
        x = np.asarray(values, dtype=np.float64)
        offset, scale = self._params(x, columns)
        return x * scale + offset

    def fit_transform(self, values: np.ndarray) -> np.ndarray:
        return self.fit(values).transform(values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters; floats survive ``json`` exactly (it writes ``repr``)."""
        if self.offset is None or self.scale is None:
            raise RnnkitError("this Scaler is not fitted; call fit(train_values) before saving")
        return {"kind": self.kind, "offset": [float(v) for v in self.offset],
                "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Scaler:
        """Rebuild a fitted Scaler from :meth:`to_dict` output.

        Strict, because the parameters come from a file: exactly the keys ``to_dict`` writes, a
        known kind, finite numbers (not strings or booleans), one positive scale per column
        (every kind fits scales > 0), and offset 0 / scale 1 for ``"none"``; anything else would
        scale new data into nonsense without a word.
        """
        keys = ("kind", "offset", "scale")
        if not isinstance(state, dict) or set(state) != set(keys):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ConfigError(f"not a saved Scaler (got {got}); expected exactly the keys 'kind', 'offset', "
                              "'scale' written by to_dict()")
        if state["kind"] not in cls.KINDS:
            raise ConfigError(f"unknown scaler kind {state['kind']!r}; a saved Scaler is one of {', '.join(cls.KINDS)}")
        params = {}
        for key in ("offset", "scale"):
            v = state[key]
            if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                raise ConfigError(f"a saved Scaler's {key!r} must be a list of numbers, one per column")
            params[key] = np.array(v, dtype=np.float64)
            if not np.isfinite(params[key]).all():
                raise ConfigError(f"a saved Scaler's {key!r} holds NaN or infinite values; re-fit it")
        offset, scale = params["offset"], params["scale"]
        if offset.shape != scale.shape or not len(offset):
            raise ConfigError(f"a saved Scaler needs one offset and one scale per column; got {len(offset)} "
                              f"offset(s) and {len(scale)} scale(s)")
        if (scale <= 0).any():
            raise ConfigError(f"a saved Scaler's scales must be positive; column {int(np.argmax(scale <= 0))} "
                              f"has {float(scale[scale <= 0][0])!r}")
        if state["kind"] == "none" and ((offset != 0).any() or (scale != 1).any()):
            raise ConfigError("a saved Scaler of kind 'none' must have offset 0 and scale 1 in every column")
        scaler = cls(state["kind"])
        scaler.offset, scaler.scale = offset, scale
        return scaler

    def __repr__(self) -> str:
        return f"Scaler(kind={self.kind!r}, fitted={self.fitted})"


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
