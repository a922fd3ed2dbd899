"""Characters <-> integer ids, with an explicit policy for characters the vocabulary lacks.

Used by the character language model (:mod:`rnnkit.tasks.text`) and by string classification
(:mod:`rnnkit.tasks.classify`). Saved as ``vocab.json`` in a run directory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["CharVocab", "show_chars"]

POLICIES = ("error", "skip", "replace")


def show_chars(chars: Sequence[str], limit: int = 8) -> str:
    """Characters for a message: ``'é' (U+00E9), 'ø' (U+00F8)``, the first ``limit`` of them."""
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


class CharVocab:
    """The characters a model knows, in a fixed order (id = position).

    ``unknown`` says what :meth:`encode` does with a character outside the vocabulary:

    - ``"error"`` (default): raise a :class:`DataError` naming the characters;
    - ``"skip"``: drop them;
    - ``"replace"``: map them to :attr:`UNK` (U+FFFD), which then has its own id (always 0).
      :meth:`build` with ``min_count > 1`` also maps the training text's rare characters to it,
      so the model learns what to do with a character it does not know.

    :meth:`encode` can be given another policy for one call (``unknown=``). ``"replace"`` on a
    vocabulary without :attr:`UNK` maps unknown characters to :attr:`NO_ID` (-1): "a character
    the model does not know", which a model reads as no character (a zero input vector, see
    :class:`rnnkit.tasks.text.model.CharLM`) and never predicts.
    """

    UNK = "\ufffd"
    NO_ID = -1

    def __init__(self, chars: Iterable[str], unknown: str = "error") -> None:
        if unknown not in POLICIES:
            raise ConfigError(f"unknown must be one of {', '.join(POLICIES)}; got {unknown!r}")
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ConfigError("a CharVocab holds single characters")
        if len(set(chars)) != len(chars):
            raise ConfigError("a CharVocab cannot list a character twice")
        if unknown == "replace" and self.UNK not in chars:
            chars = [self.UNK] + chars
        self.chars: tuple[str, ...] = tuple(chars)
        self.unknown = unknown
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def build(cls, texts: str | Iterable[str], unknown: str = "error", min_count: int = 1) -> CharVocab:
        """The sorted characters of ``texts`` that occur at least ``min_count`` times."""
        counts: Counter[str] = Counter()
        for t in [texts] if isinstance(texts, str) else texts:
            counts.update(t)
        if min_count > 1 and unknown == "error":
            raise ConfigError("min_count > 1 leaves rare characters out of the vocabulary; choose "
                              "unknown='replace' (they share one id) or 'skip' (they are dropped)")
        return cls(sorted(c for c, n in counts.items() if n >= min_count), unknown)

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self.index

    def missing(self, text: str) -> list[str]:
        """The distinct characters of ``text`` outside the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.index))

    @property
    def unknown_id(self) -> int:
        """The id ``"replace"`` gives a character outside the vocabulary: :attr:`UNK`'s when the
        vocabulary has it, else :attr:`NO_ID`."""
        return self.index.get(self.UNK, self.NO_ID)

    def count_unknown(self, text: str) -> tuple[int, list[str]]:
        """``(characters of text outside the vocabulary, the distinct ones in order of appearance)``."""
        outside = [c for c in text if c not in self.index]
        return len(outside), list(dict.fromkeys(outside))

    def encode(self, text: str, what: str = "text", unknown: str | None = None) -> np.ndarray:
        """``text`` as an int64 array of ids, applying the unknown-character policy ``unknown``
        (by default the vocabulary's own, :attr:`unknown`).

        ``what`` names the text in error messages ("prompt", "text in data row 3", ...).
        """
        policy = self.unknown if unknown is None else unknown
        if policy not in POLICIES:
            raise ConfigError(f"unknown must be one of {', '.join(POLICIES)}; got {policy!r}")
        try:
            return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError:
            pass
        missing = self.missing(text)
        if policy == "error":
            fix = ("use unknown='replace' (--unknown replace) to map them to the unknown symbol, or 'skip' to drop "
                   "them" if unknown is not None else "train with unknown='replace' or 'skip' (--unknown)")
            raise DataError(f"the {what} contains {len(missing)} character(s) the model's vocabulary lacks: "
                            f"{show_chars(missing)}; remove them, or {fix}; the vocabulary has {len(self)} "
                            f"characters") from None
        if policy == "skip":
            return np.array([self.index[c] for c in text if c in self.index], dtype=np.int64)
        unk = self.unknown_id
        return np.array([self.index.get(c, unk) for c in text], dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        """The characters of ``ids``; :attr:`NO_ID` (a character outside the vocabulary) shows as :attr:`UNK`."""
        return "".join(self.UNK if int(i) == self.NO_ID else self.chars[int(i)] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"chars": list(self.chars), "unknown": self.unknown}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharVocab:
        """Rebuild a vocabulary from :meth:`to_dict` output: exactly its keys, distinct single
        characters, a known policy. A ``"replace"`` vocabulary must list :attr:`UNK` itself:
        the constructor would otherwise add it and shift every id the model learnt."""
        if not isinstance(d, dict) or set(d) != {"chars", "unknown"}:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ConfigError(f"not a saved CharVocab (got {got}); expected exactly the keys 'chars' and "
                              "'unknown' written by to_dict()")
        chars = d["chars"]
        if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ConfigError("a saved CharVocab's 'chars' must be a list of single characters")
        if d["unknown"] == "replace" and cls.UNK not in chars:
            raise ConfigError("a saved CharVocab with unknown='replace' must list U+FFFD (the unknown "
                              "character's id); this one does not")
        return cls(chars, d["unknown"])

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters, unknown={self.unknown!r})"
