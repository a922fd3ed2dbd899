"""Sampled paths: how a *recursive* distribution head (``strategy="recursive"`` with
``ModelConfig.distribution``) forecasts more than one step.

The network is trained one step ahead (the negative log-likelihood of the next value, teacher
forced, as the recursive point model trains on the next value). A forecast of ``H`` steps then draws
``S = ModelConfig.samples`` Monte-Carlo paths, as DeepAR does (Salinas et al., 2020):

1. prime the recurrent state on the context, once per window;
2. copy the state ``S`` times, one per path, so the paths run as one batch of ``B * S`` rows;
3. at every step, read each path's predicted distribution (a normal's mean and scale, a
   Student-t's location, scale and degrees of freedom, or a negative binomial's mean and dispersion),
   draw ``y_t`` from it, and feed the draw back as the next input, so each path carries its own state
   and its own past; a negbin head (:mod:`.negbin`) draws counts by Gamma-Poisson sampling and feeds
   each back divided by the context window's count scale (fixed while the paths run), as it reads the
   context;
4. report at each step the paths' empirical quantiles at the run's levels (``ModelConfig.quantiles``),
   ``(B, H, C, Q)``, and as the point forecast the centre level: the 0.5 level (the paths' median)
   when it is asked for, as the direct head's point column is its 0.5 level.

The empirical quantile of level q is the ``ceil(q S)``-th smallest of the S draws (the inverse of
their empirical distribution function, :func:`empirical_levels`): an order statistic, so it commutes
exactly with every increasing map the forecasts go through afterwards (the per-window normalisation's
decoding, the scaler's inverse, a log or Box-Cox transform's inverse): the levels reported in the
data's units are the empirical quantiles of the paths mapped to the data's units, draw by draw.

The draws come from a :class:`torch.Generator` seeded with the model's ``sample_seed`` (the member's
training seed) at every call of :func:`sample_levels`, so the same model forecasts the same
numbers for the same windows every time. The cost is ``S`` times a recursive point forecast's
generation (the priming on the context is done once per window).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .distribution import params
from .negbin import negbin_draw
from .passes import sampled

__all__ = ["MAX_ROWS", "draw", "standard_t", "empirical_levels", "level_ranks", "sample_paths", "sample_levels",
           "sampled", "normal_draws"]

#: the most rows (windows x paths) that go through the network in one batch; more windows are
#: forecast in consecutive chunks that continue the same random stream
MAX_ROWS = 65536


def standard_t(df: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draws of the standard Student's t with ``df`` degrees of freedom (any shape, ``df > 0``), by
    Bailey's polar method (Math. Comp. 62, 1994): ``(U, V)`` uniform on the unit disc, ``W = U^2 + V^2``,
    then ``U sqrt(df (W^(-2/df) - 1) / W)`` is t-distributed (a pair outside the disc is drawn again,
    a fraction 1 - pi/4 of them)."""
    flat = df.reshape(-1)
    out = torch.empty_like(flat)
    todo = torch.arange(flat.numel(), device=flat.device)
    while todo.numel():
        u = 2 * torch.rand(todo.numel(), generator=generator, dtype=flat.dtype, device=flat.device) - 1
        v = 2 * torch.rand(todo.numel(), generator=generator, dtype=flat.dtype, device=flat.device) - 1
        w = u * u + v * v
        ok = (w < 1) & (w > 0)
        nu = flat[todo[ok]]
        out[todo[ok]] = u[ok] * torch.sqrt(nu * (w[ok] ** (-2 / nu) - 1) / w[ok])
        todo = todo[~ok]
    return out.view(df.shape)


def draw(p: tuple[Tensor, ...], generator: torch.Generator | None = None, kind: str = "normal") -> Tensor:
    """One draw from each distribution of a ``kind`` head's parameters ``p`` (:func:`~.distribution.params`,
    each ``(...)``): ``mu + sigma z``, z standard normal or standard t; a negbin's count
    (:func:`~.negbin.negbin_draw`)."""
    if kind == "negbin":
        return negbin_draw(*p, generator)
    mu, sigma = p[0], p[1]
    if len(p) == 2:
        z = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    else:
        z = standard_t(p[2], generator)
    return mu + sigma * z


def level_ranks(levels, samples: int) -> list[int]:
    """The 0-based rank among ``samples`` sorted draws of each level's empirical quantile: ``ceil(q S) - 1``
    (1e-9 below ``q S`` absorbs floating point: 0.1 x 200 is 20, not 20.000000000000004)."""
    return [min(samples - 1, max(0, math.ceil(float(q) * samples - 1e-9) - 1)) for q in levels]


def empirical_levels(paths: Tensor, levels) -> Tensor:
    """The empirical quantiles ``(B, ..., Q)`` at ``levels`` of draws ``paths (B, S, ...)``, the S
    draws along dim 1: each level's ``ceil(q S)``-th smallest draw (see :func:`level_ranks`)."""
    ranks = torch.tensor(level_ranks(levels, paths.shape[1]), device=paths.device)
    ordered = paths.sort(dim=1).values  # (B, S, ...)
    return torch.movedim(ordered.index_select(1, ranks), 1, -1)  # (B, Q, ...) -> (B, ..., Q)


def _repeat_state(state, samples: int):
    """Each window's recurrent state copied for its ``samples`` paths: every tensor ``(layers, B, ...)``
    -> ``(layers, B * S, ...)``, window b's copies at rows ``b S .. b S + S - 1``."""
    if isinstance(state, (tuple, list)):
        return type(state)(_repeat_state(s, samples) for s in state)
    return state.repeat_interleave(samples, dim=1)


def _head_params(model, out: Tensor, scale: Tensor | None = None) -> tuple[Tensor, ...]:
    """The head's one-step distribution after recurrent outputs ``out (N, 1, D*O)`` (a negbin's with its
    windows' count ``scale (N, 1, C)``): parameters ``(N, 1, C)``."""
    return params(model.head(out), 1, model.n_targets, model.distribution, scale)


@torch.no_grad()
def sample_paths(model, context: Tensor, steps: int, samples: int, generator: torch.Generator | None = None,
                 known: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
    """``samples`` sampled paths of ``steps`` steps after each context window ``(B, L, F)``, in the
    model's units: ``(B, S, steps, C)``. The state is primed on each context once and copied per path;
    draw k (from 1) is fed back with ``known[:, k - 1]``, the known inputs of the row after it
    (``known (B, steps - 1, n_known)``, as :meth:`~.model.Forecaster.generate` takes them).
    ``noise (B, S, steps, C)``: a normal head's standard normal draws, given instead of drawn from
    ``generator`` (what an exported graph reads; :func:`normal_draws` makes rnnkit's own)."""
    B, C, S, kind = context.shape[0], model.n_targets, samples, model.distribution
    if noise is not None:
        if kind != "normal" or tuple(noise.shape) != (B, S, steps, C):
            raise ValueError(f"noise must be standard normal draws (B, S, steps, C) = {(B, S, steps, C)} for a "
                             f"normal head; got {tuple(noise.shape)} for a {kind} head")
    z = None if noise is None else noise.to(context.dtype).reshape(B * S, steps, C)

    def draw_at(k: int, p: tuple[Tensor, ...]) -> Tensor:  # step k's draw: given, or from the generator
        return draw(p, generator, kind) if z is None else p[0] + p[1] * z[:, k:k + 1]
    x_in, scale = model.network_inputs(context)  # a negbin head: the targets over the window's count scale
    out, state = model.rnn(x_in)  # (B, L, D*O): primed once per window
    p = tuple(t.repeat_interleave(S, 0) for t in _head_params(model, out[:, -1:], scale))  # (B*S, 1, C) each
    state = _repeat_state(state, S)
    scale = None if scale is None else scale.repeat_interleave(S, 0)  # (B*S, 1, C), fixed along the paths
    rep = None if known is None else known.to(context.dtype).repeat_interleave(S, 0)  # (B*S, steps - 1, K)
    y = draw_at(0, p)  # (B*S, 1, C)
    ys = [y]
    for k in range(steps - 1):
        y_in = y if scale is None else y / scale  # what the network reads of the draw
        x_t = y_in if rep is None else torch.cat([y_in, rep[:, k:k + 1]], 2)  # (B*S, 1, C + K)
        out, state = model.rnn(x_t, state)
        y = draw_at(k + 1, _head_params(model, out, scale))
        ys.append(y)
    return torch.cat(ys, 1).view(B, S, steps, C)  # (B*S, steps, C) -> (B, S, steps, C)


@torch.no_grad()
def sample_levels(model, context: Tensor, steps: int, known: Tensor | None = None,
                  noise: Tensor | None = None) -> Tensor:
    """A recursive distribution head's forecast ``(B, steps, C, Q)`` at its levels: the empirical
    quantiles of ``model.samples`` sampled paths per window (:func:`sample_paths`), drawn from a
    generator seeded with ``model.sample_seed``; windows go through in chunks of at most
    :data:`MAX_ROWS` rows that continue one random stream. ``noise``: a normal head's draws given
    instead, ``(B, S, steps, C)``, all windows at once (with :func:`normal_draws`' the same numbers)."""
    S = model.samples
    if noise is not None:
        return empirical_levels(sample_paths(model, context, steps, S, None, known, noise), model.levels)
    generator = torch.Generator(device=context.device).manual_seed(int(model.sample_seed))
    chunk = max(1, MAX_ROWS // S)
    outs = [empirical_levels(sample_paths(model, context[i:i + chunk], steps, S, generator,
                                          None if known is None else known[i:i + chunk]), model.levels)
            for i in range(0, context.shape[0], chunk)]
    return torch.cat(outs, 0)  # (B, steps, C, Q)


def normal_draws(model, batch: int, steps: int, dtype: torch.dtype | None = None) -> Tensor:
    """The standard normal draws ``(batch, S, steps, C)`` that :func:`sample_levels` draws for ``batch``
    windows of a normal head: its generator's stream (seeded with ``model.sample_seed``) in the order
    the paths draw it, chunk by chunk and step by step; feeding them as ``noise`` forecasts the same
    numbers. What an exported graph of a recursive normal head is checked with. An ensemble's:
    ``(batch, members, S, steps, C)``, each member's own stream (its own ``sample_seed``)."""
    members = getattr(model, "members", None)
    if members is not None:
        return torch.stack([normal_draws(m, batch, steps, dtype) for m in members], 1)
    S, C = model.samples, model.n_targets
    dtype = dtype or next(model.parameters()).dtype
    generator = torch.Generator().manual_seed(int(model.sample_seed))
    chunk, parts = max(1, MAX_ROWS // S), []
    for i in range(0, batch, chunk):
        b = min(chunk, batch - i)
        steps_z = [torch.randn((b * S, 1, C), generator=generator, dtype=dtype) for _ in range(steps)]
        parts.append(torch.cat(steps_z, 1).view(b, S, steps, C))
    return torch.cat(parts, 0)
