"""Forecasting's data glue: the series a :class:`DataConfig` names, its split in time, the rows a
split needs, and the long streams of stateful training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...data.builtin import list_builtins
from ...data.series import SeriesData
from ...data.sources import read_series
from ...data.split import split_at, split_series
from ...errors import ConfigError, DataError
from .config import DataConfig

__all__ = ["load_data", "is_builtin", "absolute_source", "seasonal_period", "split_for", "check_rows", "series_streams"]


def load_data(config: DataConfig) -> SeriesData:
    """Read the series ``config`` names (a file or ``builtin:NAME``), validated."""
    return read_series(config.source, target=list(config.targets) or None, time_col=config.time_col,
                       covariates=config.covariates, fill=config.fill)


def is_builtin(source: str) -> bool:
    """Whether ``source`` names a built-in series (``builtin:NAME``), not a file."""
    return str(source).startswith("builtin:")


def absolute_source(source: str) -> str:
    """A file path made absolute (a run must find its data from any working directory)."""
    return source if is_builtin(source) or source.startswith("<") else str(Path(source).expanduser().absolute())


def seasonal_period(config: DataConfig) -> int:
    """The season length m: the configured one, else the built-in series' own, else 1."""
    if config.seasonal_period is not None:
        return config.seasonal_period
    if config.source.startswith("builtin:"):
        for info in list_builtins():
            if info.name == config.source[len("builtin:"):]:
                return info.m
    return 1


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
    return split_series(len(data), dc.val_frac, dc.test_frac)


def check_rows(dc: DataConfig, split) -> None:
    """Refuse (:class:`DataError`) a split with too few rows for the windows ``dc`` asks for."""
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


def series_streams(scaled: np.ndarray, n_targets: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut one series into ``batch`` contiguous streams of (input, next value): ``(B, N', F)``, ``(B, N', C)``."""
    x, y = scaled[:-1], scaled[1:, :n_targets]
    per = len(x) // batch
    if per < 1:
        raise DataError(f"stateful training with batch size {batch} needs at least {batch + 1} training rows; "
                        f"there are {len(scaled)}")
    x = x[:per * batch].reshape(batch, per, -1)  # (N, F) -> (B, N/B, F)
    y = y[:per * batch].reshape(batch, per, -1)
    return x, y
