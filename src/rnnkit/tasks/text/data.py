"""A character model's texts and prompts as ids, with the characters outside its vocabulary counted.

A text read later (``evaluate``, a ``generate`` prompt, a ``suggest`` prompt) may hold characters
the training text did not. :func:`encode_text` applies the policy for them and returns an
:class:`UnknownChars` report with the ids:

- ``"replace"`` (the default, :data:`rnnkit.tasks.text.config.UNKNOWN_AT_USE`): each becomes the
  unknown symbol. A vocabulary trained with ``--unknown replace`` has its own, U+FFFD (trained on
  the characters seen fewer than ``--min-count`` times), which the model reads and scores like
  any character. Otherwise the symbol is id -1, "a character the model does not know": read as no
  character (a zero input vector), never generated, and not scored, since the model gives no
  probability to a character it has never seen (bits per character then average over the
  characters it can score, and the report says how many were left out).
- ``"skip"``: each is dropped from the text.
- ``"error"``: a :class:`~rnnkit.errors.DataError` naming them (the strict mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.vocab import CharVocab, show_chars
from .config import UNKNOWN_AT_USE

__all__ = ["UnknownChars", "encode_text"]


@dataclass(frozen=True)
class UnknownChars:
    """What happened to a text's characters outside the vocabulary.

    Attributes:
        count: how many characters of the text were outside it (0: none, nothing was changed).
        distinct: the distinct ones, in order of first appearance.
        policy: ``"replace"`` or ``"skip"``.
        symbol: ``"U+FFFD"`` when replaced by the vocabulary's own trained symbol (read and scored
            as it), ``None`` when replaced by "no character" (id -1: read as a zero input, not
            scored) or dropped.
    """

    count: int
    distinct: tuple[str, ...]
    policy: str
    symbol: str | None

    @property
    def in_score(self) -> bool:
        """Whether the mapped characters count in bits per character (only as a trained U+FFFD)."""
        return self.count > 0 and self.symbol is not None

    def to_dict(self, what: str = "text", scoring: bool = False) -> dict:
        """The report as JSON-ready data, with :meth:`describe`'s sentence as ``"message"`` (None when
        there is nothing to report)."""
        return {"count": self.count, "distinct": list(self.distinct), "policy": self.policy, "symbol": self.symbol,
                "in_score": self.in_score, "message": self.describe(what, scoring) if self.count else None}

    def describe(self, what: str = "text", scoring: bool = False) -> str:
        """One sentence for people, e.g. "2 characters of the text outside the vocabulary (2 distinct:
        'é' (U+00E9), 'ø' (U+00F8)) were mapped to the unknown symbol (read as no character, not scored)".
        ``scoring`` adds how bits per character counted them."""
        n = self.count
        head = (f"{n} character{'s' if n != 1 else ''} of the {what} outside the vocabulary "
                f"({len(self.distinct)} distinct: {show_chars(list(self.distinct))}) {'were' if n != 1 else 'was'}")
        if self.policy == "skip":
            return f"{head} dropped"
        if self.symbol is not None:
            return f"{head} mapped to the vocabulary's unknown symbol {self.symbol}" + (
                " (read and scored as it)" if scoring else "")
        return f"{head} mapped to the unknown symbol (read as no character{', not scored' if scoring else ''})"


def encode_text(vocab: CharVocab, text: str, what: str = "text",
                unknown: str = UNKNOWN_AT_USE) -> tuple[np.ndarray, UnknownChars]:
    """``text`` as ids under the policy ``unknown`` (see the module docstring), and the report of
    its characters outside the vocabulary. ``what`` names the text in messages ("prompt", ...)."""
    ids = vocab.encode(text, what=what, unknown=unknown)  # raises for "error" (and a bad policy)
    count, distinct = vocab.count_unknown(text)
    symbol = f"U+{ord(vocab.UNK):04X}" if unknown == "replace" and vocab.unknown_id != vocab.NO_ID else None
    return ids, UnknownChars(count, tuple(distinct), unknown, symbol)
