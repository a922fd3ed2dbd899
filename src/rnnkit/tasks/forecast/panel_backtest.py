"""A global model's out-of-sample forecasts: its scores on each series' rows after its training and
validation rows (:func:`evaluate`, :func:`backtest`, :meth:`.panel_run.PanelRun.evaluate` and
``backtest``), and the global models fitted again on the series cut at origins behind them
(:func:`refit_forecasts`: ``backtest(refit=True)``) and behind the run's conformal intervals
(:func:`calibrate_global`, :mod:`.panel_intervals`).

The refits are :func:`~rnnkit.tasks.forecast.panel_run.fit_global` calls, passed in as ``fit``
(that module calls this one, so it cannot be imported here), as :mod:`.rolling`'s are for one
series; ``run`` is a :class:`~.panel_run.PanelRun`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from ...config import ModelConfig, TrainConfig
from ...data.panel import PanelData
from ...errors import ConfigError, DataError
from .config import DataConfig, SearchConfig
from .panel import series_split
from .panel_intervals import PanelIntervals, calibrate_panel, calibration_origins
from .panel_scores import level_entry, pooled_level_scores, series_scores, summarise
from .predict import naive_baselines

__all__ = ["evaluate", "backtest", "refit_forecasts", "calibrate_global", "cut_series", "SEASONAL_NAIVE"]

#: the reference method of a run whose series have their own seasons (each series' seasonal naive)
SEASONAL_NAIVE = "seasonal naive (each series' season)"


def evaluate(run, data=None) -> dict:
    """Scores on each series' rows after its training and validation rows (its test part, or
    the new rows of ``data`` continuing it): ``{"summary": {method: {metric: mean}, ...,
    "geomean_relative_mase": ...}, "series": [{"id", "origin", method: {...}}, ...]}``; a run with
    levels adds their scores to the model's (``wql``, ``crps``, ``coverage_<a>``, ``width_<a>``) and
    the summary's ``quantile_scores`` (every series' points pooled, :mod:`.panel_scores`)."""
    return backtest(run, data, folds=1)


def backtest(run, data=None, folds: int = 1, refit: bool = False, quiet: bool = True,
             fit: Callable | None = None) -> dict:
    """Rolling origins: fold k of each series forecasts the horizon from origin
    ``n - (folds - k) * horizon``. Only rows after the series' training and validation rows are
    scored, so a series with fewer than ``folds`` horizons of them is left out (none left:
    DataError). Without ``refit`` all series and folds go through the trained model in one batch;
    with it, fold k's forecasts come from a global model fitted again by ``fit`` (needed only then),
    with the run's settings and ensemble, on every scored series cut at its fold-k origin
    (:func:`refit_forecasts`).
    Returns :func:`evaluate`'s layout, one ``series`` entry per series and fold (``"fold"``
    numbered from 1); a refitted backtest has no interval scores (the run's calibration is its
    own model's)."""
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 1:
        raise ConfigError(f"folds must be a positive integer; got {folds!r}")
    panel = run.load_data(data)
    H, per_series = run.data_config.horizon, run.per_series_seasons
    splits = dict(zip(run.ids, run.meta["splits"]))
    items = []  # (series index, id, training rows, origin, fold)
    for i, (sid, s) in enumerate(zip(panel.ids, panel.series)):
        if sid not in splits:
            continue
        origins = len(s) - (folds - np.arange(folds)) * H
        if origins[0] >= splits[sid][1]:
            items += [(i, sid, splits[sid][0], int(o), k + 1) for k, o in enumerate(origins)]
    if not items:
        raise DataError(f"no series of the data has {folds} horizon(s) of rows after its training and validation "
                        "rows; evaluation scores only rows the model was not fitted or validated on (fit with "
                        "the default test part, pass --data with the series continued, or use fewer folds)")
    sub = panel.subset([sid for _, sid, _, _, _ in items])
    origins = [o for _, _, _, o, _ in items]
    pred = (refit_forecasts(fit, run, sub, origins, [f for *_, f in items], folds, quiet) if refit
            else run.predict_at(sub, origins, H, all_levels=True))  # (N, H, C[, Q])
    levels, pred = (pred, pred[..., run.model.centre]) if run.levels else (None, pred)
    m = None if per_series else run.data_config.seasonal_period
    per, reference = [], SEASONAL_NAIVE if per_series else f"seasonal naive (m={m})" if m > 1 else "last value"
    for (_, sid, train_end, o, fold), s, p, m in zip(items, sub.series, pred, run.series_seasons(sub)):
        values = s.target_values
        actual = values[None, o:o + H]
        base = naive_baselines(values, np.array([o]), H, m if o >= m else 1)  # a season before o, or not
        if per_series:  # each series' seasonal naive under one name (its last value where it has no season)
            base[SEASONAL_NAIVE] = base.pop(f"seasonal naive (m={m})", base["last value"])
        y_train = values[:max(train_end, 2)]
        entry = {"id": sid, "origin": o, **({"fold": fold} if folds > 1 else {}),
                 "model": series_scores(actual, p[None], y_train, m)}
        if levels is not None:
            entry["model"].update(level_entry(actual[0], levels[len(per)], run.levels))
        for name, b in base.items():
            entry[name] = series_scores(actual, b, y_train, m)
        per.append(entry)
    summary = summarise(per, reference)
    actual = np.stack([s.target_values[o:o + H] for (_, _, _, o, _), s in zip(items, sub.series)])
    if levels is not None:  # every series' points pooled, the single-series layout (:mod:`.panel_scores`)
        summary["quantile_scores"] = pooled_level_scores(actual, levels, run.levels)
    if run.intervals is not None and not refit:
        summary["intervals"] = run.intervals.scores(actual, pred, run.scales(sub, [o for *_, o, _ in items]))
    return {"summary": summary, "series": per}


def refit_forecasts(fit: Callable, run, sub: PanelData, origins: list[int], fold_of: list[int], folds: int,
                    quiet: bool) -> np.ndarray:
    """Every item's forecast (all levels) from a model fitted on its fold's series cut at their
    origins: ``fit`` (fit_global) with the run's resolved settings (lookback, season, normalisation,
    skip, transform), no test rows and the run's ensemble, then that model's forecast from each origin
    of the whole series (so known inputs after the origin come from the data, as without refit)."""
    dc = run.data_config.replace(test_frac=0.0, val_frac=None)
    search = SearchConfig(ensemble=run.meta["ensemble"], combine=run.search.combine)
    out: list = [None] * len(origins)
    for fold in range(1, folds + 1):
        pick = [i for i, f in enumerate(fold_of) if f == fold]
        part = sub.subset([sub.ids[i] for i in pick])
        cut = cut_series(part, [origins[i] for i in pick])
        if not quiet:
            print(f"backtest --refit: fold {fold} of {folds}: fitting {len(pick)} series cut at their origins",
                  flush=True)
        refitted = fit(dc, run.model_config, run.train_config, cut, quiet=True, evaluate=False,
                       dtype=next(run.model.parameters()).dtype, search=search)
        pred = refitted.predict_at(part, [origins[i] for i in pick], run.data_config.horizon, all_levels=True)
        for i, p in zip(pick, pred):
            out[i] = p
    return np.stack(out)


def cut_series(panel: PanelData, ends: Sequence[int]) -> PanelData:
    """``panel`` with series k cut after its first ``ends[k]`` rows (a refit's or calibration's data)."""
    return dataclasses.replace(panel, series=tuple(dataclasses.replace(s, frame=s.frame.iloc[:e])
                                                   for s, e in zip(panel.series, ends)))


def calibrate_global(fit: Callable, dc: DataConfig, mc: ModelConfig, tc: TrainConfig, panel: PanelData, dtype,
                     search: SearchConfig, quiet: bool = True) -> PanelIntervals:
    """Intervals from one more global model (fitted by ``fit``, fit_global), fitted as this one but on
    every series without its last fitted horizon (the rows before the test part), which then forecasts
    that horizon of every series still as long as the lookback: one out-of-sample error window per
    series, each series' errors in units of its scale (:mod:`.panel_intervals`). A panel of too few
    series for the levels (4 for 80 %, 19 for 95 %) takes more origins, each one horizon before the last
    and one more global fit (:func:`~.panel_intervals.calibration_origins`), until the windows bound
    every level, or, with ``search.calibration_windows`` (an opt-in floor), until they reach it or the
    series run out (at most 20 fits; refused if they cannot bound every level). The
    validation windows are not used: early stopping chose the epoch on them, and on M1 their errors
    covered the test horizons 0.60 of the time at a nominal 80 %."""
    H, L = dc.horizon, dc.lookback
    ends = [series_split(len(s), L, H, dc.test_frac is None, dc.val_frac is None)[1] for s in panel.series]
    plan = calibration_origins(ends, L, H, search.intervals, search.calibration_windows)
    actual, point, scales = [], [], []
    for k, origins in enumerate(plan, 1):  # [(series index, origin), ...] of each calibration fit
        if not quiet and len(plan) > 1:
            print(f"intervals: calibration fit {k} of {len(plan)} ({len(origins)} series)", flush=True)
        sub = panel.subset([panel.ids[j] for j, _ in origins])
        at = [o for _, o in origins]
        cut = cut_series(sub, at)
        calib = fit(dc.replace(test_frac=0.0), mc, tc, cut, quiet=True, evaluate=False, dtype=dtype,
                    search=dataclasses.replace(search, intervals=(), calibration_windows=None))
        point.append(calib.predict_at(sub, at, H))  # the whole series: future covariates after the origin are data
        actual.append(np.stack([s.target_values[o:o + H] for s, o in zip(sub.series, at)]))
        scales.append(calib.scales(cut, [len(s) for s in cut.series]))
    return calibrate_panel(search.intervals, np.concatenate(actual), np.concatenate(point), np.concatenate(scales))
