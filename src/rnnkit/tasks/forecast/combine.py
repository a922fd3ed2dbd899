"""Each member combined with its own naive forecast (``SearchConfig.combine="inverse-mse"``).

A member's naive forecast is the same model with its head's correction zeroed (the naive skip,
the differencing or the window's mean: :func:`~.fitting.fall_back`). The combination weights them
by their inverse validation errors (Bates and Granger, 1969) and is applied by scaling the head, so
the run stays one model of the same shape: exported, reloaded and ensembled as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...training.examples import column
from .model import Forecaster
from .passes import evaluating, outputs

__all__ = ["evaluating", "outputs", "val_losses", "naive_weight", "scale_correction", "relative_callbacks"]


def val_losses(model: Forecaster, val, loss: str) -> tuple[float, float]:
    """The point model's validation loss (MSE, or MAE with ``loss="mae"``) and its naive forecast's."""
    crit = F.l1_loss if loss == "mae" else F.mse_loss
    x, y = val
    return float(crit(outputs(model, x), y)), float(crit(torch.zeros_like(y), y))


def naive_weight(model: Forecaster, prep, loss: str) -> float:
    """The weight of ``model``'s correction in its combination with its own naive forecast
    (``SearchConfig.combine="inverse-mse"``): ``L_naive / (L_naive + L_model)`` on the validation
    windows, the inverse-error weights of Bates and Granger (1969) for two forecasts. 1 (the network
    alone) where there is nothing to combine with or measure on: a quantile or distribution head, no
    naive forecast (no skip, no differencing), no validation windows; 0 where both losses are 0 but
    the model's is not better.

    Why: the members the gate keeps (validation loss below the naive forecast's) still lost to it on
    the test horizon of ``make quality``'s series about once in four: their corrections overshoot
    out of sample, and one horizon of validation rows cannot tell which will. The measured effect
    is in the README ("Combined with the naive forecast")."""
    if model.levels or not prep.norm.has_naive or prep.val is None or prep.too_short:
        return 1.0
    own, naive = val_losses(model, prep.val, loss)
    if own + naive <= 0:
        return 1.0
    return naive / (naive + own)


@torch.no_grad()
def scale_correction(model: Forecaster, weight: float) -> None:
    """Scale a point model's head (the correction to its naive forecast) by ``weight``, in place: the
    forecast becomes ``weight`` x the model's + (1 - weight) x the naive forecast (exactly, in the
    model's normalised and transformed units; the inverse differencing is linear too)."""
    if model.levels:
        raise ValueError("scale_correction: a quantile or distribution head is not combined")
    model.head.weight.mul_(weight)
    model.head.bias.mul_(weight)


def relative_callbacks(callbacks, model: Forecaster, prep, train_config) -> list:
    """``callbacks``, those with a true ``wants_relative`` attribute called with each epoch's row plus
    ``val_relative`` (and ``val_relative_to``, the loss: ``mse`` or ``mae``): the validation loss
    over the naive forecast's on the same windows (a zero
    correction), a number without units that compares between runs whose lookbacks, normalisations
    or losses differ (a sweep's ASHA rungs, :mod:`rnnkit.tasks.sweep.asha`). Not added where it is
    not defined: a quantile or distribution head, no naive forecast (no skip, no differencing),
    stateful training, no validation windows, a naive loss of 0. (Measured once, with one pass over
    the validation targets, and only for a callback that asks.)"""
    wanted = [cb for cb in callbacks if getattr(cb, "wants_relative", False)]
    if not wanted or model.levels or model.distribution != "none" or train_config.stateful \
            or prep.val is None or not prep.norm.has_naive:
        return list(callbacks)
    y = column(prep.val, 1)
    crit = F.l1_loss if train_config.loss == "mae" else F.mse_loss
    naive = float(crit(torch.zeros_like(y), y))
    if not naive > 0:
        return list(callbacks)
    loss = "mae" if train_config.loss == "mae" else "mse"
    return [(lambda row, cb=cb: cb({**row, "val_relative": row["val_loss"] / naive, "val_relative_to": loss}))
            if cb in wanted else cb for cb in callbacks]
