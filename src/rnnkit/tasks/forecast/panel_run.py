"""A global model's run: training it on a panel (:func:`fit_global`) and forecasting every series
(:class:`PanelRun`). Its scores and the refitted models behind them are :mod:`.panel_backtest`'s
(:meth:`PanelRun.evaluate` and :meth:`PanelRun.backtest` call it), its run directory (kind
``"panel"``) :mod:`.panel_rundir`'s.
See :mod:`rnnkit.tasks.forecast.panel` for how the series meet in one training set."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ...config import ModelConfig, TrainConfig
from ...data.boxcox import TargetTransform
from ...data.panel import PanelData
from ...data.scaler import Scaler
from ...errors import ConfigError, DataError, ShapeError
from ...training.loop import History
from .config import DataConfig, SearchConfig, refuse_distributed
from .fitting import ForecastEnsemble, train_members, window_known_rows
from .model import Forecaster
from .normalise import WindowNorm
from .known import calendar_width, known_names
from .negbin import is_negbin, unscaled_targets
from .data import freq_season
from .panel import (check_panel_counts, log_targets, panel_contexts, panel_known_width, prepare_panel,
                    series_known_windows, static_values, within_lookback)
from .predict import check_known_horizon, forecast_frame, predict_scaled_batched
from . import panel_backtest
from .panel_backtest import SEASONAL_NAIVE, calibrate_global  # noqa: F401 (SEASONAL_NAIVE re-exported)
from .panel_data import load_panel, panel_future
from .panel_intervals import PanelIntervals, series_scale
from .panel_quantiles import check_level_horizon, check_panel_heads, unscale
from .panel_rundir import SCALERS_FILE, write_panel_run  # noqa: F401 (SCALERS_FILE re-exported)
from .quantiles import with_level_columns
from .statics import StaticEncoder

__all__ = ["PanelRun", "fit_global", "load_panel", "panel_future", "write_panel_run",  # the two readers: .panel_data
           "SCALERS_FILE"]  # the writer and its file name: .panel_rundir


@dataclass
class PanelRun:
    """A global forecaster and what it needs to forecast any series: per-series scalers, settings, scores.

    :meth:`forecast` returns a long table (id, time, horizon, target columns); :meth:`evaluate`
    scores each series' rows after its training and validation rows, per series and aggregated.
    """

    model: Forecaster | ForecastEnsemble
    scalers: dict[str, Scaler]
    data_config: DataConfig
    model_config: ModelConfig
    train_config: TrainConfig
    history: History | None = None
    metrics: dict | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    norm: WindowNorm | None = None
    search: SearchConfig = field(default_factory=SearchConfig)
    statics: StaticEncoder = field(default_factory=StaticEncoder)
    #: split-conformal intervals calibrated across the series (:mod:`.panel_intervals`), or None
    intervals: PanelIntervals | None = None
    #: each series' static covariate values (the static columns, in the order of :attr:`ids`), or None
    #: (a run without static covariates, or written before runs kept them)
    static_values: dict[str, tuple[str, ...]] | None = None

    def static_rows(self, ids: Sequence[str]) -> np.ndarray:
        """``(S, statics.width)``: the encoded static features (and id one-hot) of the run's series ``ids``,
        as their training windows read them (:meth:`~.statics.StaticEncoder.features`)."""
        if self.statics.columns and self.static_values is None:
            raise ConfigError("this run does not keep each series' static covariate values (written by an older "
                              "rnnkit); refit it to read them from the run")
        at = {sid: k for k, sid in enumerate(self.ids)}
        values = self.static_values or {}
        return np.stack([self.statics.features({c: v[at[sid]] for c, v in values.items()}, f"series {sid!r}", sid)
                         for sid in ids]) if len(ids) else np.zeros((0, self.statics.width))

    def scales(self, panel: PanelData, ends: Sequence[int]) -> np.ndarray:
        """``(S, C)`` each series' interval scale: of its training rows when the run trained on it,
        else of its rows before ``ends``."""
        splits = dict(zip(self.ids, self.meta["splits"]))
        return np.stack([series_scale(s.target_values[:splits[sid][0] if sid in splits else e], m)
                         for sid, s, e, m in zip(panel.ids, panel.series, ends, self.series_seasons(panel))])

    @property
    def per_series_seasons(self) -> bool:
        """Whether each series has its own season (series of different frequencies, none given)."""
        return self.data_config.seasonal_period is None

    def series_seasons(self, panel: PanelData) -> list[int]:
        """Each series' season m: the run's, or with :attr:`per_series_seasons` a training series'
        own (``meta["seasons"]``) and a new series' from its frequency (1 where longer than the lookback)."""
        if not self.per_series_seasons:
            return [self.data_config.seasonal_period] * len(panel.ids)
        known = dict(zip(self.ids, self.meta["seasons"]))
        new = within_lookback([freq_season(s.freq) for s in panel.series], self.data_config.lookback)
        return [known.get(sid, int(m)) for sid, m in zip(panel.ids, new)]

    def _window_seasons(self, seasons: Sequence[int]) -> np.ndarray | None:
        """The ``seasons`` argument of the forecasts (:func:`~.predict.predict_scaled_batched`): None
        with one season for all."""
        return np.asarray(seasons, dtype=np.int64) if self.per_series_seasons else None

    @property
    def recursive(self) -> bool:
        return self.model_config.strategy == "recursive"

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.meta["ids"])

    @property
    def targets(self) -> tuple[str, ...]:
        return self.data_config.targets

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns each series' scaler scales, in order: targets, covariates, future covariates."""
        dc = self.data_config
        return dc.targets + dc.covariates + tuple(c for c in dc.future_covariates if c not in dc.covariates)

    @property
    def transform(self) -> TargetTransform | None:
        """The targets' transform (``--transform log``; None: the targets as they are)."""
        return TargetTransform("log", 0.0) if self.data_config.transform == "log" else None

    def load_data(self, source=None) -> PanelData:
        """Read ``source`` (a path or DataFrame; default: the training data) with the run's settings."""
        dc = self.data_config
        if source is None and dc.source.startswith("<"):  # fitted on a DataFrame (or PanelData), not a file
            raise DataError(f"the run was fitted on an in-memory table ({dc.source}), which it does not keep; pass "
                            "the panel (data=DataFrame, or --data FILE)")
        if source is None and not Path(dc.source).exists():
            raise DataError(f"the run's training data {dc.source} no longer exists (moved or deleted); pass the "
                            "panel with --data FILE")
        panel = load_panel(dc, source) if source is not None and not isinstance(source, (str, os.PathLike)) else \
            load_panel(dc if source is None else dc.replace(source=str(source)))
        if panel.targets != self.targets:
            raise DataError(f"the panel has target(s) {list(panel.targets)} but the model was trained on "
                            f"{list(self.targets)}; pass data with the same target column(s)")
        return panel

    def _scaler(self, sid: str, values: np.ndarray, end: int) -> Scaler:
        """The series' own scaler from training, or for a series new to the run one fitted on its
        rows before ``end`` (with the per-window normalisation the forecast hardly depends on it)."""
        if sid in self.scalers:
            return self.scalers[sid]
        scaler = Scaler(self.data_config.scaler).fit(values[:end])
        return unscaled_targets(scaler, len(self.targets)) if is_negbin(self.model) else scaler  # counts as they are

    @property
    def levels(self) -> tuple[float, ...]:
        """The quantile levels the run forecasts (a quantile or distribution head; empty: point forecasts)."""
        return self.model_config.quantiles

    def predict_at(self, panel: PanelData, ends: Sequence[int], horizon: int,
                   future: list[np.ndarray] | None = None, all_levels: bool = False) -> np.ndarray:
        """Forecasts ``(S, horizon, C)`` in original units from row ``ends[i]`` of series i, in one
        batch; ``future`` holds each series' future covariates for rows past its end (raw values).
        A run with :attr:`levels` forecasts its centre level there, or with ``all_levels`` every level,
        ``(S, horizon, C, Q)``, each decoded as one series' are (:mod:`.panel_quantiles`)."""
        dc = self.data_config
        check_level_horizon(self.model_config, dc.horizon, horizon)
        if self.transform is not None:  # the series on the log scale, as the run was trained (.panel.log_targets)
            panel = dataclasses.replace(panel, series=tuple(log_targets(s, len(self.targets)) for s in panel.series))
        raw = panel_contexts(panel, ends, dc.lookback)  # (S, L, F)
        if is_negbin(self.model):  # a negbin head reads counts: every context's targets must be counts
            check_panel_counts([s.source for s in panel.series], raw, self.targets)
        scalers = [self._scaler(sid, s.values, e) for sid, s, e in zip(panel.ids, panel.series, ends)]
        scaled = np.stack([sc.transform(c) for sc, c in zip(scalers, raw)])
        known = None
        self.statics.warn_new(panel.ids)
        if panel_known_width(dc, panel.freq, self.statics, self.recursive):
            H = horizon if self.recursive else dc.horizon
            known = np.concatenate([
                series_known_windows(s, dc, sc, self.statics.features(static_values(panel, k), s.source, panel.ids[k]),
                                     [e], H,
                                     None if future is None else future[k])
                for k, (s, sc, e) in enumerate(zip(panel.series, scalers, ends))])
        return self._forecast_scaled(scaled, scalers, horizon, known, all_levels,
                                     self._window_seasons(self.series_seasons(panel)))

    def predict_contexts(self, contexts: np.ndarray, ids: Sequence[str], horizon: int | None = None,
                         all_levels: bool = False, future: np.ndarray | None = None,
                         calendar: np.ndarray | None = None, static: np.ndarray | None = None) -> np.ndarray:
        """Forecasts ``(S, horizon, C)`` in original units after raw context windows ``(S, L, F)``
        (:attr:`columns`), row i one of series ``ids[i]`` of the run, scaled by that series' scaler: what
        :meth:`predict_at` computes after those rows (a run with :attr:`levels`: the same levels), the
        exported graph's reference (:mod:`rnnkit.tasks.export`). A run with future covariates reads their
        raw values over the forecast's rows from ``future (S, H', K)`` (H': the trained horizon for a
        direct model, ``horizon`` for a recursive one; the context's rows bring their own); a run with
        calendar features reads those of the context's rows and of the H' rows after them from
        ``calendar (S, L + H', Kc)`` (:func:`rnnkit.data.calendar.calendar_features` of their stamps); a
        run with static covariates or an id embedding reads each series' (:meth:`static_rows`), or the
        rows ``static (S, statics.width)``."""
        dc = self.data_config
        known_width = panel_known_width(dc, self.meta["freq"], self.statics, self.recursive)
        x = np.asarray(contexts, dtype=np.float64)
        ids = [str(i) for i in ids]
        if x.ndim != 3 or x.shape[0] != len(ids) or x.shape[2] != len(self.columns):
            raise ShapeError(f"contexts must be (S, L, {len(self.columns)}), one window of the columns "
                             f"{list(self.columns)} per id ({len(ids)}); got shape {x.shape}")
        unknown = [i for i in ids if i not in self.scalers]
        if unknown:
            raise DataError(f"series {unknown[0]!r} is not one of the run's; its scaler is fitted on its rows by "
                            "forecast() and predict_at()")
        horizon = horizon or dc.horizon
        check_level_horizon(self.model_config, dc.horizon, horizon)
        if is_negbin(self.model):
            check_panel_counts([f"series {i!r}" for i in ids], x, self.targets)
        scalers = [self.scalers[i] for i in ids]
        if self.statics.width and static is None:
            static = self.static_rows(ids)
        known = self._context_known(x, scalers, horizon, future, calendar, static) if known_width else None
        if future is not None and not dc.future_covariates:
            raise ConfigError("this run has no future covariates, so it reads no future values; drop future=...")
        if calendar is not None and dc.calendar == "none":
            raise ConfigError("this run has no calendar features, so it reads none; drop calendar=...")
        if self.transform is not None:
            x = x.copy()
            x[..., :len(self.targets)] = self.transform.forward(x[..., :len(self.targets)])
        scaled = np.stack([sc.transform(c) for sc, c in zip(scalers, x)])
        seasons = dict(zip(self.ids, self.meta["seasons"])) if self.per_series_seasons else {}
        return self._forecast_scaled(scaled, scalers, horizon, known, all_levels,
                                     self._window_seasons([seasons.get(i, 0) for i in ids]))

    def _context_known(self, x: np.ndarray, scalers: list[Scaler], horizon: int, future: np.ndarray | None,
                       calendar: np.ndarray | None, static: np.ndarray | None = None) -> np.ndarray:
        """The known inputs ``(S, L + H', K)`` of raw contexts ``x`` and their ``future`` rows, each
        row scaled by its series' scaler (:func:`~.fitting.window_known_rows`), then ``calendar``, then
        each series' ``static`` features ``(S, Ks)`` on every row (:func:`~.panel.series_known_table`)."""
        dc = self.data_config
        if not self.recursive:
            check_known_horizon(dc.horizon, horizon)
        rows, K = horizon if self.recursive else dc.horizon, len(dc.future_covariates)
        parts = []
        if K:
            f = None if future is None else np.asarray(future, dtype=np.float64)
            if f is None or f.shape != (len(x), rows, K):
                raise ShapeError(f"future must be (S, {rows}, {K}): the raw values of the future covariates "
                                 f"{list(dc.future_covariates)} over the {rows} row(s) after each context; got "
                                 f"{'none' if f is None else f.shape}")
            parts.append(np.concatenate([window_known_rows(dc, sc, c[None], r[None])
                                         for sc, c, r in zip(scalers, x, f)]))
        Kc = calendar_width(self.meta["freq"], dc.calendar)
        if Kc:
            c = None if calendar is None else np.asarray(calendar, dtype=np.float64)
            if c is None or c.shape != (len(x), x.shape[1] + rows, Kc):
                raise ShapeError(f"calendar must be (S, {x.shape[1] + rows}, {Kc}): the {dc.calendar} calendar "
                                 f"features of each context's {x.shape[1]} rows and the {rows} after them; got "
                                 f"{'none' if c is None else c.shape}")
            parts.append(c)
        if self.statics.width:
            st = np.asarray(static, dtype=np.float64)
            if st.shape != (len(x), self.statics.width):
                raise ShapeError(f"static must be (S, {self.statics.width}): each series' static features "
                                 f"{self.statics.names}; got {st.shape}")
            parts.append(np.repeat(st[:, None, :], x.shape[1] + rows, axis=1))
        return np.concatenate(parts, -1)

    def _forecast_scaled(self, scaled: np.ndarray, scalers: list[Scaler], horizon: int, known: np.ndarray | None,
                         all_levels: bool, seasons: np.ndarray | None = None) -> np.ndarray:
        """The forecasts after scaled windows ``(S, L, F)``, each unscaled by its series' scaler
        (``seasons``: each window's season, :meth:`_window_seasons`)."""
        C = len(self.targets)
        dtype = next(self.model.parameters()).dtype
        self.model.eval()
        with torch.no_grad():
            out = predict_scaled_batched(self.model, scaled, horizon, self.norm, dtype, known, seasons=seasons)
        y = np.stack([unscale(sc, o, C) for sc, o in zip(scalers, out)])  # (S, H, C[, Q])
        if self.transform is not None:  # back from the log scale: exp keeps the levels' order
            y = self.transform.inverse(y)
        if not np.isfinite(y).all():
            raise DataError("the model produced non-finite forecasts (NaN or inf); the run is unusable - retrain "
                            "with a lower learning rate or gradient clipping")
        return y if all_levels or not self.levels else y[..., self.model.centre]

    def forecast(self, data=None, horizon: int | None = None, ids: Sequence[str] | None = None,
                 future=None) -> pd.DataFrame:
        """Forecast ``horizon`` steps (default: the trained horizon) after the end of every series of
        ``data`` (default: the training panel), or of the series ``ids``: a long table with the id
        column, the time (or step) column, ``horizon`` and one column per target. A run with future
        covariates reads their values for the rows ahead from ``future`` (see :func:`panel_future`).
        A run with :attr:`levels` adds ``<target>_q<level>`` per target and level, as one series' does
        (the ``<target>`` column is the centre level); a calibrated one ``<target>_lo_<a>``/``_hi_<a>``."""
        panel = self.load_data(data)
        if ids is not None:
            panel = panel.subset(ids)
        dc = self.data_config
        horizon = horizon or dc.horizon
        if not isinstance(horizon, int) or horizon < 1:
            raise ConfigError(f"horizon must be a positive integer; got {horizon!r}")
        if not self.recursive and panel_known_width(dc, panel.freq, self.statics, False):
            check_known_horizon(dc.horizon, horizon)
        values = panel_future(future, panel, dc, horizon if self.recursive else dc.horizon)
        y = self.predict_at(panel, panel.lengths(), horizon, values, all_levels=True)  # (S, H, C[, Q])
        levels, y = (y, y[..., self.model.centre]) if self.levels else (None, y)
        bands = {} if self.intervals is None else self.intervals.columns(y, self.scales(panel, panel.lengths()),
                                                                          self.targets)
        frames = []
        for k, (sid, s, f) in enumerate(zip(panel.ids, panel.series, y)):
            frame = forecast_frame(s.frame.index, s.freq, f, self.targets).reset_index()
            frame.insert(0, dc.id_col, sid)
            for name, b in bands.items():
                frame[name] = b[k]
            frames.append(frame if levels is None else with_level_columns(frame, levels[k], self.targets, self.levels))
        return pd.concat(frames, ignore_index=True)

    def evaluate(self, data=None) -> dict:
        """Scores on each series' rows after its training and validation rows (:func:`.panel_backtest.evaluate`)."""
        return panel_backtest.evaluate(self, data)

    def backtest(self, data=None, folds: int = 1, refit: bool = False, quiet: bool = True) -> dict:
        """Rolling-origin scores, by the trained model or refitted ones (:func:`.panel_backtest.backtest`)."""
        return panel_backtest.backtest(self, data, folds, refit, quiet, fit=fit_global)

    def save(self, out: str | os.PathLike, force: bool = False, data=None, future=None,
             plot_ids: Sequence[str] | None = None) -> Path:
        """Write the run directory ``out`` atomically (an existing one only with ``force``), with
        forecast.csv (every series' next horizon; a run with future covariates only when ``future``
        gives their values), series_metrics.csv (one row per scored series) and forecast.png (the
        recent history, forecast and bands of the first 9 series, or of the series ``plot_ids``:
        :mod:`.panel_plot`)."""
        panel = self.load_data(data)
        ahead = self.forecast(panel, future=future) if future is not None or not self.data_config.future_covariates \
            else None
        return write_panel_run(self, out, force, ahead, panel, plot_ids)


def fit_global(data_config: DataConfig, model_config: ModelConfig | None = None,
               train_config: TrainConfig | None = None, data=None, quiet: bool = False, evaluate: bool = True,
               dtype: torch.dtype = torch.float32, callbacks=None, search: SearchConfig | None = None) -> PanelRun:
    """Train one global forecaster on every series of a panel (``data_config.id_col``): see
    :mod:`rnnkit.tasks.forecast.panel`. ``search.ensemble`` members from consecutive seeds are
    trained side by side and combined by the median, as for one series."""
    if data_config.id_col is None and not isinstance(data, PanelData):
        raise ConfigError("a global model needs a panel: pass id_col (--id-col COL), the column of series ids")
    model_config, train_config = model_config or ModelConfig(), train_config or TrainConfig()
    search = search or SearchConfig()
    refuse_distributed(train_config, search, panel=True)
    check_panel_heads(model_config, search)
    panel = load_panel(data_config, data)
    if data_config.id_col is None:
        data_config = data_config.replace(id_col="id")
    prep = prepare_panel(data_config, model_config, train_config, panel, dtype, search)
    models, histories, fallback = train_members(prep, model_config, prep.train_config, search.ensemble, quiet=quiet,
                                                callbacks=list(callbacks or ()))
    dc = prep.data_config
    meta = {"data_source": panel.source, "data_sha256": panel.sha256, "dtype": str(dtype).replace("torch.", ""),
            "freq": panel.freq, "norm_floor": list(prep.norm.floor),
            "covariate_effect": [list(r) for r in prep.norm.effect], "ensemble": search.ensemble,
            "naive_members": int(sum(fallback)), "member_best_epochs": [h.best_epoch or 0 for h in histories],
            "ids": list(panel.ids), "splits": [list(s) for s in prep.splits],
            "n_rows": [int(n) for n in panel.lengths()], "trained_series": prep.trained_series,
            "train_windows": len(prep.train), "val_windows": 0 if prep.val is None else int(len(prep.val[0])),
            "known_inputs": known_names(panel.freq, dc.calendar, dc.future_covariates) + prep.statics.names}
    if prep.seasons is not None:  # series of different frequencies: each one's season, in the order of ids
        meta["seasons"] = [int(v) for v in prep.seasons]
    model = models[0] if len(models) == 1 else ForecastEnsemble(models)
    static_values = {c: tuple(str(v) for v in panel.static[c]) for c in dc.static_covariates} \
        if dc.static_covariates else None
    run = PanelRun(model, dict(zip(panel.ids, prep.scalers)), dc, model_config, prep.train_config, histories[0],
                   None, meta, prep.norm, search, prep.statics, static_values=static_values)
    if search.intervals:
        run.intervals = calibrate_global(fit_global, dc, model_config, prep.train_config, panel, dtype, search, quiet)
        meta["intervals"] = run.intervals.to_dict()
    if evaluate and any(v < n for (_, v), n in zip(prep.splits, meta["n_rows"])):
        run.metrics = run.evaluate(panel)
    return run
