"""Forecasting's settings: how a table becomes training windows (:class:`DataConfig`), the job's
starting point, and the shared settings forecasting does not use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...config import (ModelConfig, Serialisable, TrainConfig, check_choice, check_positive, check_real,
                       refuse_setting)
from ...errors import ConfigError

__all__ = ["DataConfig", "FORECAST_DEFAULTS", "refuse_unsupported"]


@dataclass(frozen=True)
class DataConfig(Serialisable):
    """How a table becomes training windows.

    ``source`` is a file path or ``builtin:NAME``. The split is chronological: the last
    ``test_frac`` of rows are the test part, the ``val_frac`` before them validation, the rest
    training; or, when ``val_start``/``test_start`` are given (dates such as ``"1990-01"``, or row
    numbers for series without a time column), the parts start there instead and the fractions
    are ignored (a part without a start is then empty). The scaler is fitted on the training rows
    only. ``seasonal_period`` (m) is used by the
    seasonal-naive baseline and MASE; ``None`` takes the built-in series' period, else 1.
    """

    source: str = "builtin:sine"
    targets: tuple[str, ...] = ()
    time_col: Optional[str] = None
    covariates: tuple[str, ...] = ()
    fill: Optional[str] = None
    lookback: int = 12
    horizon: int = 1
    stride: int = 1
    val_frac: float = 0.1
    test_frac: float = 0.2
    scaler: str = "minmax"
    seasonal_period: Optional[int] = None
    val_start: Optional[str] = None
    test_start: Optional[str] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "covariates", tuple(self.covariates))
        check_positive("lookback", self.lookback)
        check_positive("horizon", self.horizon)
        check_positive("stride", self.stride)
        for name in ("val_frac", "test_frac"):
            check_real(name, getattr(self, name), 0.0, 1.0, hi_open=True, what="a fraction")
        if self.val_frac + self.test_frac >= 1.0:
            raise ConfigError("val_frac + test_frac must leave rows for training (sum below 1)")
        check_choice("scaler", self.scaler, ("minmax", "standard", "none"))
        check_choice("fill", self.fill, (None, "ffill", "interpolate"))
        if self.seasonal_period is not None:
            check_positive("seasonal_period", self.seasonal_period)


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
    if train.loss not in (None, "mse", "mae"):
        refuse_setting(job, f"loss={train.loss!r}", "forecasts are trained with loss 'mse' or 'mae'")
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
