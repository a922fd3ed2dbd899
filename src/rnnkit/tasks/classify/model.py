"""The sequence classifier: a recurrent encoder, a pooling over time and a linear head.

All models take ``(B, T, F)`` inputs (batch first), as does the whole workflow.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...config import ModelConfig
from ...errors import ConfigError, ShapeError
from ...nn.layers import Recurrent
from ...nn.loop import valid_mask

__all__ = ["SequenceClassifier", "AttentionPool"]


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
