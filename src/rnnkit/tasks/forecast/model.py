"""The forecaster: a recurrent layer plus a linear head. ``forward`` predicts; losses and loops
live in :mod:`rnnkit.training.loop`.

All models take ``(B, T, F)`` inputs (batch first), as does the whole workflow.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...config import ModelConfig
from ...errors import ConfigError, ShapeError
from ...nn.layers import Recurrent, StateLike
from .distribution import levels_of, params
from .negbin import count_base, count_inputs
from .paths import sample_levels
from .quantiles import centre_index, ordered, quantile_horizon_message

__all__ = ["Forecaster", "head_width", "head_loss"]


def head_loss(config: ModelConfig) -> str | None:
    """The loss a head trains with whatever ``TrainConfig.loss`` says: a distribution head's negative
    log-likelihood, a quantile head's pinball loss; None for a point forecast (the loss is the user's)."""
    if config.distribution != "none":
        return "nll"
    return "pinball" if config.quantiles else None


def head_width(config: ModelConfig) -> int:
    """Outputs a head emits per step and target: 1, Q quantiles, or a distribution's 2 (or 3) parameters
    (a direct head for each of its steps, a recursive one for the next)."""
    if config.distribution != "none":
        return 3 if config.distribution == "student_t" else 2  # normal, negbin: 2
    return max(1, len(config.quantiles))


class Forecaster(nn.Module):
    """A recurrent encoder and a linear head that forecasts ``n_targets`` series.

    ``strategy="direct"`` (many-to-one): the head reads the last output and emits all
    ``horizon`` steps at once, ``forward(x) -> (B, horizon, n_targets)``; with
    ``config.quantiles`` (Q levels, :attr:`levels`) it emits Q quantiles of each, increasing by
    construction (:mod:`rnnkit.tasks.forecast.quantiles`), ``(B, horizon, n_targets, Q)``.

    ``strategy="recursive"`` (many-to-many): the head reads every output and predicts the next
    value, ``forward(x) -> (B, T, n_targets)``; :meth:`predict` primes the state on a context and
    then feeds each prediction back as the next input (prime-then-generate). Every input must then
    be a target or known in advance (``input_size == n_targets + n_known``): the ``n_known`` inputs
    after the targets (future covariates, calendar features; :mod:`rnnkit.tasks.forecast.known`)
    are the next row's, given to :meth:`predict` for the steps it generates. Past covariates,
    unknown in the future, cannot be fed. With ``config.distribution`` the head emits the next
    value's distribution, ``forward`` its quantiles at :attr:`levels` ``(B, T, C, Q)`` in closed form,
    and :meth:`predict` draws ``config.samples`` paths, feeding each draw back, and reports their
    empirical quantiles ``(B, horizon, C, Q)`` (:mod:`rnnkit.tasks.forecast.paths`), from a
    generator seeded with ``seed``.

    Args:
        input_size: features per step (targets first, then covariates or known inputs).
        n_targets: series forecast.
        horizon: steps the direct head emits (recursive models predict one step at a time).
        config: the network (:class:`~rnnkit.config.ModelConfig`).
        n_known: inputs per step known in advance, after the targets (recursive models).
        seed: the seed of a recursive distribution head's sampled paths (the member's training seed).
    """

    def __init__(self, input_size: int, n_targets: int, horizon: int = 1,
                 config: ModelConfig | None = None, n_known: int = 0, seed: int = 0) -> None:
        super().__init__()
        config = config or ModelConfig()
        if config.strategy == "recursive" and input_size != n_targets + n_known:
            raise ConfigError("the recursive strategy feeds predictions back as inputs, so besides the targets it "
                              "reads only inputs known in advance; past covariates are unknown in the future: use "
                              "strategy='direct', pass them as future covariates if their values are known ahead, "
                              "or drop them")
        self.config = config
        self.input_size, self.n_targets, self.horizon = input_size, n_targets, horizon
        self.n_known = n_known if config.strategy == "recursive" else 0
        #: a direct model with known inputs reads windows of lookback + horizon steps, the values zero
        #: over the horizon (:func:`~.known.model_input`): a negbin head's scale and naive forecast read
        #: the context steps alone (:meth:`context`)
        self.reads_horizon = n_known > 0 and config.strategy == "direct"
        self.rnn = Recurrent(config.cell, input_size, config.hidden_size, config.num_layers,
                             batch_first=True, dropout=config.dropout,
                             bidirectional=config.bidirectional, init=config.init, **config.cell_kwargs())
        width = self.rnn.num_directions * self.rnn.output_size
        #: the quantile levels the head emits (empty: a point forecast); ModelConfig refuses them for
        #: recursive models without a distribution head. ``centre``: the level the others are stacked
        #: on, also the point forecast
        self.levels = tuple(config.quantiles)
        self.centre = centre_index(self.levels) if self.levels else 0
        #: "normal" / "student_t": the head emits a Gaussian's mean and scale (and a t's degrees of
        #: freedom) per step and target, forecast as the quantiles at :attr:`levels`
        #: (:mod:`rnnkit.tasks.forecast.distribution`); "negbin": a count's mean and dispersion, the
        #: network reading the targets over the window's scale (:mod:`.negbin`); "none" otherwise
        self.distribution = config.distribution
        #: a Student-t head's quantiles from :func:`~.distribution.tabulated_t_quantiles` (an exported
        #: graph's copy, :mod:`rnnkit.tasks.export`) instead of Newton's iterations on the t's CDF
        self.tabulated_t = False
        #: a direct negbin head's naive forecast, (skip, season), which its mean corrects
        #: (:func:`~.negbin.set_count_naive`; the run's DataConfig.skip)
        self.count_naive = ("none", 1)
        #: a recursive distribution head's paths per forecast and the seed of their generator
        self.samples, self.sample_seed = config.samples, int(seed)
        steps = horizon if config.strategy == "direct" else 1  # the recursive head predicts the next value
        self.head = nn.Linear(width, steps * n_targets * head_width(config))

    @property
    def recursive(self) -> bool:
        return self.config.strategy == "recursive"

    def forward(self, x: Tensor, state: StateLike | None = None, return_state: bool = False):
        """``x (B, T, F)`` -> direct ``(B, horizon, C)`` or recursive ``(B, T, C)``."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(f"Forecaster expected input (B, T, {self.input_size}), got {tuple(x.shape)}")
        x_in, scale = self.network_inputs(x)
        out, state = self.rnn(x_in, state)  # (B, T, D*O)
        y = self._recursive(self.head(out), scale) if self.recursive else self._direct(self.head(out[:, -1]), x, scale)
        return (y, state) if return_state else y  # (B, T, C[, Q]) or (B, H, C[, Q])

    def network_inputs(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """What the recurrent layers read of windows ``x (B, T, F)``, and the windows' count scale: a
        negbin head reads the targets over each window's ``1 + mean count`` ``(B, 1, C)``
        (:func:`~.negbin.count_inputs`); every other head reads ``x`` itself (scale None)."""
        if self.distribution == "negbin":
            return count_inputs(x, self.n_targets, x.shape[1] - self.horizon if self.reads_horizon else None)
        return x, None

    def context(self, x: Tensor) -> Tensor:
        """The context steps of windows ``x (B, T, F)``: all of them, or for a direct model with known
        inputs (:attr:`reads_horizon`) the ``T - horizon`` before the horizon's."""
        return x[:, :x.shape[1] - self.horizon] if self.reads_horizon else x

    def _count_base(self, x: Tensor) -> Tensor | None:
        """A direct negbin head's naive forecast in counts ``(B, H, C)`` after windows ``x``, or None."""
        skip, m = self.count_naive
        return None if skip == "none" else count_base(self.context(x)[..., :self.n_targets], skip, m, self.horizon)

    def _recursive(self, y: Tensor, scale: Tensor | None = None) -> Tensor:
        """The recursive head's outputs ``(B, T, C[*K])`` as forecasts: the next values ``(B, T, C)``, or a
        distribution head's one-step quantiles ``(B, T, C, Q)`` (a negbin's from its windows' ``scale``)."""
        if self.distribution == "none":
            return y
        return levels_of(params(y, y.shape[1], self.n_targets, self.distribution, scale), self.levels,
                         self.distribution)

    def _direct(self, y: Tensor, x: Tensor | None = None, scale: Tensor | None = None) -> Tensor:
        """The direct head's outputs ``(B, H*C[*Q])`` as forecasts: ``(B, H, C)``, or the quantiles
        ``(B, H, C, Q)`` (a negbin head's from its windows ``x`` and their count ``scale``)."""
        if not self.levels:
            return y.view(y.shape[0], self.horizon, self.n_targets)  # (B, H*C) -> (B, H, C)
        if self.distribution != "none":
            base = None if x is None else self._count_base(x)
            p = params(y, self.horizon, self.n_targets, self.distribution, scale, base)
            return levels_of(p, self.levels, self.distribution, tabulated=self.tabulated_t)
        return ordered(y.view(y.shape[0], self.horizon, self.n_targets, len(self.levels)), self.centre)

    def params(self, x: Tensor) -> tuple[Tensor, ...]:
        """A distribution head's parameters after windows ``x (B, T, F)``: the mean and scale, a
        Student-t's degrees of freedom, or a negbin's mean and dispersion (:func:`~.distribution.params`),
        ``(B, H, C)`` each for a direct head, ``(B, T, C)`` for a recursive one (the next value's after
        every step)."""
        x_in, scale = self.network_inputs(x)
        out, _ = self.rnn(x_in)
        if self.recursive:
            return params(self.head(out), out.shape[1], self.n_targets, self.distribution, scale)
        return params(self.head(out[:, -1]), self.horizon, self.n_targets, self.distribution, scale,
                      self._count_base(x))

    def init_state(self, batch: int = 1) -> StateLike:
        """Zero recurrent state for :meth:`step` (what ``forward`` starts from)."""
        return self.rnn.init_state(batch)

    @torch.no_grad()
    def step(self, x_t: Tensor, state: StateLike | None = None) -> tuple[Tensor, StateLike]:
        """Streaming inference, one observation at a time: ``x_t (B, F)`` -> ``(y_t, state)``.

        ``y_t`` is what ``forward`` outputs for everything fed so far: direct models give the
        ``(B, horizon, C)`` forecast after this step, recursive ones the ``(B, C)`` prediction of
        the next value (a recursive model with known inputs reads ``x_t`` as this row's targets
        followed by the next row's ``n_known`` known inputs). In the model's (scaled) units, without autograd; the layers run as they
        are, so call ``model.eval()`` first if they use dropout. On the CPU this uses the native
        streaming step (:meth:`rnnkit.nn.layers.Recurrent.step`).
        """
        if x_t.dim() != 2 or x_t.shape[-1] != self.input_size:
            raise ShapeError(f"Forecaster.step expected one step of input (B, {self.input_size}), "
                             f"got {tuple(x_t.shape)}")
        if self.distribution == "negbin":
            raise ConfigError("a negbin head divides its inputs by the whole window's mean count, which one step "
                              "at a time does not know; use forward() or predict() on whole windows")
        out, state = self.rnn.step(x_t, state)  # (B, O)
        y = self.head(out)
        return (self._recursive(y[:, None])[:, 0] if self.recursive else self._direct(y)), state

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int | None = None, known: Tensor | None = None,
                noise: Tensor | None = None) -> Tensor:
        """Forecast ``horizon`` steps after each context window: ``(B, L, F)`` -> ``(B, horizon, C)``.

        Works in the model's (scaled) units. Recursive models prime on the context and run free,
        each forecast fed back with ``known (B, horizon - 1, n_known)``, the known inputs of the
        rows after the first forecast one (see :meth:`generate`); a recursive distribution head
        returns the quantiles ``(B, horizon, C, Q)`` of its sampled paths (:mod:`.paths`, the same
        numbers at every call); direct models asked for more than
        their trained horizon repeat in blocks, feeding their forecasts back (possible only without
        covariates). ``noise``: a recursive normal head's standard normal draws ``(B, samples,
        horizon, C)``, given instead of drawn (:func:`~.paths.sample_paths`).
        """
        horizon = horizon or self.horizon
        was_training = self.training
        self.eval()  # forecasts never use dropout
        try:
            return self._predict(context, horizon, known, noise)
        finally:
            self.train(was_training)

    def _predict(self, context: Tensor, horizon: int, known: Tensor | None = None,
                 noise: Tensor | None = None) -> Tensor:
        if self.recursive and self.distribution != "none":  # (B, horizon, C, Q): sampled paths' quantiles
            self._check_known(horizon, known)
            return sample_levels(self, context, horizon, known if self.n_known else None, noise)
        if self.recursive:
            return self.generate(context, horizon, known)
        y = self(context)
        if horizon <= self.horizon:
            return y[:, :horizon]
        if self.levels:
            raise ConfigError(quantile_horizon_message(self.horizon, horizon))
        if self.input_size != self.n_targets:
            raise ConfigError(f"this model was trained for horizon {self.horizon} with covariates; it cannot "
                              f"forecast {horizon} steps (future covariates are unknown)")
        pieces, window = [y], torch.cat([context, y], 1)[:, -context.shape[1]:]  # slide the window
        while sum(p.shape[1] for p in pieces) < horizon:
            y = self(window)
            pieces.append(y)
            window = torch.cat([window, y], 1)[:, -context.shape[1]:]
        return torch.cat(pieces, 1)[:, :horizon]

    @torch.no_grad()
    def generate(self, prime: Tensor, steps: int, known: Tensor | None = None) -> Tensor:
        """Prime the state on ``prime (B, L, C + n_known)``, then run ``steps`` steps on its own
        outputs; forecast ``k`` (from 1) is fed back with ``known[:, k - 1]``, the known inputs of the
        row after it (``known (B, steps - 1, n_known)``, needed when ``n_known > 0``)."""
        if not self.recursive:
            raise ConfigError("generate() needs a recursive model (strategy='recursive')")
        if self.distribution != "none":
            raise ConfigError("this recursive model has a distribution head: its forecasts are sampled paths, "
                              "not one value fed back; use predict() (their quantiles) or "
                              "rnnkit.tasks.forecast.paths.sample_paths")
        self._check_known(steps, known)
        was_training = self.training
        self.eval()
        try:
            return self._generate(prime, steps, known if self.n_known else None)
        finally:
            self.train(was_training)

    def _check_known(self, steps: int, known: Tensor | None) -> None:
        if self.n_known and steps > 1 and (known is None or known.shape[1] < steps - 1
                                           or known.shape[2] != self.n_known):
            got = "none" if known is None else f"shape {tuple(known.shape)}"
            raise ShapeError(f"this recursive model reads {self.n_known} known input(s) per step: generating "
                             f"{steps} steps needs them for the {steps - 1} rows after the first forecast, "
                             f"(B, {steps - 1}, {self.n_known}); got {got}")

    def _generate(self, prime: Tensor, steps: int, known: Tensor | None = None) -> Tensor:
        y, state = self(prime, return_state=True)
        y_t = y[:, -1:]  # (B, 1, C): the first forecast
        outs = [y_t]
        for k in range(steps - 1):
            x_t = y_t if known is None else torch.cat([y_t, known[:, k:k + 1].to(y_t.dtype)], 2)  # (B, 1, C + K)
            y_t, state = self(x_t, state, return_state=True)
            outs.append(y_t)
        return torch.cat(outs, 1)  # (B, steps, C)


# --- sequence classification and character language models (appended for issue 7) ----------
