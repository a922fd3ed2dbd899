"""Calendar features of a time index: known in advance for any stamp, so usable over a forecast horizon.

Three functions, all pure and deterministic:

* :func:`future_index` - the next ``steps`` stamps after an index at its frequency;
* :func:`season_length` - the usual seasonal period m of a frequency (12 for monthly data, ...);
* :func:`calendar_features` - the cycles that vary at the data's frequency, as sin/cos pairs or
  one-hot columns.

The frequency is a pandas offset alias, as :attr:`rnnkit.data.series.SeriesData.freq` holds it
(``"MS"``, ``"QS-JAN"``, ``"YS-JAN"``, ``"W-SUN"``, ``"B"``, ``"D"``, ``"h"``, ``"30min"``, ...).
A frequency falls into one *family*, which decides the features:

=========================================== ================================= =========================
family (offsets)                            features                          m
=========================================== ================================= =========================
sub-daily (h, min, s, ...; steps < 1 day)   hour of day, day of week          steps per day (24 hourly)
daily (D, B, C, and 2-6 day steps)          day of week, day of year          7 (D), 5 (B; C: its weekdays), else 1
weekly (W-*, multiples of 7 days)           week of year (ISO)                52 / n when whole, else 1
monthly (MS, ME, BMS, BME, SMS, SME)        month of year                     12 / n (24 semi-monthly)
quarterly (QS-*, QE-*, BQS, BQE)            quarter of year                   4 / n
yearly, other offsets, or no frequency      nothing (K = 0)                   1
=========================================== ================================= =========================

(``n`` is the offset's multiple: ``"2MS"`` is bimonthly, m = 6; ``"5MS"`` has no whole season, m = 1.)

**sin/cos** (``kind="sincos"``): a cycle of period P at position v gives ``sin(2 pi v / P)`` and
``cos(2 pi v / P)``. Positions: hour of day v = hour + minute/60 + second/3600 (0 at midnight),
P = 24; day of week v = 0 (Monday) .. 6, P = 7; day of year v = 1..365 (366), P = the days of that
year; ISO week v = 1..52 (53), P = the weeks of that ISO year; month v = 1..12, P = 12; quarter
v = 1..4, P = 4. So January is (sin(2 pi/12), cos(2 pi/12)) and December (0, 1): the last position
of a cycle wraps to 0, next to the first.

**one-hot** (``kind="onehot"``): one column per position, exactly one 1 per cycle in each row:
hour ``hour_0..hour_23`` (the whole hour), day of week ``day_of_week_0..6`` (Monday = 0; only 0..4
for business days), ISO week ``week_of_year_1..53``, month ``month_1..12``, quarter
``quarter_1..4``. Daily data's annual cycle is one-hot encoded by month (``month_1..12``), not by
366 day-of-year columns.

Features are read off each stamp's own wall-clock time (a time-zone-aware index in its zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from ..errors import ConfigError, DataError

__all__ = ["future_index", "season_length", "calendar_features", "CalendarKind"]

CalendarKind = Literal["sincos", "onehot"]
_KINDS = ("sincos", "onehot")
_DAY = pd.Timedelta(days=1)
_WEEK = pd.Timedelta(days=7)
_WEEKDAYS = "Mon Tue Wed Thu Fri"  # pandas' default business weekmask


def _offset(freq: str | pd.offsets.BaseOffset) -> pd.offsets.BaseOffset:
    """``freq`` as a pandas offset; an alias pandas does not know raises :class:`ConfigError`."""
    if isinstance(freq, pd.offsets.BaseOffset):
        return freq
    if not isinstance(freq, str) or not freq.strip():
        raise ConfigError(f"the frequency must be a pandas offset alias such as 'MS', 'D' or 'h'; got {freq!r}")
    try:
        return to_offset(freq.strip())
    except (ValueError, TypeError):
        raise ConfigError(f"unknown frequency {freq!r}; use a pandas offset alias such as 'MS' (monthly), "
                          f"'QS' (quarterly), 'W-SUN' (weekly), 'D' (daily), 'B' (business days) or "
                          f"'h' (hourly)") from None


@dataclass(frozen=True)
class _Family:
    name: str | None  # "subdaily", "daily", "weekly", "monthly", "quarterly", or None (no cycles)
    m: int
    business: bool = False


def _whole(period: int, n: int) -> int:
    """``period / n`` when it is a whole number of steps, else 1 (no whole season)."""
    return period // n if n > 0 and period % n == 0 else 1


def _family(freq: str | pd.offsets.BaseOffset | None) -> _Family:
    if freq is None:
        return _Family(None, 1)
    off = _offset(freq)
    n = off.n
    offsets = pd.offsets
    if n <= 0:
        return _Family(None, 1)  # a step back in time has no season (future_index refuses it)
    if isinstance(off, offsets.Tick | offsets.Day):  # fixed steps (Day is no Tick in pandas 3)
        step = pd.Timedelta(n, unit="D") if isinstance(off, offsets.Day) else pd.Timedelta(off)
        if step < _DAY:
            per_day = _DAY / step
            return _Family("subdaily", int(per_day) if float(per_day).is_integer() else 1)
        if step == _DAY:
            return _Family("daily", 7)
        if step < _WEEK:
            return _Family("daily", 1)
        if step % _WEEK == pd.Timedelta(0) and step < pd.Timedelta(days=364):
            return _Family("weekly", _whole(52, step // _WEEK))
        return _Family(None, 1)
    if isinstance(off, offsets.BusinessDay):  # B and C (CustomBusinessDay derives from it)
        weekmask = getattr(off, "weekmask", None) or _WEEKDAYS
        days = len(weekmask.split())
        return _Family("daily", days if n == 1 else 1, business=weekmask == _WEEKDAYS)
    if isinstance(off, offsets.Week):
        return _Family("weekly", _whole(52, n))
    if isinstance(off, offsets.SemiMonthBegin | offsets.SemiMonthEnd):
        return _Family("monthly", _whole(24, n))
    if isinstance(off, offsets.MonthBegin | offsets.MonthEnd | offsets.BusinessMonthBegin
                  | offsets.BusinessMonthEnd | offsets.CustomBusinessMonthBegin | offsets.CustomBusinessMonthEnd):
        return _Family("monthly", _whole(12, n))
    if isinstance(off, offsets.QuarterBegin | offsets.QuarterEnd | offsets.BQuarterBegin | offsets.BQuarterEnd):
        return _Family("quarterly", _whole(4, n))
    return _Family(None, 1)  # yearly, and offsets without a calendar cycle (Easter, FY5253, ...)


def season_length(freq: str | pd.offsets.BaseOffset | None) -> int:
    """The usual seasonal period m of data at ``freq``: the rows in one cycle of its main season.

    12 monthly, 4 quarterly, 52 weekly, 7 daily, 5 business-daily, 24 hourly (steps per day for
    other sub-daily steps that divide a day), ``period / n`` for multiples (``"2MS"``: 6) when whole,
    else 1; 1 for yearly data, offsets without a cycle and ``None`` (no regular frequency). These
    agree with the periods of the built-in series (``BuiltinInfo.m``).
    """
    return _family(freq).m


def future_index(index: pd.DatetimeIndex, freq: str | pd.offsets.BaseOffset, steps: int) -> pd.DatetimeIndex:
    """The ``steps`` stamps that follow ``index[-1]`` at ``freq`` (the index's name and time zone kept).

    ``index[-1] + k * freq`` for k = 1..steps, as pandas' offset arithmetic defines it: month ends stay
    month ends, business days skip weekends. A last stamp off the frequency's anchor rolls to the
    next anchored one (15 January + ``"MS"`` is 1 February).
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"future stamps need a time index (a DatetimeIndex, from --time-col); got "
                        f"{type(index).__name__}")
    if len(index) == 0 or pd.isna(index[-1]):
        raise DataError("future stamps need an index whose last stamp is a date; the index is empty or ends in NaT")
    if freq is None:
        raise ConfigError("future stamps need the data's frequency; the time index has none (irregular "
                          "timestamps): make them regular, or use --fill to insert the missing ones")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ConfigError(f"steps must be a whole number >= 0; got {steps!r}")
    off = _offset(freq)
    if off.n <= 0:
        raise ConfigError(f"the frequency {freq!r} does not move forward in time; use a positive multiple")
    if steps == 0:
        return index[:0].copy()
    first = index[-1] + off
    return pd.date_range(first, periods=int(steps), freq=off, name=index.name, unit=index.unit)


def _cycle(values: np.ndarray, period: np.ndarray | float, name: str) -> tuple[list[np.ndarray], list[str]]:
    angle = 2.0 * np.pi * np.asarray(values, dtype=np.float64) / period
    return [np.sin(angle), np.cos(angle)], [f"{name}_sin", f"{name}_cos"]


def _onehot(values: np.ndarray, positions: range, name: str) -> tuple[list[np.ndarray], list[str]]:
    values = np.asarray(values)
    return [(values == p).astype(np.float64) for p in positions], [f"{name}_{p}" for p in positions]


def _iso_weeks_in_year(iso_year: np.ndarray) -> np.ndarray:
    """52 or 53: the ISO week of 28 December of each ISO year (which always lies in its last week)."""
    years = np.unique(iso_year)
    dec28 = pd.to_datetime(pd.DataFrame({"year": years, "month": 12, "day": 28}))
    weeks = dict(zip(years.tolist(), dec28.dt.isocalendar().week.to_numpy(dtype=np.int64).tolist()))
    return np.array([weeks[y] for y in iso_year.tolist()], dtype=np.float64)


def calendar_features(index: pd.DatetimeIndex, freq: str | pd.offsets.BaseOffset | None,
                      kind: CalendarKind = "sincos") -> tuple[np.ndarray, list[str]]:
    """The calendar cycles that vary at ``freq``, one row per stamp: ``(T, K)`` float64 and K names.

    Which cycles, and how they are encoded, is in this module's docstring; yearly data, offsets
    without a cycle and ``freq=None`` give K = 0 (an empty ``(T, 0)`` array). The values depend only
    on each stamp, so features of :func:`future_index` stamps continue those of the history.
    """
    if kind not in _KINDS:
        raise ConfigError(f"calendar feature kind {kind!r} is not supported; use 'sincos' or 'onehot'")
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"calendar features need a time index (a DatetimeIndex, from --time-col); got "
                        f"{type(index).__name__}")
    if index.hasnans:
        raise DataError(f"calendar features need a date in every row; the index has a missing time (NaT) "
                        f"at row {int(np.flatnonzero(index.isna())[0]) + 1}")
    family = _family(freq)
    cols: list[np.ndarray] = []
    names: list[str] = []

    def add(part: tuple[list[np.ndarray], list[str]]) -> None:
        cols.extend(part[0])
        names.extend(part[1])

    sincos = kind == "sincos"
    if family.name == "subdaily":
        hours = index.hour + index.minute / 60.0 + (index.second + index.microsecond / 1e6) / 3600.0
        add(_cycle(hours, 24.0, "hour") if sincos else _onehot(index.hour, range(24), "hour"))
    if family.name in ("subdaily", "daily"):
        days = range(5) if family.business else range(7)
        if family.business and (index.day_of_week >= 5).any():
            weekend = index[int(np.flatnonzero(index.day_of_week >= 5)[0])]
            raise DataError(f"calendar features at business-day frequency {freq!r}: {weekend.date()} is a "
                            f"weekend day, not a business day; pass the index's own frequency")
        add(_cycle(index.day_of_week, 7.0, "day_of_week") if sincos else _onehot(index.day_of_week, days, "day_of_week"))
    if family.name == "daily":
        if sincos:
            add(_cycle(index.day_of_year, 365.0 + index.is_leap_year, "day_of_year"))
        else:
            add(_onehot(index.month, range(1, 13), "month"))
    elif family.name == "weekly":
        iso = index.isocalendar()  # DataFrame: year, week, day (ISO 8601)
        week, iso_year = iso["week"].to_numpy(dtype=np.int64), iso["year"].to_numpy(dtype=np.int64)
        add(_cycle(week, _iso_weeks_in_year(iso_year), "week_of_year") if sincos
            else _onehot(week, range(1, 54), "week_of_year"))
    elif family.name == "monthly":
        add(_cycle(index.month, 12.0, "month") if sincos else _onehot(index.month, range(1, 13), "month"))
    elif family.name == "quarterly":
        add(_cycle(index.quarter, 4.0, "quarter") if sincos else _onehot(index.quarter, range(1, 5), "quarter"))
    features = np.stack(cols, axis=1) if cols else np.zeros((len(index), 0))  # K x (T,) -> (T, K)
    return np.ascontiguousarray(features, dtype=np.float64), names
