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

A recursive forecaster's head is the same for the next value only (``C * 2`` outputs after every
step, :func:`nll_loss` on the value after each window); its multi-step forecasts are the empirical
quantiles of sampled paths (:mod:`.paths`).

The negative-binomial head for counts (``"negbin"``) has a module of its own, :mod:`.negbin` (its
inputs and outputs are counts, which do not go through the scaler, transform or per-window
normalisation); :func:`params`, :func:`levels_of` and :func:`nll` dispatch to it by ``kind``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ...config import DISTRIBUTION_LEVELS
from .negbin import negbin_nll, negbin_params, negbin_quantiles
from .quantiles import head_rows, softplus, zero_output

__all__ = ["DEFAULT_LEVELS", "SCALE_FLOOR", "DF_FLOOR", "DF_START", "params", "normal_params", "normal_levels",
           "betainc", "student_t_cdf", "student_t_quantiles", "tabulated_t_quantiles", "t_table", "T_TABLE_POINTS", "levels_of", "gaussian_nll", "student_t_nll", "nll", "nll_loss",
           "init_distribution_head", "zero_mean"]

#: the levels a distribution head reports when none are asked for (ModelConfig fills them in)
DEFAULT_LEVELS = DISTRIBUTION_LEVELS

#: the smallest scale, in the network's units: a window whose targets never vary cannot drive the
#: likelihood to infinity
SCALE_FLOOR = 1e-3


#: a Student-t head's degrees of freedom are ``DF_FLOOR + softplus(r)``: above 2, so its variance is finite
DF_FLOOR = 2.0
#: the degrees of freedom a Student-t head starts at (a moderately heavy tail; training moves them)
DF_START = 5.0


def normal_params(raw: Tensor, horizon: int, n_targets: int) -> tuple[Tensor, Tensor]:
    """The mean and scale ``(B, H, C)`` each from the head's raw outputs ``(B, H*C*2)``."""
    v = raw.view(raw.shape[0], horizon, n_targets, 2)
    return v[..., 0], softplus(v[..., 1]) + SCALE_FLOOR


def params(raw: Tensor, horizon: int, n_targets: int, kind: str, scale: Tensor | None = None,
           base: Tensor | None = None) -> tuple[Tensor, ...]:
    """A ``kind`` head's parameters ``(B, H, C)`` each from its raw outputs ``(B, H*C*K)``: the mean
    and scale (``"normal"``), and the degrees of freedom (``"student_t"``); a count's mean and
    dispersion (``"negbin"``, from the windows' count ``scale`` and naive forecast ``base``:
    :func:`~.negbin.negbin_params`)."""
    if kind == "negbin":
        return negbin_params(raw, horizon, n_targets, scale, base)
    if kind == "normal":
        return normal_params(raw, horizon, n_targets)
    v = raw.view(raw.shape[0], horizon, n_targets, 3)
    return v[..., 0], softplus(v[..., 1]) + SCALE_FLOOR, softplus(v[..., 2]) + DF_FLOOR


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


def betainc(a: Tensor, b: Tensor, x: Tensor, steps: int = 200) -> Tensor:
    """The regularised incomplete beta function ``I_x(a, b)`` (float64, elementwise), by its continued
    fraction evaluated with the modified Lentz method (Press et al., Numerical Recipes, section 6.4),
    on the side of ``x = a / (a + b)`` where it converges fast (``I_x(a, b) = 1 - I_{1-x}(b, a)``)."""
    flip = x > (a + 1) / (a + b + 2)
    a, b, x = torch.where(flip, b, a), torch.where(flip, a, b), torch.where(flip, 1 - x, x)
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c = torch.ones_like(x)
    d = 1 - qab * x / qap
    d = 1 / torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
    h = d.clone()
    for m in range(1, steps + 1):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 + num * d
            d = 1 / torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
            c = 1 + num / c
            c = torch.where(c.abs() < tiny, torch.full_like(c, tiny), c)
            h = h * d * c
    log_front = torch.lgamma(a + b) - torch.lgamma(a) - torch.lgamma(b) + a * torch.log(x) + b * torch.log1p(-x)
    out = torch.where(x > 0, torch.exp(log_front) * h / a, torch.zeros_like(x))
    return torch.where(flip, 1 - out, out)


def student_t_cdf(t: Tensor, df: Tensor) -> Tensor:
    """``P(T <= t)`` for Student's t with ``df`` degrees of freedom (float64):
    ``1 - I_x(df/2, 1/2) / 2`` for ``t >= 0``, ``x = df / (df + t^2)``, and by symmetry below 0."""
    tail = 0.5 * betainc(df / 2, torch.full_like(df, 0.5), df / (df + t * t))  # P(T > |t|)
    return torch.where(t >= 0, 1 - tail, tail)


def student_t_quantiles(df: Tensor, levels, iterations: int = 40) -> Tensor:
    """The standard Student-t quantiles ``(..., Q)`` at ``levels`` for degrees of freedom ``df (...)``,
    in float64, by Newton's method on :func:`student_t_cdf` from the normal quantile. From there the
    iterates move monotonically to the root (the t's CDF is concave beyond 0 and convex below, and its
    quantiles lie further out than the normal's), so no step overshoots."""
    df = df.detach().to(torch.float64).unsqueeze(-1)  # (..., 1)
    q = torch.tensor(tuple(float(v) for v in levels), dtype=torch.float64, device=df.device)
    t = torch.special.ndtri(q).expand(*df.shape[:-1], len(q)).clone()  # (..., Q)
    df = df.expand_as(t)
    log_norm = torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2) - 0.5 * torch.log(df * math.pi)
    for _ in range(iterations):
        pdf = torch.exp(log_norm - (df + 1) / 2 * torch.log1p(t * t / df))
        t = t - (student_t_cdf(t, df) - q) / pdf
    return t


#: points of the Student-t quantiles' table in u = 1 / df, over [0, 1 / DF_FLOOR] (:func:`tabulated_t_quantiles`)
T_TABLE_POINTS = 1025


@functools.lru_cache(maxsize=16)
def t_table(levels: tuple[float, ...]) -> Tensor:
    """``(T_TABLE_POINTS, Q)`` float64: the standard t quantiles at ``levels`` for u = 1 / df on an even
    grid over [0, 1 / DF_FLOOR] (:func:`student_t_quantiles`; u = 0, infinite df: the normal's); cached.
    Made before a trace (:func:`rnnkit.tasks.export.traceable.traceable`), or the trace records its making."""
    u = torch.linspace(0.0, 1.0 / DF_FLOOR, T_TABLE_POINTS, dtype=torch.float64)
    z = torch.special.ndtri(torch.tensor(levels, dtype=torch.float64))[None]
    return torch.cat([z, student_t_quantiles(1.0 / u[1:], levels)])


def tabulated_t_quantiles(df: Tensor, levels) -> Tensor:
    """:func:`student_t_quantiles` ``(..., Q)`` in float64 by cubic (four-point Lagrange) interpolation
    in u = 1 / df of a table of them (:data:`T_TABLE_POINTS`, made once per levels): the quantiles are
    smooth in u over the head's whole range (df above DF_FLOOR: u in (0, 1/2]), so the table's
    numbers agree with Newton's to about 1e-10 (test_student_t.py), in operations a traced graph
    records (the exported forecast graph of a Student-t head: ONNX has no incomplete beta function)."""
    table = t_table(tuple(float(q) for q in levels)).to(df.device)  # (N, Q)
    n = table.shape[0] - 1
    pos = (1.0 / df.to(torch.float64)).clamp(0.0, 1.0 / DF_FLOOR) * (n * DF_FLOOR)  # (...,) in grid steps
    j = torch.floor(pos).clamp(1, n - 2)
    s = (pos - j).unsqueeze(-1)  # (..., 1): where u lies from point j (at most one step outside [0, 1])
    k = j.long()
    p0, p1, p2, p3 = table[k - 1], table[k], table[k + 1], table[k + 2]  # (..., Q)
    return (-p0 * s * (s - 1) * (s - 2) / 6 + p1 * (s + 1) * (s - 1) * (s - 2) / 2
            - p2 * (s + 1) * s * (s - 2) / 2 + p3 * (s + 1) * s * (s - 1) / 6)


def levels_of(params: tuple[Tensor, ...], levels, kind: str = "normal", tabulated: bool = False) -> Tensor:
    """A ``kind`` head's quantiles ``(..., Q)`` at ``levels`` from its parameters (see :func:`params`):
    ``mu + sigma * z_q``, with z the standard normal's or the standard t's quantiles (with
    ``tabulated``, the t's from :func:`tabulated_t_quantiles`, as an exported graph computes them); a
    negbin's exact discrete quantiles (:func:`~.negbin.negbin_quantiles`)."""
    if kind == "negbin":
        return negbin_quantiles(*params, levels).to(params[0].dtype)
    if len(params) == 2:
        return normal_levels(*params, levels)
    mu, sigma, df = params
    z = (tabulated_t_quantiles(df, levels) if tabulated else student_t_quantiles(df, levels)).to(mu.dtype)
    return mu.unsqueeze(-1) + sigma.unsqueeze(-1) * z


def gaussian_nll(mu: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
    """Mean negative log-likelihood of ``y`` under N(mu, sigma^2), elementwise over ``(..)``:
    ``log sigma + (y - mu)^2 / (2 sigma^2) + log(2 pi) / 2``."""
    return (torch.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2).mean() + 0.5 * math.log(2 * math.pi)


def student_t_nll(mu: Tensor, sigma: Tensor, df: Tensor, y: Tensor) -> Tensor:
    """Mean negative log-likelihood of ``y`` under Student's t with location ``mu``, scale ``sigma``
    and ``df`` degrees of freedom, elementwise: ``-log Gamma((df+1)/2) + log Gamma(df/2) +
    log(df pi)/2 + log sigma + (df+1)/2 log(1 + ((y - mu)/sigma)^2 / df)``."""
    z = (y - mu) / sigma
    return (torch.lgamma(df / 2) - torch.lgamma((df + 1) / 2) + 0.5 * torch.log(df * math.pi) + torch.log(sigma)
            + (df + 1) / 2 * torch.log1p(z * z / df)).mean()


def nll(params: tuple[Tensor, ...], y: Tensor, kind: str = "normal") -> Tensor:
    """The negative log-likelihood of a ``kind`` head with these :func:`params`."""
    if kind == "negbin":
        return negbin_nll(*params, y)
    return gaussian_nll(*params, y) if len(params) == 2 else student_t_nll(*params, y)


def nll_loss(model, train_config):
    """A distribution head's loss: the negative log-likelihood of every step's target (direct), or,
    recursive, of the next value after the window (``many_to_many``: after every step, past the
    warm-up), teacher forced: the network reads the true values, as the point model trains."""
    kind = model.distribution
    if not model.recursive:
        return lambda m, batch: nll(m.params(batch[0]), batch[1], kind)
    C, warm = model.n_targets, train_config.warmup
    if train_config.many_to_many:
        def many_to_many(m, batch):
            x, y = batch
            target = torch.cat([x[:, 1:, :C], y[:, :1]], 1)  # the next value at every step, (B, T, C)
            return nll(tuple(p[:, warm:] for p in m.params(x)), target[:, warm:], kind)
        return many_to_many
    return lambda m, batch: nll(tuple(p[:, -1:] for p in m.params(batch[0])), batch[1][:, :1], kind)


@torch.no_grad()
def init_distribution_head(model, targets: Tensor, mean_zero: bool) -> None:
    """Start the head as the naive forecast (the mean's rows zeroed, when ``mean_zero``: the
    per-window normalisation's start) with the scale of the training targets ``(W, H, C)``: the
    root mean square about that start (0, or their mean), per step and target."""
    weight, bias = head_rows(model)
    y = targets.detach().to(torch.float64)
    start = 0.0 if mean_zero else y.mean(0, keepdim=True)
    rms = ((y - start) ** 2).mean(0).sqrt()  # (H, C)
    student = weight.shape[2] == 3
    if student:  # a t's standard deviation is sigma sqrt(df / (df - 2)): start with the same spread
        rms = rms * math.sqrt((DF_START - 2) / DF_START)
        weight[:, :, 2].zero_()
        bias[:, :, 2] = _softplus_inverse(torch.tensor(DF_START - DF_FLOOR, dtype=torch.float64))
    s = torch.clamp(rms - SCALE_FLOOR, min=SCALE_FLOOR)
    if mean_zero:
        weight[:, :, 0].zero_()
        bias[:, :, 0].zero_()
    weight[:, :, 1].zero_()
    bias[:, :, 1] = _softplus_inverse(s).to(bias.dtype)


def _softplus_inverse(s: Tensor) -> Tensor:
    """``softplus^-1(s)`` for ``s > 0``, stable: ``s + log(1 - exp(-s))``."""
    return s + torch.log(-torch.expm1(-s))


@torch.no_grad()
def zero_mean(model) -> None:
    """The naive fallback of a distribution head: the mean forecasts the naive forecast exactly (its
    rows zeroed), the trained scale stays (see :func:`~.quantiles.zero_centre` for why)."""
    zero_output(model, 0)
