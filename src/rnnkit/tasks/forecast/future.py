"""Future covariates: columns whose values are known in advance, in the data and past its end.

Within the data (training, validation, evaluation, backtests) a future covariate's values are the
data's own: they are known. Forecasting past the last data row needs their values for the rows
ahead, which come from a *future file* (``rnnkit forecast --future FILE``, ``ForecastRun.forecast(
future=...)``): a table laid out like the data file, with the run's time column (when it has one)
and one column per future covariate, holding exactly the forecast's rows after the last data row.
:func:`future_values` reads and checks it; every problem is a :class:`~rnnkit.errors.DataError`
naming the file, the row and what is missing.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd

from ...data.calendar import future_index
from ...data.series import SeriesData, column_values, time_index
from ...data.sources import read_table
from ...errors import DataError

__all__ = ["with_future_columns", "future_values"]

_SHOWN = 5  # rows named in a message


def with_future_columns(data: SeriesData, future: tuple[str, ...]) -> SeriesData:
    """``data`` with its covariate columns ordered past first, then the ``future`` ones in their
    given order (the layout a run's scaler and network read); refuses a future covariate that is
    not one of ``data``'s covariate columns."""
    if not future:
        return data
    for name in future:
        if name in data.targets:
            raise DataError(f"{data.source}: column {name!r} is both a target and a future covariate; targets "
                            "are forecast, so remove it from the future covariates")
        if name not in data.covariates:
            raise DataError(f"{data.source}: the future covariate {name!r} is not among the data's covariate "
                            f"columns {list(data.covariates)}; read the data with it as a covariate (read_series("
                            f"..., covariates=[..., {name!r}]))")
    order = tuple(c for c in data.covariates if c not in future) + tuple(future)
    if order == data.covariates:
        return data
    return dataclasses.replace(data, frame=data.frame[list(data.targets) + list(order)], covariates=order)


def _when(stamp: pd.Timestamp) -> str:
    return stamp.date().isoformat() if stamp == stamp.normalize() else str(stamp)


def _rows(positions) -> str:
    shown = ", ".join(str(int(i) + 1) for i in positions[:_SHOWN])
    return shown + (f" ({len(positions)} rows in all)" if len(positions) > _SHOWN else "")


def future_values(future: str | os.PathLike | pd.DataFrame, names: tuple[str, ...], time_col: str | None,
                  index: pd.Index, freq: str | None, rows: int) -> np.ndarray:
    """The future covariates ``names`` for the ``rows`` rows after the data's last one, ``(rows, K)``
    in the data's units, from ``future``: a CSV/TSV/Parquet file or a DataFrame laid out like it.

    With a time column (``time_col``; ``index`` and ``freq`` are the data's), the table's stamps
    must be exactly the ``rows`` stamps that follow the data's last at its frequency, in order;
    without one, it must have exactly ``rows`` rows, one per forecast step. Every value must be a
    finite number. Other columns (the targets left empty, say) are ignored.
    """
    if isinstance(future, pd.DataFrame):
        raw, label = future, "the future table"
        if time_col is not None and time_col not in raw.columns and raw.index.name == time_col:
            raw = raw.reset_index()
    else:
        raw, _ = read_table(future)
        label = str(future)
    raw = raw.set_axis([str(c) for c in raw.columns], axis=1).reset_index(drop=True)
    need = ([time_col] if time_col is not None else []) + list(names)
    missing = [c for c in need if c not in raw.columns]
    if missing:
        what = (f"the time column {time_col!r} and " if time_col is not None else "") + \
               f"the future covariate column(s) {list(names)}"
        raise DataError(f"{label}: no column(s) {missing}; a future file needs {what}; its columns are "
                        f"{list(raw.columns)}")
    if time_col is not None:
        _check_stamps(time_index(raw[time_col], time_col, label), index, freq, rows, label)
    elif len(raw) != rows:
        raise DataError(f"{label}: {len(raw)} row(s); forecasting {rows} step(s) past the data needs exactly "
                        f"{rows} row(s) of future covariates, one per step in order")
    values = np.stack([column_values(raw[c], c, label) for c in names], axis=1)  # (rows, K)
    for k, name in enumerate(names):
        bad = np.flatnonzero(~np.isfinite(values[:, k]))
        if len(bad):
            raise DataError(f"{label}: column {name!r} has no finite value at data row(s) {_rows(bad)} (rows "
                            "counted from 1 after the header); a future covariate must be known for every "
                            "forecast step: fill in its values")
    return values


def _check_stamps(stamps: pd.DatetimeIndex, index: pd.Index, freq: str | None, rows: int, label: str) -> None:
    """Refuse future ``stamps`` that are not exactly the ``rows`` stamps after the data's ``index``."""
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"{label}: the run's data has no time index to continue; pass the future rows "
                        "without a time column")
    last = index[-1]
    early = np.flatnonzero(stamps <= last)
    if len(early):
        raise DataError(f"{label}: data row(s) {_rows(early)} are at or before the data's last time "
                        f"{_when(last)}; a future file holds only the {rows} row(s) after it")
    if freq is None:  # irregular stamps: no frequency to continue, so only the count can be checked
        if len(stamps) != rows:
            raise DataError(f"{label}: {len(stamps)} row(s) after {_when(last)}; forecasting {rows} step(s) "
                            f"needs exactly {rows}")
        return
    expected = future_index(index, freq, rows)
    absent = expected.difference(stamps)
    if len(absent):
        raise DataError(f"{label}: no row for {_when(absent[0])} ({len(absent)} of the {rows} forecast "
                        f"step(s) missing); a future file needs every step from {_when(expected[0])} to "
                        f"{_when(expected[-1])} at the data's frequency {freq!r}")
    extra = np.flatnonzero(~stamps.isin(expected))
    if len(extra):
        raise DataError(f"{label}: data row(s) {_rows(extra)} ({_when(stamps[extra[0]])}, ...) are not among the "
                        f"{rows} forecast step(s) from {_when(expected[0])} to {_when(expected[-1])}; give exactly "
                        "those rows")
