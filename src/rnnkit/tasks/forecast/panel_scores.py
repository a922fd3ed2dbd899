"""Scores of a global model's forecasts, per series and over the panel (:meth:`.panel_run.PanelRun.backtest`).

Each scored series (and fold) is one entry ``{"id", "origin", ["fold"], method: {metric: value}}``;
the summary averages every metric over the entries, per method (:func:`summarise`), and
``series_metrics.csv`` is one row per entry (:func:`series_table`).

A run with levels (a quantile or distribution head, ``ModelConfig.quantiles``) adds to the model's
scores of each entry (:func:`level_entry`, the names of :func:`~.probabilistic.quantile_scores`
made flat): ``wql``, ``crps``, and ``coverage_<a>`` and ``width_<a>`` for each central interval
``a`` the levels hold (0.1 and 0.9: ``80``). Every entry has the same number of points (one
horizon of every target), so the summary's mean coverage, width and CRPS over the entries are
those of all points pooled; its mean ``wql`` is the mean of each series' own WQL (each series
weighted alike). The summary's ``quantile_scores`` (:func:`pooled_level_scores`) are
:func:`~.probabilistic.quantile_scores` of every entry's points pooled, the single-series layout,
whose WQL divides by the sum of ``|y|`` over every series (GluonTS's aggregate: large series weigh
more).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .metrics import forecast_metrics
from .probabilistic import quantile_scores

__all__ = ["series_scores", "summarise", "series_table", "level_entry", "pooled_level_scores", "validation_scores"]


def series_scores(actual: np.ndarray, pred: np.ndarray, y_train: np.ndarray, m: int) -> dict:
    """One series' overall scores; its MASE is nan when its training part has no m-step difference to
    scale by (m rows or fewer: a short series under a lookback shorter than its season)."""
    if len(y_train) > m:
        return forecast_metrics(actual, pred, y_train, m)["overall"]
    return {**forecast_metrics(actual, pred, y_train, 1)["overall"], "mase": math.nan}


def level_entry(actual: np.ndarray, levels_pred: np.ndarray, levels) -> dict[str, float]:
    """One series' level scores, flat: ``wql``, ``crps`` and ``coverage_<a>``, ``width_<a>`` per
    central interval, of forecasts ``levels_pred (H, C, Q)`` of ``actual (H, C)``."""
    s = quantile_scores(actual, levels_pred, levels)
    out = {"wql": s["wql"], "crps": s["crps"]}
    for a, v in s["intervals"].items():
        out[f"coverage_{a}"], out[f"width_{a}"] = v["coverage"], v["width"]
    return out


def pooled_level_scores(actual: np.ndarray, levels_pred: np.ndarray, levels) -> dict:
    """:func:`~.probabilistic.quantile_scores` of every series' points together: ``actual (S, H, C)``
    and ``levels_pred (S, H, C, Q)``."""
    return quantile_scores(actual, levels_pred, levels)


def summarise(per: list[dict], reference: str) -> dict:
    """Mean of each metric over the series, per method, and the geometric mean over the series of the
    model's MASE relative to ``reference``'s (series where either is 0 or undefined left out). A
    baseline is averaged over the series it was scored on (seasonal naive needs a season before the
    origin)."""
    methods = list(dict.fromkeys(k for e in per for k, v in e.items() if isinstance(v, dict)))  # any series'
    out: dict[str, Any] = {"series": len(per), "reference": reference}
    for name in methods:
        scored = [e[name] for e in per if name in e]
        out[name] = {k: float(np.nanmean([s[k] for s in scored])) if any(np.isfinite(s[k]) for s in scored)
                     else math.nan for k in scored[0]}
    ratios = [e["model"]["mase"] / e[reference]["mase"] for e in per if reference in e
              and e[reference]["mase"] > 0 and np.isfinite(e[reference]["mase"]) and e["model"]["mase"] > 0]
    out["geomean_relative_mase"] = float(np.exp(np.mean(np.log(ratios)))) if ratios else math.nan
    return out


def series_table(metrics: dict) -> pd.DataFrame:
    """metrics["series"] as one row per series: id, origin, then ``method: metric`` columns."""
    rows = []
    for e in metrics["series"]:
        row = {k: v for k, v in e.items() if not isinstance(v, dict)}  # id, origin (and fold)
        for name, scores in e.items():
            if isinstance(scores, dict):
                row.update({f"{name}: {k}": v for k, v in scores.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def validation_scores(run, panel) -> dict[str, float]:
    """A global model's scores on its validation rows, in the data's units: each series that held out
    a whole horizon for validation is forecast from the end of its training rows by ``run`` (a
    :class:`~.panel_run.PanelRun`, its point forecast), in one batch, and scored as
    :meth:`~.panel_run.PanelRun.evaluate` scores its test rows (MASE at the series' season, scaled
    by its training rows); the mean over those series of ``mae``, ``rmse``, ``mase`` and ``smape``
    (``{}`` when no series has validation rows). What a sweep ranks global models on
    (:mod:`rnnkit.tasks.sweep.job`)."""
    H = run.data_config.horizon
    splits = dict(zip(run.ids, run.meta["splits"]))
    held = [sid for sid in panel.ids if sid in splits and splits[sid][1] - splits[sid][0] >= H]
    if not held:
        return {}
    sub = panel.subset(held)
    origins = [int(splits[sid][0]) for sid in held]
    pred = run.predict_at(sub, origins, H)  # (S, H, C): the centre level of a run with levels
    per = []
    for s, o, p, m in zip(sub.series, origins, pred, run.series_seasons(sub)):
        values = s.target_values
        per.append(series_scores(values[None, o:o + H], p[None], values[:max(o, 2)], m))
    return {k: float(np.nanmean([e[k] for e in per])) if any(np.isfinite(e[k]) for e in per) else math.nan
            for k in ("mae", "rmse", "mase", "smape")}
