"""The distribution head (``ModelConfig.distribution="normal"``): a direct forecaster that emits a
Gaussian for every step and target, a mean and a scale, trained by the negative log-likelihood.

The head is the forecaster's linear layer with ``H * C * 2`` outputs, read as ``(B, H, C, 2)``: the
mean ``mu = r_0`` and the scale ``sigma = softplus(r_1) + SCALE_FLOOR`` (positive for any weights).
The forecaster's outputs are then the quantiles at the run's levels (``ModelConfig.quantiles``,
which a distribution head fills with :data:`DEFAULT_LEVELS` when none are given), in closed form::

    f_q = mu + sigma * Phi^-1(q)

so everything downstream of the network is the quantile head's (:mod:`.quantiles`): the levels
increase with q (``sigma > 0``), they are decoded level by level through the per-window
normalisation, the scaler and the target transform (all increasing maps), ensembles take each
level's median, and forecast.csv, ``evaluate``'s quantile scores and the plot band are the same.
The point forecast is the 0.5 level, the mean (``Phi^-1(0.5) = 0``).

Why a Gaussian in the network's units is a Gaussian in the data's: the scaler and the per-window
normalisation are affine maps with positive scales, which take a normal distribution to a normal
one; a log or Box-Cox target transform makes it log-normal (or its Box-Cox analogue) in the data's
units, whose quantiles are still the transformed levels, since those maps are increasing.

Training: the mean Gaussian negative log-likelihood over every window, step and target
(:func:`gaussian_nll`), in the network's units, by the torch loop (the fused trainer runs the MSE
and MAE losses only; the run records why). The naive gate compares the mean with the naive
forecast by the absolute error (the 0.5 level's pinball loss, as for quantiles), and the fallback
zeroes the mean's rows only (:func:`zero_mean`), so the trained scale stays.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ...config import DISTRIBUTION_LEVELS
from .quantiles import head_rows, zero_output

__all__ = ["DEFAULT_LEVELS", "SCALE_FLOOR", "normal_params", "normal_levels", "gaussian_nll",
           "init_distribution_head", "zero_mean"]

#: the levels a distribution head reports when none are asked for (ModelConfig fills them in)
DEFAULT_LEVELS = DISTRIBUTION_LEVELS

#: the smallest scale, in the network's units: a window whose targets never vary cannot drive the
#: likelihood to infinity
SCALE_FLOOR = 1e-3


def normal_params(raw: Tensor, horizon: int, n_targets: int) -> tuple[Tensor, Tensor]:
    """The mean and scale ``(B, H, C)`` each from the head's raw outputs ``(B, H*C*2)``."""
    v = raw.view(raw.shape[0], horizon, n_targets, 2)
    return v[..., 0], F.softplus(v[..., 1]) + SCALE_FLOOR


@functools.lru_cache(maxsize=64)
def _standard_quantiles(levels: tuple[float, ...], dtype: torch.dtype) -> tuple[float, ...]:
    """``Phi^-1(q)`` of each level, computed by ``ndtri`` in ``dtype`` (so exactly the numbers it gives there)."""
    return tuple(torch.special.ndtri(torch.tensor(levels, dtype=dtype)).tolist())


def normal_levels(mu: Tensor, sigma: Tensor, levels) -> Tensor:
    """The quantiles ``(..., Q)`` of N(mu, sigma^2) at ``levels``: ``mu + sigma * Phi^-1(q)``.

    ``Phi^-1(q)`` depends on the levels only, so it enters as numbers: a constant in a traced graph
    (ONNX has no ``ndtri`` operator), computed once per levels and dtype."""
    z = torch.tensor(_standard_quantiles(tuple(float(q) for q in levels), mu.dtype), dtype=mu.dtype, device=mu.device)
    return mu.unsqueeze(-1) + sigma.unsqueeze(-1) * z


def gaussian_nll(mu: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
    """Mean negative log-likelihood of ``y`` under N(mu, sigma^2), elementwise over ``(..)``:
    ``log sigma + (y - mu)^2 / (2 sigma^2) + log(2 pi) / 2``."""
    return (torch.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2).mean() + 0.5 * math.log(2 * math.pi)


@torch.no_grad()
def init_distribution_head(model, targets: Tensor, mean_zero: bool) -> None:
    """Start the head as the naive forecast (the mean's rows zeroed, when ``mean_zero``: the
    per-window normalisation's start) with the scale of the training targets ``(W, H, C)``: the
    root mean square about that start (0, or their mean), per step and target."""
    weight, bias = head_rows(model)
    y = targets.detach().to(torch.float64)
    start = 0.0 if mean_zero else y.mean(0, keepdim=True)
    s = torch.clamp(((y - start) ** 2).mean(0).sqrt() - SCALE_FLOOR, min=SCALE_FLOOR)  # (H, C)
    if mean_zero:
        weight[:, :, 0].zero_()
        bias[:, :, 0].zero_()
    weight[:, :, 1].zero_()
    bias[:, :, 1] = (s + torch.log(-torch.expm1(-s))).to(bias.dtype)  # softplus^-1(s), stable


@torch.no_grad()
def zero_mean(model) -> None:
    """The naive fallback of a distribution head: the mean forecasts the naive forecast exactly (its
    rows zeroed), the trained scale stays (see :func:`~.quantiles.zero_centre` for why)."""
    zero_output(model, 0)
