"""Global forecasting: one network trained on the windows of many series (a panel).

A panel (:class:`~rnnkit.data.panel.PanelData`, long format with an id column) goes the way one
series goes, per series, and meets in one training set:

* **Split by time, per series**: the last ``horizon`` rows of each series are its test part
  (unless ``test_frac=0``), the ``horizon`` rows before them its validation part; a series too short
  to leave a training window after both gives up its test part first, then its validation part.
  Windows never cross two series.
* **Scaling, per series**: each series' scaler is fitted on its own training rows; the per-window
  normalisation and the naive skip (:mod:`.normalise`) then make every window level- and
  scale-free, so one network reads a series of thousands and one of tens alike.
* **One network** is trained on the training windows of all series (each window counts once:
  sampling proportional to length), early-stopped on the validation windows of all series, with
  the naive fallback decided on them (:func:`~.fitting.train_members`), as for one series.
* **Forecast any series**: the network has no series identity, so a series it never saw forecasts
  as well as one it trained on (cold start); a new series is scaled on the rows it is given (with
  the per-window normalisation, the forecast does not depend on that scaling except through the
  smallest window scale).

Default lookback: the single-series default (two seasons, or ``max(2 horizon, 8)``), shortened
to what the median series leaves after its validation and test rows (never below the horizon or
the season): panels such as M1's yearly series are short. A series shorter than the lookback cannot
be forecast and is refused, naming it; one shorter than lookback + horizon (after its held-out
rows) is forecast but contributes no training window (the run counts them).

Not yet for panels (refused with a message): covariates, future covariates, calendar features,
target transforms, stateful training and ``--auto`` (see issue 16's notes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ...config import ModelConfig, TrainConfig
from ...data.panel import PanelData
from ...data.scaler import Scaler
from ...errors import ConfigError, DataError
from ...training.loop import History
from .config import DataConfig, SearchConfig, refuse_unsupported
from .data import default_lookback, seasonal_period
from .fitting import ForecastEnsemble, resolve_norm, train_members
from .model import Forecaster
from .normalise import WindowNorm, choose_skip, difference_lag
from .predict import windows_for

__all__ = ["PanelPrepared", "prepare_panel", "panel_lookback", "series_split", "panel_contexts", "forecast_scaled"]


def panel_lookback(m: int, horizon: int, lengths: np.ndarray, held_out: int) -> int:
    """The default lookback of a panel whose series have ``lengths`` rows, ``held_out`` of them
    (validation and test) at the end of each: the single-series default, shortened to what the
    median series leaves for one training window, but at least the horizon and the season (on M1's
    yearly panel, horizon 6, a lookback of 3 forecast measurably worse than 4 to 6)."""
    median = int(np.median(lengths))
    room = median - held_out - horizon
    return max(min(default_lookback(m, horizon), room), m, horizon, 2)


def series_split(n: int, lookback: int, horizon: int, test: bool, val: bool) -> tuple[int, int]:
    """``(train_end, val_end)`` of a series of ``n`` rows: training rows ``[0, train_end)``,
    validation ``[train_end, val_end)``, test ``[val_end, n)``, each part one horizon; a part that
    would leave no training window is left out (test first)."""
    window = lookback + horizon
    t = horizon if test and n - 2 * horizon >= window else 0
    v = horizon if val and n - t - horizon >= window else 0
    return n - t - v, n - t


@dataclass
class PanelPrepared:
    """A panel's training data, shaped as :func:`~.fitting.train_members` reads a
    :class:`~.fitting.Prepared`: the resolved config, the normalisation and the pooled tensors."""

    data_config: DataConfig
    train_config: TrainConfig
    norm: WindowNorm
    train: tuple[Tensor, Tensor]
    val: tuple[Tensor, Tensor] | None
    dtype: torch.dtype
    scalers: tuple[Scaler, ...]
    splits: tuple[tuple[int, int], ...]
    trained_series: int
    too_short: bool = False
    recursive: bool = False
    known_width: int = 0

    @property
    def n_inputs(self) -> int:
        return len(self.data_config.targets)


def _refuse_for_panels(dc: DataConfig, tc: TrainConfig, search: SearchConfig) -> None:
    why = "not yet for panels (one global model over many series); fit the series one by one to use it"
    for flag, bad in (("--covariates", dc.covariates), ("--future-covariates", dc.future_covariates),
                      ("--calendar", dc.calendar != "none"), ("--transform", dc.transform not in ("auto", "none")),
                      ("stateful training", tc.stateful), ("--auto", search.auto),
                      ("--ensemble-lookbacks", search.ensemble_lookbacks),
                      ("--val-start/--test-start", dc.val_start is not None or dc.test_start is not None)):
        if bad:
            raise ConfigError(f"{flag}: {why}")
    for name in ("val_frac", "test_frac"):
        if getattr(dc, name) not in (None, 0.0):
            raise ConfigError(f"{name}={getattr(dc, name)}: a panel holds out the last horizon of each series for "
                              f"validation and for test; pass 0 to hold out none, or leave it unset")


def prepare_panel(data_config: DataConfig, model_config: ModelConfig, train_config: TrainConfig,
                  panel: PanelData, dtype: torch.dtype = torch.float32,
                  search: SearchConfig | None = None) -> PanelPrepared:
    """Split, scale, window and normalise every series of ``panel`` and pool the windows."""
    _refuse_for_panels(data_config, train_config, search or SearchConfig())
    refuse_unsupported(model_config, train_config, lookback=data_config.lookback)
    if train_config.loss is None:
        train_config = train_config.replace(loss="mse")
    dc = data_config.replace(targets=tuple(panel.targets), covariates=(), transform="none", source=panel.source)
    C, H = len(dc.targets), dc.horizon
    m = seasonal_period(dc, panel.freq)
    want_test, want_val = dc.test_frac is None, dc.val_frac is None
    held = H * (want_test + want_val)
    lengths = panel.lengths()
    L = dc.lookback or panel_lookback(m, H, lengths, held)
    short = np.flatnonzero(lengths < L)
    if len(short):
        names = ", ".join(repr(panel.ids[i]) for i in short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
        raise DataError(f"{panel.source}: series {names} {'has' if len(short) == 1 else 'have'} fewer rows than the "
                        f"lookback {L} (shortest: {int(lengths[short].min())}); pass a shorter --lookback or drop them")
    normalise, skip = resolve_norm(dc, model_config, train_config, L, m)
    splits = tuple(series_split(int(n), L, H, want_test, want_val) for n in lengths)
    scalers, scaled = [], []
    for s, (train_end, _) in zip(panel.series, splits):
        v = s.values
        fit_rows = v[:max(train_end, 1)]
        scaler = Scaler(dc.scaler).fit(fit_rows)
        scalers.append(scaler)
        scaled.append(scaler.transform(v))
    parts = {"train": ([], []), "val": ([], [])}
    trained = 0
    for z, (train_end, val_end) in zip(scaled, splits):
        if train_end >= L + H:
            X, Y, _ = windows_for(z, C, L, H, dc.stride, 0, train_end)
            parts["train"][0].append(X)
            parts["train"][1].append(Y)
            trained += 1
        if val_end > train_end:
            X, Y, _ = windows_for(z, C, L, H, 1, train_end, val_end)
            parts["val"][0].append(X)
            parts["val"][1].append(Y)
    if not trained:
        raise DataError(f"{panel.source}: no series has {L + H} rows (lookback {L} + horizon {H}) before its held-out "
                        "rows, so there is no training window; pass a shorter --lookback or --horizon")
    X_train, Y_train = (np.concatenate(a) for a in parts["train"])
    if skip == "auto":
        candidates = ("last", "drift") + (("seasonal",) if 1 < m <= L else ())
        skip = choose_skip(candidates, m, X_train, Y_train)
    dc = dc.replace(lookback=L, seasonal_period=m, normalise=normalise, skip=skip)
    train_rows = np.concatenate([z[:e, :C] for z, (e, _) in zip(scaled, splits) if e > 0])
    norm = WindowNorm.fit(normalise, skip, m, train_rows, difference_lag(dc.difference, m))
    as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731

    def pairs(X, Y):
        X, Y = norm.encode(X, Y) if norm.active else (X, Y)
        return as_t(X), as_t(Y)
    val = pairs(*(np.concatenate(a) for a in parts["val"])) if parts["val"][0] else None
    return PanelPrepared(dc, train_config, norm, pairs(X_train, Y_train), val, dtype, tuple(scalers), splits,
                         trained, too_short=val is None and want_val,
                         recursive=model_config.strategy == "recursive")


def panel_contexts(panel: PanelData, ends, lookback: int) -> np.ndarray:
    """The raw ``lookback`` rows before row ``ends[i]`` of each series: ``(S, L, C)``."""
    out = []
    for s, e in zip(panel.series, ends):
        if e < lookback:
            raise DataError(f"{s.source}: forecasting needs the {lookback} rows before the origin (the lookback); "
                            f"the series has {e}")
        out.append(s.target_values[e - lookback:e])
    return np.stack(out)


@torch.no_grad()
def forecast_scaled(model, norm: WindowNorm, contexts: np.ndarray, horizon: int) -> np.ndarray:
    """Forecasts ``(S, horizon, C)`` in scaled units after scaled contexts ``(S, L, C)``, in one batch."""
    model.eval()
    dtype = next(model.parameters()).dtype
    as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    if not norm.active:
        return model.predict(as_t(contexts), horizon).double().numpy()
    if model.recursive:
        return norm.decode(contexts, model.predict(as_t(norm.inputs(contexts)), horizon).double().numpy())
    pieces, window, L, got = [], contexts, contexts.shape[1], 0
    while got < horizon:  # past the trained horizon: feed the forecasts back, a block at a time
        y = norm.decode(window, model(as_t(norm.inputs(window))).double().numpy())
        pieces.append(y)
        got += y.shape[1]
        window = np.concatenate([window, y], 1)[:, -L:]
    return np.concatenate(pieces, 1)[:, :horizon]

