"""The sequence classifier: a recurrent encoder, a pooling over time and a linear head.

All models take ``(B, T, F)`` inputs (batch first), as does the whole workflow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import ModelConfig
from ...errors import ConfigError, ShapeError
from ...nn.layers import Recurrent
from ...nn.loop import valid_mask
from .config import POOLS

__all__ = ["SequenceClassifier", "ClassifierEnsemble", "AttentionPool"]


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

    ``frame=k`` (real-valued inputs) feeds the encoder ``k`` consecutive steps at a time
    (:meth:`framed`): ``(B, T, F)`` becomes ``(B, ceil(T / k), k * F)``, each sequence's last
    frame zero-filled past its length, which becomes ``ceil(length / k)`` frames.

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
        frame: steps per encoder step, for real-valued inputs (1: step by step).

    ``forward(x, lengths=None) -> logits (B, n_classes)``.
    """

    POOLS = POOLS  # the pools ClassifierConfig offers

    def __init__(self, input_size: int, n_classes: int, config: ModelConfig | None = None,
                 pool: str = "last", vocab_size: int | None = None, embedding_dim: int = 16,
                 frame: int = 1) -> None:
        super().__init__()
        config = config or ModelConfig()
        if pool not in self.POOLS:
            raise ConfigError(f"pool must be one of {', '.join(self.POOLS)}; got {pool!r}")
        if not isinstance(frame, int) or isinstance(frame, bool) or frame < 1 or (vocab_size and frame != 1):
            raise ConfigError(f"frame must be an integer >= 1 (1 for character inputs); got {frame!r}")
        if n_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes; got {n_classes}")
        self.config, self.pool, self.n_classes = config, pool, n_classes
        self.vocab_size, self.frame = vocab_size, frame
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if vocab_size else None
        self.input_size = embedding_dim if vocab_size else input_size
        self.rnn = Recurrent(config.cell, self.input_size * frame, config.hidden_size, config.num_layers,
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

    def framed(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """``(x (B, T, F), lengths)`` as the encoder reads them: ``(B, ceil(T / k), k * F)`` frames
        of ``k = frame`` steps, zero past each length, and each sequence's number of frames."""
        k = self.frame
        if k == 1:
            return x, lengths
        B, T, n = x.shape[0], x.shape[1], -(-x.shape[1] // k)
        if lengths is not None:  # padding never enters a frame, whatever it holds
            x = x.masked_fill(~valid_mask(lengths, B, T, x.device).unsqueeze(-1), 0.0)
            lengths = torch.div(lengths + (k - 1), k, rounding_mode="floor")  # (B,) frames
        x = F.pad(x, (0, 0, 0, n * k - T))  # (B, T, F) -> (B, n * k, F), zeros at the end
        return x.reshape(B, n, k * x.shape[2]), lengths  # (B, n * k, F) -> (B, n, k * F)

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The pooled representation ``(B, width)`` the head reads."""
        self._check(x)
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T) -> (B, T, E)
        x, lengths = self.framed(x, lengths)
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

    def proba(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Class probabilities ``(B, n_classes)`` in float64: the softmax of the logits."""
        return torch.softmax(self(x, lengths).double(), -1)

    def attention_weights(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Attention weights ``(B, T)`` over the steps (``(B, ceil(T / frame))`` over the frames;
        attention pooling only)."""
        if self.attention is None:
            raise ConfigError("attention_weights() needs pool='attention'")
        if self.embedding is not None:
            x = self.embedding(x)
        x, lengths = self.framed(x, lengths)
        out, _ = self.rnn(x, lengths=lengths)
        return self.attention(out, valid_mask(lengths, *x.shape[:2], out.device))[1]


class ClassifierEnsemble(nn.Module):
    """Classifiers of one design (trained from different seeds) whose class probabilities are
    averaged: the soft vote (see :class:`~rnnkit.tasks.classify.config.ClassifierConfig`).

    It reads what a :class:`SequenceClassifier` reads: :meth:`proba` is the mean of the members'
    probabilities (float64), and ``forward`` returns its logarithm, so that a softmax of the output
    gives the mean back and its argmax is the ensemble's class.
    """

    def __init__(self, members) -> None:
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        first = members[0]
        self.config, self.pool, self.n_classes = first.config, first.pool, first.n_classes
        self.vocab_size, self.frame, self.input_size = first.vocab_size, first.frame, first.input_size

    def proba(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return torch.stack([m.proba(x, lengths) for m in self.members]).mean(0)  # (N, B, K) -> (B, K)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return torch.log(self.proba(x, lengths))  # (B, n_classes), float64 log-probabilities
