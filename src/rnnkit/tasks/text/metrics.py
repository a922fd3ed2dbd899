"""Character models' scores: bits per character, and the n-gram baselines they are compared with."""

from __future__ import annotations

import math

__all__ = ["bits_per_char", "ngram_bits_per_char"]


def bits_per_char(mean_nll_nats: float) -> float:
    """Convert a mean negative log-likelihood per character from nats to bits: nll / ln 2."""
    return float(mean_nll_nats) / math.log(2.0)


def ngram_bits_per_char(train_text: str, text: str, n: int, alphabet: int) -> float:
    """Bits per character of ``text[1:]`` under an add-one (Laplace) smoothed character n-gram.

    ``P(c | h) = (count(h, c) + 1) / (count(h) + alphabet)`` with counts from ``train_text`` and
    ``h`` the ``n - 1`` preceding characters (fewer at the start of ``text``, using the counts of
    that shorter order). ``n = 1`` is the add-one unigram.
    """
    if n < 1 or alphabet < 1:
        raise ValueError("n and alphabet must be at least 1")
    ctx: list[dict[str, int]] = [dict() for _ in range(n)]
    joint: list[dict[str, int]] = [dict() for _ in range(n)]
    for k in range(n):  # order k: k characters of context
        for i in range(k, len(train_text)):
            h = train_text[i - k:i]
            ctx[k][h] = ctx[k].get(h, 0) + 1
            joint[k][h + train_text[i]] = joint[k].get(h + train_text[i], 0) + 1
    total = 0.0
    for i in range(1, len(text)):
        k = min(n - 1, i)
        h = text[i - k:i]
        total -= math.log2((joint[k].get(h + text[i], 0) + 1) / (ctx[k].get(h, 0) + alphabet))
    return total / (len(text) - 1)
