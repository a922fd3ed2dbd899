"""A validated series: a raw table (from a file or a built-in) checked and turned into SeriesData.

Files are read by :func:`rnnkit.data.sources.read_series`, which hands the table to
:func:`series_from_frame` here.

Conventions used in every message:

* **Row numbers** are *data rows counted from 1*, the header not counted: "data row 1" is the
  first line after the header of a CSV file (line 2 of the file) and the first row of a
  Parquet file.
* ``fill`` never looks into the future for a value at the start of a series: values missing
  before a column's first valid value cannot be filled and raise a ``DataError`` (drop those rows
  from the file). ``"ffill"`` repeats the last valid value; ``"interpolate"`` draws a straight
  line between valid neighbours (by row position) and repeats the last valid value at the end.
* Timestamps must already be unique and in time order; rnnkit never reorders rows.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError

__all__ = ["SeriesData", "series_from_frame", "Fill", "time_index", "parse_times", "column_values"]

Fill = Literal["ffill", "interpolate"] | None
_FILLS = (None, "ffill", "interpolate")
_MAX_ROWS_SHOWN = 5


@dataclass(frozen=True, eq=False)
class SeriesData:
    """A validated multivariate series.

    Attributes:
        frame: float64 columns, targets first then covariates. The index is a DatetimeIndex
            named after the time column when one was given, else a RangeIndex.
        targets: names of the columns to forecast.
        covariates: names of the extra input columns.
        source: the path as given, or ``"builtin:NAME"``.
        sha256: hex digest of the file bytes (of the array bytes for synthetic builtins).
        freq: the pandas frequency of the time index (``"MS"``, ``"YS-JAN"``, ...), or None when
            there is no time column or the timestamps are irregular.
    """

    frame: pd.DataFrame
    targets: tuple[str, ...]
    covariates: tuple[str, ...]
    source: str
    sha256: str
    freq: str | None

    @property
    def values(self) -> np.ndarray:
        """All columns as a float64 array of shape (N, n_targets + n_covariates)."""
        return self.frame.to_numpy(dtype=np.float64, copy=True)  # writable, C-contiguous

    @property
    def target_values(self) -> np.ndarray:
        """The target columns as a float64 array of shape (N, n_targets)."""
        return self.frame[list(self.targets)].to_numpy(dtype=np.float64, copy=True)

    def __len__(self) -> int:
        return len(self.frame)


def series_from_frame(
    raw: pd.DataFrame,
    target: str | Sequence[str] | None = None,
    time_col: str | None = None,
    covariates: Sequence[str] = (),
    fill: Fill = None,
    *,
    source: str = "<DataFrame>",
    sha256: str | None = None,
) -> SeriesData:
    """Validate an in-memory table exactly as :func:`read_series` validates a file.

    ``raw`` may hold strings (as read from CSV) or numbers. ``sha256`` defaults to the digest of
    ``raw.to_csv(index=False)``.
    """
    if fill not in _FILLS:
        raise ConfigError(f"fill={fill!r} is not supported; use 'ffill', 'interpolate' or None")
    if raw.shape[1] == 0:
        raise DataError(f"{source}: no columns found; the file needs a header row")
    if len(raw) == 0:
        raise DataError(f"{source}: the header has no data rows under it; add data rows")
    if sha256 is None:
        sha256 = hashlib.sha256(raw.to_csv(index=False).encode()).hexdigest()
    raw = raw.set_axis([str(c) for c in raw.columns], axis=1).reset_index(drop=True)
    targets, covs = choose_columns(raw, target, time_col, covariates, source)
    index: pd.Index = pd.RangeIndex(len(raw))
    freq, missing = None, None
    if time_col is not None:
        stamps = time_index(raw[time_col], time_col, source)
        freq, missing = infer_frequency(stamps)
        if fill is None and missing is not None and len(missing):
            _raise_gap(stamps, missing, freq, time_col, source)
        index = stamps
    frame = pd.DataFrame({c: column_values(raw[c], c, source) for c in targets + covs})
    frame.index = index
    if fill is None:
        _check_finite(frame, source)
    else:
        if missing is not None and len(missing):
            frame = frame.reindex(index.union(missing))  # insert the missing times as NaN rows
        frame = _fill(frame, fill, source)
    return SeriesData(frame, tuple(targets), tuple(covs), source, sha256, freq)


def _when(stamp: pd.Timestamp) -> str:
    """A timestamp for messages: '2020-01-31', or with the time of day when it has one."""
    return stamp.date().isoformat() if stamp == stamp.normalize() else str(stamp)


def _names(columns: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in columns)


def choose_columns(raw: pd.DataFrame, target: str | Sequence[str] | None, time_col: str | None,
                    covariates: Sequence[str], source: str) -> tuple[list[str], list[str]]:
    """Resolve and check the target, time and covariate names; return (targets, covariates)."""
    available = list(raw.columns)
    covs = [covariates] if isinstance(covariates, str) else list(covariates)
    targets = None if target is None else [target] if isinstance(target, str) else list(target)
    for role, names in (("time", [] if time_col is None else [time_col]), ("covariate", covs),
                        ("target", targets or [])):
        for name in names:
            if name not in available:
                raise DataError(f"{source}: no {role} column {name!r}; the columns are "
                                f"{_names(available)}")
    if targets is None:
        candidates = [c for c in available
                      if c != time_col and c not in covs and _looks_numeric(raw[c])]
        if len(candidates) != 1:
            found = f"{len(candidates)} numeric columns" if candidates else "no numeric column"
            raise DataError(f"{source}: cannot choose the target column ({found} besides the "
                            f"time column and covariates); name it with --target, one of "
                            f"{_names(available)}")
        targets = candidates
    if not targets:
        raise DataError(f"{source}: no target column given; name one with --target")
    for role, names in (("target", targets), ("covariate", covs)):
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise DataError(f"{source}: {role} column {dup!r} is listed twice; list it once")
    both = next((c for c in targets if c in covs), None)
    if both is not None:
        raise DataError(f"{source}: column {both!r} is both a target and a covariate; "
                        f"targets are already inputs, so remove it from the covariates")
    if time_col is not None and time_col in targets + covs:
        raise DataError(f"{source}: the time column {time_col!r} cannot also be a target or "
                        f"covariate; choose another column")
    return targets, covs


def _looks_numeric(col: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(col.dtype):
        return True
    present = col.dropna()
    return len(present) > 0 and bool(pd.to_numeric(present.astype(str).str.strip(),
                                                   errors="coerce").notna().all())


def column_values(col: pd.Series, name: str, source: str) -> np.ndarray:
    """One raw column -> float64 values (empty cells NaN); non-numeric cells raise with their row and value."""
    if pd.api.types.is_numeric_dtype(col.dtype):  # includes bool
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    text = col.astype(object).where(col.notna(), None)
    stripped = pd.Series([v.strip() if isinstance(v, str) else v for v in text], dtype=object)
    values = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(values) & stripped.notna().to_numpy())
    if len(bad):
        more = f" ({len(bad) - 1} more rows like it)" if len(bad) > 1 else ""
        raise DataError(f"{source}: column {name!r} has the non-numeric value "
                        f"{stripped.iloc[bad[0]]!r} at data row {bad[0] + 1} (rows counted from "
                        f"1 after the header){more}; fix the value or remove the row")
    return values


def parse_times(col: pd.Series) -> tuple[pd.DatetimeIndex, pd.Series | None]:
    """A raw time column as dates (NaT where a cell is not one, in the format of the first row;
    whole numbers of four digits are years) and the column's cells as text, for messages (None
    where the column holds dates already)."""
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return pd.DatetimeIndex(col), None
    text = col.astype(object).where(col.notna(), None).map(
        lambda v: v.strip() if isinstance(v, str) else v)
    text = text.map(lambda v: str(int(v)) if isinstance(v, (int, np.integer)) else v)
    years = text.dropna().astype(str).str.fullmatch(r"\d{4}").all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.DatetimeIndex(pd.to_datetime(text, errors="coerce", format="%Y" if years else None)), text


def time_index(col: pd.Series, name: str, source: str) -> pd.DatetimeIndex:
    """A raw time column parsed as dates, required unique and increasing (rows are never reordered)."""
    stamps, text = parse_times(col)
    bad = np.flatnonzero(stamps.isna())
    if len(bad):
        value = (col.astype(str) if text is None else text).iloc[bad[0]]
        shown = "an empty cell" if pd.isna(value) else repr(value)
        raise DataError(f"{source}: time column {name!r} has {shown} at data row {bad[0] + 1}, "
                        f"which is not a date in the format of the first row; write every time "
                        f"as a date such as 2024-01-31")
    dup = np.flatnonzero(stamps.duplicated())
    if len(dup):
        stamp = stamps[dup[0]]
        first = int(np.flatnonzero(stamps == stamp)[0])
        raise DataError(f"{source}: duplicate time {_when(stamp)} at data rows {first + 1} and "
                        f"{dup[0] + 1}; keep one row per time (aggregate or drop duplicates)")
    back = np.flatnonzero(np.diff(stamps.asi8) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise DataError(f"{source}: rows are not in time order: data row {i + 1} "
                        f"({_when(stamps[i])}) comes after data row {i} ({_when(stamps[i - 1])}); "
                        f"sort the file by {name!r} first (rnnkit never reorders rows)")
    return stamps.rename(name)


def infer_frequency(index: pd.DatetimeIndex) -> tuple[str | None, pd.DatetimeIndex | None]:
    """Return (freq, missing timestamps) for a regular index, or (None, None) if irregular.

    A gap-free index is recognised by ``pd.infer_freq``. Otherwise the most common step
    between rows proposes a frequency (calendar months, quarters and years are recognised by
    their 28-31, 89-92 and 365-366 day steps); the frequency is accepted when every timestamp
    lies on it, and the timestamps it has that the index lacks are the gaps.
    """
    if len(index) < 2:
        return None, None
    if len(index) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = pd.infer_freq(index)
        if found is not None:
            return getattr(found, "freqstr", found), index[:0]
    step = pd.Series(index[1:] - index[:-1]).mode().iloc[0]  # the most common Timedelta
    days = step / pd.Timedelta(days=1)
    candidates: list[Any]
    if 28 <= days <= 31:
        candidates = ["MS", "ME"]
    elif 89 <= days <= 92:
        candidates = ["QS", "QE"]
    elif 365 <= days <= 366:
        candidates = ["YS", "YE"]
    elif days == int(days):
        candidates = [f"{int(days)}D"]
    else:
        candidates = [pd.tseries.frequencies.to_offset(step)]
    for freq in candidates:
        full = pd.date_range(index[0], index[-1], freq=freq)
        if index.isin(full).all():
            return full.freqstr, full.difference(index).rename(index.name)
    return None, None


def _raise_gap(index: pd.DatetimeIndex, missing: pd.DatetimeIndex, freq: str | None,
               name: str | None, source: str) -> None:
    before = int(index.searchsorted(missing[0])) - 1
    raise DataError(f"{source}: time column {name!r} has gaps at frequency {freq!r}: "
                    f"{_when(missing[0])} is missing after data row {before + 1} "
                    f"({_when(index[before])}); "
                    f"{len(missing)} time(s) missing in all; add the rows, or use --fill ffill "
                    f"or --fill interpolate to insert and fill them")


def _check_finite(frame: pd.DataFrame, source: str) -> None:
    for name in frame.columns:
        bad = np.flatnonzero(~np.isfinite(frame[name].to_numpy()))
        if len(bad):
            rows = ", ".join(str(i + 1) for i in bad[:_MAX_ROWS_SHOWN])
            total = f" ({len(bad)} rows in all)" if len(bad) > _MAX_ROWS_SHOWN else ""
            raise DataError(f"{source}: column {name!r} has missing or infinite values at data "
                            f"row(s) {rows}{total}; use --fill ffill or --fill interpolate, or "
                            f"fix the file")


def _fill(frame: pd.DataFrame, fill: str, source: str) -> pd.DataFrame:
    frame = frame.replace([np.inf, -np.inf], np.nan)
    for name in frame.columns:
        valid = np.flatnonzero(frame[name].notna().to_numpy())
        if len(valid) == 0:
            raise DataError(f"{source}: column {name!r} has no valid values; remove it or fix "
                            f"the file")
        if valid[0] > 0:
            where = frame.index[valid[0]]
            where = (f"data row {valid[0] + 1}" if isinstance(where, (int, np.integer))
                     else _when(where))
            raise DataError(f"{source}: column {name!r} has no value before {where}; --fill "
                            f"cannot fill the start of a series without looking ahead, so "
                            f"drop the first rows or supply their values")
    if fill == "interpolate":
        frame = frame.interpolate(method="linear", limit_area="inside")
    return frame.ffill()

