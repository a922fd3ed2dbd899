"""Forecasting's data glue: the series a :class:`DataConfig` names, its split in time, the rows a
split needs, and the long streams of stateful training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...data.builtin import list_builtins
from ...data.series import SeriesData
from ...data.sources import read_series
from ...data.split import Split, round_rows, split_at, split_series
from ...errors import ConfigError, DataError
from .config import DataConfig

__all__ = ["load_data", "is_builtin", "absolute_source", "seasonal_period", "freq_season", "default_lookback",
           "resolve_split", "split_for", "check_rows", "series_streams"]


def load_data(config: DataConfig) -> SeriesData:
    """Read the series ``config`` names (a file or ``builtin:NAME``), validated."""
    return read_series(config.source, target=list(config.targets) or None, time_col=config.time_col,
                       covariates=config.covariates + config.future_covariates, fill=config.fill)


def is_builtin(source: str) -> bool:
    """Whether ``source`` names a built-in series (``builtin:NAME``), not a file."""
    return str(source).startswith("builtin:")


def absolute_source(source: str) -> str:
    """A file path made absolute (a run must find its data from any working directory)."""
    return source if is_builtin(source) or source.startswith("<") else str(Path(source).expanduser().absolute())


#: the season a calendar frequency implies (pandas offset names, without their anchors):
#: the usual m of the M competitions and of statsforecast's season_length
FREQ_SEASON = {"h": 24, "H": 24, "D": 7, "B": 5, "W": 52, "M": 12, "MS": 12, "ME": 12, "BM": 12, "BMS": 12,
               "BME": 12, "SM": 24, "SMS": 24, "SME": 24, "Q": 4, "QS": 4, "QE": 4, "BQ": 4, "BQS": 4, "BQE": 4}


def freq_season(freq: str | None) -> int:
    """The season length a pandas frequency implies (``"MS"`` -> 12, ``"QS-OCT"`` -> 4, ``"D"`` -> 7);
    1 for yearly, sub-hourly, multiples such as ``"2D"``, or no frequency."""
    if not freq:
        return 1
    return FREQ_SEASON.get(str(freq).split("-")[0], 1)


def seasonal_period(config: DataConfig, freq: str | None = None) -> int:
    """The season length m: the configured one, else the built-in series' own, else the one the
    data's frequency ``freq`` implies (:func:`freq_season`), else 1."""
    if config.seasonal_period is not None:
        return config.seasonal_period
    if config.source.startswith("builtin:"):
        for info in list_builtins():
            if info.name == config.source[len("builtin:"):]:
                return info.m
    return freq_season(freq)


#: training windows the default lookback leaves at least, where the series allows
MIN_WINDOWS = 8


def default_lookback(m: int, horizon: int) -> int:
    """Two seasons, or ``max(2 horizon, 8)`` steps for a series without a season."""
    return 2 * m if m > 1 else max(2 * horizon, 8)


def resolve_split(dc: DataConfig, data: SeriesData, m: int):
    """The lookback and the chronological split for ``dc`` on ``data``: ``(lookback, Split)``.

    Parts given by start or by an explicit fraction are used as they are. Parts left to the
    default are sized in horizons (see :class:`DataConfig`) and shrunk to one horizon, test first,
    when the training rows would otherwise hold fewer than :data:`MIN_WINDOWS` windows; on a series
    too short even for that (fewer than horizon + :data:`MIN_WINDOWS` training rows) validation
    and then test are left out; a default lookback is then shortened too (never below 1). :func:`check_rows` refuses what still does not fit.
    """
    n, H = len(data), dc.horizon
    L = dc.lookback or default_lookback(m, H)
    if dc.val_start is not None or dc.test_start is not None:
        split = split_for(dc, data)
    else:
        def rows(frac, default):
            return round_rows(n, frac) if frac is not None else max(H, round_rows(n, default))
        val, test = rows(dc.val_frac, 0.1), rows(dc.test_frac, 0.2)
        need = lambda lookback: lookback + H + MIN_WINDOWS - 1  # noqa: E731
        if dc.test_frac is None and n - val - test < need(L):
            test = H
        if dc.val_frac is None and n - val - test < need(L):
            val = H
        if dc.val_frac is None and n - val - test < need(1):  # too short to hold out a horizon: no validation
            val = 0
        if dc.test_frac is None and n - val - test < need(1):
            test = 0
        split = _split_rows(n, val, test)
    if dc.lookback is None:
        spare = split.train_end - H - MIN_WINDOWS + 1  # the longest lookback leaving MIN_WINDOWS windows
        if spare < L:
            L = spare if spare >= 1 else max(1, split.train_end - H)
    return L, split


def _split_rows(n: int, val: int, test: int):
    if n - val - test < 1:
        raise DataError(f"the series has {n} rows: too few for {val} validation and {test} test rows and any "
                        "training; use a smaller --horizon, --val-frac 0 --test-frac 0, or more data")
    return Split(train_end=n - val - test, val_end=n - test, n=n)


def split_for(dc: DataConfig, data: SeriesData):
    """The chronological split ``dc`` asks for: by start dates/rows if given, else by fractions."""
    if dc.val_start is not None or dc.test_start is not None:
        index = data.frame.index
        conv = (lambda v: v) if isinstance(index, pd.DatetimeIndex) else (lambda v: v if v is None else int(v))
        try:
            return split_at(index, conv(dc.val_start), conv(dc.test_start))
        except ValueError as e:
            if isinstance(e, DataError) or isinstance(e, ConfigError):
                raise
            raise ConfigError(f"--val-start/--test-start must be row numbers for a series without --time-col; "
                              f"got {dc.val_start!r}/{dc.test_start!r}") from None
    return split_series(len(data), 0.1 if dc.val_frac is None else dc.val_frac,
                        0.2 if dc.test_frac is None else dc.test_frac)


def check_rows(dc: DataConfig, split) -> None:
    """Refuse (:class:`DataError`) a split with too few rows for the windows ``dc`` asks for
    (``dc.lookback`` resolved)."""
    n = split.n
    problems = []
    if split.train_end < dc.lookback + dc.horizon:
        problems.append(f"{split.train_end} training rows (need lookback {dc.lookback} + horizon {dc.horizon})")
    if split.val_end > split.train_end and split.val_end - split.train_end < dc.horizon:
        problems.append(f"{split.val_end - split.train_end} validation rows (need at least horizon {dc.horizon})")
    if n > split.val_end and n - split.val_end < dc.horizon:
        problems.append(f"{n - split.val_end} test rows (need at least horizon {dc.horizon})")
    if problems:
        raise DataError(f"too few rows ({n}) for this split: " + "; ".join(problems) +
                        "; use a smaller --lookback/--horizon, lower --val-frac/--test-frac, or more data")


def series_streams(scaled: np.ndarray, n_targets: int, batch: int,
                   known: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut one series into ``batch`` contiguous streams of (input, next value): ``(B, N', F)``, ``(B, N', C)``.
    ``known (N, K)``: each row's known inputs; row ``t``'s input then ends with row ``t + 1``'s (the
    row it predicts), as a recursive model reads them."""
    x, y = scaled[:-1], scaled[1:, :n_targets]
    if known is not None:
        x = np.concatenate([x, known[1:]], axis=1)  # (N - 1, F + K)
    per = len(x) // batch
    if per < 1:
        raise DataError(f"stateful training with batch size {batch} needs at least {batch + 1} training rows; "
                        f"there are {len(scaled)}")
    x = x[:per * batch].reshape(batch, per, -1)  # (N, F) -> (B, N/B, F)
    y = y[:per * batch].reshape(batch, per, -1)
    return x, y
