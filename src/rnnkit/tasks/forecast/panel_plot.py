"""A panel run's forecast.png: a grid of small plots, one per shown series, each with the series'
recent history, the forecast past its end and the forecast's bands, drawn as one series' plot
(:func:`rnnkit.training.plots.plot_forecast`) draws them.

* **Which series**: at most :data:`MAX_SERIES` of them (a 3 x 3 grid), so a run of 10,000 series
  plots as fast and as readably as one of 9: the first ones in the run's order, or the ids asked
  for (``PanelRun.save(plot_ids=...)``; past the cap, the first of them). The figure's title says
  how many of how many series it shows.
* **History**: the last :data:`HISTORY_HORIZONS` horizons of each series (at least
  :data:`MIN_HISTORY` rows), the rows after its training and validation rows (its test part)
  shaded, as in one series' plot.
* **Bands** (read from forecast.csv's columns, :func:`band_columns`): a conformal run's widest
  level and, with more levels, its narrowest; a run with quantile levels (a quantile or
  distribution head), its lowest to highest level and, where there is a narrower one, the pair of
  levels nearest 0.5 on either side. The outer band is drawn lighter, the inner darker; a point
  run draws none.
* **One target**: a run with several targets shows its first (the title names it).
* **No future**: a run with future covariates forecasts past the data only with their values;
  without them (no forecast table) the plots show the history alone, as one series' plot does,
  and the title says why.

:func:`panel_figure` (and :func:`run_figure`, a run's) builds a :class:`matplotlib.figure.Figure`
on an Agg canvas, without pyplot's global state (tests inspect it; nothing is left open);
:func:`write_panel_plot` is what the run directory's writer (:func:`~.panel_rundir.write_panel_run`)
calls inside its atomic write, so a failure there leaves no run directory behind.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ...data.panel import PanelData
from ...errors import ConfigError
from .levels import level_name
from .predict import forecast_frame
from .quantiles import level_columns

__all__ = ["SeriesPlot", "band_columns", "plot_items", "panel_figure", "run_figure", "write_panel_plot", "MAX_SERIES"]

#: the most series one forecast.png shows (a 3 x 3 grid)
MAX_SERIES = 9
#: the grid's columns (fewer when fewer series are shown)
COLUMNS = 3
#: how much of each series' history is shown: this many horizons ...
HISTORY_HORIZONS = 4
#: ... and at least this many rows
MIN_HISTORY = 12
#: one plot's size in inches (width, height); the title and legend add HEADER_INCHES
PANEL_INCHES = (3.6, 2.4)
HEADER_INCHES = 0.9


@dataclass(frozen=True)
class SeriesPlot:
    """What one series' plot shows: ``values (N,)`` of its recent rows over ``index``, the rows from
    position ``test_start`` on shaded (None: none), ``forecast (H,)`` over ``future_index`` (None:
    no forecast) and ``bands`` ``[(label, lo (H,), hi (H,))]``, outermost first."""

    id: str
    index: pd.Index
    values: np.ndarray
    test_start: int | None = None
    future_index: pd.Index | None = None
    forecast: np.ndarray | None = None
    bands: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)


def band_columns(target: str, intervals: Sequence[float] = (), levels: Sequence[float] = ()) \
        -> list[tuple[str, str, str]]:
    """The bands of ``target`` as forecast-table columns ``[(label, lo column, hi column)]``, outermost
    first: of conformal ``intervals`` (percent, increasing) the widest and the narrowest; of quantile
    ``levels`` (increasing) the lowest to the highest and the nearest pair around 0.5 when narrower."""
    if intervals:
        chosen = [intervals[-1]] + ([intervals[0]] if len(intervals) > 1 else [])
        return [(f"{level_name(a)} % interval", f"{target}_lo_{level_name(a)}", f"{target}_hi_{level_name(a)}")
                for a in chosen]
    Q = len(levels)
    if Q < 2:
        return []
    names = level_columns(target, levels)
    pairs = [(0, Q - 1)]
    below = [i for i, q in enumerate(levels) if q < 0.5]
    above = [i for i, q in enumerate(levels) if q > 0.5]
    if below and above and (below[-1], above[0]) != pairs[0]:
        pairs.append((below[-1], above[0]))
    return [(f"q{float(levels[i])!r} to q{float(levels[j])!r}", names[i], names[j]) for i, j in pairs]


def choose_ids(panel: PanelData, ids: Sequence[str] | None) -> list[str]:
    """The ids to plot: the first :data:`MAX_SERIES` of ``ids`` (each must be in the panel), or of the panel's."""
    if ids is None:
        return list(panel.ids[:MAX_SERIES])
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise ConfigError("plot_ids: name at least one series id to plot (or None: the first series)")
    panel.subset(ids)  # a DataError naming the ids the panel lacks, as forecast(ids=...) gives
    return ids[:MAX_SERIES]


def plot_items(panel: PanelData, ahead: pd.DataFrame | None, id_col: str, target: str, horizon: int,
               splits: dict[str, Sequence[int]] | None = None, ids: Sequence[str] | None = None,
               intervals: Sequence[float] = (), levels: Sequence[float] = ()) -> list[SeriesPlot]:
    """One :class:`SeriesPlot` per shown series (:func:`choose_ids`) of ``panel``, its forecast and
    bands read from ``ahead`` (the run's forecast table; None: no forecast); ``splits`` maps an id to
    the series' (training, training + validation) rows, whose end starts the shaded test part."""
    c = panel.targets.index(target)
    bands = band_columns(target, intervals, levels)
    rows = max(HISTORY_HORIZONS * horizon, MIN_HISTORY)
    keys = None if ahead is None else ahead[id_col].astype(str).to_numpy()
    items = []
    for sid in choose_ids(panel, ids):
        s = panel[sid]
        n = len(s)
        first = max(0, n - rows)
        end = (splits or {}).get(sid, (n, n))[1]
        test_start = max(end - first, 0) if end < n else None
        future_index = fc = None
        drawn = []
        part = None if keys is None else ahead.iloc[np.flatnonzero(keys == sid)]
        if part is not None and len(part):
            fc = part[target].to_numpy(dtype=np.float64)
            future_index = forecast_frame(s.frame.index, s.freq, fc[:, None], (target,)).index
            drawn = [(label, part[lo].to_numpy(dtype=np.float64), part[hi].to_numpy(dtype=np.float64))
                     for label, lo, hi in bands]
        items.append(SeriesPlot(sid, s.frame.index[first:], s.target_values[first:, c], test_start,
                                future_index, fc, drawn))
    return items


def panel_figure(items: Sequence[SeriesPlot], total: int, title: str = "forecast", note: str | None = None):
    """The grid, one axes per item, titled by id; the figure's title is ``title`` and says
    ``len(items)`` of ``total`` series are shown (and ``note``). Returns the Figure (Agg canvas)."""
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not items:
        raise ValueError("panel_figure: no series to plot")
    n = len(items)
    cols = min(COLUMNS, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * PANEL_INCHES[0], rows * PANEL_INCHES[1] + HEADER_INCHES), layout="constrained")
    FigureCanvasAgg(fig)  # a file-only canvas for this figure alone: no pyplot, no window, no global state
    for k, it in enumerate(items):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.plot(it.index, it.values, color="black", lw=1.0, label="actual")
        if it.test_start is not None and it.test_start < len(it.index):
            ax.axvspan(it.index[it.test_start], it.index[-1], color="grey", alpha=0.12, lw=0, label="test rows")
        for j, (label, lo, hi) in enumerate(it.bands):  # outermost first: lighter, then darker (as plot_forecast)
            ax.fill_between(it.future_index, lo, hi, color="tab:blue", alpha=0.15 + 0.1 * j, lw=0, label=label)
        if it.forecast is not None:
            ax.plot(it.future_index, it.forecast, color="tab:blue", marker="o", ms=2, lw=1.2, label="forecast")
        ax.set_title(str(it.id), fontsize=9)
        ax.tick_params(labelsize=7)
        if isinstance(it.index, pd.DatetimeIndex):
            locator = mdates.AutoDateLocator(minticks=2, maxticks=5)  # (2, 4): no interval fits 20 months
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    handles, labels = max((a.get_legend_handles_labels() for a in fig.axes), key=lambda hl: len(hl[1]))
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8, frameon=False)
    shown = f"{n} of {total} series shown" if n < total else f"all {total} series shown"
    fig.suptitle(f"{title} ({shown}" + (f"; {note}" if note else "") + ")", fontsize=10)
    return fig


def run_figure(run, panel: PanelData, ahead: pd.DataFrame | None, ids: Sequence[str] | None = None):
    """The forecast.png figure of ``run`` (a :class:`~.panel_run.PanelRun`): the series ``ids``
    (default: the first) of ``panel``, the forecast and bands of ``ahead`` (its forecast table, or
    None: the history alone)."""
    dc = run.data_config
    target = run.targets[0]
    items = plot_items(panel, ahead, dc.id_col, target, dc.horizon, dict(zip(run.ids, run.meta["splits"])), ids,
                       () if run.intervals is None else run.intervals.levels, run.levels)
    note = "no forecast: it needs the future covariates' values" if ahead is None else None
    return panel_figure(items, len(panel), f"{run.model_config.cell} forecast: {target}", note)


def write_panel_plot(path: str | os.PathLike, run, panel: PanelData, ahead: pd.DataFrame | None,
                     ids: Sequence[str] | None = None) -> None:
    """:func:`run_figure` saved as a PNG at ``path``."""
    run_figure(run, panel, ahead, ids).savefig(path, dpi=100, format="png")
