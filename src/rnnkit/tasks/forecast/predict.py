"""Forecasting with a trained model: windows, future forecasts, naive baselines and their scores
(the rolling-origin backtest, which may refit, is in :mod:`rnnkit.tasks.forecast.workflow`).

Everything here works in the data's original units: contexts are scaled on the way in with the
run's scaler (fitted on training rows only) and forecasts unscaled on the way out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...data.boxcox import TargetTransform
from ...data.scaler import Scaler
from ...data.windows import make_windows
from ...errors import ConfigError, DataError
from .metrics import forecast_metrics, last_value_forecast, seasonal_naive_forecast
from .model import Forecaster
from .known import generation_inputs, model_input
from .normalise import WindowNorm
from .negbin import check_counts, is_negbin
from .passes import OUTPUT_BATCH
from .paths import sampled
from .quantiles import quantile_horizon_message

__all__ = ["window_targets_start", "predict_windows", "predict_scaled", "predict_scaled_batched", "naive_baselines", "score_forecasts",
           "forecast_frame", "windows_for", "check_known_horizon"]


def window_targets_start(n: int, lookback: int, horizon: int, stride: int = 1, start: int = 0,
                         end: int | None = None) -> np.ndarray:
    """Row index of the first target of each window :func:`~rnnkit.data.make_windows` makes."""
    end = n if end is None else end
    first = max(0, start - lookback)
    return np.arange(first, end - lookback - horizon + 1, stride) + lookback


@torch.no_grad()
def predict_windows(model: Forecaster, scaler: Scaler, contexts: np.ndarray, horizon: int,
                    n_targets: int, batch_size: int = 4096, norm: WindowNorm | None = None,
                    transform: TargetTransform | None = None, known: np.ndarray | None = None,
                    all_levels: bool = False) -> np.ndarray:
    """Forecast after each raw context window: ``(W, L, F)`` -> ``(W, horizon, C)``, original units.

    A quantile model (``model.levels``) forecasts its centre there, the point forecast, or with
    ``all_levels`` every level, ``(W, horizon, C, Q)``: each level goes back through the same
    increasing maps (normalisation, scaler, transform), so they stay in order.

    The contexts go the way the training windows went: the run's target ``transform``, its
    ``scaler``, then its per-window ``norm``, with each window's ``known`` inputs ``(W, L + H', K)``
    (:mod:`rnnkit.tasks.forecast.known`, in the network's units; a direct model reads its trained
    horizon's, a recursive one at least ``horizon`` rows'); the forecasts come back the reverse way.
    All windows go through the model in large batches: a backtest costs one call, not one per fold.
    An ensemble over several lookbacks passes each member's window (the last rows it reads, and
    their known inputs) through that member's own view (its transform, scaler and normalisation;
    ``scaler``, ``norm`` and ``transform`` are then not used) and takes the median of the members'
    forecasts in original units. The known inputs are the same for every member: the members'
    scalers differ in the target columns only (each column is scaled on its own training rows).

    A recursive distribution head (:mod:`.paths`) forecasts the quantiles of its sampled paths, in
    the model's units, which go back the same way (each level an order statistic of the draws, so
    it maps exactly); all windows go through it in one call, so its random stream runs on over them.
    """
    levels = getattr(model, "levels", ())
    if levels and horizon > model.horizon and not model.recursive:
        raise ConfigError(quantile_horizon_message(model.horizon, horizon))
    if levels and not all_levels:
        return predict_windows(model, scaler, contexts, horizon, n_targets, batch_size, norm, transform, known,
                               all_levels=True)[..., model.centre]
    views = getattr(model, "views", None)
    if views:  # an ensemble over several lookbacks (fitting.ForecastEnsemble): each member its own way
        L = np.shape(contexts)[1]  # member k reads the last L_k rows (and their known inputs)
        if L < max(v.lookback for v in views):
            raise DataError(f"this ensemble's members read up to {max(v.lookback for v in views)} rows (lookbacks "
                            f"{', '.join(str(v.lookback) for v in views)}); the context has {L}")
        each = [predict_windows(member, v.scaler, np.asarray(contexts)[:, L - v.lookback:], horizon, n_targets,
                                batch_size, v.norm, v.transform, None if known is None else known[:, L - v.lookback:],
                                all_levels=True)
                for member, v in zip(model.members, views)]
        # (N, W, H, C[, Q]) -> (W, H, C[, Q]): the middle, or the mean of two (per level: keeps their order)
        return np.median(np.stack(each), axis=0)
    model.eval()
    dtype = next(model.parameters()).dtype
    raw = np.array(contexts, dtype=np.float64, copy=True)
    if is_negbin(model):  # its contexts are counts, read as they are
        check_counts(raw[..., :n_targets], [f"column {c}" for c in range(n_targets)])
    if transform is not None:
        raw[..., :n_targets] = transform.forward(raw[..., :n_targets])
    scaled = scaler.transform(raw)
    y = predict_scaled_batched(model, scaled, horizon, norm, dtype, known, batch_size)  # (W, H, C[, Q]), scaled
    if y.ndim == 4:  # the scaler works on the last axis, the targets': (W, H, C, Q) -> (W, H, Q, C)
        y = np.moveaxis(scaler.inverse_transform(np.moveaxis(y, 3, 2), columns=list(range(n_targets))), 2, 3)
    else:
        y = scaler.inverse_transform(y, columns=list(range(n_targets)))
    if transform is not None:
        y = transform.inverse(y)
    if not np.isfinite(y).all():
        raise DataError("the model produced non-finite forecasts (NaN or inf); the run is unusable - "
                        "retrain with a lower learning rate or gradient clipping")
    return y


def predict_scaled_batched(model: Forecaster, x: np.ndarray, horizon: int, norm: WindowNorm | None, dtype,
                           known: np.ndarray | None = None, batch_size: int = OUTPUT_BATCH,
                           seasons: np.ndarray | None = None) -> np.ndarray:
    """:func:`predict_scaled` ``batch_size`` windows at a time (a layer holds every step's state of the
    windows it runs: memory in windows x lookback otherwise); a model forecasting by sampled paths in
    one call, as it chunks the windows itself, continuing one seeded stream. A run with a linear
    covariate effect (:mod:`.linear`) forecasts the targets less it, and gets it back from the
    horizon's covariates, the first columns of the known inputs after the context. ``seasons (W,)``:
    each window's season for the seasonal skip (:meth:`~.normalise.WindowNorm.base`)."""
    effect = norm is not None and bool(norm.effect)
    if effect:
        if known is None:
            raise ConfigError("this run's forecasts add the linear effect of its future covariates, which needs "
                              "their values over the horizon (the known inputs)")
        x = norm.remove_effect(x)
    if sampled(model):
        batch_size = max(1, len(x))
    y = np.concatenate([predict_scaled(model, x[i:i + batch_size], horizon, norm, dtype,
                                       None if known is None else known[i:i + batch_size],
                                       None if seasons is None else seasons[i:i + batch_size])
                        for i in range(0, len(x), batch_size)], 0)
    return norm.add_effect(y, np.asarray(known)[:, x.shape[1]:]) if effect else y


def predict_scaled(model: Forecaster, x: np.ndarray, horizon: int, norm: WindowNorm | None, dtype,
                    known: np.ndarray | None = None, seasons: np.ndarray | None = None) -> np.ndarray:
    """Forecasts in scaled units after windows ``x (W, L, F)`` (scaled units too); ``seasons``: as
    for :func:`predict_scaled_batched`."""
    as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    if known is not None:  # the known inputs: over the horizon (direct) or at each step (recursive)
        active = norm is not None and norm.active
        x_in = norm.inputs(x) if active else x
        L, K = x.shape[1], known.shape[2]
        if model.recursive:
            n_values = model.input_size - K
            ctx = model_input(x_in, known, n_values, recursive=True)  # (W, L, V + K)
            out = model.predict(as_t(ctx), horizon, as_t(generation_inputs(known, L, horizon))).double().numpy()
        else:
            check_known_horizon(model.horizon, horizon)
            n_values = model.input_size - K - 1  # the future flag
            out = model(as_t(model_input(x_in, known, n_values, recursive=False))).double().numpy()[:, :horizon]
        return norm.decode(x, out, seasons) if active else out
    if norm is None or not norm.active:
        return model.predict(as_t(x), horizon).double().numpy()
    if model.recursive:  # generates in the window's normalised units, mapped back at the end
        return norm.decode(x, model.predict(as_t(norm.inputs(x)), horizon).double().numpy(), seasons)
    if horizon > model.horizon and model.input_size != model.n_targets:
        raise ConfigError(f"this model was trained for horizon {model.horizon} with covariates; it cannot "
                          f"forecast {horizon} steps (future covariates are unknown)")
    pieces, window, L, got = [], x, x.shape[1], 0
    while got < horizon:  # beyond the trained horizon: feed the forecasts back, one block at a time
        y = norm.decode(window, model(as_t(norm.inputs(window))).double().numpy(), seasons)  # (W, H, C)
        pieces.append(y)
        got += y.shape[1]
        if got < horizon:
            window = np.concatenate([window, y], 1)[:, -L:]
    return np.concatenate(pieces, 1)[:, :horizon]


def check_known_horizon(trained: int, horizon: int) -> None:
    """Refuse a direct model with known inputs a ``horizon`` beyond the one it was ``trained`` for
    (its input runs on over exactly that many future steps)."""
    if horizon > trained:
        raise ConfigError(f"this direct model reads the known inputs (future covariates, calendar features) of "
                          f"its trained horizon of {trained} steps; it cannot forecast {horizon} (refit with "
                          f"--horizon {horizon}, or use --strategy recursive)")


def naive_baselines(values: np.ndarray, starts: np.ndarray, horizon: int, m: int) -> dict[str, np.ndarray]:
    """Last-value and seasonal-naive forecasts for windows whose targets begin at ``starts``.

    ``values (N, C)`` are the raw target rows. Last value repeats ``values[s-1]``; seasonal naive
    repeats the last season, ``values[s - m + (h mod m)]`` for step ``h`` (needs ``s >= m``).
    """
    if m > 1 and (starts < m).any():
        raise ConfigError(f"seasonal period m={m} is longer than the history before the first window; "
                          "use a smaller --seasonal-period")
    k = max(m, 1)
    context = values[starts[:, None] - k + np.arange(k)]  # (W, k, C): the last season before each start
    out = {"last value": last_value_forecast(context, horizon)}
    if m > 1:
        out[f"seasonal naive (m={m})"] = seasonal_naive_forecast(context, horizon, m)
    return out


def score_forecasts(actual: np.ndarray, predicted: np.ndarray, baselines: dict[str, np.ndarray],
                    y_train: np.ndarray, m: int) -> dict:
    """Metrics of the model and of every baseline: ``{"model": {...}, "last value": {...}, ...}``."""
    scores = {"model": forecast_metrics(actual, predicted, y_train, m)}
    for name, pred in baselines.items():
        scores[name] = forecast_metrics(actual, pred, y_train, m)
    return scores


def forecast_frame(index: pd.Index, freq: str | None, forecast: np.ndarray, targets: tuple[str, ...]) -> pd.DataFrame:
    """A table of future forecasts ``(H, C)`` whose index continues ``index`` past its end."""
    H = forecast.shape[0]
    if isinstance(index, pd.DatetimeIndex) and freq:
        future = pd.date_range(index[-1], periods=H + 1, freq=freq)[1:]
        future.name = index.name or "time"
    else:
        future = pd.RangeIndex(len(index), len(index) + H, name="step")
    df = pd.DataFrame(forecast, index=future, columns=list(targets))
    df.insert(0, "horizon", np.arange(1, H + 1))
    return df


def windows_for(values: np.ndarray, n_targets: int, lookback: int, horizon: int, stride: int,
                start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw context windows, their actual targets and target start rows for rows ``[start, end)``."""
    X, Y = make_windows(values, values[:, :n_targets], lookback, horizon, stride, start, end)
    return X, Y, window_targets_start(len(values), lookback, horizon, stride, start, end)
