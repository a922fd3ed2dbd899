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

__all__ = ["Forecaster"]


class Forecaster(nn.Module):
    """A recurrent encoder and a linear head that forecasts ``n_targets`` series.

    ``strategy="direct"`` (many-to-one): the head reads the last output and emits all
    ``horizon`` steps at once, ``forward(x) -> (B, horizon, n_targets)``.

    ``strategy="recursive"`` (many-to-many): the head reads every output and predicts the next
    value, ``forward(x) -> (B, T, n_targets)``; :meth:`predict` primes the state on a context and
    then feeds each prediction back as the next input (prime-then-generate). Every input must then
    be a target (``input_size == n_targets``): there are no future covariates to feed.

    Args:
        input_size: features per step (targets first, then covariates).
        n_targets: series forecast.
        horizon: steps the direct head emits (recursive models predict one step at a time).
        config: the network (:class:`~rnnkit.config.ModelConfig`).
    """

    def __init__(self, input_size: int, n_targets: int, horizon: int = 1,
                 config: ModelConfig | None = None) -> None:
        super().__init__()
        config = config or ModelConfig()
        if config.strategy == "recursive" and input_size != n_targets:
            raise ConfigError("the recursive strategy feeds predictions back as inputs, so it cannot use "
                              "covariates; use strategy='direct' or drop the covariates")
        self.config = config
        self.input_size, self.n_targets, self.horizon = input_size, n_targets, horizon
        self.rnn = Recurrent(config.cell, input_size, config.hidden_size, config.num_layers,
                             batch_first=True, dropout=config.dropout,
                             bidirectional=config.bidirectional, init=config.init, **config.cell_kwargs())
        width = self.rnn.num_directions * self.rnn.output_size
        out = horizon * n_targets if config.strategy == "direct" else n_targets
        self.head = nn.Linear(width, out)

    @property
    def recursive(self) -> bool:
        return self.config.strategy == "recursive"

    def forward(self, x: Tensor, state: StateLike | None = None, return_state: bool = False):
        """``x (B, T, F)`` -> direct ``(B, horizon, C)`` or recursive ``(B, T, C)``."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(f"Forecaster expected input (B, T, {self.input_size}), got {tuple(x.shape)}")
        out, state = self.rnn(x, state)  # (B, T, D*O)
        if self.recursive:
            y = self.head(out)  # (B, T, C)
        else:
            y = self.head(out[:, -1]).view(x.shape[0], self.horizon, self.n_targets)  # (B, H*C) -> (B, H, C)
        return (y, state) if return_state else y

    def init_state(self, batch: int = 1) -> StateLike:
        """Zero recurrent state for :meth:`step` (what ``forward`` starts from)."""
        return self.rnn.init_state(batch)

    @torch.no_grad()
    def step(self, x_t: Tensor, state: StateLike | None = None) -> tuple[Tensor, StateLike]:
        """Streaming inference, one observation at a time: ``x_t (B, F)`` -> ``(y_t, state)``.

        ``y_t`` is what ``forward`` outputs for everything fed so far: direct models give the
        ``(B, horizon, C)`` forecast after this step, recursive ones the ``(B, C)`` prediction of
        the next value. In the model's (scaled) units, without autograd; the layers run as they
        are, so call ``model.eval()`` first if they use dropout. On the CPU this uses the native
        streaming step (:meth:`rnnkit.nn.layers.Recurrent.step`).
        """
        if x_t.dim() != 2 or x_t.shape[-1] != self.input_size:
            raise ShapeError(f"Forecaster.step expected one step of input (B, {self.input_size}), "
                             f"got {tuple(x_t.shape)}")
        out, state = self.rnn.step(x_t, state)  # (B, O)
        y = self.head(out)
        return (y if self.recursive else y.view(x_t.shape[0], self.horizon, self.n_targets)), state

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int | None = None) -> Tensor:
        """Forecast ``horizon`` steps after each context window: ``(B, L, F)`` -> ``(B, horizon, C)``.

        Works in the model's (scaled) units. Recursive models prime on the context and run free;
        direct models asked for more than their trained horizon repeat in blocks, feeding their
        forecasts back (possible only without covariates).
        """
        horizon = horizon or self.horizon
        was_training = self.training
        self.eval()  # forecasts never use dropout
        try:
            return self._predict(context, horizon)
        finally:
            self.train(was_training)

    def _predict(self, context: Tensor, horizon: int) -> Tensor:
        if self.recursive:
            return self.generate(context, horizon)
        y = self(context)
        if horizon <= self.horizon:
            return y[:, :horizon]
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
    def generate(self, prime: Tensor, steps: int) -> Tensor:
        """Prime the state on ``prime (B, L, C)``, then run ``steps`` steps on its own outputs."""
        if not self.recursive:
            raise ConfigError("generate() needs a recursive model (strategy='recursive')")
        was_training = self.training
        self.eval()
        try:
            return self._generate(prime, steps)
        finally:
            self.train(was_training)

    def _generate(self, prime: Tensor, steps: int) -> Tensor:
        y, state = self(prime, return_state=True)
        x_t = y[:, -1:]  # (B, 1, C): the first forecast
        outs = [x_t]
        for _ in range(steps - 1):
            x_t, state = self(x_t, state, return_state=True)
            outs.append(x_t)
        return torch.cat(outs, 1)  # (B, steps, C)


# --- sequence classification and character language models (appended for issue 7) ----------
