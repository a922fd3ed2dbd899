"""Rolling origins: forecasts of a run from several origins, by its trained model or by its
pipeline refitted on the rows before each origin (:func:`refit_forecasts`), and the backtest built
on them (:func:`backtest`). The conformal calibration (:mod:`.conformal`) uses the same refits.

The refits are :func:`~rnnkit.tasks.forecast.workflow.fit_forecaster` calls, passed in as ``fit``
(that module calls this one, so it cannot be imported here). They use the run's resolved settings
(:func:`refit_settings`) and train side by side (:func:`~rnnkit.training.members.train_side_by_side`:
on every core, and they stop within an epoch on Ctrl-C).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from ...errors import ConfigError, DataError
from ...training.loop import progress_enabled
from ...training.members import threads_are_deterministic, train_side_by_side
from .config import DataConfig, SearchConfig
from .data import check_rows, resolve_split
from .predict import naive_baselines, score_forecasts

__all__ = ["refit_settings", "refit_config", "check_refit_rows", "refit_forecasts", "backtest"]


def _head(data, rows: int):
    """The first ``rows`` rows of a series."""
    return dataclasses.replace(data, frame=data.frame.iloc[:int(rows)])


def refit_settings(run) -> tuple[DataConfig, SearchConfig]:
    """The data and search settings that refit ``run``'s pipeline on the rows before an origin.

    The run's resolved settings (lookback, season, normalisation, skip, transform: what its
    "auto" chose), with no test rows and the run's share of validation rows; an ensemble of the
    run's size (an ``--auto`` run's: the settings its search chose, without searching again), over
    the same lookbacks (each member's skip and transform are then "auto" again where the members'
    differ). See :func:`refit_config`."""
    return refit_config(run.data_config, run.search, run.meta)


def refit_config(dc: DataConfig, s: SearchConfig, meta: dict) -> tuple[DataConfig, SearchConfig]:
    """:func:`refit_settings` from a run's data config ``dc``, search config ``s`` and the entries
    of its ``meta`` they need: ``val_rows``, ``test_start``, ``ensemble`` and, with lookbacks,
    ``lookback_members`` (each one's ``skip`` and ``transform``)."""
    changes = {"test_frac": 0.0, "val_frac": None if dc.val_frac is None else min(dc.val_frac, 0.5)}
    if dc.val_start is not None or dc.test_start is not None:  # split by time: keep the share of validation rows
        changes.update(val_start=None, test_start=None, val_frac=min(meta["val_rows"] / meta["test_start"], 0.5))
    if s.ensemble_lookbacks:
        views = meta["lookback_members"]
        same = lambda key: views[0][key] if all(v[key] == views[0][key] for v in views) else "auto"  # noqa: E731
        changes.update(lookback=None, skip=same("skip"), transform=same("transform"))
    return dc.replace(**changes), SearchConfig(ensemble=meta["ensemble"], ensemble_lookbacks=s.ensemble_lookbacks)


def check_refit_rows(dc: DataConfig, data, rows: int, resolved: DataConfig) -> None:
    """Refuse (DataError, before any training) a refit with settings ``dc`` on the first ``rows``
    rows of ``data`` that would not have enough rows for its windows (``resolved``: the run's own)."""
    lookback = dc.lookback or resolved.lookback
    L, split = resolve_split(dc.replace(lookback=lookback), _head(data, rows), resolved.seasonal_period)
    check_rows(dc.replace(lookback=L), split)


def refit_forecasts(fit: Callable, run, data, origins, horizon: int, *, ends=None, settings=None, quiet: bool = True,
                    desc: str | None = None) -> tuple[np.ndarray, list[int]]:
    """Forecasts ``(K, horizon, C)`` of ``data`` from each of the increasing ``origins``, each by the
    pipeline refitted on the rows before the last of ``ends`` at or before it (default: its own
    origin, one refit per origin); and the training rows of the refit behind each. ``settings``:
    ``(data config, search config)`` of the refits (default :func:`refit_settings`). The refits
    train side by side; ``desc`` labels a progress bar (shown unless ``quiet`` or not at a terminal)."""
    origins = np.asarray(origins, dtype=np.int64)
    ends = origins if ends is None else np.asarray(ends, dtype=np.int64)
    group = np.searchsorted(ends, origins, side="right") - 1  # (K,) which refit forecasts each origin
    if (group < 0).any():
        raise ConfigError("every origin needs a refit that ends at or before it")
    dc, search = settings or refit_settings(run)
    dtype = getattr(torch, run.meta.get("dtype", "float32"))
    values = data.values
    bar = None
    if desc and progress_enabled(quiet):
        from tqdm.auto import tqdm
        bar = tqdm(total=len(ends), desc=desc, unit="fit", leave=False)

    def one(k: int, halt) -> tuple[np.ndarray, int]:
        # the refits train side by side in this one process: a run trained with --distributed refits alone
        r = fit(dc, run.model_config, run.train_config.replace(distributed=False), data=_head(data, ends[k]),
                quiet=True, evaluate=False,
                dtype=dtype, callbacks=[halt], search=search)
        mine, L = origins[group == k], r.data_config.lookback
        contexts = values[mine[:, None] - L + np.arange(L)]  # (k, L, F)
        pred = r.predict_contexts(contexts, horizon, r.known(data, mine, horizon=horizon))
        if bar is not None:
            bar.update()
        return pred, int(r.meta["train_rows"])
    try:
        results = train_side_by_side(one, len(ends), parallel=threads_are_deterministic(run.model_config))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate([p for p, _ in results]), [results[g][1] for g in group]


def backtest(fit: Callable, run, data, folds: int, horizon: int | None = None, refit: bool = False,
             quiet: bool = True) -> dict:
    """Rolling-origin evaluation with an expanding window over the last ``folds * horizon`` rows.

    Fold k forecasts ``horizon`` steps from origin ``o_k = N - (folds - k) * horizon``. Without
    ``refit`` the trained model is reused and all folds are forecast in one batched call; origins
    must then lie after the rows the model was trained on when ``data`` is the training data. With
    ``refit`` the whole pipeline (scaler included, an ensemble as large as the run's) is refitted on
    ``rows[:o_k]`` for every fold (:func:`refit_forecasts`), with ``fit``. Returns per-fold and
    overall metrics for the model and the naive baselines; with a calibrated run and no ``refit``,
    the model's also have the coverage and width of its intervals (``"intervals"``).
    """
    dc = run.data_config
    horizon = horizon or dc.horizon
    if not isinstance(folds, int) or folds < 1:
        raise ConfigError(f"folds must be a positive integer; got {folds!r}")
    values = data.values
    n, C = len(values), len(dc.targets)
    origins = n - (folds - np.arange(folds)[::-1]) * horizon
    origins = np.sort(origins)
    if origins[0] < dc.lookback:
        raise DataError(f"{folds} folds of {horizon} steps need at least {folds * horizon + dc.lookback} rows "
                        f"(lookback {dc.lookback}); the data has {n}; use fewer --folds")
    m = run.seasonal_period
    if not refit:
        if data.sha256 == run.meta.get("data_sha256") and origins[0] < run.meta.get("train_rows", 0):
            raise DataError(f"fold 1 starts at row {origins[0]}, inside the {run.meta['train_rows']} rows the model "
                            "was trained on; use fewer --folds or --refit")
        contexts = values[origins[:, None] - dc.lookback + np.arange(dc.lookback)]  # (K, L, F)
        preds = run.predict_contexts(contexts, horizon, run.known(data, origins, horizon=horizon))
        train_rows = [run.meta.get("train_rows", origins[0])] * folds
    else:
        preds, train_rows = refit_forecasts(fit, run, data, origins, horizon, quiet=quiet)
    actual = values[origins[:, None] + np.arange(horizon)][..., :C]  # (K, H, C)
    base = naive_baselines(values[:, :C], origins, horizon, m)
    y_train = values[:train_rows[0], :C]
    result = {"folds": [], "overall": score_forecasts(actual, preds, base, y_train, m)}
    calibration = getattr(run, "calibration", None)
    if calibration is not None and not refit:
        result["overall"]["model"]["intervals"] = calibration.scores(actual, preds)
    for k, o in enumerate(origins):
        fold_base = {name: b[k:k + 1] for name, b in base.items()}
        result["folds"].append({"origin": int(o), "train_rows": int(train_rows[k]),
                                "scores": score_forecasts(actual[k:k + 1], preds[k:k + 1], fold_base, y_train, m)})
    return result
