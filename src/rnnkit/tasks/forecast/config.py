"""Forecasting's settings: how a table becomes training windows (:class:`DataConfig`), the job's
starting point, and the shared settings forecasting does not use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...config import (ModelConfig, Serialisable, TrainConfig, check_choice, check_ensemble, check_positive,
                       check_real, refuse_setting)
from ...data.boxcox import TRANSFORMS
from ...errors import ConfigError
from .known import CALENDAR
from .linear import LINEAR
from .levels import REFIT, check_interval_levels, conformal_rank, level_name, min_windows
from .normalise import DIFFERENCES, NORMALISE, SKIPS

__all__ = ["DataConfig", "SearchConfig", "FORECAST_DEFAULTS", "REFITS", "refuse_unsupported", "refuse_distributed", "MAX_CALIBRATION_WINDOWS"]

#: the most calibration windows (each one a refit of the pipeline) --intervals may ask for
MAX_CALIBRATION_WINDOWS = 1000

#: DataConfig.sampling's choices (see :mod:`rnnkit.tasks.forecast.panel`)
SAMPLINGS = ("proportional", "balanced")
#: DataConfig.refit's choices (see :mod:`rnnkit.tasks.forecast.refit`)
REFITS = ("auto", "none")
#: how each member is combined with its own naive forecast (SearchConfig.combine)
COMBINE = ("inverse-mse", "none")


@dataclass(frozen=True)
class DataConfig(Serialisable):
    """How a table becomes training windows.

    ``source`` is a file path or ``builtin:NAME``. The split is chronological: test rows last,
    validation rows before them, training rows first. By default (``val_frac``/``test_frac``
    None) the parts are sized in horizons: validation is ``max(horizon, 10% of the rows)`` and
    test ``max(horizon, 20% of the rows)``, each shrunk to one horizon when the series is too
    short to leave enough training windows, and left out when even that does not fit (a very short
    series then trains without early stopping on validation, and without the naive fallback). A fraction given explicitly is used as it is. When
    ``val_start``/``test_start`` are given (dates such as ``"1990-01"``, or row numbers for series
    without a time column), the parts start there instead and the fractions are ignored (a part
    without a start is then empty). The scaler is fitted on the training rows only.
    ``seasonal_period`` (m) is used by the seasonal-naive skip and baseline and by MASE; ``None``
    takes the built-in series' period, else the one the time column's frequency implies (12 for
    monthly data, 4 quarterly, 7 daily, 24 hourly), else 1.

    ``lookback`` None takes two seasons (``2 m``; ``max(2 horizon, 8)`` without a season),
    shortened when the training rows are too few. ``normalise="window"`` shifts and scales each
    input window by its own mean and standard deviation (``"auto"``: except for stateful
    training, whose streams have no windows); ``skip`` makes the head predict the correction to a
    naive forecast (``"auto"``: the seasonal one when ``lookback >= m > 1``, else the last value;
    none for recursive models); ``transform`` is a log or Box-Cox transform of the targets
    (``"auto"``: log when all training values are positive and their spread grows with their
    level, by Guerrero's method; not with a drift skip, whose log-scale drift would compound into
    exponential growth). See :mod:`rnnkit.tasks.forecast.normalise`. A run stores the
    choices ``"auto"`` made, so it reloads as trained.

    ``covariates`` are past inputs (known up to each window's end only; direct models).
    ``future_covariates`` are columns whose values are known in advance, and ``calendar`` features
    of the time stamps are too: both are *known inputs*, which a direct model reads over the
    horizon and a recursive one at each step (the next row's), see
    :mod:`rnnkit.tasks.forecast.known`. Forecasting past the data's end then needs the future
    covariates' values of the rows ahead (:mod:`rnnkit.tasks.forecast.future`).

    ``refit="auto"``: once early stopping has chosen the epoch count on the validation rows, each
    member is trained again from the same initial weights, with the same seed, transform, scaler
    and normalisation (all fitted on the training rows), on the windows whose targets end by the
    last validation row, for that many epochs; so the forecaster has seen the rows just before the
    forecast origin. Not where nothing chose an epoch count (no validation rows, stateful
    training) nor for a member that fell back to the naive forecast (that decision, made on the
    validation rows, stands), nor for a panel's global model (measured worse on M1: docs/panels.md),
    nor for a quantile or distribution head (its intervals then under-cover: :mod:`.refit`).
    ``"none"`` keeps the first training. See :mod:`rnnkit.tasks.forecast.refit`.
    """

    source: str = "builtin:sine"
    targets: tuple[str, ...] = field(default=(), metadata={
        "help": "column to forecast; repeat for several", "flag": "target", "metavar": "COL",
        "off": "the only numeric column"})
    id_col: Optional[str] = field(default=None, metadata={
        "help": "column of series ids: the table is a panel in long format (one row per id and time), and one "
                "global model is trained on the windows of every series", "metavar": "COL",
        "off": "one series (or several targets of one table)"})
    time_col: Optional[str] = field(default=None, metadata={
        "help": "column of timestamps (parsed as dates, checked for order, duplicates and gaps)", "metavar": "COL",
        "off": "none, rows in file order"})
    covariates: tuple[str, ...] = field(default=(), metadata={
        "help": "past covariate column used as an input (its future is unknown: direct models only); repeat or "
                "comma-separate", "metavar": "COL"})
    future_covariates: tuple[str, ...] = field(default=(), metadata={
        "help": "column whose values are known in advance (a price, a promotion, a holiday), read over the "
                "horizon (direct) or at each step (recursive); forecasting past the data then needs them "
                "(forecast --future FILE); repeat or comma-separate", "metavar": "COL"})
    linear_covariates: str = field(default="auto", metadata={
        "help": "one series with --future-covariates: fit the targets' linear effect of each row's future "
                "covariates on the training rows (kept where an F test finds one at p < 0.01) and let the network "
                "forecast the rest (a regression with recurrent errors); none: the network alone",
        "choices": LINEAR})
    static_covariates: tuple[str, ...] = field(default=(), metadata={
        "help": "panels (--id-col): column holding one value per series (a number, or a category such as a region), "
                "read by the global model at every step; repeat or comma-separate", "metavar": "COL"})
    sampling: str = field(default="proportional", metadata={
        "help": "panels (--id-col): the windows each epoch trains on; proportional: every training window once "
                "(series weigh in proportion to their length); balanced: as many windows drawn with replacement, "
                "each series equally likely, whatever its length (seeded)", "choices": SAMPLINGS})
    id_embedding: bool = field(default=False, metadata={
        "help": "panels (--id-col): a learned vector per training series, read at every step (one-hot ids into "
                "the first layer, whose columns are the embedding); a series new to the run gets the mean "
                "embedding, with a warning"})
    fill: Optional[str] = field(default=None, metadata={
        "help": "fill missing values", "choices": ("ffill", "interpolate"), "off": "refuse them"})
    lookback: Optional[int] = field(default=None, metadata={
        "help": "input steps per window", "metavar": "L", "off": "two seasons, or max(2 horizon, 8)"})
    horizon: int = field(default=1, metadata={"help": "steps to forecast", "metavar": "H"})
    stride: int = field(default=1, metadata={"help": "step between training windows"})
    val_frac: Optional[float] = field(default=None, metadata={
        "help": "fraction of rows (after training, before test) for validation", "metavar": "F",
        "off": "max(horizon, 10%% of the rows)"})
    test_frac: Optional[float] = field(default=None, metadata={
        "help": "last fraction of rows held out for testing", "metavar": "F",
        "off": "max(horizon, 20%% of the rows)"})
    scaler: str = field(default="minmax", metadata={
        "help": "scaling fitted on training rows only", "choices": ("minmax", "standard", "none")})
    seasonal_period: Optional[int] = field(default=None, metadata={
        "help": "season length m for the seasonal skip, the seasonal-naive baseline and MASE", "metavar": "M",
        "off": "the built-in series' period, else the time column's frequency's, else 1"})
    val_start: Optional[str] = field(default=None, metadata={
        "help": "split by time instead: validation starts at this date (or row number without --time-col); "
                "overrides the fractions", "metavar": "WHEN"})
    test_start: Optional[str] = field(default=None, metadata={
        "help": "test rows start at this date (or row number); overrides the fractions", "metavar": "WHEN"})
    normalise: str = field(default="auto", metadata={
        "help": "per-window normalisation of the targets (auto: window, except for stateful training)",
        "choices": ("auto",) + NORMALISE})
    skip: str = field(default="auto", metadata={
        "help": "the head predicts the correction to this naive forecast (auto: seasonal when lookback >= m > 1, "
                "else last; none for recursive models and --distribution negbin)", "choices": ("auto",) + SKIPS})
    calendar: str = field(default="none", metadata={
        "help": "calendar features (month, weekday, hour... by frequency) of dated rows as known inputs: over the "
                "horizon for a direct model, at each step for a recursive one", "choices": CALENDAR})
    transform: str = field(default="auto", metadata={
        "help": "target transform, inverted on the forecasts (auto: log when positive values spread with "
                "their level)", "choices": TRANSFORMS})
    difference: str = field(default="none", metadata={
        "help": "direct models: the network reads each window's differences (first: y[t] - y[t-1]; seasonal: "
                "y[t] - y[t-m]) and forecasts the horizon's, summed back exactly", "choices": DIFFERENCES})
    refit: str = field(default="auto", metadata={
        "help": "after early stopping chose the epoch count on the validation rows, train each member again "
                "from the same initial weights on the training and validation rows for that many epochs (about "
                "one more training; auto: one series with validation rows, a member that did not fall back to "
                "the naive forecast; not a panel's global model nor a quantile or distribution head)", "choices": REFITS})

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "covariates", tuple(self.covariates))
        object.__setattr__(self, "future_covariates", tuple(self.future_covariates))
        object.__setattr__(self, "static_covariates", tuple(self.static_covariates))
        if self.static_covariates and self.id_col is None:
            raise ConfigError("static covariates hold one value per series of a panel; pass --id-col COL (the column "
                              "of series ids) with --static-covariates")
        check_choice("sampling", self.sampling, SAMPLINGS)
        for flag, on in (("--sampling balanced", self.sampling != "proportional"), ("--id-embedding", self.id_embedding)):
            if on and self.id_col is None:
                raise ConfigError(f"{flag} is for panels (several series in long format); pass --id-col COL (the "
                                  "column of series ids)")
        both = next((c for c in self.future_covariates if c in self.covariates), None)
        if both is not None:
            raise ConfigError(f"column {both!r} is both a covariate and a future covariate; list it once (as a "
                              "future covariate when its future values are known)")
        if self.lookback is not None:
            check_positive("lookback", self.lookback)
        check_positive("horizon", self.horizon)
        check_positive("stride", self.stride)
        for name in ("val_frac", "test_frac"):
            if getattr(self, name) is not None:
                check_real(name, getattr(self, name), 0.0, 1.0, hi_open=True, what="a fraction")
        if (self.val_frac or 0.0) + (self.test_frac or 0.0) >= 1.0:
            raise ConfigError("val_frac + test_frac must leave rows for training (sum below 1)")
        check_choice("normalise", self.normalise, ("auto",) + NORMALISE)
        check_choice("skip", self.skip, ("auto",) + SKIPS)
        check_choice("linear_covariates", self.linear_covariates, LINEAR)
        check_choice("transform", self.transform, TRANSFORMS)
        check_choice("difference", self.difference, DIFFERENCES)
        check_choice("calendar", self.calendar, CALENDAR)
        check_choice("refit", self.refit, REFITS)
        check_choice("scaler", self.scaler, ("minmax", "standard", "none"))
        check_choice("fill", self.fill, (None, "ffill", "interpolate"))
        if self.seasonal_period is not None:
            check_positive("seasonal_period", self.seasonal_period)


@dataclass(frozen=True)
class SearchConfig(Serialisable):
    """What speed buys: an ensemble of ``ensemble`` forecasters trained from consecutive seeds and
    combined by the median (with ``ensemble_lookbacks``, member k also reads the k-th of those
    lookbacks, cyclically, and is trained on windows of that length), and ``auto``, a search over
    lookback, width, learning rate and normalisation on the validation windows within
    ``time_budget`` seconds, whose best settings then train the ensemble. See
    :mod:`rnnkit.tasks.forecast.search`.

    ``intervals`` (levels in percent, e.g. ``(80, 95)``) asks for split-conformal prediction
    intervals, calibrated on the absolute errors of forecasts from ``calibration_windows`` rolling
    origins ``calibration_spacing`` steps apart at the end of the fitted rows, each made by the
    pipeline refitted on the rows before it (``calibration_refit="each"``, K more fits: speed buys
    them too) or by one refit before the first (``"first"``). See
    :mod:`rnnkit.tasks.forecast.conformal`. A panel takes as few calibration origins as bound its
    levels; ``calibration_windows`` is an opt-in floor there, the held-out windows (one per series and
    origin) its origins are taken until
    (:func:`rnnkit.tasks.forecast.panel_intervals.calibration_origins`); spacing and refit do not apply.

    ``combine`` ("inverse-mse") combines each trained member with its own naive forecast (the same
    model with its head's correction zeroed) by inverse-error weights measured on the validation
    windows (Bates and Granger, 1969): the head's correction is scaled by ``w = L_naive / (L_naive +
    L_model)`` (the training loss, MSE by default), so a member twice as good as the naive forecast
    keeps 2/3 of its correction and one a hundred times as good 99 %; see
    :func:`rnnkit.tasks.forecast.fitting.naive_weight`.

    ``gate_origins`` (K) adds the rolling naive gate (:mod:`rnnkit.tasks.forecast.gate`): the
    pipeline refitted before K origins at the end of the fitted rows must beat the naive forecast
    there, or the run forecasts the naive forecast."""

    ensemble: int = field(default=1, metadata={
        "help": "forecasters trained from consecutive seeds, combined by the median", "metavar": "N"})
    auto: bool = field(default=False, metadata={
        "help": "search lookback, width, learning rate and normalisation on the validation windows "
                "(within --time-budget), then train the ensemble with the best"})
    time_budget: float = field(default=60.0, metadata={
        "help": "--auto: seconds the search may take, the final ensemble included", "metavar": "S"})
    ensemble_lookbacks: tuple[int, ...] = field(default=(), metadata={
        "help": "comma-separated lookbacks the ensemble's members cycle over (with the seeds), each member "
                "trained on its own windows; the run's lookback is the longest", "metavar": "L1,L2,...",
        "off": "every member uses --lookback"})
    intervals: tuple[float, ...] = field(default=(), metadata={
        "help": "split-conformal prediction intervals at these levels in percent (e.g. 80,95): forecast.csv "
                "gains <target>_lo_<a> and <target>_hi_<a> columns, the metrics their coverage and width; calibrated "
                "on the errors of forecasts from rolling origins at the end of the fitted rows, by the pipeline "
                "refitted on the rows before each", "metavar": "A1,A2,...", "off": "none"})
    calibration_windows: Optional[int] = field(default=None, metadata={
        "help": "--intervals: rolling origins whose forecast errors calibrate the intervals; for a panel, a floor: "
                "the held-out windows (one per series and origin, origins one horizon apart, one global fit each, "
                "at most 20) to reach before stopping, or all its series hold if fewer", "metavar": "K",
        "off": "the fewest that bound every level: 4 for 80, 19 for 95; a panel: the fewest origins that hold "
               "them"})
    calibration_spacing: Optional[int] = field(default=None, metadata={
        "help": "--intervals: steps between consecutive calibration origins", "metavar": "S",
        "off": "the horizon, or less so that the origins lie in the second half of the fitted rows (at least 1)"})
    calibration_refit: str = field(default="each", metadata={
        "help": "--intervals: refit the pipeline before each calibration origin (K fits), or once before the "
                "first, whose model forecasts from all K (one fit)", "choices": ("each", "first")})

    combine: str = field(default="inverse-mse", metadata={
        "help": "combine each member's forecast with its naive forecast, weighted by their inverse validation "
                "errors (the network's weight is naive error / (naive + network error), so a network far better "
                "than the naive forecast keeps nearly all of it); none = the network alone. Point forecasts of a "
                "single series with a naive skip or differencing; not quantile or distribution heads",
        "choices": COMBINE})
    gate_origins: int = field(default=0, metadata={
        "help": "the rolling naive gate: refit the pipeline before each of K origins one horizon apart at the end "
                "of the fitted rows and forecast the naive forecast when it does not beat it there (K more fits); "
                "0 = each member's validation windows decide alone", "metavar": "K"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "ensemble_lookbacks", tuple(self.ensemble_lookbacks))
        check_ensemble(self.ensemble)
        check_positive("gate_origins", self.gate_origins, zero_ok=True)
        check_choice("combine", self.combine, COMBINE)
        check_real("time_budget", self.time_budget, 0.0, 1e7, lo_open=True, what="seconds")
        looks = self.ensemble_lookbacks
        for v in looks:
            check_positive("each of ensemble_lookbacks", v)
        if len(set(looks)) != len(looks):
            raise ConfigError(f"ensemble_lookbacks {','.join(map(str, looks))} names a lookback twice; give each once")
        if looks and self.auto:
            raise ConfigError("--auto chooses the lookback itself; use --ensemble-lookbacks without --auto")
        self._check_intervals()
        if len(looks) > self.ensemble:
            raise ConfigError(f"an ensemble of {self.ensemble} member(s) cannot cover {len(looks)} lookbacks; pass "
                              f"--ensemble {len(looks)} or more (the members cycle over the lookbacks)")

    def _check_intervals(self) -> None:
        check_choice("calibration_refit", self.calibration_refit, REFIT)
        if not self.intervals:
            if (self.calibration_windows, self.calibration_spacing, self.calibration_refit) != (None, None, "each"):
                raise ConfigError("--calibration-windows, --calibration-spacing and --calibration-refit calibrate "
                                  "intervals; pass --intervals (e.g. --intervals 80,95) or drop them")
            return
        object.__setattr__(self, "intervals", check_interval_levels(self.intervals))
        if self.calibration_spacing is not None:
            check_positive("calibration_spacing", self.calibration_spacing)
        K = self.calibration_windows
        if K is not None:
            check_positive("calibration_windows", K)
            need = min_windows(self.intervals)
            if K < need:
                top = self.intervals[-1]
                raise ConfigError(f"--calibration-windows {K} cannot bound a {level_name(top)} % interval (its "
                                  f"conformal quantile would be the {_ordinal(conformal_rank(K, top))} smallest of {K} "
                                  "errors); "
                                  f"pass at least {need}, or lower levels")
            if K > MAX_CALIBRATION_WINDOWS:
                raise ConfigError(f"--calibration-windows {K} would refit the pipeline {K} times; pass at most "
                                  f"{MAX_CALIBRATION_WINDOWS}")

    def member_lookbacks(self, members: int) -> tuple[int, ...]:
        """The lookback of each of ``members`` members: ``ensemble_lookbacks`` in turn (empty without them)."""
        looks = self.ensemble_lookbacks
        return tuple(looks[k % len(looks)] for k in range(members)) if looks else ()


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


#: The settings a job starts from where the caller passes none: the job's function (given None)
#: and its command line's defaults are both these, so ``rnnkit classify fit`` and
#: ``fit_classifier()`` train the same model. Where a job's default differs from the dataclass
#: field default, the reason is the job's: classification on short series does best with a GRU
#: and a larger step; a character model needs a wider network, a clipped gradient and no early
#: stopping (its validation loss is checked only about 10 times per run).
FORECAST_DEFAULTS = (ModelConfig(), TrainConfig())


def refuse_unsupported(model: ModelConfig, train: TrainConfig, *, lookback: int | None = None) -> None:
    """Raise :class:`ConfigError` for the first setting of ``model``/``train`` that forecasting
    would ignore or replace; ``lookback`` bounds the warm-up."""
    job = "forecasting"
    if model.distribution != "none":  # tasks/forecast/distribution.py: the negative log-likelihood only
        if train.loss not in (None, "nll"):
            refuse_setting(job, f"loss={train.loss!r} with distribution={model.distribution!r}", "a distribution head "
                           "is trained by its negative log-likelihood; leave --loss unset")
        if train.engine == "fused":
            raise ConfigError("engine='fused' cannot train a distribution head: the fused trainer runs the mse and mae "
                              "losses only; use engine='auto' (the torch loop then runs) or 'torch'")
        if train.stateful:
            refuse_setting(job, "stateful=True with a distribution head", "a distribution head trains on windows "
                           "(the next value's likelihood after each); drop --stateful")
    elif model.quantiles:  # a quantile head (tasks/forecast/quantiles.py) trains with the pinball loss only
        if train.loss not in (None, "pinball"):
            refuse_setting(job, f"loss={train.loss!r} with quantiles", "a quantile head is trained with the pinball "
                           "loss over its levels; leave --loss unset")
        if train.engine == "fused":
            raise ConfigError("engine='fused' cannot train a quantile head: the fused trainer runs the mse and mae "
                              "losses only, and quantiles train with the pinball loss; use engine='auto' (the torch "
                              "loop then runs) or 'torch'")
    elif train.loss not in (None, "mse", "mae"):
        why = ("the pinball loss trains a quantile head: pass quantiles (--quantiles 0.1,0.5,0.9)"
               if train.loss == "pinball" else "the nll loss trains a distribution head: pass --distribution normal (or student_t)"
               if train.loss == "nll" else "forecasts are trained with loss 'mse' or 'mae'")
        refuse_setting(job, f"loss={train.loss!r}", why)
    if train.many_to_many and model.strategy != "recursive":
        refuse_setting(job, "many_to_many=True with strategy='direct'",
                       "a direct forecaster has one output per window; use strategy='recursive'")
    if train.tbptt and not train.stateful:
        refuse_setting(job, f"tbptt={train.tbptt} without stateful=True", "truncated BPTT splits the long streams "
                       "of stateful training; pass stateful=True or tbptt=0")
    if train.warmup:
        if not (train.many_to_many or train.stateful):
            refuse_setting(job, f"warmup={train.warmup}", "warm-up steps are left out of a loss over every step; "
                           "it needs many_to_many=True or stateful=True")
        limit, name = (train.tbptt, "tbptt") if train.stateful else (lookback, "lookback")
        if limit and train.warmup >= limit:
            raise ConfigError(f"warmup ({train.warmup}) must be below the {name} ({limit}): otherwise no step "
                              "is left in the loss; lower the warm-up")


def refuse_distributed(train: TrainConfig, search: "SearchConfig", panel: bool = False) -> None:
    """Refuse (ConfigError) what data-parallel training (``train.distributed``) cannot run: the
    members of an ensemble, ``--auto``'s trials and one series' calibration refits train side by
    side in threads, and every rank would have to take part in each of their steps alike."""
    if not train.distributed:
        return
    for flag, bad in (("--ensemble", search.ensemble > 1), ("--ensemble-lookbacks", bool(search.ensemble_lookbacks)),
                      ("--auto", search.auto), ("--intervals", bool(search.intervals) and not panel)):
        if bad:
            raise ConfigError(f"{flag} with --distributed: their fits train side by side in threads, which the "
                              "ranks cannot share; train one model per call with --distributed")
