"""Training forecasters: the prepared windows of one run (:func:`prepare`) and the members of an
ensemble trained from several seeds, on every core (:func:`train_members`), combined by the median
(:class:`~.ensemble.ForecastEnsemble`). Their loss for both engines is :mod:`.losses`'
(:func:`~.losses.forecast_loss`, :func:`~.losses.forecast_fused_task`, re-exported here).

The data flows one way (see DESIGN.md): series -> split -> target transform -> scaler fitted on the
training rows -> windows -> per-window normalisation (:mod:`.normalise`) -> tensors. What a run
must store to forecast again (the resolved config, scaler, normalisation, transform) is in the
:class:`Prepared` it came from.
"""

from __future__ import annotations


import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ...config import ModelConfig, TrainConfig
from ...data.boxcox import TargetTransform
from ...data.scaler import Scaler
from ...data.series import SeriesData
from ...data.split import Split
from ...errors import ConfigError
from ...training.checks import check_training_memory
from ...training.examples import column
from ...training.loop import History, fit
from ...training.members import seeded, threads_are_deterministic, train_side_by_side
from .combine import evaluating, outputs, relative_callbacks, val_losses, naive_weight, scale_correction  # noqa: F401
from .config import DataConfig, refuse_unsupported
from .ensemble import ForecastEnsemble, MemberView  # noqa: F401  (re-exported: their home was here)
from .data import absolute_source, check_rows, load_data, resolve_split, seasonal_period, series_streams
from .future import with_future_columns
from .model import Forecaster, head_loss, head_width
from .known import known_rows, known_width, known_windows, model_input, resolve_calendar  # noqa: F401 (re-exported)
from .linear import removed_effect
from .losses import forecast_fused_task, forecast_loss  # (also re-exported: their home was here)
from .normalise import WindowNorm, choose_skip, difference_lag
from .predict import windows_for
from .distribution import init_distribution_head, zero_mean
from .negbin import (count_config, init_negbin_head, negbin_beats_naive, set_count_naive, start_windows,
                     unscaled_targets)
from .quantiles import centre_beats_naive, init_quantile_head, zero_centre

__all__ = ["InputWidths", "Prepared", "prepare", "train_members", "new_member", "MemberView", "ForecastEnsemble", "forecast_loss",
           "forecast_fused_task", "resolve_norm", "series_known", "series_known_rows", "window_known_rows",
           "naive_weight",
           "scale_correction"]  # re-exported: the last two from .combine, the two losses from .losses


class InputWidths:
    """What a prepared training set's network reads per step, from its ``data_config`` and
    ``known_width`` (shared by one series' :class:`Prepared` and a panel's)."""

    @property
    def n_values(self) -> int:
        """Value columns the network reads per step: the targets, then the past covariates."""
        return len(self.data_config.targets) + len(self.data_config.covariates)

    @property
    def n_inputs(self) -> int:
        """Features per input step: the values, then the known inputs (see :mod:`.known`)."""
        return self.n_values + self.known_width


@dataclass
class Prepared(InputWidths):
    """One run's data, ready to train on: the resolved config, the fitted transforms and the
    training and validation tensors in the network's units."""

    data: SeriesData
    data_config: DataConfig
    train_config: TrainConfig
    split: Split
    scaler: Scaler
    norm: WindowNorm
    transform: TargetTransform
    train: tuple[Tensor, ...]
    val: tuple[Tensor, ...] | None
    dtype: torch.dtype
    #: the default split had to leave validation out (the series is too short to hold out a horizon)
    too_short: bool = False
    #: the model is recursive (it reads the known inputs at each step, not over the horizon)
    recursive: bool = False
    #: ``windows(start, end, stride)``: the (inputs, targets) tensors of the windows whose targets lie
    #: in rows ``[start, end)``, made as :attr:`train` and :attr:`val` were (same transform, scaler,
    #: normalisation, known inputs); None for stateful streams. The refit (:mod:`.refit`) trains on
    #: ``windows(0, split.val_end, stride)``.
    windows: Callable[[int, int, int], tuple[Tensor, ...]] | None = None

    @property
    def known_width(self) -> int:
        dc = self.data_config
        return known_width(self.data.freq, dc.calendar, len(dc.future_covariates), self.recursive)

    def known(self, starts: np.ndarray) -> np.ndarray | None:
        """The known inputs of windows whose targets start at rows ``starts`` (see :func:`series_known`)."""
        return series_known(self.data, self.data_config, self.scaler, starts, self.data_config.horizon)


def series_known_rows(data: SeriesData, dc: DataConfig, scaler: Scaler, steps: int = 0,
                      future: np.ndarray | None = None) -> np.ndarray | None:
    """The known inputs of every row of ``data`` and of the ``steps`` rows after it, in the
    network's units (:func:`~rnnkit.tasks.forecast.known.known_rows`): the future covariates'
    values, scaled with the run's ``scaler`` (the data's own, then the first ``steps`` rows of
    ``future``, raw values ``(rows, Kf)`` of the rows after the data), then the calendar features
    ``dc`` asks for. None when the run has no known inputs."""
    covs = None
    if dc.future_covariates:
        cols = len(dc.targets) + len(dc.covariates) + np.arange(len(dc.future_covariates))
        values = data.values[:, cols]  # (N, Kf): known, so the data's own values
        if steps:
            if future is None or len(future) < steps:
                raise ConfigError(f"forecasting {steps} row(s) past the data needs the future covariates "
                                  f"{list(dc.future_covariates)} of those rows: pass them with --future FILE "
                                  "(Python: forecast(future=...))")
            values = np.concatenate([values, np.asarray(future, dtype=np.float64)[:steps]])
        covs = scaler.transform(values, columns=cols)
    return known_rows(data.frame.index, data.freq, dc.calendar, covs, steps)


def window_known_rows(dc: DataConfig, scaler: Scaler, contexts: np.ndarray, future: np.ndarray) -> np.ndarray:
    """The future covariates of raw context windows ``(W, L, F)`` (their own columns) followed by the
    rows of ``future (W, H', K)`` (raw values of the rows after each window), scaled with ``scaler`` as
    :func:`series_known_rows` scales a series' rows: ``(W, L + H', K)``."""
    cols = len(dc.targets) + len(dc.covariates) + np.arange(len(dc.future_covariates))
    rows = np.concatenate([np.asarray(contexts, dtype=np.float64)[..., cols], np.asarray(future, dtype=np.float64)],
                          1)
    return scaler.transform(rows, columns=cols)


def series_known(data: SeriesData, dc: DataConfig, scaler: Scaler, starts, horizon: int,
                 future: np.ndarray | None = None) -> np.ndarray | None:
    """The known inputs ``(W, lookback + horizon, K)`` of ``data``'s windows whose targets start at
    rows ``starts`` (:func:`~rnnkit.tasks.forecast.known.known_windows`); windows that reach past the
    data's end read the rows after it from ``future`` (see :func:`series_known_rows`)."""
    if not dc.future_covariates and dc.calendar == "none":
        return None
    starts = np.asarray(starts, dtype=np.int64)
    steps = max(0, int(starts.max()) + horizon - len(data)) if len(starts) else 0
    return known_windows(series_known_rows(data, dc, scaler, steps, future), starts, dc.lookback, horizon)


def prepare(data_config: DataConfig, model_config: ModelConfig, train_config: TrainConfig,
            data: SeriesData | None = None, dtype: torch.dtype = torch.float32, split: Split | None = None) -> Prepared:
    """Read, split, transform, scale, window and normalise: everything before training. ``split``
    fixes the rows of each part (the search compares candidates on the same validation rows)."""
    refuse_unsupported(model_config, train_config, lookback=data_config.lookback)
    if train_config.loss is None:  # the job's own loss, recorded in the run as the one used
        train_config = train_config.replace(loss=head_loss(model_config) or "mse")
    if data is not None and data_config.source == DataConfig.source and data.source != data_config.source:
        data_config = data_config.replace(source=data.source)  # the default source is not this data's
    data = with_future_columns(data if data is not None else load_data(data_config), data_config.future_covariates)
    past = tuple(c for c in data.covariates if c not in data_config.future_covariates)
    dc = data_config.replace(targets=tuple(data.targets), covariates=past,
                             source=absolute_source(data_config.source))  # usable from any working directory
    counts = model_config.distribution == "negbin"  # counts in, counts out: .negbin's module docstring
    if counts:
        dc = count_config(dc, data)
    if train_config.stateful and model_config.strategy != "recursive":
        raise ConfigError("stateful training predicts the next value at every step; use strategy='recursive'")
    C = len(dc.targets)
    m = seasonal_period(dc, data.freq)
    lookback, default_split = resolve_split(dc, data, m)
    split = split or default_split
    normalise, skip = resolve_norm(dc, model_config, train_config, lookback, m)
    calendar = resolve_calendar(dc, data)
    recursive = model_config.strategy == "recursive"
    dc = dc.replace(lookback=lookback, seasonal_period=m, normalise=normalise, skip=skip, calendar=calendar)
    refuse_unsupported(model_config, train_config, lookback=lookback)
    check_rows(dc, split)

    def transformed(kind: str):  # -> the transform, the values in its units, the scaler (training rows only)
        t = TargetTransform.choose(kind, data.values[:split.train_end, :C], m)
        v = data.values.copy()
        v[:, :C] = t.forward(v[:, :C])
        s = Scaler(dc.scaler).fit(v[:split.train_end])
        return t, v, unscaled_targets(s, C) if counts else s
    transform, values, scaler = transformed(dc.transform)
    scaled = scaler.transform(values)
    fcol = C + len(dc.covariates)  # the first future covariate's column

    linear = dc.future_covariates and dc.linear_covariates != "none" and not train_config.stateful
    effect, scaled = removed_effect(scaled, C, fcol, len(dc.future_covariates), split.train_end, linear)
    if skip == "auto":  # the naive forecast that fits the training windows best
        candidates = ("last", "drift") + (("seasonal",) if 1 < m <= lookback else ())
        skip = choose_skip(candidates, m, *windows_for(scaled, C, lookback, dc.horizon, 1, 0, split.train_end)[:2])
    if skip == "drift" and dc.transform == "auto" and transform.name != "none":
        # a drift on the log scale compounds: exponential growth over the horizon, the multiplicative
        # trend that classical exponential smoothing leaves out by default for the same reason
        transform, values, scaler = transformed("none")
        effect, scaled = removed_effect(scaler.transform(values), C, fcol, len(dc.future_covariates),
                                        split.train_end, linear)
    dc = dc.replace(skip=skip, transform=transform.name)
    # a negbin head corrects its naive forecast itself, in counts (set_count_naive): the windows stay as they are
    norm = WindowNorm.fit(normalise, "none" if counts else skip, m, scaled[:split.train_end, :C],
                          difference_lag(dc.difference, m))
    norm = dataclasses.replace(norm, effect=effect, effect_col=fcol) if effect else norm
    windows = max(1, split.train_end - dc.lookback - dc.horizon + 1)
    n_values = C + len(dc.covariates)
    K = known_width(data.freq, calendar, len(dc.future_covariates), recursive)
    check_training_memory(model_config, n_values + K, C * dc.horizon * head_width(model_config),
                          min(train_config.batch_size, windows),
                          dc.lookback + (dc.horizon if K and not recursive else 0),
                          itemsize=torch.empty(0, dtype=dtype).element_size())
    as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731

    def windows(start: int, end: int, stride: int) -> tuple[Tensor, ...]:
        X, Y, starts = windows_for(scaled, C, dc.lookback, dc.horizon, stride, start, end)
        X, Y = norm.encode(X, Y) if norm.active else (X, Y)
        known = series_known(data, dc, scaler, starts, dc.horizon)
        return as_t(model_input(X, known, n_values, recursive)), as_t(Y)
    if train_config.stateful:  # row t's values with row t + 1's known inputs, as the windows have them
        rows = series_known_rows(data, dc, scaler)
        streams = series_streams(scaled[:split.train_end, :n_values], C, train_config.batch_size,
                                 None if rows is None else rows[:split.train_end])
        train, val = tuple(as_t(a) for a in streams), None
    else:
        train = windows(0, split.train_end, dc.stride)
        val = windows(split.train_end, split.val_end, 1) if split.val_end > split.train_end else None
    too_short = (dc.val_frac is None and dc.val_start is None and dc.test_start is None and val is None
                 and not train_config.stateful)
    return Prepared(data, dc, train_config, split, scaler, norm, transform, train, val, dtype, too_short, recursive,
                    None if train_config.stateful else windows)


def train_members(prep: Prepared | Sequence[Prepared], model_config: ModelConfig, train_config: TrainConfig,
                  n: int = 1, *, quiet: bool = False, callbacks=(),
                  first: int = 0) -> tuple[list[Forecaster], list[History], list[bool]]:
    """Train ``n`` forecasters of one design on ``prep``, member k from seed ``seed + first + k``;
    ``prep`` may also be one per member (an ensemble over several lookbacks), ``n`` is then their number.

    Members are built one after another (their initial weights depend only on their seed) and
    trained side by side on every core (:func:`~rnnkit.training.members.train_side_by_side`: the
    native trainer runs outside Python's lock; a model with dropout trains them one at a time). A
    member whose validation loss is not below the naive forecast's is set to forecast it exactly (a zero correction): the naive fallback; so is
    every member on a series too short to hold out validation rows (:attr:`Prepared.too_short`),
    where nothing could show that the network does better.

    A quantile head (:mod:`.quantiles`) starts as the naive forecast with Gaussian intervals of the
    training targets' spread; its gate compares the *centre* (the point forecast) with the naive
    forecast by the pinball loss at the centre's level, and its fallback zeroes the centre only, so
    the trained spread stays around the naive forecast (why: :func:`~.quantiles.zero_centre`).
    Returns the members, their histories and which of them fell back. (The workflow then refits
    the members that did not fall back on the training and validation rows, :mod:`.refit`.)
    """
    preps = list(prep) if isinstance(prep, (list, tuple)) else [prep] * n  # one Prepared (or a panel's) for all
    n = len(preps)
    models = [new_member(p, model_config, train_config.seed + k) for k, p in enumerate(preps, first)]
    configs = [train_config.replace(seed=train_config.seed + k) for k in range(first, first + n)]

    def one(k: int, halt) -> History:
        m, c, p = models[k], configs[k], preps[k]
        return fit(m, forecast_loss(m, c), p.train, p.val, c, quiet=quiet or n > 1,
                   callbacks=[*(relative_callbacks(callbacks, m, p, c) if k == 0 else ()), halt],
                   fused=forecast_fused_task(m, c, p.train, p.val), groups=getattr(p, "groups", None))
    histories = train_side_by_side(one, n, parallel=threads_are_deterministic(model_config))
    fallback = []
    for model, p in zip(models, preps):
        # on a series too short to validate, nothing shows that a network beats the naive forecast
        has_naive = p.norm.has_naive or model.count_naive[0] != "none"  # (.negbin)
        naive = has_naive and (p.too_short or (p.val is not None and not _beats_naive(model, p.val, train_config.loss)))
        if naive:  # on the validation windows the naive forecast did better: forecast it, exactly
            fall_back(model)
        fallback.append(naive)
    return models, histories, fallback


@torch.no_grad()
def fall_back(model: Forecaster) -> None:
    """The naive fallback: ``model`` (with per-window normalisation or differencing) forecasts its
    naive forecast exactly, its head's correction zeroed; a quantile or distribution head zeroes its
    centre or mean only, so that its trained spread stays around the naive forecast."""
    if model.levels:
        zero_mean(model) if model.distribution != "none" else zero_centre(model)
    else:
        model.head.weight.zero_()
        model.head.bias.zero_()


def new_member(prep: Prepared, model_config: ModelConfig, seed: int) -> Forecaster:
    """The untrained forecaster of seed ``seed`` for ``prep``: its initial weights depend on the seed
    alone (a refit starts again from them). With per-window normalisation the head starts at zero,
    so the untrained model forecasts the naive forecast (or the window's level) exactly; a quantile
    head starts there with Gaussian intervals of the training targets' spread."""
    with seeded(seed):  # other threads may be building theirs (calibration refits)
        model = Forecaster(prep.n_inputs, len(prep.data_config.targets), prep.data_config.horizon, model_config,
                           n_known=prep.known_width, seed=seed).to(prep.dtype)
    set_count_naive(model, prep.data_config.skip, prep.data_config.seasonal_period)
    if model.distribution == "negbin":  # its start reads at most 4096 windows (a panel gathers only those)
        x, targets = start_windows(prep.train)
        init_negbin_head(model, x, targets[:, :1] if model.recursive else targets)
    elif model.distribution != "none":  # a recursive head predicts the next value: the first step's targets
        targets = column(prep.train, 1)  # a panel's lazily held windows are gathered for it
        targets = targets[:, :1] if model.recursive else targets
        init_distribution_head(model, targets, mean_zero=prep.norm.active)
    elif model.levels:
        init_quantile_head(model, column(prep.train, 1), centre_zero=prep.norm.active)
    elif prep.norm.active:
        nn.init.zeros_(model.head.weight)
        nn.init.zeros_(model.head.bias)
    return model


def resolve_norm(dc: DataConfig, model: ModelConfig, train: TrainConfig, lookback: int, m: int) -> tuple[str, str]:
    """The normalisation and skip ``dc`` asks for, with ``"auto"`` resolved (see :class:`DataConfig`);
    refuses combinations that cannot work."""
    recursive = model.strategy == "recursive"
    normalise = dc.normalise if dc.normalise != "auto" else ("none" if train.stateful else "window")
    skip = dc.skip
    if skip == "auto" and (recursive or train.stateful):
        skip = "none"  # else "auto" stays, for prepare() to choose on the training windows
    if train.stateful and (normalise != "none" or skip != "none"):
        raise ConfigError("stateful training runs over whole streams, which have no windows to normalise; "
                          "use --normalise none --skip none (the defaults for stateful training)")
    if recursive and skip not in ("none", "auto"):
        raise ConfigError(f"skip={skip!r} is for direct models (the head corrects a naive forecast of the whole "
                          "horizon); a recursive model predicts each value itself: use --skip none")
    if skip == "seasonal" and not 1 < m <= lookback:
        raise ConfigError(f"skip='seasonal' repeats the last season, which needs a seasonal period m > 1 and a "
                          f"lookback of at least m (m={m}, lookback {lookback}); use --skip last")
    if dc.difference != "none":
        if model.quantiles:
            raise ConfigError(f"difference={dc.difference!r} sums the forecast differences back into values, and the "
                              "quantile of a sum is not the sum of the quantiles: use --difference none with "
                              "--quantiles (the naive skip then gives the same start)")
        if recursive or train.stateful:
            raise ConfigError(f"difference={dc.difference!r} is for direct models (the network reads a window's "
                              "differences and forecasts the horizon's); use --difference none")
        if skip not in ("none", "auto"):
            raise ConfigError(f"difference={dc.difference!r} forecasts differences, which already are corrections "
                              f"to the naive forecast: use --skip none (or auto), not {skip!r}")
        skip = "none"
        d = difference_lag(dc.difference, m)
        if dc.difference == "seasonal" and m < 2:
            raise ConfigError("difference='seasonal' needs a seasonal period m > 1; pass --seasonal-period or use "
                              "--difference first")
        if lookback <= d:
            raise ConfigError(f"difference={dc.difference!r} (lag {d}) needs a lookback longer than its lag "
                              f"(lookback {lookback}); pass a longer --lookback")
    return normalise, skip


@torch.no_grad()
def _beats_naive(model: Forecaster, val, loss: str) -> bool:
    """Whether the trained model's validation loss is below the naive forecast's (the zero correction);
    for a quantile head, its centre's pinball loss at the centre's level (see :func:`train_members`)."""
    if model.distribution == "negbin":
        return negbin_beats_naive(model, val)
    if model.levels:
        x, y = val
        return centre_beats_naive(outputs(model, x), y, model.levels, model.centre)
    own, naive = val_losses(model, val, loss)
    return own < naive
