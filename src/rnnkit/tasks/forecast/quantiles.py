"""The quantile head (``ModelConfig.quantiles``): a direct forecaster that emits Q quantile levels
for every step and target, in order by construction, trained with the pinball loss.

The head is the forecaster's linear layer with ``H * C * Q`` outputs, read as ``(B, H, C, Q)``.
Of each step's and target's Q raw outputs ``r``, one is the *centre* ``c`` (the 0.5 level when it
is asked for, else the level nearest 0.5, the lower of two as near), and the others are positive
increments stacked outwards from it::

    f_c     = r_c
    f_{c+j} = f_c + sum_{i=1..j} softplus(r_{c+i})      (the levels above the centre)
    f_{c-j} = f_c - sum_{i=1..j} softplus(r_{c-i})      (the levels below)

``softplus > 0``, so ``f`` increases with the level for any weights and inputs: the quantiles
never cross (two may only touch, where a softplus underflows to 0 in floating point).

Every later step keeps the order: the per-window normalisation decodes each level as
``base + scale * f`` with ``scale > 0`` (:meth:`~rnnkit.tasks.forecast.normalise.WindowNorm.decode`),
the scaler's inverse is ``x * scale + offset`` with positive scales, the target transforms' inverses
(exp, Box-Cox) are increasing, and an ensemble's median per level keeps the order (if
``a_k <= b_k`` for every member k, each order statistic of the a's is at most the b's).

Training: the mean pinball loss over every window, step, target and level (:func:`pinball_loss`),
in the network's units. Where the per-window normalisation is on, those are ``(y - base) / scale``
with a positive per-window scale, and the q-quantile of that is ``(q-quantile of y - base) / scale``:
the head learns the quantiles of the data themselves.

Output names: the forecast table's column ``<target>`` is the point forecast (the centre) and
``<target>_q<level>`` each level, the level written as Python writes the number (``sales_q0.1``,
``sales_q0.5``, ``sales_q0.025``): see :func:`level_columns`.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["centre_index", "ordered", "pinball_loss", "centre_beats_naive", "quantile_horizon_message",
           "init_quantile_head", "zero_centre", "zero_output", "head_rows", "level_columns", "with_level_columns", "outer_band",
           "describe_level_scores", "GAP_FLOOR", "softplus"]

#: the smallest starting gap between two neighbouring levels, in the network's units, so a step
#: whose training targets never vary still starts with increments softplus can invert
GAP_FLOOR = 1e-3


def softplus(x: Tensor) -> Tensor:
    """``F.softplus``; while a float64 graph is exported to ONNX (onnxruntime has no double Softplus
    kernel), its formula ``max(x, 0) + log(1 + exp(-|x|))`` instead, within 1e-16 of it absolutely."""
    if x.dtype == torch.float64 and torch.onnx.is_in_onnx_export():
        return x.clamp(min=0) + torch.log(1 + torch.exp(-x.abs()))
    return F.softplus(x)


def centre_index(levels) -> int:
    """The centre level's index: the 0.5 level, else the level nearest 0.5 (the lower of two as near)."""
    q = np.asarray(levels, dtype=np.float64)
    return int(np.argmin(np.abs(q - 0.5)))  # argmin takes the first of equal distances: the lower level


def ordered(raw: Tensor, centre: int) -> Tensor:
    """The quantiles ``(..., Q)`` from the head's raw outputs ``(..., Q)``: the centre as it is,
    softplus increments summed outwards from it (see the module docstring)."""
    mid = raw[..., centre:centre + 1]  # (..., 1)
    parts = [mid]
    if centre > 0:  # (an empty side is left out: ONNX's shape inference miscounts a flipped empty slice)
        down = mid - torch.cumsum(softplus(raw[..., :centre].flip(-1)), -1)  # (..., c), nearest the centre first
        parts.insert(0, down.flip(-1))
    if centre + 1 < raw.shape[-1]:
        parts.append(mid + torch.cumsum(softplus(raw[..., centre + 1:]), -1))  # (..., Q - c - 1)
    return torch.cat(parts, -1)  # (..., Q), increasing


def pinball_loss(pred: Tensor, y: Tensor, levels: Tensor) -> Tensor:
    """Mean pinball loss ``max(q e, (q - 1) e)``, ``e = y - f``, of quantile forecasts
    ``pred (..., Q)`` of targets ``y (...)`` at ``levels (Q,)``, over every element and level."""
    e = y.unsqueeze(-1) - pred  # (..., Q)
    return torch.maximum(levels * e, (levels - 1.0) * e).mean()


def centre_beats_naive(pred: Tensor, y: Tensor, levels, centre: int) -> bool:
    """Whether the centre of quantile forecasts ``pred (..., Q)`` beats the naive forecast (a zero
    correction) on targets ``y (...)`` by the pinball loss at the centre's level (at 0.5: half the
    mean absolute error): the naive fallback's test (``train_members``)."""
    q = levels[centre]

    def loss(f: Tensor) -> float:
        e = y - f
        return float(torch.maximum(q * e, (q - 1.0) * e).mean())
    return loss(pred[..., centre]) < loss(torch.zeros_like(y))


def head_rows(model) -> tuple[Tensor, Tensor]:
    """A head's weight and bias viewed as ``(H, C, K, width)`` and ``(H, C, K)``: K outputs per step and
    target (the Q levels of a quantile head, a distribution head's parameters); H is 1 for a recursive
    head (the next value's)."""
    H, C = (1 if model.recursive else model.horizon), model.n_targets
    weight = model.head.weight
    return weight.view(H, C, -1, weight.shape[1]), model.head.bias.view(H, C, -1)


@torch.no_grad()
def zero_output(model, k: int) -> None:
    """Zero the weights and bias of output ``k`` of every step and target (see :func:`head_rows`)."""
    weight, bias = head_rows(model)
    weight[:, :, k].zero_()
    bias[:, :, k].zero_()


@torch.no_grad()
def init_quantile_head(model, targets: Tensor, centre_zero: bool) -> None:
    """Start a quantile head as a naive forecast with Gaussian intervals of the training targets'
    spread: the centre's weights and bias are zeroed when ``centre_zero`` (the per-window
    normalisation's start: the naive forecast, or the window's level) and kept otherwise; each
    increment's weights are zeroed and its bias set so that, before training, the gap between
    levels q and q' of step h and target c is ``s_hc (z(q') - z(q))``, with z the standard normal
    quantile and ``s_hc`` the root mean square of the training targets ``(W, H, C)`` about the
    centre's start (0, the naive forecast, or their mean when the centre is not zeroed)."""
    weight, bias = head_rows(model)
    c, levels = model.centre, model.levels
    y = targets.detach().to(torch.float64)  # (W, H, C), the network's units
    start = 0.0 if centre_zero else y.mean(0, keepdim=True)
    s = ((y - start) ** 2).mean(0).sqrt()  # (H, C)
    z = [NormalDist().inv_cdf(q) for q in levels]
    for k in range(len(levels)):
        if k == c:
            if centre_zero:
                weight[:, :, k].zero_()
                bias[:, :, k].zero_()
            continue
        dz = z[k] - z[k - 1] if k > c else z[k + 1] - z[k]  # the gap to the neighbour on the centre's side
        gap = torch.clamp(s * dz, min=GAP_FLOOR)
        weight[:, :, k].zero_()
        bias[:, :, k] = (gap + torch.log(-torch.expm1(-gap))).to(bias.dtype)  # softplus^-1(gap), stable


@torch.no_grad()
def zero_centre(model) -> None:
    """The naive fallback of a quantile head (``train_members``): zero the centre's weights and bias
    only, so the centre forecasts the naive forecast exactly, while the increments, the spread
    stacked around it, stay as trained. Zeroing them too would collapse every level onto the naive
    forecast (intervals of width 0). The trained spread was fitted around a centre that did no
    better than the naive forecast on the validation windows, so it is the measured uncertainty of
    a forecast about that good; the coverage it reaches is what ``evaluate`` reports."""
    zero_output(model, model.centre)


def quantile_horizon_message(trained: int, horizon: int) -> str:
    """Why a quantile head does not forecast past its trained horizon (feeding a level back as if
    it were the value would make the later steps' quantiles meaningless)."""
    return (f"this model's quantile head forecasts its trained horizon of {trained} steps; it cannot forecast "
            f"{horizon} (feeding one level back as the value would make the later quantiles meaningless): refit "
            f"with --horizon {horizon}")


def level_columns(target: str, levels) -> list[str]:
    """The forecast table's columns of ``target``'s levels: ``<target>_q<level>`` (``y_q0.1``)."""
    return [f"{target}_q{float(q)!r}" for q in levels]


def with_level_columns(frame: pd.DataFrame, forecast: np.ndarray, targets, levels) -> pd.DataFrame:
    """``frame`` (a point forecast table, one column per target) with the levels of ``forecast
    (H, C, Q)`` after its columns, each target's in level order."""
    out = frame.copy()
    for c, target in enumerate(targets):
        for name, column in zip(level_columns(target, levels), forecast[:, c].T):
            out[name] = column
    return out


def outer_band(frame: pd.DataFrame, targets, levels) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The forecast plot's band: its label and the lowest and highest levels' columns of a forecast
    table, ``(H, C)`` each (the order ``plot_forecast``'s bands take); None for fewer than two levels."""
    if len(levels) < 2:
        return None
    cols = [level_columns(t, levels) for t in targets]
    return (f"q{float(levels[0])!r} to q{float(levels[-1])!r}", frame[[c[0] for c in cols]].to_numpy(),
            frame[[c[-1] for c in cols]].to_numpy())


def describe_level_scores(scores: dict) -> str:
    """One line for people: ``WQL 0.071, CRPS 1.23; 80% interval: coverage 0.83, width 4.1``."""
    def num(v: float) -> str:
        return "nan" if not math.isfinite(v) else f"{v:.4g}"
    parts = [f"WQL {num(scores['wql'])}, CRPS {num(scores['crps'])}"]
    parts += [f"{k}% interval: coverage {v['coverage']:.3f}, width {num(v['width'])}"
              for k, v in scores["intervals"].items()]
    return "; ".join(parts)
