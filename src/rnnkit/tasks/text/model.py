"""The character language model: an embedding (or one-hot input), a recurrent layer and a
linear head over the vocabulary.

All models take ``(B, T)`` character ids (batch first), as does the whole workflow.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...config import ModelConfig
from ...errors import ConfigError, ShapeError
from ...nn.layers import Recurrent, StateLike

__all__ = ["CharLM"]


class CharLM(nn.Module):
    """A character-level language model: embedding (or one-hot) -> recurrent stack -> next-char logits.

    ``forward(x (B, T) long, state=None) -> (logits (B, T, vocab_size), state)``: the logits at
    step t score the character at t + 1. The id -1 (:attr:`rnnkit.data.vocab.CharVocab.NO_ID`, a
    character outside the vocabulary) is read as no character: a zero input vector (zero one-hot,
    or a zero embedding), so only the biases and the state carry that step. The state in and out lets training carry it across
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
        """Character ids ``(...)`` -> the recurrent input ``(..., E)`` (embedded) or ``(..., V)`` (one-hot);
        id -1 (a character outside the vocabulary) -> zeros."""
        unknown = ids < 0
        masked = bool(unknown.any())
        if masked:
            if bool((ids < -1).any()):
                raise ShapeError(f"CharLM got the character id {int(ids.min())}; ids are 0..{self.vocab_size - 1}, "
                                 "or -1 for a character outside the vocabulary")
            ids = ids.masked_fill(unknown, 0)
        if self.embedding is not None:
            x = self.embedding(ids)
        else:
            x = torch.nn.functional.one_hot(ids, self.vocab_size).to(self.head.weight.dtype)
        return x.masked_fill(unknown[..., None], 0.0) if masked else x  # (..., E or V)
