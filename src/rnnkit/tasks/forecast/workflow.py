"""The forecasting workflow in one place, shared by the Python API and the CLI.

Data flows one way: table -> validated :class:`SeriesData` -> chronological split -> scaler
fitted on the training rows -> windows -> :func:`rnnkit.training.loop.fit` -> forecasts in original
units -> metrics against naive baselines -> :class:`ForecastRun`, written by :meth:`ForecastRun.save`
(its files: :mod:`.rundir`) and read back by :mod:`rnnkit.tasks.forecast.run`, which imports this
module (so a run saves itself without an import cycle).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...config import ModelConfig, TrainConfig
from ...data.boxcox import TargetTransform
from ...data.panel import PanelData
from ...data.scaler import Scaler
from ...data.series import SeriesData
from ...errors import ConfigError, DataError
from ...training.loop import History, loss_printer
from . import rolling
from .config import refuse_distributed, DataConfig, SearchConfig
from .conformal import Calibration, calibrate_run, check_calibration_rows
from .data import is_builtin, load_data, seasonal_period
from .fitting import ForecastEnsemble, naive_weight, scale_correction, series_known, train_members
from .future import future_values
from .gate import rolling_gate
from .lookbacks import lookbacks_split, member_preps, view_of, view_record
from .losses import forecast_fused_task, forecast_loss
from .model import Forecaster
from .known import known_names
from .normalise import WindowNorm
from .refit import refit_members
from .predict import (check_known_horizon, forecast_frame, naive_baselines, predict_windows, score_forecasts,
                      windows_for)
from .probabilistic import quantile_scores
from .quantiles import with_level_columns
from .rundir import forecast_files, write_forecast_run  # (write_forecast_run also re-exported: its home was here)
from .search import AUTO_ENSEMBLE, auto_search, choose_normalisation

__all__ = ["ForecastRun", "fit_forecaster", "forecast_loss", "forecast_fused_task", "backtest", "write_forecast_run"]


@dataclass
class ForecastRun:
    """A trained forecaster with everything needed to use it: scaler, settings, scores.

    ``rnnkit.load_run(dir)`` returns one; :meth:`forecast`, :meth:`evaluate` and :meth:`backtest`
    work in the data's original units. ``calibration`` holds the conformal intervals' half-widths
    when ``search.intervals`` asks for intervals (:mod:`rnnkit.tasks.forecast.conformal`).
    """

    model: Forecaster | ForecastEnsemble
    scaler: Scaler
    data_config: DataConfig
    model_config: ModelConfig
    train_config: TrainConfig
    history: History | None = None
    metrics: dict | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    norm: WindowNorm | None = None
    transform: TargetTransform | None = None
    search: SearchConfig = field(default_factory=SearchConfig)
    calibration: Calibration | None = None

    def predict_contexts(self, contexts: np.ndarray, horizon: int, known: np.ndarray | None = None,
                         all_levels: bool = False) -> np.ndarray:
        """Forecasts ``(W, horizon, C)`` in original units after raw context windows ``(W, L, F)``;
        ``known`` are their known inputs (:meth:`known`), needed when the run has future covariates
        or calendar features. A quantile run forecasts its point forecast (the centre level) there,
        or with ``all_levels`` its quantiles ``(W, horizon, C, Q)`` at :attr:`levels`."""
        return predict_windows(self.model, self.scaler, contexts, horizon, len(self.targets),
                               norm=self.norm, transform=self.transform, known=known, all_levels=all_levels)

    @property
    def levels(self) -> tuple[float, ...]:
        """The quantile levels the run forecasts (``ModelConfig.quantiles``; empty: point forecasts only)."""
        return self.model_config.quantiles

    @property
    def recursive(self) -> bool:
        return self.model_config.strategy == "recursive"

    def known(self, data: SeriesData, starts, future: np.ndarray | None = None,
              horizon: int | None = None) -> np.ndarray | None:
        """The known inputs (future covariates, calendar features; :mod:`rnnkit.tasks.forecast.known`)
        of ``data``'s windows whose targets start at rows ``starts``, in the network's units:
        ``(W, lookback + H, K)`` over the trained horizon (direct) or ``horizon`` steps (recursive).
        Windows reaching past the data read the future covariates of those rows from ``future`` (raw
        values, see :meth:`future_values`). None for a run without known inputs."""
        dc = self.data_config
        H = (horizon or dc.horizon) if self.recursive else dc.horizon
        return series_known(data, dc, self.scaler, starts, H, future)

    def future_values(self, data: SeriesData, future, horizon: int | None = None) -> np.ndarray | None:
        """The future covariates' values for forecasting ``horizon`` steps past ``data``, read from
        ``future`` (a CSV/TSV/Parquet path or a DataFrame: the run's time column, when it has one, and
        a column per future covariate, exactly the rows the forecast reads; checked, see
        :func:`~rnnkit.tasks.forecast.future.future_values`). None for a run without future covariates
        (which refuses a ``future``)."""
        dc = self.data_config
        if not dc.future_covariates:
            if future is not None:
                raise ConfigError("this run has no future covariates, so it reads no future file; drop --future "
                                  "(future=...)")
            return None
        rows = (horizon or dc.horizon) if self.recursive else dc.horizon
        if future is None:
            raise ConfigError(f"this run reads the future covariates {list(dc.future_covariates)}: forecasting past "
                              f"the data needs their values for the {rows} row(s) after its last one; pass them with "
                              "--future FILE (Python: forecast(future=FILE or DataFrame))")
        index = data.frame.index  # a series given as data, not read from a file, names its time index itself
        time_col = dc.time_col or (index.name or "time" if isinstance(index, pd.DatetimeIndex) else None)
        return future_values(future, dc.future_covariates, time_col, index, data.freq, rows)

    @property
    def targets(self) -> tuple[str, ...]:
        return self.data_config.targets

    @property
    def columns(self) -> tuple[str, ...]:
        return self.data_config.targets + self.data_config.covariates + self.data_config.future_covariates

    @property
    def seasonal_period(self) -> int:
        return seasonal_period(self.data_config)

    def _check_columns(self, data: SeriesData) -> None:
        got = tuple(data.targets) + tuple(data.covariates)
        if got != self.columns:
            raise DataError(f"the data has columns {list(got)} but the model was trained on {list(self.columns)}; "
                            "pass data with the same target and covariate columns")

    def load_data(self, source: str | None = None) -> SeriesData:
        """Read ``source`` (default: the training data) with the run's column settings."""
        cfg = self.data_config if source is None else self.data_config.replace(source=source)
        if source is None and not is_builtin(cfg.source) and not Path(cfg.source).exists():
            raise DataError(f"the run's training data {cfg.source} no longer exists (moved or deleted); "
                            "pass the series with --data FILE")
        data = load_data(cfg)
        self._check_columns(data)
        return data

    def forecast(self, data: SeriesData | None = None, horizon: int | None = None, future=None) -> pd.DataFrame:
        """Forecast ``horizon`` steps after the end of ``data`` (default: the training data).

        A run with future covariates needs their values for the rows ahead: ``future`` is a
        CSV/TSV/Parquet path or a DataFrame with the run's time column (when it has one) and one
        column per future covariate, holding exactly the forecast's rows after ``data``'s last
        (a direct model's trained horizon, or ``horizon`` rows for a recursive one).

        A calibrated run (``search.intervals``) adds the columns ``<target>_lo_<a>`` and
        ``<target>_hi_<a>`` for each level a, over the calibrated horizon (the trained one: a
        recursive forecast beyond it has empty interval columns there, and says so in a warning).
        A quantile run (:attr:`levels`) adds a column ``<target>_q<level>`` per target and level
        (``y_q0.1``, ``y_q0.5``, ``y_q0.9``, in level order, after the point forecasts); the
        ``<target>`` column is the point forecast, the 0.5 level (or the level nearest it)."""
        data = data if data is not None else self.load_data()
        self._check_columns(data)
        L = self.data_config.lookback
        if len(data) < L:
            raise DataError(f"forecasting needs the last {L} rows (the lookback); the data has {len(data)}")
        horizon = horizon or self.data_config.horizon
        if horizon < 1:
            raise ConfigError(f"horizon must be at least 1; got {horizon}")
        dc = self.data_config
        if not self.recursive and (dc.future_covariates or dc.calendar != "none"):
            check_known_horizon(dc.horizon, horizon)
        values = self.future_values(data, future, horizon)
        context = data.values[None, -L:]  # (1, L, F)
        y = self.predict_contexts(context, horizon, self.known(data, [len(data)], values, horizon),
                                  all_levels=bool(self.levels))[0]  # (H, C) or (H, C, Q)
        if self.levels:
            frame = forecast_frame(data.frame.index, data.freq, y[..., self.model.centre], self.targets)
            return with_level_columns(frame, y, self.targets, self.levels)
        frame = forecast_frame(data.frame.index, data.freq, y, self.targets)
        return frame if self.calibration is None else self.calibration.add_columns(frame, y, self.targets)

    def scoring_start(self, data: SeriesData) -> int:
        """The first row of ``data`` that :meth:`evaluate` scores: the first one after the end of the
        run's training and validation rows, by time when both are time-indexed, else by row number.
        Refuses (DataError) when ``data`` has fewer than ``horizon`` such rows."""
        meta, H = self.meta, self.data_config.horizon
        index = data.frame.index
        end_time = meta.get("fit_end_time")
        if end_time is not None and isinstance(index, pd.DatetimeIndex):
            start = int(index.searchsorted(pd.Timestamp(end_time), side="right"))
            after = f"after {end_time} (the end of the training and validation rows)"
        else:
            start = int(meta["test_start"])
            after = f"after row {start} (the end of the training and validation rows)"
        if len(data) - start < H:
            raise DataError(f"the data has {max(len(data) - start, 0)} rows {after}; evaluation scores only rows "
                            f"the model was not fitted or validated on and needs at least horizon {H}: pass --data "
                            "with the series continued past the training data")
        return start

    def evaluate(self, data: SeriesData | None = None) -> dict:
        """Scores on the rows after the training and validation rows (see :meth:`scoring_start`):
        the run's test rows, or the new rows of ``data`` that continues the series.

        Returns ``{"model": {...}, "last value": {...}, "seasonal naive (m=..)": {...}}``, each with
        ``overall`` and ``per_step`` MAE, RMSE, MAPE, sMAPE and MASE in original units (of the point
        forecast); a calibrated run's model also has ``intervals``: coverage and width per level
        (overall and per step); a quantile run's model has ``quantile_scores``
        (:func:`~rnnkit.tasks.forecast.probabilistic.quantile_scores`: WQL, CRPS, each level's
        pinball loss, and coverage and width of each central interval, ``"80"`` for 0.1 and 0.9).
        """
        data = data if data is not None else self.load_data()
        self._check_columns(data)
        dc = self.data_config
        values = data.values
        start = self.scoring_start(data)
        X, Y, starts = windows_for(values, len(self.targets), dc.lookback, dc.horizon, 1, start, len(values))
        pred = self.predict_contexts(X, dc.horizon, self.known(data, starts, horizon=dc.horizon),
                                     all_levels=bool(self.levels))
        levels = pred if self.levels else None  # (W, H, C, Q)
        pred = pred[..., self.model.centre] if self.levels else pred  # the point forecast, (W, H, C)
        m = self.seasonal_period
        base = naive_baselines(values[:, :len(self.targets)], starts, dc.horizon, m)
        y_train = values[:self.meta.get("train_rows", start), :len(self.targets)]
        scores = score_forecasts(Y, pred, base, y_train, m)
        if self.calibration is not None:
            scores["model"]["intervals"] = self.calibration.scores(Y, pred)
        if levels is not None:
            scores["model"]["quantile_scores"] = quantile_scores(Y, levels, self.levels)
        return scores

    def backtest(self, data: SeriesData | None = None, folds: int = 5, refit: bool = False,
                 quiet: bool = True) -> dict:
        """Rolling-origin backtest; see :func:`backtest`."""
        data = data if data is not None else self.load_data()
        self._check_columns(data)
        return backtest(self, data, folds, refit=refit, quiet=quiet)

    def save(self, out: str | os.PathLike, force: bool = False, data: SeriesData | None = None,
             future=None) -> Path:
        """Write the run directory ``out`` atomically (refusing an existing one unless ``force``), with
        the files a person looks at: ``forecast.csv`` (the next ``horizon`` steps after ``data``),
        ``learning_curve.png`` and ``forecast.png`` (history, test forecasts, future). ``data`` is
        the series those are made from; by default the training data is read again (the file must
        still exist). A run with future covariates forecasts past ``data`` only with their values
        (``future``, as :meth:`forecast` takes it); without them it has no forecast.csv."""
        data = data if data is not None else self.load_data()
        ahead = None if self.data_config.future_covariates and future is None else self.forecast(data, future=future)
        return write_forecast_run(self, out, force=force, extra=forecast_files(self, data, ahead, future), plots=True)


def fit_forecaster(data_config: DataConfig, model_config: ModelConfig | None = None,
                   train_config: TrainConfig | None = None, data: SeriesData | None = None,
                   quiet: bool = False, evaluate: bool = True, dtype: torch.dtype = torch.float32,
                   verbose: bool = False, callbacks=None, search: SearchConfig | None = None) -> ForecastRun:
    """Read, split, scale, window, train and score: the whole forecasting job, returned as a run.

    ``search`` asks for an ensemble (``SearchConfig(ensemble=N)``: N forecasters from consecutive
    seeds, trained side by side, forecasting their median) or for ``auto``, a search for the
    settings (see :mod:`rnnkit.tasks.forecast.search`) whose winner trains an ensemble of at least
    :data:`~rnnkit.tasks.forecast.search.AUTO_ENSEMBLE`. With ``ensemble_lookbacks`` member k reads the
    k-th of them (cyclically): each lookback is prepared on its own windows of the same split rows
    (the one the longest needs) and the run's lookback is the longest. ``callbacks`` are called after every epoch
    (of the first member) with its history row, as in every job's ``fit_X``; ``quiet`` hides the
    progress display; ``verbose`` prints the losses about 20 times per run and the search's steps.
    ``search.intervals`` adds split-conformal intervals, calibrated on the errors of forecasts from
    rolling origins at the end of the fitted rows by refitted pipelines
    (:func:`~rnnkit.tasks.forecast.conformal.calibrate_run`).

    Validation (with ``data_config.refit``, the default) chooses each member's epoch count, by early
    stopping, and whether it falls back to the naive forecast; the members are then trained again
    on the training and validation rows for that many epochs (:mod:`rnnkit.tasks.forecast.refit`),
    so the run's history is the first training's and meta's ``refit_epochs`` says what the refit did.
    """
    if data_config.id_col is not None or isinstance(data, PanelData):  # many series: one global model
        from .panel_run import fit_global  # noqa: PLC0415  (it builds on this module's neighbours)
        return fit_global(data_config, model_config, train_config, data, quiet=quiet, evaluate=evaluate,
                          dtype=dtype, callbacks=callbacks, search=search)
    model_config = model_config or ModelConfig()
    train_config = train_config or TrainConfig()
    search = search or SearchConfig()
    refuse_distributed(train_config, search)
    if search.intervals and model_config.quantiles:
        raise ConfigError("--intervals and --quantiles are two kinds of interval: the conformal intervals wrap a point "
                          "forecast, the quantile head learns its own; pass one of them")
    if search.intervals:  # a series too short for the calibration's refits: refused before any training
        data = data if data is not None else load_data(data_config)
        check_calibration_rows(data_config, data, search)
    record, members = None, search.ensemble
    looks, split = search.member_lookbacks(members), None  # each member's lookback, when they differ
    say = (lambda s: print(s, file=sys.stderr)) if verbose else (lambda s: None)
    if search.auto:
        members = max(search.ensemble, AUTO_ENSEMBLE)
        admissible = None if not search.intervals else (  # a lookback the calibration's refits have rows for
            lambda p: check_calibration_rows(p.data_config, p.data, search, p.split))
        prep, model_config, train_config, record = auto_search(data_config, model_config, train_config, data, dtype,
                                                               search.time_budget, members, say, admissible)
    callbacks = list(callbacks or ()) + ([loss_printer(train_config.epochs)] if verbose else [])
    if search.auto:
        models, histories, fallback = train_members(prep, model_config, prep.train_config, members, quiet=quiet,
                                                    callbacks=callbacks)
        choice, preps = {}, [prep] * members
    else:  # the first member decides the normalisation when it is "auto"; the others follow it
        if looks:
            data_config, data, split = lookbacks_split(data_config, model_config, train_config, data, dtype,
                                                       search.ensemble_lookbacks)
        prep, models, histories, fallback, choice = choose_normalisation(data_config, model_config, train_config,
                                                                         data, dtype, quiet, callbacks, split)
        preps = member_preps(prep, data_config, model_config, looks) if looks else [prep] * members
        if members > 1:
            more = train_members(preps[1:], model_config, prep.train_config, quiet=quiet, first=1)
            models, histories, fallback = models + more[0], histories + more[1], fallback + more[2]
    train_config = prep.train_config
    # validation chose each member's epoch count (and the naive fallback): train again on the
    # training and validation rows for that many epochs (DataConfig.refit, :mod:`.refit`)
    # each member's weight against its naive forecast, measured before the refit leaves no rows to measure on
    weights = [1.0 if naive or search.combine == "none" else naive_weight(m, p, train_config.loss)
               for m, p, naive in zip(models, preps, fallback)]
    models, refitted, _ = refit_members(preps, models, histories, fallback, model_config, train_config,
                                        quiet=quiet, say=say)
    for m, w in zip(models, weights):
        if w < 1.0:
            scale_correction(m, w)
    if prep.norm.effect:
        say("future covariates: their linear effect on the targets (fitted on the training rows, F test p < 0.01) "
            "is forecast as a regression, the network forecasts the rest")
    if any(w < 1.0 for w in weights):
        say("combined with the naive forecast: the network's weight " + ", ".join(f"{w:.2f}" for w in weights))
    data, split, dc = prep.data, prep.split, prep.data_config
    if looks:  # the run's lookback is the longest: every member's context fits in it
        dc = dc.replace(lookback=max(looks))
    meta = {"data_sha256": data.sha256, "data_source": data.source, "n_rows": len(data),
            "train_rows": split.train_end, "val_rows": split.val_end - split.train_end,
            "test_start": split.val_end, "freq": data.freq, "dtype": str(dtype).replace("torch.", ""),
            "index_is_time": isinstance(data.frame.index, pd.DatetimeIndex),
            "fit_end_time": (str(data.frame.index[split.val_end - 1])
                             if isinstance(data.frame.index, pd.DatetimeIndex) else None),
            "norm_floor": list(prep.norm.floor), "transform_lambda": prep.transform.lam,
            "ensemble": members, "naive_members": int(sum(fallback)),
            # each member's weight in its combination with its naive forecast (SearchConfig.combine; 1: alone)
            "naive_weights": [float(w) for w in weights],
            # the targets' linear effect of the future covariates, (K, C) slopes in scaled units (.linear)
            "covariate_effect": [list(r) for r in prep.norm.effect],
            # what the network reads per step besides the values, known in advance (a record for people)
            "known_inputs": known_names(data.freq, dc.calendar, dc.future_covariates),
            "member_best_epochs": [h.best_epoch or 0 for h in histories],
            # the epochs each member was trained again for on the training and validation rows (0: not)
            "refit_epochs": refitted,
            # which loop trained the (first) member and, for the torch loop, why (e.g. a quantile head's
            # pinball loss, which the fused trainer does not run): a record for people
            "trainer": {"engine": histories[0].engine, "reason": histories[0].engine_reason,
                        "device": histories[0].device},
            # what was measured to choose the settings: {normalise: validation error} when
            # normalise="auto" measured it, and every setting --auto tried
            "selection": {"normalise": choice, "search": record or []}}
    if looks:  # each lookback's transform, scaler and normalisation ("auto" chose them on its own windows)
        meta["lookback_members"] = [view_record(preps[looks.index(L)]) for L in search.ensemble_lookbacks]
    model = (models[0] if members == 1 else
             ForecastEnsemble(models, [view_of(p) for p in preps]) if looks else ForecastEnsemble(models))
    run = ForecastRun(model, prep.scaler, dc, model_config, train_config, histories[0], None, meta, prep.norm,
                      prep.transform, search)
    if search.gate_origins:  # before the calibration: its intervals wrap the forecast the run makes
        meta["gate"] = rolling_gate(fit_forecaster, run, data, search.gate_origins, quiet=quiet)
    if search.intervals:
        run.calibration = calibrate_run(fit_forecaster, run, data, quiet=quiet)
    if evaluate and split.val_end < len(data):
        run.metrics = run.evaluate(data)
    return run


def backtest(run: ForecastRun, data, folds: int, horizon: int | None = None, refit: bool = False,
             quiet: bool = True) -> dict:
    """Rolling-origin evaluation over the last ``folds * horizon`` rows, refitting the pipeline on the
    rows before each origin with ``refit``; see :func:`rnnkit.tasks.forecast.rolling.backtest`."""
    return rolling.backtest(fit_forecaster, run, data, folds, horizon, refit=refit, quiet=quiet)
