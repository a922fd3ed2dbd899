"""Panels in long format (rnnkit.data.panel): a table split into validated series by its id column,
checked against series built by hand from the same rows; every refusal names the series (and the
table's row) it is about."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

import rnnkit.data.panel as panel_module
from rnnkit.data.panel import PanelData, panel_from_frame, read_panel
from rnnkit.data.series import series_from_frame
from rnnkit.errors import DataError


def long_table(lengths: dict[str, int], freq: str = "MS", start: str = "2000-01-01") -> pd.DataFrame:
    """One block of rows per id (values id-number * 100 + step), dates from ``start`` at ``freq``."""
    blocks = []
    for k, (sid, n) in enumerate(lengths.items()):
        dates = pd.date_range(start, periods=n, freq=freq).strftime("%Y-%m-%d")
        blocks.append(pd.DataFrame({"shop": sid, "date": dates, "sales": 100.0 * k + np.arange(n)}))
    return pd.concat(blocks, ignore_index=True)


def interleave(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of every series taken in turn (row 0 of each id, then row 1 of each, ...): no series'
    rows are contiguous, each series' rows stay in time order."""
    step = table.groupby("shop", sort=False).cumcount()
    return table.iloc[np.lexsort((np.arange(len(table)), step.to_numpy()))].reset_index(drop=True)


# ---------------------------------------------------------------- good tables


def test_series_in_first_appearance_order_equal_series_built_one_by_one():
    table = long_table({"north": 6, "south": 9, "east": 4})
    panel = panel_from_frame(table, "shop", "sales", "date")
    assert panel.ids == ("north", "south", "east") and len(panel) == 3  # as they first appear, not sorted
    assert panel.freq == "MS" and panel.targets == ("sales",) and panel.covariates == ()
    np.testing.assert_array_equal(panel.lengths(), [6, 9, 4])
    for sid in panel.ids:
        by_hand = series_from_frame(table[table.shop == sid].drop(columns="shop"), "sales", "date")
        pd.testing.assert_frame_equal(panel[sid].frame, by_hand.frame)
        assert panel[sid].freq == "MS"


def test_non_contiguous_rows_of_one_id_are_gathered_in_order():
    table = long_table({"b": 5, "a": 7, "c": 3})
    mixed = interleave(table)
    assert mixed.shop.iloc[:3].tolist() == ["b", "a", "c"]  # really interleaved
    panel = panel_from_frame(mixed, "shop", "sales", "date")
    blocks = panel_from_frame(table, "shop", "sales", "date")
    assert panel.ids == ("b", "a", "c")
    for sid in panel.ids:
        pd.testing.assert_frame_equal(panel[sid].frame, blocks[sid].frame)
    np.testing.assert_array_equal(panel["a"].target_values[:, 0], 100.0 + np.arange(7))


def test_different_lengths_and_start_dates_and_numeric_ids():
    a = long_table({"1": 8}, start="2001-03-01")
    b = long_table({"2": 5}, start="1999-11-01")
    table = pd.concat([a, b], ignore_index=True).assign(shop=lambda d: d.shop.astype(int))  # ids as numbers
    panel = panel_from_frame(table, "shop", "sales", "date")
    assert panel.ids == ("1", "2")  # ids are strings, whatever the column's type
    assert panel["2"].frame.index[0] == pd.Timestamp("1999-11-01")
    assert panel.subset([2, "1"]).ids == ("2", "1")


def test_anchors_may_differ_the_unit_may_not():
    sundays = long_table({"a": 6}, freq="W-SUN", start="2020-01-05")
    mondays = long_table({"b": 6}, freq="W-MON", start="2020-01-06")
    panel = panel_from_frame(pd.concat([sundays, mondays]), "shop", "sales", "date")
    assert panel["a"].freq == "W-SUN" and panel["b"].freq == "W-MON"  # each keeps its own dates


def test_without_a_time_column_rows_are_in_file_order():
    table = interleave(long_table({"x": 4, "y": 6})).drop(columns="date")
    panel = panel_from_frame(table, "shop", "sales")  # no time column: the target is the one numeric column
    assert panel.freq is None and isinstance(panel["y"].frame.index, pd.RangeIndex)
    np.testing.assert_array_equal(panel["y"].target_values[:, 0], 100.0 + np.arange(6))


def test_csv_and_dataframe_agree_and_the_digest_is_the_files(tmp_path):
    import hashlib
    table = long_table({"a": 5, "b": 5})
    path = tmp_path / "panel.csv"
    table.to_csv(path, index=False)
    from_file = read_panel(path, "shop", "sales", "date")
    from_frame = panel_from_frame(table, "shop", "sales", "date")
    assert from_file.ids == from_frame.ids and from_file.source == str(path)
    assert from_file.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    for sid in from_file.ids:
        pd.testing.assert_frame_equal(from_file[sid].frame, from_frame[sid].frame)


def test_parquet_panel(tmp_path):
    pytest.importorskip("pyarrow")
    table = long_table({"a": 4, "b": 6}).assign(date=lambda d: pd.to_datetime(d.date))  # real datetimes
    table.to_parquet(tmp_path / "panel.parquet")
    panel = read_panel(tmp_path / "panel.parquet", "shop", "sales", "date")
    assert panel.ids == ("a", "b") and panel.freq == "MS"
    np.testing.assert_array_equal(panel["b"].target_values[:, 0], 100.0 + np.arange(6))


def test_subset_keeps_the_order_asked_for_and_names_missing_ids():
    panel = panel_from_frame(long_table({"a": 3, "b": 3, "c": 3}), "shop", "sales", "date")
    sub = panel.subset(["c", "a"])
    assert isinstance(sub, PanelData) and sub.ids == ("c", "a") and sub.series[0] is panel["c"]
    with pytest.raises(DataError, match=r"no series with id\(s\) 'zz', 'yy'"):
        panel.subset(["a", "zz", "yy"])
    with pytest.raises(DataError, match="no series with id 'q'"):
        panel["q"]


# ---------------------------------------------------------------- refusals, each naming what is wrong


def test_unknown_id_column_lists_the_columns():
    with pytest.raises(DataError, match=r"no id column 'store'; the columns are shop, date, sales"):
        panel_from_frame(long_table({"a": 3}), "store", "sales", "date")


@pytest.mark.parametrize("blank", [np.nan, "   "])
def test_empty_id_cell_names_its_row(blank):
    table = long_table({"a": 4, "b": 4}).astype({"shop": object})
    table.loc[5, "shop"] = blank
    with pytest.raises(DataError, match="the id column 'shop' is empty in data row 6"):
        panel_from_frame(table, "shop", "sales", "date")


def test_ids_that_read_the_same_once_stripped_are_one_series():
    table = long_table({"7": 3, "8": 2}).astype({"shop": object})
    table.loc[[0, 2], "shop"] = [7, " 7 "]  # the number 7, the text '7' and ' 7 ': one series, '7'
    panel = panel_from_frame(table, "shop", "sales", "date")
    assert panel.ids == ("7", "8") and panel.lengths().tolist() == [3, 2]
    np.testing.assert_array_equal(panel["7"].target_values[:, 0], [0.0, 1.0, 2.0])


@pytest.mark.parametrize("roles", [dict(target="shop"), dict(target="sales", time_col="shop"),
                                   dict(target="sales", covariates=["shop"])])
def test_id_column_cannot_have_another_role(roles):
    kwargs = {"time_col": "date", **roles}
    with pytest.raises(DataError, match="column 'shop' is the id column"):
        panel_from_frame(long_table({"a": 3}), "shop", **kwargs)


def test_series_with_different_frequencies_names_the_odd_one():
    monthly = long_table({f"m{i}": 6 for i in range(5)})
    weekly = long_table({"w": 6}, freq="W-SUN", start="2020-01-05")
    with pytest.raises(DataError, match="series 'w' has frequency W-SUN but series 'm0' has MS"):
        panel_from_frame(pd.concat([monthly, weekly]), "shop", "sales", "date")
    mixed = panel_from_frame(pd.concat([monthly, weekly]), "shop", "sales", "date", mixed_frequencies=True)
    assert mixed.freq is None and mixed["w"].freq == "W-SUN" and mixed["m0"].freq == "MS"  # each its own


def test_a_one_row_series_is_not_a_frequency_mismatch():
    panel = panel_from_frame(long_table({"one": 1, "a": 5}), "shop", "sales", "date")
    assert panel.freq == "MS" and panel["one"].freq is None  # refused later, as shorter than the lookback


def test_gap_inside_one_series_names_it_and_the_tables_row():
    table = interleave(long_table({"a": 6, "b": 6}))  # a0 b0 a1 b1 ...: b's rows are table rows 2, 4, 6, ...
    gone = table.index[(table.shop == "b") & (table.date == "2000-04-01")]
    table = table.drop(index=gone).reset_index(drop=True)
    # b's 2000-03-01 is its 3rd row, the table's 6th data row
    with pytest.raises(DataError, match=r"\(series 'b'\): time column 'date' has gaps at frequency 'MS': "
                                        r"2000-04-01 is missing after data row 6 \(2000-03-01\)"):
        panel_from_frame(table, "shop", "sales", "date")


def test_nan_inside_one_series_names_it_and_the_tables_row(tmp_path):
    table = interleave(long_table({"a": 5, "b": 5}))
    table.loc[7, "sales"] = np.nan  # b's 4th row
    path = tmp_path / "p.csv"
    table.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"p.csv \(series 'b'\): column 'sales' has missing or infinite values at "
                                        r"data row\(s\) 8;"):
        read_panel(path, "shop", "sales", "date")
    filled = read_panel(path, "shop", "sales", "date", fill="ffill")  # the series' own previous value
    np.testing.assert_array_equal(filled["b"].target_values[:, 0], [100, 101, 102, 102, 104])


def test_duplicate_time_and_non_numeric_value_name_the_series():
    table = long_table({"a": 4, "b": 4})
    dup = table.copy()
    dup.loc[6, "date"] = dup.loc[5, "date"]
    with pytest.raises(DataError, match=r"\(series 'b'\): duplicate time 2000-02-01 at data rows 6 and 7"):
        panel_from_frame(dup, "shop", "sales", "date")
    bad = table.astype({"sales": object})
    bad.loc[2, "sales"] = "n/a"
    with pytest.raises(DataError, match=r"\(series 'a'\): column 'sales' has the non-numeric value 'n/a' at data "
                                        r"row 3"):
        panel_from_frame(bad, "shop", "sales", "date")


def test_empty_table():
    with pytest.raises(DataError, match="no rows"):
        panel_from_frame(long_table({"a": 2}).iloc[:0], "shop", "sales", "date")


# ---------------------------------------------------------------- the clean-table path


def _one_by_one(monkeypatch, *args, **kw) -> PanelData:
    """The panel as validated one series at a time (the clean-table pass switched off)."""
    with monkeypatch.context() as m:
        m.setattr(panel_module, "_clean_panel", lambda *a, **k: None)
        return panel_from_frame(*args, **kw)


def _assert_same_panel(a: PanelData, b: PanelData) -> None:
    assert (a.ids, a.source, a.sha256, a.freq, a.static) == (b.ids, b.source, b.sha256, b.freq, b.static)
    for x, y in zip(a.series, b.series, strict=True):
        pd.testing.assert_frame_equal(x.frame, y.frame, check_freq=True)
        assert (x.targets, x.covariates, x.source, x.sha256, x.freq) == (y.targets, y.covariates, y.source,
                                                                           y.sha256, y.freq)


def _clean_tables() -> dict[str, tuple[pd.DataFrame, dict]]:
    rng = np.random.default_rng(0)
    mixed = interleave(long_table({"b": 5, "a": 7, "c": 1, "d": 2}))
    mixed["temp"] = rng.normal(size=len(mixed)).round(3).astype(str)  # a covariate as text, as CSV reads it
    mixed["region"] = mixed.shop.map({"a": "N", "b": " S", "c": "N", "d": "E"})  # stripped, as one by one
    dated = long_table({"x": 6, "y": 9}).assign(date=lambda d: pd.to_datetime(d.date), units=lambda d: d.sales * 2)
    years = long_table({"p": 4, "q": 3}, freq="YS").assign(date=lambda d: d.date.str[:4].astype(int))
    weeks = pd.concat([long_table({"s": 6}, freq="W-SUN", start="2020-01-05"),
                       long_table({"m": 6}, freq="W-MON", start="2020-01-06")], ignore_index=True)
    quarters = pd.concat([long_table({"j": 5}, freq="QS-JAN"), long_table({"o": 5}, freq="QS-OCT")],
                         ignore_index=True)
    return {
        "interleaved, text covariate, static, 1- and 2-row series": (mixed, dict(
            target="sales", time_col="date", covariates=("temp",), static_covariates=("region",))),
        "datetime column, two targets": (dated, dict(target=["sales", "units"], time_col="date")),
        "datetime column, target inferred": (dated.drop(columns="units"), dict(time_col="date")),
        "years as whole numbers": (years, dict(target="sales", time_col="date")),
        "weekly anchors differ": (weeks, dict(target="sales", time_col="date")),
        "quarterly anchors differ": (quarters, dict(target="sales", time_col="date")),
        "no time column, numeric ids": (mixed.drop(columns=["date", "temp", "region"]).assign(
            shop=lambda d: d.shop.map({"a": 1, "b": 2, "c": 3, "d": 4})), dict()),
    }


@pytest.mark.parametrize("case", list(_clean_tables()))
def test_a_clean_table_loads_in_one_pass_as_one_series_at_a_time(case, monkeypatch):
    table, kw = _clean_tables()[case]
    expected = _one_by_one(monkeypatch, table, "shop", **kw)
    with monkeypatch.context() as m:  # the one-pass path must really be the one taken
        m.setattr(panel_module, "_series_one_by_one", lambda *a, **k: pytest.fail("took the one-by-one path"))
        panel = panel_from_frame(table, "shop", **kw)
    _assert_same_panel(panel, expected)


@pytest.mark.parametrize("damage", ["nan", "gap", "unordered", "text", "static"])
def test_a_table_needing_a_message_or_a_fill_goes_one_series_at_a_time(damage, monkeypatch):
    table = long_table({"a": 6, "b": 8}).assign(region=lambda d: d.shop)
    if damage == "nan":
        table.loc[9, "sales"] = np.nan
    elif damage == "gap":
        table = table.drop(index=9)
    elif damage == "unordered":
        table.loc[[8, 9], "date"] = table.loc[[9, 8], "date"].to_numpy()
    elif damage == "text":
        table["sales"] = table.sales.astype(str)
        table.loc[9, "sales"] = "n/a"
    else:
        table.loc[9, "region"] = "c"
    calls = []
    real = panel_module._series_one_by_one
    monkeypatch.setattr(panel_module, "_series_one_by_one", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(DataError, match="series 'b'"):
        panel_from_frame(table, "shop", "sales", "date", static_covariates=("region",))
    assert calls == [1]
    if damage in ("nan", "gap"):  # filled: the series one by one, as the fill needs them
        panel = panel_from_frame(table, "shop", "sales", "date", fill="ffill", static_covariates=("region",))
        assert calls == [1, 1] and len(panel["b"]) == 8 and np.isfinite(panel["b"].values).all()


_DTYPES = {  # what a long table's columns may hold, as CSV, Parquet or a user's DataFrame give them
    "datetime": lambda d: d,
    "tz-aware": lambda d: d.assign(date=d.date.dt.tz_localize("UTC")),
    "text dates with spaces": lambda d: d.assign(date=" " + d.date.dt.strftime("%Y-%m-%d %H:%M") + " "),
    "nullable integers": lambda d: d.assign(sales=(d.sales * 10).round().astype("Int64")),
    "float32": lambda d: d.assign(sales=d.sales.astype("float32")),
    "bool covariate": lambda d: d.assign(promo=d.promo > 2),
    "numbers as text": lambda d: d.assign(sales=d.sales.map(lambda v: f" {v:.4f} ")),
    "categorical ids": lambda d: d.assign(shop=d.shop.astype("category")),
    "integer ids": lambda d: d.assign(shop=d.shop.str[1:].astype(int)),
    "a duplicate time": lambda d: pd.concat([d, d.iloc[[0]]], ignore_index=True),
    "a missing value": lambda d: d.assign(sales=d.sales.where(d.index != 1)),
    "a text value": lambda d: d.assign(sales=d.sales.astype(str).where(d.index != 0, "abc")),
}


@pytest.mark.parametrize("freq", ["MS", "D", "h", "W-SUN", "QS"])
def test_random_tables_load_as_one_series_at_a_time(freq, monkeypatch):
    """Random small tables of every column type above (interleaved or not; with covariates, inferred
    targets, no time column, a fill): the panel, or the error, is the one-series-at-a-time path's."""
    rng = np.random.default_rng(["MS", "D", "h", "W-SUN", "QS"].index(freq))
    for name, change in _DTYPES.items():
        for _ in range(3):
            blocks = []
            for k in range(int(rng.integers(1, 5))):
                n = int(rng.integers(1, 8))
                blocks.append(pd.DataFrame({"shop": f"k{k}", "date": pd.date_range("2001-01-07", periods=n, freq=freq),
                                            "sales": rng.normal(size=n), "promo": rng.integers(0, 5, n)}))
            table = pd.concat(blocks, ignore_index=True)
            if rng.random() < 0.5:  # interleave the series, each still in time order
                table = table.sample(frac=1, random_state=int(rng.integers(1e6))).sort_values("date", kind="stable")
            table = change(table.reset_index(drop=True))
            for kw in (dict(target="sales", time_col="date", covariates=("promo",)), dict(time_col="date"),
                       dict(target="sales"), dict(target="sales", time_col="date", fill="ffill")):
                outcome = []
                for load in (lambda: panel_from_frame(table, "shop", **kw),
                             lambda: _one_by_one(monkeypatch, table, "shop", **kw)):
                    try:
                        outcome.append(load())
                    except DataError as e:
                        outcome.append(str(e))
                if isinstance(outcome[0], str) or isinstance(outcome[1], str):
                    assert outcome[0] == outcome[1], (name, kw)
                else:
                    _assert_same_panel(*outcome)


# ---------------------------------------------------------------- memory-saving paths, same panel


_RUNS = {  # id columns whose rows come in runs of one id, and one that does not
    "text in runs": ["b", "b", "b", "a", "a", "c", "c", "c", "b", "b"],
    "numpy text": [np.str_("x")] * 3 + ["y"] * 3 + [np.str_("x")] * 2,
    "spaces read as one id": ["7", "7", " 7 ", " 7 ", "8", "8", "7", "7"],
    "integers": [5, 5, 5, 2, 2, 2, 5, 5],
    "numbers and text": [7, 7, "7", "7", " 7", " 7", 8, 8],
    "interleaved": ["a", "b", "a", "b", "a", "b"],
}


@pytest.mark.parametrize("case", list(_RUNS))
def test_ids_numbered_by_runs_as_row_by_row(case, monkeypatch):
    """Numbering only the first cell of each run of equal ids gives every row the number the whole
    column's lookup gives it."""
    ids = pd.Series(_RUNS[case], dtype=object if case != "integers" else np.int64)
    got = panel_module._series_codes(ids, "shop", "t")
    monkeypatch.setattr(panel_module, "_run_heads", lambda ids: None)
    want = panel_module._series_codes(ids, "shop", "t")
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1]


def test_series_on_one_calendar_share_an_index_and_hold_none_of_the_tables_memory():
    table = long_table({"a": 6, "b": 6, "c": 6, "d": 4}).assign(date=lambda d: pd.to_datetime(d.date))
    panel = panel_from_frame(table, "shop", "sales", "date")
    a, b, c, d = panel.series
    assert a.frame.index is b.frame.index is c.frame.index and d.frame.index is not a.frame.index
    assert a.freq == b.freq == "MS"
    assert panel.sha256 == hashlib.sha256(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()).hexdigest()
    spread = long_table({"a": 6, "b": 7}).assign(date=lambda d: pd.to_datetime(d.date))  # no span shared
    for t in (table, spread):
        before = panel_from_frame(t, "shop", "sales", "date")
        kept = [(s.frame.index.copy(deep=True), s.frame.to_numpy().copy()) for s in before.series]
        t.loc[:, "date"] = pd.Timestamp("1999-01-01")  # the user's table changed (in place without copy-on-write)
        t.loc[:, "sales"] = -1.0
        for s, (index, values) in zip(before.series, kept):
            pd.testing.assert_index_equal(s.frame.index, index)
            np.testing.assert_array_equal(s.frame.to_numpy(), values)


def test_times_increase_checked_a_block_of_rows_at_a_time():
    rng = np.random.default_rng(0)
    for _ in range(200):
        i8 = np.cumsum(rng.integers(-1, 4, 30))
        ends = np.unique(np.append(rng.integers(1, 30, 4), 30))
        step = np.diff(i8)
        step[ends[:-1] - 1] = 1
        assert panel_module._increasing(i8, ends, block=4) == (not (step <= 0).any())
