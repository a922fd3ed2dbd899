"""read_series validation, builtins, splits, Scaler and make_windows, against hand-made files
and values worked out in the comments."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pandas as pd
import pytest

from rnnkit.data.scaler import Scaler
from rnnkit.data.split import Split, split_at, split_series
from rnnkit.data.builtin import list_builtins, load_builtin
from rnnkit.data.windows import make_windows
from rnnkit.data.sources import read_series
from rnnkit.tasks.forecast.data import freq_season
from rnnkit.errors import ConfigError, DataError, RnnkitError, ShapeError


def write(tmp_path, text, name="series.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


DAILY = "date,y,x\n2020-01-01,1,10\n2020-01-02,2,20\n2020-01-03,4,30\n2020-01-04,8,40\n"


# ---------------------------------------------------------------- read_series: good files


def test_read_csv_with_time_target_and_covariate(tmp_path):
    path = write(tmp_path, DAILY)
    s = read_series(path, target="y", time_col="date", covariates=["x"])
    assert s.targets == ("y",) and s.covariates == ("x",)
    assert list(s.frame.columns) == ["y", "x"]
    assert isinstance(s.frame.index, pd.DatetimeIndex) and s.frame.index.name == "date"
    assert s.frame.index[0] == pd.Timestamp("2020-01-01")
    assert s.freq == "D" and len(s) == 4
    np.testing.assert_array_equal(s.values, [[1, 10], [2, 20], [4, 30], [8, 40]])
    assert s.values.dtype == np.float64
    np.testing.assert_array_equal(s.target_values, [[1], [2], [4], [8]])
    assert s.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert s.source == str(path)


def test_target_defaults_to_the_only_numeric_column(tmp_path):
    s = read_series(write(tmp_path, "date,name,y\n2020-01-01,a,1.5\n2020-01-02,b,2.5\n"),
                    time_col="date")
    assert s.targets == ("y",)
    assert isinstance(s.frame.index, pd.DatetimeIndex)
    s = read_series(write(tmp_path, "y\n3\n4\n"))
    assert s.targets == ("y",) and isinstance(s.frame.index, pd.RangeIndex) and s.freq is None


def test_target_ambiguous_asks_for_target(tmp_path):
    with pytest.raises(DataError, match=r"--target.*'date', 'y', 'x'"):
        read_series(write(tmp_path, DAILY))


def test_tsv_and_years_as_time(tmp_path):
    s = read_series(write(tmp_path, "year\tflow\n1871\t1120\n1872\t1160\n1873\t963\n",
                          "nile.tsv"), time_col="year")
    assert s.frame.index[0] == pd.Timestamp("1871-01-01")
    assert s.freq == "YS-JAN"
    np.testing.assert_array_equal(s.target_values[:, 0], [1120, 1160, 963])


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"date": pd.date_range("2021-01-01", periods=3, freq="MS"),
                          "y": [1.0, 2.0, 3.0], "x": [1, 0, 1]})
    frame.to_parquet(tmp_path / "s.parquet")
    s = read_series(tmp_path / "s.parquet", target="y", time_col="date", covariates=["x"])
    assert s.freq == "MS"
    np.testing.assert_array_equal(s.values, [[1, 1], [2, 0], [3, 1]])


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "s.parquet"
    path.write_bytes(b"PAR1 not really")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    with pytest.raises(DataError, match=r"pip install rnnkit\[parquet\]"):
        read_series(path)


# ---------------------------------------------------------------- read_series: bad files


def test_missing_unsupported_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_series(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'"):
        read_series(write(tmp_path, "y\n1\n", "s.xlsx"))
    with pytest.raises(DataError, match="empty"):
        read_series(write(tmp_path, ""))
    with pytest.raises(DataError, match="no data rows"):
        read_series(write(tmp_path, "date,y\n"))
    with pytest.raises(DataError, match="cannot parse the file .*Expected 2 fields in line 3"):
        read_series(write(tmp_path, "a,b\n1,2\n3,4,5,6\n"), target="a")


@pytest.mark.parametrize("kwargs, role", [
    ({"target": "z"}, "target"),
    ({"target": "y", "time_col": "when"}, "time"),
    ({"target": "y", "covariates": ["q"]}, "covariate"),
])
def test_unknown_column_lists_available(tmp_path, kwargs, role):
    with pytest.raises(DataError, match=rf"no {role} column .*'date', 'y', 'x'"):
        read_series(write(tmp_path, DAILY), **kwargs)


def test_column_roles_must_not_overlap(tmp_path):
    path = write(tmp_path, DAILY)
    with pytest.raises(DataError, match="both a target and a covariate"):
        read_series(path, target="y", covariates=["x", "y"])
    with pytest.raises(DataError, match="time column 'date' cannot also be"):
        read_series(path, target=["y", "date"], time_col="date")


def test_non_numeric_names_row_and_value(tmp_path):
    path = write(tmp_path, "y,x\n1,1\n2,1\n3,abc\n4,zz\n")
    with pytest.raises(DataError, match=r"'x' has the non-numeric value 'abc' at data row 3 "
                                        r"\(rows counted from 1 after the header\) \(1 more"):
        read_series(path, target="y", covariates=["x"])
    assert len(read_series(path, target="y")) == 4  # unused columns are not checked


def test_nan_and_inf_without_fill_name_rows(tmp_path):
    path = write(tmp_path, "y\n1\n\n2\nNA\n3\ninf\n")  # blank lines are skipped by the reader
    with pytest.raises(DataError, match=r"'y' has missing or infinite values at data row\(s\) "
                                        r"3, 5; use --fill ffill or --fill interpolate"):
        read_series(path)


def test_fill_ffill_and_interpolate(tmp_path):
    path = write(tmp_path, "y,x\n1,0\nNA,1\n5,2\nNA,3\n-inf,4\n")
    ffilled = read_series(path, target="y", covariates=["x"], fill="ffill")
    np.testing.assert_array_equal(ffilled.target_values[:, 0], [1, 1, 5, 5, 5])
    interp = read_series(path, target="y", fill="interpolate")
    np.testing.assert_array_equal(interp.target_values[:, 0], [1, 3, 5, 5, 5])  # ends ffill


def test_fill_refuses_missing_start(tmp_path):
    path = write(tmp_path, "y\nNA\nNA\n3\n4\n")
    for fill in ("ffill", "interpolate"):
        with pytest.raises(DataError, match="no value before data row 3"):
            read_series(path, fill=fill)
    with pytest.raises(ConfigError, match="fill='bfill'"):
        read_series(path, fill="bfill")


def test_bad_dates(tmp_path):
    with pytest.raises(DataError, match=r"'yesterday' at data row 2, which is not a date"):
        read_series(write(tmp_path, "date,y\n2020-01-01,1\nyesterday,2\n"), time_col="date")
    with pytest.raises(DataError, match="an empty cell at data row 2"):
        read_series(write(tmp_path, "date,y\n2020-01-01,1\n,2\n"), time_col="date")
    with pytest.raises(DataError, match=r"duplicate time 2020-01-02 at data rows 2 and 3"):
        read_series(write(tmp_path, "date,y\n2020-01-01,1\n2020-01-02,2\n2020-01-02,3\n"),
                    time_col="date")
    with pytest.raises(DataError, match=r"not in time order: data row 3 \(2020-01-02.*data row "
                                        r"2 \(2020-01-05.*never reorders"):
        read_series(write(tmp_path, "date,y\n2020-01-01,1\n2020-01-05,2\n2020-01-02,3\n"),
                    time_col="date")


GAPPY = "date,y\n2020-01-01,1\n2020-01-02,2\n2020-01-04,4\n2020-01-05,5\n2020-01-07,9\n"


def test_gap_is_an_error_without_fill(tmp_path):
    with pytest.raises(DataError, match=r"gaps at frequency 'D': 2020-01-03 is missing "
                                        r"after data row 2 .*2 time\(s\) missing"):
        read_series(write(tmp_path, GAPPY), time_col="date")


def test_gap_filled(tmp_path):
    path = write(tmp_path, GAPPY)
    s = read_series(path, time_col="date", fill="interpolate")
    assert len(s) == 7 and s.freq == "D"
    assert s.frame.index[2] == pd.Timestamp("2020-01-03")
    np.testing.assert_array_equal(s.target_values[:, 0], [1, 2, 3, 4, 5, 7, 9])
    s = read_series(path, time_col="date", fill="ffill")
    np.testing.assert_array_equal(s.target_values[:, 0], [1, 2, 2, 4, 5, 5, 9])


def test_monthly_gap_uses_calendar_months(tmp_path):
    text = "month,y\n2020-01-01,1\n2020-02-01,2\n2020-04-01,4\n2020-05-01,5\n"
    with pytest.raises(DataError, match=r"'MS': 2020-03-01"):
        read_series(write(tmp_path, text), time_col="month")
    s = read_series(write(tmp_path, text), time_col="month", fill="interpolate")
    np.testing.assert_array_equal(s.target_values[:, 0], [1, 2, 3, 4, 5])


# ---------------------------------------------------------------- builtins


def test_builtins_load_with_documented_sizes():
    infos = list_builtins()
    assert {i.name for i in infos} >= {"sine", "sin35", "noisy_sine", "cosine", "nile"}
    for info in infos:
        s = load_builtin(info.name)
        assert len(s) == info.n_rows, info.name
        assert s.targets == (info.target,) and info.target in info.columns
        assert s.source == f"builtin:{info.name}" and len(s.sha256) == 64
        assert info.m >= 1 and info.licence and info.source
        assert (s.frame.index.name == info.time_col) or info.time_col is None


def test_nile_values_and_read_series_alias():
    nile = read_series("builtin:nile")
    assert len(nile) == 100 and nile.targets == ("volume",)
    assert nile.target_values[0, 0] == 1120 and nile.target_values[-1, 0] == 740
    assert nile.frame.index[0] == pd.Timestamp("1871-01-01") and nile.freq == "YS-JAN"


def test_synthetic_builtins_follow_the_tutorials():
    np.testing.assert_array_equal(load_builtin("sine").target_values[:, 0],
                                  np.sin(np.linspace(-10, 10, 50)))
    np.testing.assert_array_equal(load_builtin("sin35").target_values[:, 0],
                                  np.sin(np.arange(36.0)))
    noisy = load_builtin("noisy_sine")
    assert noisy.sha256 == load_builtin("noisy_sine").sha256  # deterministic
    residual = noisy.target_values[:, 0] - np.sin(np.linspace(-2 * np.pi, 2 * np.pi, 50))
    assert 0.05 < residual.std() < 0.2


def test_builtin_covariates_and_unknown_name():
    macro = read_series("builtin:macro", covariates=["unemp"])
    # quarter starts: pandas 3 names the anchor QS-JAN, pandas 2 QS-OCT (the same dates)
    assert macro.freq in ("QS-JAN", "QS-OCT") and freq_season(macro.freq) == 4 and macro.values.shape == (203, 2)
    assert macro.values[0].tolist() == [2710.349, 5.8]
    with pytest.raises(DataError, match=r"unknown builtin series 'nope'.*nile"):
        read_series("builtin:nope")


# ---------------------------------------------------------------- splits


def test_split_series_rounding():
    assert split_series(10) == Split(train_end=7, val_end=8, n=10)  # val 1, test 2
    assert split_series(25) == Split(17, 20, 25)  # val 2.5 -> 3 (halves up), test 5
    sp = split_series(100, val_frac=0.0, test_frac=0.25)
    assert (sp.train, sp.val, sp.test) == (slice(0, 75), slice(75, 75), slice(75, 100))


def test_split_series_errors():
    for kwargs in ({"val_frac": 1.0}, {"test_frac": -0.1}, {"val_frac": 0.5, "test_frac": 0.5}):
        with pytest.raises(ConfigError):
            split_series(10, **kwargs)
    with pytest.raises(DataError, match="only 7 of 10 rows"):
        split_series(10, min_train=8)


def test_split_at_dates():
    index = read_series("builtin:nile").frame.index
    assert split_at(index, "1941", "1951") == Split(70, 80, 100)
    assert split_at(index, test_start="1961-01-01") == Split(90, 90, 100)
    assert split_at(index) == Split(100, 100, 100)
    with pytest.raises(DataError, match="outside the series"):
        split_at(index, val_start="2001")
    with pytest.raises(ConfigError, match="after --test-start"):
        split_at(index, "1960", "1950")
    with pytest.raises(DataError, match="no training rows"):
        split_at(index, "1871")
    assert split_at(pd.RangeIndex(10), "6", 8) == Split(6, 8, 10)


# ---------------------------------------------------------------- Scaler


def test_minmax_by_hand_with_constant_column():
    x = np.array([[1.0, 10.0], [3.0, 10.0], [2.0, 10.0]])
    sc = Scaler("minmax").fit(x)
    np.testing.assert_array_equal(sc.offset, [1, 10])
    np.testing.assert_array_equal(sc.scale, [2, 1])  # constant column -> scale 1
    np.testing.assert_array_equal(sc.transform(x), [[0, 0], [1, 0], [0.5, 0]])


def test_standard_uses_population_std():
    sc = Scaler("standard").fit(np.array([[1.0], [2.0], [3.0], [4.0]]))
    assert sc.offset[0] == 2.5 and sc.scale[0] == pytest.approx(np.sqrt(1.25))  # ddof=0
    np.testing.assert_allclose(sc.transform(np.array([[2.5], [4.0]]))[:, 0],
                               [0.0, 1.5 / np.sqrt(1.25)])
    none = Scaler("none").fit(np.ones((2, 3)))
    np.testing.assert_array_equal(none.transform(np.full((1, 3), 7.0)), [[7, 7, 7]])


def test_fit_on_train_rows_only():
    values = np.array([[1.0, 5.0], [2.0, 7.0], [3.0, 3.0], [100.0, -50.0]])
    split = split_series(4, val_frac=0.0, test_frac=0.25)  # train = rows 0..2
    sc = Scaler("minmax").fit(values[split.train])
    np.testing.assert_array_equal(sc.offset, [1.0, 3.0])  # min of train rows only
    np.testing.assert_array_equal(sc.scale, [2.0, 4.0])
    assert sc.transform(values)[3].tolist() == [49.5, -13.25]  # test rows may leave [0, 1]


def test_round_trip_any_leading_dims_and_column_subset():
    rng = np.random.RandomState(1)
    values = rng.normal(size=(20, 3)) * [1, 10, 100]
    for kind in Scaler.KINDS:
        sc = Scaler(kind).fit(values)
        windows = values.reshape(4, 5, 3)
        np.testing.assert_allclose(sc.inverse_transform(sc.transform(windows)), windows)
        target = windows[..., 1:2]  # (4, 5, 1): one target column of the three
        scaled = sc.transform(target, columns=[1])
        np.testing.assert_allclose(scaled, sc.transform(windows)[..., 1:2])
        np.testing.assert_allclose(sc.inverse_transform(scaled, columns=[1]), target)


def test_to_dict_json_round_trip_is_exact():
    sc = Scaler("standard").fit(np.array([[0.1, 1 / 3], [0.7, 2 / 7], [1e-300, 5.5]]))
    again = Scaler.from_dict(json.loads(json.dumps(sc.to_dict())))
    assert again.kind == "standard" and again.fitted
    assert again.offset.tolist() == sc.offset.tolist()
    assert again.scale.tolist() == sc.scale.tolist()
    with pytest.raises(ConfigError, match="'kind', 'offset', 'scale'"):
        Scaler.from_dict({"kind": "minmax"})


def test_scaler_errors():
    with pytest.raises(RnnkitError, match="not fitted"):
        Scaler().transform(np.ones((2, 1)))
    with pytest.raises(ConfigError, match="unknown scaler 'robust'"):
        Scaler("robust")
    sc = Scaler().fit(np.ones((3, 2)))
    with pytest.raises(ShapeError, match="2 column"):
        sc.transform(np.ones((3, 3)))
    with pytest.raises(ShapeError, match="below 2"):
        sc.transform(np.ones((3, 1)), columns=[2])
    with pytest.raises(DataError, match="NaN"):
        Scaler().fit(np.array([[1.0], [np.nan]]))


# ---------------------------------------------------------------- make_windows

X10 = np.arange(10.0).reshape(10, 1)  # inputs 0..9
Y10 = 100 + np.arange(10.0).reshape(10, 1)  # targets 100..109


def test_windows_exact_contents():
    X, Y = make_windows(X10, Y10, lookback=3, horizon=2)
    assert X.shape == (6, 3, 1) and Y.shape == (6, 2, 1)  # 10 - 3 - 2 + 1 windows
    assert X[0, :, 0].tolist() == [0, 1, 2] and Y[0, :, 0].tolist() == [103, 104]
    assert X[-1, :, 0].tolist() == [5, 6, 7] and Y[-1, :, 0].tolist() == [108, 109]
    assert X.dtype == np.float64 and X.flags.c_contiguous and Y.flags.c_contiguous
    X[0, 0, 0] = -1
    assert X10[0, 0] == 0  # copies, not views


def test_windows_stride_and_multiple_features():
    inputs = np.stack([np.arange(10.0), -np.arange(10.0)], axis=1)  # (10, 2)
    X, Y = make_windows(inputs, Y10, lookback=3, horizon=2, stride=2)
    assert X.shape == (3, 3, 2)  # starts 0, 2, 4
    assert X[:, 0, 0].tolist() == [0, 2, 4] and X[1, :, 1].tolist() == [-2, -3, -4]
    assert Y[:, 0, 0].tolist() == [103, 105, 107]


def test_windows_start_end_targets_inside_inputs_reach_back():
    # test part = rows [7, 10): window starts s with s + 3 >= 7 and s + 4 <= 10 -> s = 4, 5, 6
    X, Y = make_windows(X10, Y10, lookback=3, horizon=1, start=7)
    assert X[:, :, 0].tolist() == [[4, 5, 6], [5, 6, 7], [6, 7, 8]]
    assert Y[:, 0, 0].tolist() == [107, 108, 109]
    # train part = rows [0, 7): targets must end before row 7 -> s + 5 <= 7 -> s = 0, 1, 2
    X, Y = make_windows(X10, Y10, lookback=3, horizon=2, end=7)
    assert X[:, 0, 0].tolist() == [0, 1, 2] and Y[-1, :, 0].tolist() == [105, 106]


def test_windows_errors():
    with pytest.raises(DataError, match="needs at least 5 rows, but there are 4"):
        make_windows(X10[:4], Y10[:4], lookback=3, horizon=2)
    with pytest.raises(DataError, match="horizon 3 needs 3"):
        make_windows(X10, Y10, lookback=3, horizon=3, start=8)
    for bad in ({"lookback": 0, "horizon": 1}, {"lookback": 2, "horizon": 0},
                {"lookback": 2, "horizon": 1, "stride": 0}):
        with pytest.raises(ConfigError):
            make_windows(X10, Y10, **bad)
    with pytest.raises(ShapeError, match="2-D"):
        make_windows(np.arange(10.0), Y10, lookback=2, horizon=1)
    with pytest.raises(ShapeError, match="10 rows but targets have 9"):
        make_windows(X10, Y10[:9], lookback=2, horizon=1)
    with pytest.raises(ConfigError, match="start=5, end=3"):
        make_windows(X10, Y10, lookback=2, horizon=1, start=5, end=3)
