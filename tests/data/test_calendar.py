"""rnnkit.data.calendar against closed forms computed here with Python's datetime and math (not
pandas' accessors the module uses), and future_index against pandas' own date_range."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from rnnkit.data.builtin import list_builtins, load_builtin
from rnnkit.data.calendar import calendar_features, future_index, season_length
from rnnkit.errors import ConfigError, DataError

# float64 sin/cos of the same angle computed by numpy and by math agree to a few ulps of 1
TOL = 1e-12


def sincos(v: float, period: float) -> tuple[float, float]:
    return math.sin(2 * math.pi * v / period), math.cos(2 * math.pi * v / period)


def column(features, names, name):
    return features[:, names.index(name)]


def iso_weeks(year: int) -> int:
    return dt.date(year, 12, 28).isocalendar()[1]  # 28 December always lies in the last ISO week


# --- sin/cos against closed forms -------------------------------------------------------------------

def test_monthly_rows_are_sin_cos_of_month_over_12():
    index = pd.date_range("2019-01-01", periods=30, freq="MS")
    f, names = calendar_features(index, "MS")
    assert names == ["month_sin", "month_cos"] and f.shape == (30, 2) and f.dtype == np.float64
    assert f[0] == pytest.approx([math.sin(2 * math.pi / 12), math.cos(2 * math.pi / 12)], abs=TOL)  # January
    assert f[11] == pytest.approx([0.0, 1.0], abs=TOL)  # December wraps to angle 0
    for row, stamp in zip(f, index.to_pydatetime()):
        assert row == pytest.approx(sincos(stamp.month, 12), abs=TOL)


def test_month_end_and_business_month_data_have_the_same_month_features():
    starts = pd.date_range("2021-01-01", periods=12, freq="MS")
    for freq in ("ME", "BMS", "BME"):
        f, names = calendar_features(pd.date_range("2021-01-01", periods=12, freq=freq), freq)
        assert names == ["month_sin", "month_cos"]
        np.testing.assert_array_equal(f, calendar_features(starts, "MS")[0])  # same months, same code


def test_quarterly_rows_are_sin_cos_of_quarter_over_4():
    index = pd.date_range("2000-01-01", periods=9, freq="QS-JAN")
    f, names = calendar_features(index, "QS-JAN")
    assert names == ["quarter_sin", "quarter_cos"]
    for row, stamp in zip(f, index.to_pydatetime()):
        assert row == pytest.approx(sincos((stamp.month - 1) // 3 + 1, 4), abs=TOL)
    assert f[0] == pytest.approx([1.0, 0.0], abs=TOL)  # Q1: sin(pi/2), cos(pi/2)


def test_daily_rows_are_day_of_week_and_day_of_year():
    index = pd.date_range("2023-12-25", periods=400, freq="D")  # crosses into leap year 2024
    f, names = calendar_features(index, "D")
    assert names == ["day_of_week_sin", "day_of_week_cos", "day_of_year_sin", "day_of_year_cos"]
    for row, stamp in zip(f, index.to_pydatetime()):
        days = 366 if stamp.year % 4 == 0 else 365  # 2023-2025: no century years
        expected = sincos(stamp.weekday(), 7) + sincos(stamp.timetuple().tm_yday, days)
        assert row == pytest.approx(expected, abs=TOL)
    monday = index.get_loc(pd.Timestamp("2024-01-01"))  # a Monday, day 1 of 2024
    assert f[monday, :2] == pytest.approx([0.0, 1.0], abs=TOL)
    dec31 = index.get_loc(pd.Timestamp("2024-12-31"))  # day 366 of 366 wraps to angle 0
    assert f[dec31, 2:] == pytest.approx([0.0, 1.0], abs=TOL)


def test_hourly_and_half_hourly_rows_are_time_of_day_and_day_of_week():
    index = pd.date_range("2024-03-01 20:00", periods=60, freq="30min")
    for freq, idx in (("h", pd.date_range("2024-03-01 20:00", periods=60, freq="h")), ("30min", index)):
        f, names = calendar_features(idx, freq)
        assert names == ["hour_sin", "hour_cos", "day_of_week_sin", "day_of_week_cos"]
        for row, stamp in zip(f, idx.to_pydatetime()):
            expected = sincos(stamp.hour + stamp.minute / 60, 24) + sincos(stamp.weekday(), 7)
            assert row == pytest.approx(expected, abs=TOL)
    f, _ = calendar_features(pd.DatetimeIndex(["2024-03-01 13:00"]), "h")
    assert f[0, :2] == pytest.approx(sincos(13, 24), abs=TOL)


def test_weekly_rows_are_iso_week_over_the_weeks_of_that_iso_year():
    index = pd.date_range("2019-12-01", periods=120, freq="W-SUN")  # 2020 has 53 ISO weeks
    f, names = calendar_features(index, "W-SUN")
    assert names == ["week_of_year_sin", "week_of_year_cos"]
    for row, stamp in zip(f, index.to_pydatetime()):
        iso_year, week, _ = stamp.isocalendar()
        assert row == pytest.approx(sincos(week, iso_weeks(iso_year)), abs=TOL)
    assert iso_weeks(2020) == 53
    last = index.get_loc(pd.Timestamp("2021-01-03"))  # ISO week 53 of 2020: angle 2 pi
    assert f[last] == pytest.approx([0.0, 1.0], abs=TOL)


# --- one-hot ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("freq, groups", [
    ("MS", {"month": range(1, 13)}),
    ("QS-OCT", {"quarter": range(1, 5)}),
    ("W-MON", {"week_of_year": range(1, 54)}),
    ("D", {"day_of_week": range(7), "month": range(1, 13)}),
    ("B", {"day_of_week": range(5), "month": range(1, 13)}),
    ("h", {"hour": range(24), "day_of_week": range(7)}),
])
def test_onehot_has_one_hot_column_per_cycle_and_it_is_the_right_one(freq, groups):
    index = pd.date_range("2019-06-03", periods=800, freq=freq)
    f, names = calendar_features(index, freq, kind="onehot")
    assert names == [f"{g}_{p}" for g, positions in groups.items() for p in positions]
    assert set(np.unique(f)) <= {0.0, 1.0}
    stamps = index.to_pydatetime()
    position = {"month": lambda s: s.month, "quarter": lambda s: (s.month - 1) // 3 + 1,
                "week_of_year": lambda s: s.isocalendar()[1], "day_of_week": lambda s: s.weekday(),
                "hour": lambda s: s.hour}
    for group in groups:
        cols = [i for i, n in enumerate(names) if n.rsplit("_", 1)[0] == group]
        block = f[:, cols]
        np.testing.assert_array_equal(block.sum(axis=1), np.ones(len(index)))
        hot = [names[cols[0] + int(j)] for j in block.argmax(axis=1)]
        assert hot == [f"{group}_{position[group](s)}" for s in stamps]


# --- frequencies without cycles, and NaN-free futures -----------------------------------------------

@pytest.mark.parametrize("freq", ["YS-JAN", "YE-DEC", "BYS", "2YS", None, pd.offsets.Easter()])
def test_yearly_unknown_or_no_frequency_gives_no_features(freq):
    index = pd.date_range("2000-01-01", periods=5, freq=freq or "YS")
    for kind in ("sincos", "onehot"):
        f, names = calendar_features(index, freq, kind=kind)
        assert f.shape == (5, 0) and f.dtype == np.float64 and names == []


def test_features_of_future_stamps_continue_the_history():
    for freq in ("MS", "QE-DEC", "W-SUN", "D", "B", "h", "15min"):
        history = pd.date_range("2020-02-27", periods=50, freq=freq)
        future = future_index(history, freq, 500)
        for kind in ("sincos", "onehot"):
            both, names = calendar_features(history.append(future), freq, kind)
            past, _ = calendar_features(history, freq, kind)
            ahead, ahead_names = calendar_features(future, freq, kind)
            assert ahead_names == names and np.isfinite(ahead).all()
            np.testing.assert_array_equal(both, np.concatenate([past, ahead]))  # same code, same stamps


def test_time_zone_aware_index_uses_its_own_wall_clock():
    index = pd.date_range("2024-03-30 22:00", periods=8, freq="h", tz="Europe/Berlin")  # spans the DST change
    f, _ = calendar_features(index, "h")
    for row, stamp in zip(f, index.to_pydatetime()):
        assert row[:2] == pytest.approx(sincos(stamp.hour, 24), abs=TOL)


# --- future_index ------------------------------------------------------------------------------------

@pytest.mark.parametrize("start, freq", [
    ("2023-11-01", "MS"), ("2024-01-31", "ME"), ("2023-01-01", "QS-JAN"), ("2023-03-31", "QE-DEC"),
    ("2023-12-25", "D"), ("2023-12-25", "B"), ("2024-02-28 21:00", "h"), ("2023-12-31", "W-SUN"),
    ("1990-01-01", "YS-JAN"), ("2024-01-01", "2MS"), ("2024-01-01 00:00", "15min"),
])
def test_future_index_is_the_continuation_pandas_date_range_gives(start, freq):
    longer = pd.date_range(start, periods=30, freq=freq, name="when")
    future = future_index(longer[:12], freq, 18)
    assert isinstance(future, pd.DatetimeIndex) and future.name == "when"
    assert future.equals(longer[12:])


def test_future_index_closed_forms():
    months = pd.DatetimeIndex(["2023-11-01", "2023-12-01"])
    assert list(future_index(months, "MS", 2)) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]
    ends = pd.DatetimeIndex(["2023-12-31", "2024-01-31"])
    assert list(future_index(ends, "ME", 2)) == [pd.Timestamp("2024-02-29"), pd.Timestamp("2024-03-31")]
    quarters = pd.DatetimeIndex(["2023-07-01", "2023-10-01"])
    assert list(future_index(quarters, "QS-JAN", 1)) == [pd.Timestamp("2024-01-01")]
    friday = pd.DatetimeIndex(["2024-01-04", "2024-01-05"])  # Thursday, Friday
    assert list(future_index(friday, "B", 2)) == [pd.Timestamp("2024-01-08"), pd.Timestamp("2024-01-09")]
    late = pd.DatetimeIndex(["2024-02-28 22:00", "2024-02-28 23:00"])
    assert list(future_index(late, "h", 2)) == [pd.Timestamp("2024-02-29 00:00"), pd.Timestamp("2024-02-29 01:00")]
    days = pd.DatetimeIndex(["2024-02-27", "2024-02-28"])
    assert list(future_index(days, "D", 2)) == [pd.Timestamp("2024-02-29"), pd.Timestamp("2024-03-01")]
    off_anchor = pd.DatetimeIndex(["2024-01-15"])  # not a month start: rolls to the next one
    assert list(future_index(off_anchor, "MS", 1)) == [pd.Timestamp("2024-02-01")]
    assert len(future_index(days, "D", 0)) == 0


def test_future_index_keeps_time_zone_across_a_dst_change():
    index = pd.date_range("2024-03-30 22:00", periods=2, freq="h", tz="Europe/Berlin")
    future = future_index(index, "h", 4)
    assert str(future.tz) == "Europe/Berlin"
    assert list(future.tz_convert("UTC")) == list(pd.date_range(index[-1], periods=5, freq="h").tz_convert("UTC")[1:])
    assert [s.hour for s in future] == [0, 1, 3, 4]  # 02:00 does not exist that night


def test_future_index_refuses_bad_input():
    index = pd.date_range("2024-01-01", periods=3, freq="D")
    with pytest.raises(DataError, match="DatetimeIndex"):
        future_index(pd.RangeIndex(3), "D", 2)
    with pytest.raises(DataError, match="empty"):
        future_index(index[:0], "D", 2)
    with pytest.raises(ConfigError, match="frequency"):
        future_index(index, None, 2)
    with pytest.raises(ConfigError, match="unknown frequency 'fortnightly'"):
        future_index(index, "fortnightly", 2)
    with pytest.raises(ConfigError, match="does not move forward"):
        future_index(index, "-1D", 2)
    for steps in (-1, 2.0, True, "3"):
        with pytest.raises(ConfigError, match="steps"):
            future_index(index, "D", steps)


# --- season_length -----------------------------------------------------------------------------------

@pytest.mark.parametrize("freq, m", [
    ("MS", 12), ("ME", 12), ("BMS", 12), ("QS-JAN", 4), ("QE-DEC", 4), ("BQE", 4), ("W-SUN", 52),
    ("7D", 52), ("D", 7), ("B", 5), ("h", 24), ("30min", 48), ("2h", 12), ("2MS", 6), ("5MS", 1),
    ("14D", 26), ("3D", 1), ("7h", 1), ("SMS", 24), ("YS-JAN", 1), ("YE-DEC", 1), (pd.offsets.Easter(), 1), (None, 1),
])
def test_season_length(freq, m):
    assert season_length(freq) == m


def test_season_length_agrees_with_the_dated_builtin_series():
    dated = [info for info in list_builtins() if info.time_col is not None]
    assert {info.m for info in dated} >= {1, 4, 12}  # yearly, quarterly and monthly among them
    for info in dated:
        assert season_length(load_builtin(info.name).freq) == info.m, info.name


def test_calendar_features_refuse_bad_input():
    index = pd.date_range("2024-01-01", periods=3, freq="D")
    with pytest.raises(ConfigError, match="'sincos' or 'onehot'"):
        calendar_features(index, "D", kind="fourier")
    with pytest.raises(DataError, match="DatetimeIndex"):
        calendar_features(pd.RangeIndex(3), "D")
    with pytest.raises(DataError, match="NaT"):
        calendar_features(pd.DatetimeIndex(["2024-01-01", None]), "D")
    with pytest.raises(ConfigError, match="unknown frequency"):
        calendar_features(index, "fortnightly")
    with pytest.raises(DataError, match="2024-01-06 is a weekend day"):
        calendar_features(pd.date_range("2024-01-05", periods=2, freq="D"), "B", kind="onehot")
