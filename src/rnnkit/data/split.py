"""Splitting a series in time: train, validation and test rows, by fraction or by date.

Data flows one way (see DESIGN.md)::

    read_series -> split_series / split_at -> Scaler.fit(train rows) -> make_windows

Row indices are 0-based positions in the series everywhere in this module; messages about
*files* count data rows from 1 (see :mod:`rnnkit.data.series`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import ConfigError, DataError

__all__ = ["Split", "split_series", "split_at", "round_rows"]


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


def round_rows(n: int, frac: float) -> int:
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
    n_val, n_test = round_rows(n, val_frac), round_rows(n, test_frac)
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
