"""Reading a panel for a global model: the long table itself (:func:`load_panel`, with a run's id,
time, target and covariate settings) and the future covariates' file (:func:`panel_future`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ...data.panel import PanelData, panel_from_frame, read_panel, renumber_rows
from ...errors import ConfigError, DataError
from .config import DataConfig
from .future import future_values, with_future_columns

__all__ = ["load_panel", "panel_future"]


def load_panel(dc: DataConfig, data=None) -> PanelData:
    """``data`` as a panel (a :class:`PanelData`, a long DataFrame, or None: ``dc.source``), read with
    ``dc``'s id, time, target, covariate, static covariate and fill settings; the future covariates
    are ordered last among the covariates."""
    if isinstance(data, PanelData):
        panel = data
    else:
        targets = dc.targets or None
        covs = tuple(dc.covariates) + tuple(c for c in dc.future_covariates if c not in dc.covariates)
        # series of several frequencies train one model without calendar features (each keeps its own
        # season, .panel.series_seasons, unless one is given)
        opts = dict(static_covariates=dc.static_covariates, mixed_frequencies=dc.calendar == "none")
        if isinstance(data, pd.DataFrame):
            panel = panel_from_frame(data, dc.id_col, targets, dc.time_col, covs, dc.fill, **opts)
        elif data is not None:
            raise ConfigError(f"a panel run reads a long table (a file path, a pandas DataFrame or PanelData); got "
                              f"{type(data).__name__}")
        elif dc.source.startswith("builtin:"):
            raise ConfigError(f"{dc.source} is one series; --id-col needs a panel file in long format (CSV, TSV or "
                              "Parquet with an id column)")
        else:
            panel = read_panel(dc.source, dc.id_col, targets, dc.time_col, covs, dc.fill, **opts)
    if panel.freq is None and dc.seasonal_period is None:
        _check_seasons(panel)
    if dc.future_covariates:
        panel = dataclasses.replace(panel, series=tuple(with_future_columns(s, dc.future_covariates)
                                                        for s in panel.series))
    return panel


def _check_seasons(panel: PanelData) -> None:
    """Refuse a panel where some series has a frequency and another, of several rows, has irregular
    times, with no season given: the latter's season cannot be inferred (nor its times trusted)."""
    dated = [(sid, s) for sid, s in zip(panel.ids, panel.series) if len(s) > 1]
    regular = next(((sid, s) for sid, s in dated if s.freq), None)
    irregular = next((sid for sid, s in dated if not s.freq), None)
    if regular is not None and irregular is not None:
        raise DataError(f"{panel.source}: series {irregular!r} has irregular times (no frequency) but series "
                        f"{regular[0]!r} has frequency {regular[1].freq}, so its season cannot be inferred; fix its "
                        "times, or pass --seasonal-period M (1: none) to give every series one season")


def panel_future(future, panel: PanelData, dc: DataConfig, rows: int) -> list[np.ndarray] | None:
    """Each series' future covariates for the ``rows`` rows after its end, from ``future`` (a long
    CSV/TSV/Parquet file or DataFrame: the id column, the time column when the run has one, and one
    column per future covariate). None for a run without future covariates (which refuses one)."""
    if not dc.future_covariates:
        if future is not None:
            raise ConfigError("this run has no future covariates, so it reads no future file; drop --future")
        return None
    if future is None:
        raise ConfigError(f"this run reads the future covariates {list(dc.future_covariates)}: forecasting past the "
                          f"data needs their values for the {rows} row(s) after each series' last; pass them with "
                          f"--future FILE (the id column {dc.id_col!r}, the time column and the covariates)")
    if isinstance(future, pd.DataFrame):
        raw, label = future, "the future table"
    else:
        from ...data.sources import read_table
        raw, _ = read_table(future)
        label = str(future)
    if dc.id_col not in raw.columns:
        raise DataError(f"{label}: no id column {dc.id_col!r}; a panel's future file has one row per series and "
                        "forecast step")
    keys = raw[dc.id_col].astype(str).str.strip()
    groups = raw.groupby(keys.to_numpy(), sort=False).indices
    out = []
    for sid, s in zip(panel.ids, panel.series):
        if sid not in groups:
            raise DataError(f"{label}: no rows for series {sid!r}; the future covariates of its next {rows} row(s) "
                            "are needed")
        part = raw.iloc[groups[sid]].reset_index(drop=True)
        try:
            out.append(future_values(part, dc.future_covariates, dc.time_col, s.frame.index, s.freq, rows))
        except DataError as e:  # about the series' rows of the file: name both, number the rows as the file does
            message = str(e).removeprefix("the future table: ")
            raise DataError(renumber_rows(f"{label} (series {sid!r}): {message}", groups[sid])) from e
    return out
