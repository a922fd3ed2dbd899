"""The negative-binomial head (``ModelConfig.distribution="negbin"``): a distribution head for counts.

Per step and target the head emits a mean ``mu > 0`` and a dispersion ``alpha > 0``, DeepAR's
parametrisation (Salinas et al., 2020)::

    P(y = k) = Gamma(k + r) / (Gamma(r) k!) (r / (r + mu))^r (mu / (r + mu))^k,   r = 1 / alpha
    E y = mu,   Var y = mu + alpha mu^2   (alpha -> 0: Poisson)

It is the Gamma-Poisson mixture ``lambda ~ Gamma(shape r, mean mu)``, ``y ~ Poisson(lambda)``; in
``torch.distributions.NegativeBinomial``'s terms ``total_count = r`` and ``logits = log(alpha mu)``.

**What the network sees, and why not the Gaussian's pipeline.** The likelihood is defined on the
counts themselves, so they reach it untouched: the target columns are not min-max or standard
scaled (the run's scaler keeps offset 0 and scale 1 there, and scales the covariates as before:
:func:`unscaled_targets`), not log or Box-Cox transformed (a log is undefined at 0, and a count
model already has its variance grow with its level), not differenced (a difference of counts is no
count) and not shifted and divided per window (``--normalise window`` makes counts negative). The
network needs a scale-free input all the same, so the head scales itself, as DeepAR does: each
window's scale is ``v = 1 + the mean of its target values`` (per target, over the context window;
the 1 keeps an all-zero window finite), the network reads the targets divided by ``v`` (covariates
and known inputs as the run scales them; a direct model with known inputs reads its window on over
the horizon, the targets zero there, and its scale and naive forecast are its context's alone:
:meth:`~.model.Forecaster.context`), and the mean comes back in counts::

    mu = v softplus(r_0)                                   (no naive skip; recursive models)
    mu = v softplus(r_0 + softplus^-1(b_h / v))            (a direct model with a naive skip)
    alpha = ALPHA_FLOOR + softplus(r_1)

``b_h`` is the naive forecast of step h in counts (``--skip last``, ``seasonal`` or ``drift``; ``auto``
is none for counts, see :func:`count_config`; :func:`count_base`), at least
:data:`NAIVE_FLOOR` (a mean must be positive). Zeroing the mean's rows gives ``mu = b_h``: the
untrained head and the naive fallback (:func:`~.distribution.zero_mean`) have the naive forecast
as their mean, the trained dispersion around it. The dispersion is not multiplied by ``v``: it is
dimensionless (``Var / mu^2 = 1 / mu + alpha``, alpha the squared coefficient of variation of the
Gamma mixing), so one network can learn it across levels (DeepAR divides it by ``sqrt(v)``; rnnkit
keeps it scale-free, and documents that instead). A recursive model's scale is its context's,
fixed while its sampled paths run (:mod:`.paths`): each sampled count is fed back divided by it.
(Trained ``--many-to-many``, every step's prediction reads the scale of the whole window, its later
targets included, as DeepAR's scale spans the range it trains on; the last step's, the default
loss, reads its context's only.)

**Outputs.** The levels are the exact discrete quantiles, the smallest ``k`` with ``CDF(k) >= q``
(:func:`negbin_quantiles`), with ``CDF(k) = I_x(r, k + 1)``, ``x = 1 / (1 + alpha mu)``, the
regularised incomplete beta function (float64, continued fraction until converged), searched by
bisection on the integers between Cantelli's bounds ``mu -+ sd sqrt(...)``. They are whole numbers,
increase with q (not strictly: two levels may share a count) and go through the rest of the
pipeline unchanged (the targets are unscaled): forecast.csv, ``evaluate``'s WQL, coverage and
width, the plot band. The point forecast is the 0.5 level, the median. An ensemble's median of an
even number of members may fall half way between two counts.

Training: the mean negative-binomial NLL (:func:`negbin_nll`, computed in float64: ``lgamma(y + r)
- lgamma(r)`` cancels badly in float32 when ``r = 1 / alpha`` is large), by the torch loop.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError, DataError
from .passes import outputs
from ...training.examples import count, take

__all__ = ["ALPHA_FLOOR", "NAIVE_FLOOR", "count_scale", "count_inputs", "count_base", "negbin_params", "negbin_nll",
           "negbin_cdf", "negbin_quantiles", "negbin_draw", "check_counts", "count_settings", "count_config",
           "unscaled_targets", "start_windows", "init_negbin_head", "negbin_beats_naive", "has_count_naive",
           "set_count_naive", "is_negbin"]

#: the smallest dispersion (Var = mu + alpha mu^2): at 1e-4 a count of 100 is 1 % over Poisson
ALPHA_FLOOR = 1e-4
#: the smallest naive forecast a skip's mean starts from, in counts: after a 0 the mean is 0.1 (median 0)
NAIVE_FLOOR = 0.1
#: the bounds of the dispersion the head starts at (a moment estimate on the training windows)
_ALPHA_START = (1e-2, 10.0)
#: the most training windows the head's start reads (evenly spread over them)
_START_WINDOWS = 4096


def is_negbin(model) -> bool:
    """Whether ``model`` (a forecaster or an ensemble) has a negative-binomial head."""
    return getattr(getattr(model, "config", None), "distribution", "none") == "negbin"


def count_scale(y: Tensor) -> Tensor:
    """Each window's scale ``1 + mean count``, ``(B, 1, C)``, from its target values ``y (B, T, C)``."""
    return 1.0 + y.mean(1, keepdim=True)


def count_inputs(x: Tensor, n_targets: int, context: int | None = None) -> tuple[Tensor, Tensor]:
    """What the network reads of windows ``x (B, T, F)``: the targets divided by the window's
    :func:`count_scale`, the other columns as they are; and that scale ``(B, 1, C)``, of the first
    ``context`` steps (default: all; a direct model with known inputs reads zeros for the targets over
    the horizon after its context, which its scale leaves out)."""
    v = count_scale(x[:, :context, :n_targets])
    return torch.cat([x[..., :n_targets] / v, x[..., n_targets:]], -1), v


def count_base(y: Tensor, skip: str, m: int, horizon: int) -> Tensor:
    """The naive forecast ``(B, horizon, C)`` in counts after windows of target values ``y (B, L, C)``,
    as :meth:`~.normalise.WindowNorm.base` makes it (``"last"``, ``"seasonal"``, ``"drift"``), at least
    :data:`NAIVE_FLOOR`."""
    if skip == "seasonal":
        base = y[:, y.shape[1] - m + torch.arange(horizon, device=y.device) % m]
    else:
        base = y[:, -1:].expand(-1, horizon, -1)
        if skip == "drift" and y.shape[1] > 1:  # the line through the window's first and last values
            slope = (y[:, -1:] - y[:, :1]) / (y.shape[1] - 1)  # (B, 1, C)
            base = base + slope * torch.arange(1, horizon + 1, dtype=y.dtype, device=y.device)[None, :, None]
    return base.clamp(min=NAIVE_FLOOR)


def _softplus_inverse(s: Tensor) -> Tensor:
    """``softplus^-1(s)`` for ``s > 0``, stable: ``s + log(1 - exp(-s))``."""
    return s + torch.log(-torch.expm1(-s))


def negbin_params(raw: Tensor, horizon: int, n_targets: int, scale: Tensor,
                  base: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The mean and dispersion ``(B, H, C)`` each from the head's raw outputs ``(B, H*C*2)`` and the
    windows' scale ``(B, 1, C)`` (and naive forecast ``(B, H, C)``: see the module docstring)."""
    v = raw.view(raw.shape[0], horizon, n_targets, 2)
    r = v[..., 0] if base is None else v[..., 0] + _softplus_inverse(base / scale)
    return scale * F.softplus(r), F.softplus(v[..., 1]) + ALPHA_FLOOR


def negbin_nll(mu: Tensor, alpha: Tensor, y: Tensor) -> Tensor:
    """Mean negative log-likelihood of the counts ``y`` under NB(mu, alpha), elementwise, in float64
    (returned in ``mu``'s dtype): ``-[lgamma(y + r) - lgamma(r) - lgamma(y + 1) - r log(1 + alpha mu)
    + y log(alpha mu / (1 + alpha mu))]``, ``r = 1 / alpha``."""
    m, a, k = mu.double().clamp(min=1e-12), alpha.double(), y.double()  # a mean that underflowed to 0 stays finite
    r, am = 1.0 / a, a * m
    log_p = (torch.lgamma(k + r) - torch.lgamma(r) - torch.lgamma(k + 1) - r * torch.log1p(am)
             + k * (torch.log(am) - torch.log1p(am)))
    return (-log_p.mean()).to(mu.dtype)


def _betainc(a: Tensor, b: Tensor, log_x: Tensor, log_y: Tensor, tol: float = 1e-15, cap: int = 20000) -> Tensor:
    """``I_x(a, b)`` for ``x = exp(log_x)``, ``1 - x = exp(log_y)`` both given (float64), by the continued
    fraction with the modified Lentz method (Numerical Recipes, section 6.4), on the side of
    ``x = (a + 1) / (a + b + 2)`` where it converges, iterated until every element has converged to
    ``tol`` (in O(sqrt(max(a, b))) steps)."""
    x, y = torch.exp(log_x), torch.exp(log_y)
    flip = x > (a + 1) / (a + b + 2)
    a, b, x = torch.where(flip, b, a), torch.where(flip, a, b), torch.where(flip, y, x)
    tiny = 1e-300
    guard = lambda t: torch.where(t.abs() < tiny, torch.full_like(t, tiny), t)  # noqa: E731
    qab, qap, qam = a + b, a + 1, a - 1
    c = torch.ones_like(x)
    d = 1 / guard(1 - qab * x / qap)
    h = d.clone()
    for m in range(1, cap + 1):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 / guard(1 + num * d)
            c = guard(1 + num / c)
            delta = d * c
            h = h * delta
        if float((delta - 1).abs().max()) < tol:
            break
    front = torch.exp(torch.lgamma(qab) - torch.lgamma(a) - torch.lgamma(b) + torch.where(flip, b, a) * log_x
                      + torch.where(flip, a, b) * log_y)  # x^a' (1-x)^b' in the original a', b'
    out = front * h / a
    return torch.where(flip, 1 - out, out)


def negbin_cdf(k: Tensor, mu: Tensor, alpha: Tensor) -> Tensor:
    """``P(y <= k)`` under NB(mu, alpha) for whole ``k`` (``-1``: 0), float64, elementwise:
    ``I_x(1/alpha, k + 1)`` with ``x = 1 / (1 + alpha mu)``."""
    k, mu, alpha = torch.broadcast_tensors(k.double(), mu.double(), alpha.double())
    am = alpha * mu
    log_x = -torch.log1p(am)
    cdf = _betainc(1.0 / alpha, k.clamp(min=0) + 1, log_x, torch.log(am) + log_x)
    return torch.where(k < 0, torch.zeros_like(cdf), cdf.clamp(0.0, 1.0))


@torch.no_grad()
def negbin_quantiles(mu: Tensor, alpha: Tensor, levels) -> Tensor:
    """The exact quantiles ``(..., Q)`` of NB(mu, alpha) ``(...)`` at ``levels``: the smallest whole k
    with ``CDF(k) >= q``, in float64. Bisection on the integers: Cantelli's inequality
    ``P(y - mu >= t) <= sd^2 / (sd^2 + t^2)`` puts the quantile at most ``mu + sd sqrt(q / (1 - q))`` and
    above ``mu - sd sqrt((1 - q) / q)``; each step halves that bracket (about log2(6 sd) steps)."""
    mu, alpha = mu.detach().double().unsqueeze(-1), alpha.detach().double().unsqueeze(-1)
    q = torch.tensor(tuple(float(v) for v in levels), dtype=torch.float64, device=mu.device)
    sd = torch.sqrt(mu + alpha * mu * mu)
    hi = torch.ceil(mu + sd * torch.sqrt(q / (1 - q)))  # CDF(hi) >= q
    lo = torch.floor(mu - 1.01 * sd * torch.sqrt((1 - q) / q)) - 1  # CDF(lo) < q
    finite = torch.isfinite(mu) & torch.isfinite(alpha) & (mu > 0) & (alpha > 0)  # else NaN, never a hang
    nan = torch.tensor(math.nan, dtype=torch.float64, device=mu.device)
    lo, hi = torch.broadcast_tensors(torch.where(finite, lo.clamp(min=-1.0), nan),
                                     torch.where(finite, hi.clamp(min=0.0), nan))
    lo, hi = lo.clone(), hi.clone()
    mu, alpha, q = (t.expand_as(lo) for t in (mu, alpha, q))
    while True:
        todo = hi - lo > 1  # False where NaN
        if not bool(todo.any()):
            return hi
        mid = torch.floor((lo[todo] + hi[todo]) / 2)
        ok = negbin_cdf(mid, mu[todo], alpha[todo]) >= q[todo]
        hi[todo] = torch.where(ok, mid, hi[todo])
        lo[todo] = torch.where(ok, lo[todo], mid)


def negbin_draw(mu: Tensor, alpha: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One count from each NB(mu, alpha), by Gamma-Poisson: ``lambda = mu G / r`` with ``G ~ Gamma(r, 1)``,
    ``r = 1 / alpha``, then ``y ~ Poisson(lambda)`` (both from ``generator``), in ``mu``'s dtype."""
    r = 1.0 / alpha.double()
    lam = mu.double() * torch._standard_gamma(r, generator=generator) / r
    return torch.poisson(lam, generator=generator).to(mu.dtype)


def check_counts(values: np.ndarray, names) -> None:
    """Refuse (DataError) target values ``(..., C)`` that are not counts: negative or not whole."""
    v = np.asarray(values, dtype=np.float64)
    for c, name in enumerate(names):
        col = v[..., c]
        bad = col < 0
        what = "negative"
        if not bad.any():
            bad, what = col != np.round(col), "not a whole number"
        if bad.any():
            raise DataError(f"--distribution negbin models counts, and target {name!r} holds "
                            f"{float(col[bad].flat[0]):g} ({what}); use --distribution normal for other values")


def count_settings(dc):
    """``dc`` for a negative-binomial head, refused in one line (ConfigError) where it cannot work, with
    "auto" resolved as counts need: no transform, no per-window normalisation (the head scales itself;
    see the module docstring), and no naive skip unless one is asked for: DeepAR's ``mu = v softplus(r)``.
    The data's own check is :func:`check_counts` (:func:`count_config` does both for one series; a panel
    checks each series, naming it). Measured on a seasonal negbin series (600 counts, mean 5 to 20,
    alpha 0.2, lookback 24, 40 epochs at lr 1e-2; test_negbin_fit.py's): the test MAE of the median was
    5.47 without a skip, 5.78 with the last value's, 7.63 with the seasonal skip the Gaussian's ``auto``
    chooses there (its member fell back to it), the last value's own 7.27: a count's naive forecast is as
    noisy as the count itself."""
    def refuse(what: str, why: str):
        raise ConfigError(f"{what} with --distribution negbin: {why}")
    if dc.transform not in ("auto", "none"):
        refuse(f"--transform {dc.transform}", "the likelihood is of the counts themselves (a log is undefined at 0); "
               "use --transform none")
    if dc.difference != "none":
        refuse(f"--difference {dc.difference}", "a difference of counts is no count; use --difference none")
    if dc.normalise == "window":
        refuse("--normalise window", "shifting a window by its mean makes counts negative; the head divides its "
               "inputs by the window's mean count + 1 itself: use --normalise none (or auto)")
    dc = dc.replace(transform="none", normalise="none", skip="none" if dc.skip == "auto" else dc.skip)
    if getattr(dc, "linear_covariates", "none") != "none":  # a linear effect taken off the targets: not counts
        dc = dc.replace(linear_covariates="none")
    return dc


def count_config(dc, data):
    """:func:`count_settings` for one series ``data`` (a SeriesData), whose targets must be counts
    (:func:`check_counts`, a DataError naming the target)."""
    dc = count_settings(dc)
    check_counts(data.values[:, :len(dc.targets)], dc.targets)
    return dc


def unscaled_targets(scaler, n_targets: int):
    """``scaler`` with its first ``n_targets`` columns left as they are (offset 0, scale 1): counts in,
    counts out; the covariates keep their scaling."""
    scaler.offset[:n_targets], scaler.scale[:n_targets] = 0.0, 1.0
    return scaler


def set_count_naive(model, skip: str, m: int) -> None:
    """Give a direct negbin forecaster the naive forecast its mean corrects (``skip``, season ``m``)."""
    if is_negbin(model) and not model.recursive:
        model.count_naive = (skip, int(m))


def has_count_naive(model) -> bool:
    """Whether ``model`` (a forecaster or an ensemble) is a negbin head correcting a naive forecast."""
    first = getattr(model, "members", [model])[0]
    return getattr(first, "count_naive", ("none",))[0] != "none"


def _start_pick(n: int) -> Tensor:
    """The indices of at most :data:`_START_WINDOWS` windows evenly spread over ``n``."""
    return torch.linspace(0, n - 1, min(n, _START_WINDOWS)).round().long()


def start_windows(train) -> tuple[Tensor, Tensor]:
    """The training windows :func:`init_negbin_head` reads, ``(x, y)``: at most 4096 evenly spread over
    ``train`` (tensors, or lazily held windows such as a panel's, of which only these are gathered).
    The head picks the same windows again from these (the identity), so it starts the same either way."""
    pick = _start_pick(count(train))
    x, y = take(train, pick)[:2]
    return x, y


@torch.no_grad()
def init_negbin_head(model, x: Tensor, y: Tensor) -> None:
    """Start the head from the training windows ``x (W, T, F)``, targets ``y (W, H, C)``: the mean's rows
    zeroed (with a naive skip: the naive forecast) or set to the targets' mean over the windows' mean
    scale (without one), and the dispersion at a moment estimate, ``(E (y - mu)^2 - E mu) / E mu^2``
    per step and target, within [0.01, 10], on at most 4096 windows evenly spread over them."""
    from .quantiles import head_rows  # noqa: PLC0415 (quantiles imports nothing of this module)
    weight, bias = head_rows(model)
    weight.zero_()
    bias.zero_()
    pick = _start_pick(len(x))  # the forward pass below stays small
    x, y = x[pick], y[pick].double()
    if model.count_naive[0] == "none":
        scale = count_scale(model.context(x)[..., :model.n_targets].double()).mean(0)  # (1, C)
        bias[:, :, 0] = _softplus_inverse((y.mean(0) / scale).clamp(min=1e-3)).to(bias.dtype)
    mu = model.params(x)[0].double()
    if model.recursive:
        mu = mu[:, -1:]
    moment = (((y - mu) ** 2).mean(0) - mu.mean(0)) / (mu * mu).mean(0)  # (H, C)
    alpha = moment.clamp(*_ALPHA_START)
    bias[:, :, 1] = _softplus_inverse(alpha - ALPHA_FLOOR).to(bias.dtype)


@torch.no_grad()
def negbin_beats_naive(model, val) -> bool:
    """The naive gate of a negbin head: whether its point forecast (the centre level) has a lower pinball
    loss at that level on the validation windows ``val = (x, y)`` than its naive fallback (the same
    model with its mean's rows zeroed, whose mean is the naive forecast)."""
    from .quantiles import zero_output  # noqa: PLC0415
    naive = copy.deepcopy(model)
    zero_output(naive, 0)
    x, y = val
    q, c = model.levels[model.centre], model.centre

    def loss(f: Tensor) -> float:
        e = y.double() - f.double()
        return float(torch.maximum(q * e, (q - 1.0) * e).mean())
    return loss(outputs(model, x)[..., c]) < loss(outputs(naive, x)[..., c])
