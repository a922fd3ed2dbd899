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
* **Windows, lazily**: each series' scaled rows (and known inputs) are kept once, with a few
  numbers per series that say where its windows lie; a window is cut, normalised and given its
  known inputs only when a chunk of batches that holds it trains (:mod:`.panel_windows`), so memory
  grows with the data, not with windows x lookback. The validation windows (one per series) are
  made at once, as tensors: the fused trainer scores them in one call each epoch.
* **One network** is trained on the training windows of all series (each window counts once:
  sampling proportional to length; or with ``sampling="balanced"`` each epoch draws as many
  windows with replacement, every series equally likely: :func:`rnnkit.training.loop.epoch_order`),
  early-stopped on the validation windows of all series, with the naive fallback decided on them
  (:func:`~.fitting.train_members`), as for one series.
* **Forecast any series**: without an id embedding the network has no series identity, so a
  series it never saw forecasts as well as one it trained on (cold start); a new series is scaled
  on the rows it is given (with the per-window normalisation, the forecast does not depend on that
  scaling except through the smallest window scale). With ``id_embedding`` (:mod:`.statics`) each
  training series has a learned vector, and a new one gets their mean (with a warning).

Default lookback: the single-series default (two seasons, or ``max(2 horizon, 8)``), shortened
to what the median series leaves after its validation and test rows (never below the horizon or
the season): panels such as M1's yearly series are short. A series shorter than the lookback cannot
be forecast and is refused, naming it; one shorter than lookback + horizon (after its held-out
rows) is forecast but contributes no training window (the run counts them).

Covariates: past covariates (``covariates``, known up to the window's end; direct models) are
value columns as for one series; future covariates and calendar features are known inputs
(:mod:`.known`), read over the horizon (direct) or at each step (recursive); static covariates
(:mod:`.statics`: numbers standardised, categories one-hot) join the known inputs as constant
columns. Conformal ``--intervals`` are calibrated across the series (:mod:`.panel_intervals`);
a quantile head (``--quantiles``) or a distribution head (``--distribution``) is one global head
trained on every series' windows with its own loss and decoded per series, level by level, so its
levels never cross (:mod:`.panel_quantiles`; the two kinds of interval are not combined). The
negative-binomial head (``--distribution negbin``, :mod:`.negbin`) reads counts as they are: every
series' scaler keeps offset 0 and scale 1 on the targets, the windows are not normalised, and the
head scales each window itself (``1 + its mean count``); targets that are not counts are refused,
naming the series.
Not yet for panels (refused with a message): target transforms, stateful training, ``--auto``,
``--ensemble-lookbacks``, ``--gate-origins``, ``--val-start``/``--test-start`` and ``backtest --refit``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...config import ModelConfig, TrainConfig
from ...data.panel import PanelData
from ...data.scaler import Scaler
from ...data.series import SeriesData
from ...errors import ConfigError, DataError
from .config import DataConfig, SearchConfig, refuse_unsupported
from .data import absolute_source, default_lookback, freq_season, seasonal_period
from .fitting import InputWidths, resolve_calendar, resolve_norm, series_known_rows
from .future import with_future_columns
from .known import calendar_width, known_windows
from .linear import fit_effect
from .model import head_loss
from .negbin import check_counts, count_settings, unscaled_targets
from .normalise import PER_SERIES, WindowNorm, difference_lag, pick_skip, skip_errors
from .panel_intervals import check_panel_intervals
from .panel_windows import PanelRows, PanelWindows
from .predict import windows_for
from .statics import StaticEncoder

__all__ = ["PanelPrepared", "prepare_panel", "panel_lookback", "series_seasons", "within_lookback", "series_split",
           "panel_contexts",
           "series_known_windows", "series_known_table", "panel_known_width", "static_values", "check_panel_counts"]


def panel_lookback(m: int, horizon: int, lengths: np.ndarray, held_out: int) -> int:
    """The default lookback of a panel whose series have ``lengths`` rows, ``held_out`` of them
    (validation and test) at the end of each: the single-series default, shortened to what the
    median series leaves for one training window, but at least the horizon and the season (on M1's
    yearly panel, horizon 6, a lookback of 3 forecast measurably worse than 4 to 6)."""
    median = int(np.median(lengths))
    room = median - held_out - horizon
    return max(min(default_lookback(m, horizon), room), m, horizon, 2)


def series_seasons(dc: DataConfig, panel: PanelData) -> np.ndarray | None:
    """Each series' own season ``(S,)``, its frequency's, for a panel whose series have different
    frequencies and no season given (``dc.seasonal_period`` None); None where the series share one
    season (the run's ``m``). :func:`within_lookback` then drops those a window cannot repeat."""
    if dc.seasonal_period is not None or panel.freq is not None:
        return None
    seasons = np.array([freq_season(s.freq) for s in panel.series], dtype=np.int64)
    return seasons if len(set(seasons.tolist())) > 1 else None


def within_lookback(seasons, lookback: int) -> np.ndarray:
    """``seasons`` with each one longer than ``lookback`` made 1 (a window cannot repeat it: no season)."""
    seasons = np.asarray(seasons, dtype=np.int64)
    return np.where(seasons <= lookback, seasons, 1)


def series_split(n: int, lookback: int, horizon: int, test: bool, val: bool) -> tuple[int, int]:
    """``(train_end, val_end)`` of a series of ``n`` rows: training rows ``[0, train_end)``,
    validation ``[train_end, val_end)``, test ``[val_end, n)``, each part one horizon; a part that
    would leave no training window is left out (test first)."""
    window = lookback + horizon
    t = horizon if test and n - horizon * (1 + val) >= window else 0  # with validation held out too
    v = horizon if val and n - t - horizon >= window else 0
    return n - t - v, n - t


@dataclass
class PanelPrepared(InputWidths):
    """A panel's training data, shaped as :func:`~.fitting.train_members` reads a
    :class:`~.fitting.Prepared`: the resolved config, the normalisation, the training windows of
    every series, indexed lazily (:class:`~.panel_windows.PanelWindows`: ``take(idx)`` builds the
    tensors of any of them, ``materialise()`` all), and the validation windows as tensors."""

    data_config: DataConfig
    train_config: TrainConfig
    norm: WindowNorm
    train: PanelWindows
    val: tuple[Tensor, Tensor] | None
    dtype: torch.dtype
    scalers: tuple[Scaler, ...]
    splits: tuple[tuple[int, int], ...]
    trained_series: int
    statics: StaticEncoder
    known_width: int = 0
    too_short: bool = False
    recursive: bool = False
    #: balanced sampling (``sampling="balanced"``): the training windows of each series, which lie
    #: together in :attr:`train` (:func:`rnnkit.training.loop.fit`'s ``groups``); None: each window once
    groups: tuple[int, ...] | None = None
    #: each series' season (:func:`series_seasons`: series of different frequencies), or None: one, ``m``
    seasons: np.ndarray | None = None


def _refuse_per_series_seasons(dc: DataConfig, mc: ModelConfig) -> None:
    """Refuse what one season per series cannot do (the series have different frequencies)."""
    why = ("the series have different frequencies, so each has its own season (seasonal naive repeats it); "
           "{what} takes one season for all: pass --seasonal-period M (1: none), or fit a panel per frequency")
    if dc.difference == "seasonal":
        raise ConfigError(why.format(what="--difference seasonal"))
    if mc.distribution == "negbin":
        raise ConfigError(why.format(what="a negbin head's own naive forecast"))


def _refuse_for_panels(dc: DataConfig, tc: TrainConfig, search: SearchConfig) -> None:
    why = "not yet for panels (one global model over many series); fit the series one by one to use it"
    for flag, bad in (("--transform boxcox", dc.transform == "boxcox"),
                      ("stateful training", tc.stateful), ("--auto", search.auto),
                      ("--ensemble-lookbacks", search.ensemble_lookbacks), ("--gate-origins", search.gate_origins),
                      ("--val-start/--test-start", dc.val_start is not None or dc.test_start is not None)):
        if bad:
            raise ConfigError(f"{flag}: {why}")
    check_panel_intervals(search)
    for name in ("val_frac", "test_frac"):
        if getattr(dc, name) not in (None, 0.0):
            raise ConfigError(f"{name}={getattr(dc, name)}: a panel holds out the last horizon of each series for "
                              f"validation and for test; pass 0 to hold out none, or leave it unset")


def panel_known_width(dc: DataConfig, freq: str | None, statics: StaticEncoder, recursive: bool) -> int:
    """Known inputs per step (future covariates, calendar, static features) plus a direct model's flag."""
    K = len(dc.future_covariates) + calendar_width(freq, dc.calendar) + statics.width
    return K + 1 if K and not recursive else K


def static_values(panel: PanelData, k: int) -> dict[str, str]:
    return {c: v[k] for c, v in panel.static.items()}


def series_known_table(s: SeriesData, dc: DataConfig, scaler: Scaler, static_row: np.ndarray, steps: int = 0,
                       future: np.ndarray | None = None) -> np.ndarray | None:
    """The known inputs of every row of one series and of the ``steps`` rows after it, ``(N + steps,
    K)``: its future covariates and calendar features (:func:`~.fitting.series_known_rows`; rows past
    its end from ``future``), then its static features, the same on every row. None without any."""
    rows = series_known_rows(s, dc, scaler, steps, future)
    if static_row.size:
        const = np.broadcast_to(static_row, (len(s) + steps, static_row.size))
        rows = const.copy() if rows is None else np.concatenate([rows, const], axis=1)
    return rows


def series_known_windows(s: SeriesData, dc: DataConfig, scaler: Scaler, static_row: np.ndarray, starts,
                         horizon: int, future: np.ndarray | None = None) -> np.ndarray | None:
    """The known inputs ``(W, lookback + horizon, K)`` of one series' windows whose targets start at
    ``starts`` (the rows of :func:`series_known_table`)."""
    starts = np.asarray(starts, dtype=np.int64)
    steps = max(0, int(starts.max()) + horizon - len(s)) if len(starts) else 0
    return known_windows(series_known_table(s, dc, scaler, static_row, steps, future), starts, dc.lookback, horizon)


def prepare_panel(data_config: DataConfig, model_config: ModelConfig, train_config: TrainConfig,
                  panel: PanelData, dtype: torch.dtype = torch.float32,
                  search: SearchConfig | None = None) -> PanelPrepared:
    """Split and scale every series of ``panel``, keep its rows once and index its windows (built
    a chunk at a time as they train: :mod:`.panel_windows`); the validation windows as tensors."""
    if model_config.distribution == "negbin":
        count_settings(data_config)  # first: its refusals (--transform, --difference...) say why for counts
    _refuse_for_panels(data_config, train_config, search or SearchConfig())
    refuse_unsupported(model_config, train_config, lookback=data_config.lookback)
    if train_config.loss is None:  # the job's own loss, recorded in the run (a head's pinball or nll loss)
        train_config = train_config.replace(loss=head_loss(model_config) or "mse")
    series = [with_future_columns(s, data_config.future_covariates) for s in panel.series]
    if data_config.transform == "log":  # each series' targets on the log scale, before its scaler (.panel_transform)
        series = [log_targets(s, len(panel.targets)) for s in series]
    past = tuple(c for c in series[0].covariates if c not in data_config.future_covariates)
    linear = bool(data_config.future_covariates) and data_config.linear_covariates != "none" \
        and model_config.distribution != "negbin"  # counts take none (as one series' runs)
    transform = "log" if data_config.transform == "log" else "none"  # auto: none for panels (not measured)
    dc = data_config.replace(targets=tuple(panel.targets), covariates=past, transform=transform,
                             linear_covariates="auto" if linear else "none",
                             source=absolute_source(panel.source))  # the run finds it from any working directory
    C, H = len(dc.targets), dc.horizon
    counts = model_config.distribution == "negbin"  # counts in, counts out (.negbin): targets unscaled
    if counts:
        dc = count_settings(dc)
        check_panel_counts([s.source for s in series], [s.target_values for s in series], dc.targets)
    recursive = model_config.strategy == "recursive"
    seasons = series_seasons(dc, panel)  # series of several frequencies, no season given: each its own
    # (series whose frequencies differ but imply one season, as monthly from the start and the end: that one)
    freq = panel.freq or next((s.freq for s in panel.series if s.freq), None)
    m = int(seasons.max()) if seasons is not None else seasonal_period(dc, freq)
    if seasons is not None:
        _refuse_per_series_seasons(dc, model_config)
    want_test, want_val = dc.test_frac is None, dc.val_frac is None
    lengths = panel.lengths()
    L = dc.lookback or panel_lookback(m, H, lengths, H * (want_test + want_val))
    short = np.flatnonzero(lengths < L)
    if len(short):
        names = ", ".join(repr(panel.ids[i]) for i in short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
        raise DataError(f"{panel.source}: series {names} {'has' if len(short) == 1 else 'have'} fewer rows than the "
                        f"lookback {L} (shortest: {int(lengths[short].min())}); pass a shorter --lookback or drop them")
    if seasons is not None:
        seasons = within_lookback(seasons, L)
        m = int(seasons.max())
    normalise, skip = resolve_norm(dc, model_config, train_config, L, m)
    calendar = resolve_calendar(dc, series[0])
    # a season per series leaves the run's seasonal_period None: each series' comes from its frequency
    dc = dc.replace(lookback=L, seasonal_period=None if seasons is not None else m, normalise=normalise,
                    calendar=calendar)
    splits = tuple(series_split(int(n), L, H, want_test, want_val) for n in lengths)
    trained_ids = [k for k, (e, _) in enumerate(splits) if e >= L + H]
    if not trained_ids:
        raise DataError(f"{panel.source}: no series has {L + H} rows (lookback {L} + horizon {H}) before its held-out "
                        "rows, so there is no training window; pass a shorter --lookback or --horizon")
    statics = StaticEncoder.fit({c: tuple(v[k] for k in trained_ids) for c, v in panel.static.items()},
                                dc.static_covariates, tuple(panel.ids[k] for k in trained_ids) if dc.id_embedding else ())
    K = panel_known_width(dc, panel.freq, statics, recursive)
    scalers = tuple(Scaler(dc.scaler).fit(s.values[:max(e, 1)]) for s, (e, _) in zip(series, splits))
    if counts:  # each window's own scale v = 1 + its mean count puts the series' levels on one footing
        scalers = tuple(unscaled_targets(sc, C) for sc in scalers)
    n_values = C + len(past)
    static_rows = [statics.features(static_values(panel, k), s.source, panel.ids[k]) for k, s in enumerate(series)]
    # every series' scaled rows and known inputs, once: what the windows are cut from (scaled[k] is a view)
    rows = PanelRows.stack([scaler.transform(s.values) for s, scaler in zip(series, scalers)],
                           [series_known_table(s, dc, scaler, r) for s, scaler, r in zip(series, scalers, static_rows)]
                           if K else None)
    scaled = [rows.values[a:b] for a, b in zip(rows.offsets[:-1], rows.offsets[1:])]
    effect = panel_effect(rows, scaled, [e for e, _ in splits], trained_ids, C, n_values,
                          len(dc.future_covariates)) if linear else ()
    if skip == "auto":  # the naive forecast of least error on every series' training windows
        candidates = ("last", "drift") + (("seasonal",) if 1 < m <= L else ())
        totals = dict.fromkeys(candidates, 0.0)
        for k, (z, (train_end, _)) in enumerate(zip(scaled, splits)):  # one series' float64 windows at a time
            if train_end < L + H:
                continue
            X, Y, _ = windows_for(z, C, L, H, dc.stride, 0, train_end)
            for name, e in skip_errors(candidates, m if seasons is None else int(seasons[k]), X, Y).items():
                totals[name] += e
        skip = pick_skip(candidates, totals)
    dc = dc.replace(skip=skip)
    train_rows = np.concatenate([scaled[k][:splits[k][0], :C] for k in trained_ids])
    # a negbin head corrects its naive forecast itself, in counts (set_count_naive): the windows stay as they are
    norm = WindowNorm.fit(normalise, "none" if counts else skip, m if seasons is None else PER_SERIES, train_rows,
                          difference_lag(dc.difference, m))
    norm = dataclasses.replace(norm, effect=effect, effect_col=n_values) if effect else norm
    del train_rows

    def part(bounds, stride: int) -> PanelWindows:
        return PanelWindows(rows, bounds, stride, L, H, C, n_values, recursive, norm, dtype, seasons=seasons)
    train = part([(0, e) for e, _ in splits], dc.stride)
    held = part(splits, 1)  # one window a series (its targets are the validation rows): small, made now
    val = held.materialise() if len(held) else None
    groups = train.sizes if dc.sampling == "balanced" else None
    return PanelPrepared(dc, train_config, norm, train, val, dtype, scalers, splits,
                         len(trained_ids), statics, K, too_short=val is None and want_val, recursive=recursive,
                         groups=groups, seasons=seasons)


def panel_effect(rows: PanelRows, scaled: list[np.ndarray], train_ends: list[int], trained: list[int], C: int,
                 first: int, k: int) -> tuple[tuple[float, ...], ...]:
    """The future covariates' linear effect on the targets (:mod:`.linear`), one set of slopes for
    all series with an intercept per series (the fixed-effects estimator, on the training rows of the
    series that train, in each series' scaled units), or empty where the F test keeps none; where it
    is kept, ``rows``' targets become the targets less it (in place: every series' rows)."""
    y = np.concatenate([scaled[i][:train_ends[i], :C] for i in trained])
    x = np.concatenate([scaled[i][:train_ends[i], first:first + k] for i in trained])
    groups = np.repeat(np.arange(len(trained)), [train_ends[i] for i in trained])
    beta = fit_effect(y, x, groups=groups)
    if beta is None:
        return ()
    rows.values[:, :C] -= rows.values[:, first:first + k] @ beta
    return tuple(tuple(float(v) for v in r) for r in beta)


def check_panel_counts(sources, values, targets) -> None:
    """Refuse (DataError, naming the series) target values that are not counts, for a negbin head:
    ``values[k] (rows, >= C)`` of the series whose label is ``sources[k]`` (the targets first)."""
    for source, v in zip(sources, values):
        try:
            check_counts(np.asarray(v)[..., :len(targets)], targets)
        except DataError as e:
            raise DataError(f"{source}: {e}") from None


def log_targets(s: SeriesData, n_targets: int) -> SeriesData:
    """``s`` with its targets' logarithms in place of its targets (``--transform log``: a panel's
    series are scaled, windowed and forecast on the log scale, and the forecasts come back through
    ``exp``); a target that is not positive is refused, naming the series."""
    y = s.frame.iloc[:, :n_targets].to_numpy(dtype=np.float64)
    if not (y > 0).all():
        raise DataError(f"{s.source}: --transform log needs positive targets, but the series has values down to "
                        f"{y.min():g}; use --transform none")
    frame = s.frame.copy()
    frame.iloc[:, :n_targets] = np.log(y)
    return dataclasses.replace(s, frame=frame)


def panel_contexts(panel: PanelData, ends, lookback: int) -> np.ndarray:
    """The raw ``lookback`` rows (every column) before row ``ends[i]`` of each series: ``(S, L, F)``."""
    out = []
    for s, e in zip(panel.series, ends):
        if e < lookback:
            raise DataError(f"{s.source}: forecasting needs the {lookback} rows before the origin (the lookback); "
                            f"the series has {e}")
        out.append(s.values[e - lookback:e])
    return np.stack(out)
