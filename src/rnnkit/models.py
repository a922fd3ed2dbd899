"""Models: a recurrent layer plus a head. ``forward`` predicts; losses and loops live in train.py.

All models take ``(B, T, F)`` inputs (batch first), as does the whole workflow.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .errors import ConfigError, ShapeError
from .layers import Recurrent, StateLike, valid_mask

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
        streaming step (:meth:`rnnkit.layers.Recurrent.step`).
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

class AttentionPool(nn.Module):
    """Additive attention over time (Bahdanau, Cho & Bengio, ICLR 2015), masked to each length.

    .. math::
        e_t = v^\\top \\tanh(W h_t + b), \\qquad
        a = \\operatorname{softmax}_{t < \\ell}(e), \\qquad c = \\sum_{t < \\ell} a_t h_t

    Steps past a sequence's length ``l`` get weight exactly 0, so padding cannot change ``c``.
    ``forward(out (B, T, W), mask (B, T)) -> (c (B, W), a (B, T))``.
    """

    def __init__(self, width: int, attention_size: int | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(width, attention_size or width)
        self.score = nn.Linear(attention_size or width, 1, bias=False)

    def forward(self, out: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        e = self.score(torch.tanh(self.proj(out))).squeeze(-1)  # (B, T, A) -> (B, T)
        e = e.masked_fill(~mask, float("-inf"))
        a = torch.softmax(e, dim=1)  # (B, T), zero past each length
        c = torch.bmm(a.unsqueeze(1), out).squeeze(1)  # (B, 1, T) @ (B, T, W) -> (B, W)
        return c, a


class SequenceClassifier(nn.Module):
    """A recurrent encoder, a pooling of its outputs over time, and a linear head of class logits.

    Inputs are real-valued series ``x (B, T, input_size)`` or, when ``vocab_size`` is given,
    character ids ``x (B, T)`` (long) looked up in an embedding. ``lengths (B,)`` marks
    variable-length sequences: the encoder masks the padding (see :class:`Recurrent`) and every
    pooling reads only the valid steps, so padding never changes a sequence's logits.

    Pooling (``pool``): ``"last"`` takes the output at step ``length - 1`` (for a bidirectional
    encoder, the backward half at step 0, where the backward pass ends); ``"mean"`` averages the
    valid steps; ``"attention"`` is :class:`AttentionPool`.

    Args:
        input_size: features per step (ignored for character inputs).
        n_classes: classes (at least 2).
        config: the encoder (:class:`~rnnkit.config.ModelConfig`; ``strategy`` is not used).
        pool: ``"last"``, ``"mean"`` or ``"attention"``.
        vocab_size: characters in the vocabulary, for string inputs (``None``: real-valued inputs).
        embedding_dim: width of the character embedding.

    ``forward(x, lengths=None) -> logits (B, n_classes)``.
    """

    POOLS = ("last", "mean", "attention")

    def __init__(self, input_size: int, n_classes: int, config: ModelConfig | None = None,
                 pool: str = "last", vocab_size: int | None = None, embedding_dim: int = 16) -> None:
        super().__init__()
        config = config or ModelConfig()
        if pool not in self.POOLS:
            raise ConfigError(f"pool must be one of {', '.join(self.POOLS)}; got {pool!r}")
        if n_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes; got {n_classes}")
        self.config, self.pool, self.n_classes = config, pool, n_classes
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if vocab_size else None
        self.input_size = embedding_dim if vocab_size else input_size
        self.rnn = Recurrent(config.cell, self.input_size, config.hidden_size, config.num_layers,
                             batch_first=True, dropout=config.dropout, bidirectional=config.bidirectional,
                             init=config.init, **config.cell_kwargs())
        self.width = self.rnn.num_directions * self.rnn.output_size
        self.attention = AttentionPool(self.width) if pool == "attention" else None
        self.head = nn.Linear(self.width, n_classes)

    def _check(self, x: Tensor) -> None:
        if self.embedding is not None:
            if x.dim() != 2 or x.dtype != torch.long:
                raise ShapeError(f"SequenceClassifier over characters expected ids (B, T) of dtype long, "
                                 f"got {tuple(x.shape)} {x.dtype}")
        elif x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(f"SequenceClassifier expected input (B, T, {self.input_size}), got {tuple(x.shape)}")

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The pooled representation ``(B, width)`` the head reads."""
        self._check(x)
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T) -> (B, T, E)
        B, T = x.shape[:2]
        out, _ = self.rnn(x, lengths=lengths)  # (B, T, D*O), zero past each length
        mask = valid_mask(lengths, B, T, out.device)  # (B, T)
        if self.pool == "mean":
            n = mask.sum(1, keepdim=True).to(out.dtype)  # (B, 1)
            return (out * mask.unsqueeze(-1)).sum(1) / n  # (B, T, W) -> (B, W)
        if self.pool == "attention":
            return self.attention(out, mask)[0]
        last = (mask.sum(1) - 1).clamp(min=0)  # (B,) index of each last valid step
        fwd = out[torch.arange(B, device=out.device), last]  # (B, W)
        if self.rnn.bidirectional:
            O = self.rnn.output_size
            fwd = torch.cat([fwd[:, :O], out[:, 0, O:]], -1)  # forward at its end, backward at step 0
        return fwd

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.encode(x, lengths))  # (B, n_classes)

    def attention_weights(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Attention weights ``(B, T)`` over the steps (attention pooling only)."""
        if self.attention is None:
            raise ConfigError("attention_weights() needs pool='attention'")
        if self.embedding is not None:
            x = self.embedding(x)
        out, _ = self.rnn(x, lengths=lengths)
        return self.attention(out, valid_mask(lengths, *x.shape[:2], out.device))[1]


class CharLM(nn.Module):
    """A character-level language model: embedding (or one-hot) -> recurrent stack -> next-char logits.

    ``forward(x (B, T) long, state=None) -> (logits (B, T, vocab_size), state)``: the logits at
    step t score the character at t + 1. The state in and out lets training carry it across
    chunks (truncated BPTT) and lets generation feed one character at a time.

    Args:
        vocab_size: characters in the vocabulary.
        config: the recurrent stack (:class:`~rnnkit.config.ModelConfig`); must be unidirectional.
        embedding_dim: width of a learned embedding; 0 feeds one-hot vectors (as min-char-rnn).
    """

    def __init__(self, vocab_size: int, config: ModelConfig | None = None, embedding_dim: int = 0) -> None:
        super().__init__()
        config = config or ModelConfig()
        if config.bidirectional:
            raise ConfigError("a language model predicts the next character from the past only; "
                              "it cannot be bidirectional")
        if vocab_size < 2:
            raise ConfigError(f"a character language model needs at least 2 characters; got {vocab_size}")
        self.config, self.vocab_size, self.embedding_dim = config, vocab_size, embedding_dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if embedding_dim else None
        self.rnn = Recurrent(config.cell, embedding_dim or vocab_size, config.hidden_size, config.num_layers,
                             batch_first=True, dropout=config.dropout, init=config.init, **config.cell_kwargs())
        self.head = nn.Linear(self.rnn.output_size, vocab_size)

    def forward(self, x: Tensor, state: StateLike | None = None) -> tuple[Tensor, StateLike]:
        if x.dim() != 2 or x.dtype != torch.long:
            raise ShapeError(f"CharLM expected character ids (B, T) of dtype long, got {tuple(x.shape)} {x.dtype}")
        out, state = self.rnn(self._inputs(x), state)  # (B, T, O)
        return self.head(out), state  # (B, T, V)

    def init_state(self, batch: int = 1) -> StateLike:
        """Zero recurrent state for :meth:`step`."""
        return self.rnn.init_state(batch)

    @torch.no_grad()
    def step(self, ids: Tensor, state: StateLike | None = None) -> tuple[Tensor, StateLike]:
        """One character per stream: ``ids (B,)`` long -> ``(logits (B, vocab_size), state)``,
        the scores of the next character; equal to ``forward`` fed the same characters."""
        if ids.dim() != 1 or ids.dtype != torch.long:
            raise ShapeError(f"CharLM.step expected one character id per stream, (B,) long, "
                             f"got {tuple(ids.shape)} {ids.dtype}")
        out, state = self.rnn.step(self._inputs(ids), state)
        return self.head(out), state

    def _inputs(self, ids: Tensor) -> Tensor:
        """Character ids ``(...)`` -> the recurrent input ``(..., E)`` (embedded) or ``(..., V)`` (one-hot)."""
        if self.embedding is not None:
            return self.embedding(ids)
        return torch.nn.functional.one_hot(ids, self.vocab_size).to(self.head.weight.dtype)


__all__ += ["SequenceClassifier", "CharLM", "AttentionPool"]
