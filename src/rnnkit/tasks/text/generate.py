"""Generating with a character language model: sampling and completion suggestions.

:func:`generate` primes the state on a prompt, then samples one character at a time from
``softmax(logits / temperature)``, optionally restricted to the ``top_k`` most likely characters,
with a seeded :class:`torch.Generator` (the same seed gives the same text). :func:`generate_iter`
yields the same text in chunks as it is made, for long outputs (``rnnkit text generate`` prints
each chunk at once); :func:`generate` joins it. :func:`suggest` is the
autosuggest use case: the most likely next characters, and the most likely completions of the
current word found by a beam search.

Characters of a prompt outside the vocabulary follow ``unknown`` (:mod:`rnnkit.tasks.text.data`; by
default they are mapped to the unknown symbol): :func:`suggest` reports them in its result,
:func:`generate_iter` and :func:`generate` in an :class:`~rnnkit.errors.RnnkitWarning`.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterator

import torch
from torch import Tensor

from ...data.vocab import CharVocab
from ...errors import ConfigError, DataError, RnnkitWarning
from .config import UNKNOWN_AT_USE
from .data import UnknownChars, encode_text
from .model import CharLM

__all__ = ["generate", "generate_iter", "suggest", "pick_next", "BOUNDARY", "CHUNK_CHARS"]

BOUNDARY = frozenset(" \t\n.,;:!?()[]{}\"'`")  # characters that end a word for suggest()


def _prime(model: CharLM, vocab: CharVocab, prompt: str, unknown: str) -> tuple[Tensor, object, UnknownChars]:
    ids, report = encode_text(vocab, prompt, "prompt", unknown)
    if len(ids) == 0:
        raise DataError("the prompt is empty (after dropping unknown characters); give at least one character "
                        "the model knows")
    model.eval()
    logits, state = model(torch.as_tensor(ids)[None])  # (1, L, V)
    return logits[0, -1], state, report


def pick_next(logits: Tensor, temperature: float, top_k: int, generator: torch.Generator) -> int:
    """One character id from ``logits (V,)``: the argmax if ``temperature == 0``, else a draw from
    ``softmax(logits / temperature)`` over the ``top_k`` most likely ids (all if 0)."""
    if temperature == 0:
        return int(logits.argmax())
    z = logits.double() / temperature
    if 0 < top_k < z.numel():
        kth = torch.topk(z, top_k).values[-1]
        z = z.masked_fill(z < kth, float("-inf"))
    return int(torch.multinomial(torch.softmax(z, -1), 1, generator=generator))


#: characters per chunk of :func:`generate_iter`: the first appears within milliseconds, and a
#: long text costs one decode and one write per chunk rather than per character
CHUNK_CHARS = 256


def generate_iter(model: CharLM, vocab: CharVocab, prime: str, length: int = 200, temperature: float = 1.0,
                  top_k: int = 0, seed: int = 0, chunk: int = CHUNK_CHARS, *,
                  unknown: str = UNKNOWN_AT_USE) -> Iterator[str]:
    """``length`` characters sampled after ``prime`` (not repeated), yielded in pieces of ``chunk``
    characters (the last may be shorter) as they are made; joined, exactly :func:`generate`'s text.

    The settings are checked and the state primed on ``prime`` when this is called, so bad input
    raises here rather than at the first ``next()``. Only the current chunk is held in memory.
    """
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise ConfigError(f"length must be a whole number >= 0; got {length!r}")
    if not temperature >= 0:
        raise ConfigError(f"temperature must be >= 0 (0 = always the most likely character); got {temperature!r}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ConfigError(f"top_k must be a whole number >= 0 (0 = no restriction); got {top_k!r}")
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ConfigError(f"chunk must be a whole number >= 1 (characters per piece); got {chunk!r}")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        last, state, report = _prime(model, vocab, prime, unknown)
    if report.count:
        warnings.warn(report.describe("prompt"), RnnkitWarning, stacklevel=2)
    return _sample(model, vocab, last, state, length, temperature, top_k, gen, chunk)


@torch.no_grad()  # on a generator, torch holds no_grad around each resumption
def _sample(model: CharLM, vocab: CharVocab, last: Tensor, state, length: int, temperature: float,
            top_k: int, gen: torch.Generator, chunk: int) -> Iterator[str]:
    out: list[int] = []
    for _ in range(length):
        i = pick_next(last, temperature, top_k, gen)
        out.append(i)
        if len(out) == chunk:
            yield vocab.decode(out)
            out = []
        logits, state = model(torch.tensor([[i]]), state)
        last = logits[0, -1]
    if out:
        yield vocab.decode(out)


def generate(model: CharLM, vocab: CharVocab, prime: str, length: int = 200, temperature: float = 1.0,
             top_k: int = 0, seed: int = 0, *, unknown: str = UNKNOWN_AT_USE) -> str:
    """``length`` characters sampled after ``prime`` (which is not repeated in the result)."""
    return "".join(generate_iter(model, vocab, prime, length, temperature, top_k, seed, unknown=unknown))


def _select(state, idx: Tensor):
    """Rows ``idx`` of a batched state (a tensor or a tuple of tensors, batch on dim 1)."""
    if isinstance(state, Tensor):
        return state.index_select(1, idx)
    return tuple(s.index_select(1, idx) for s in state)


@torch.no_grad()
def suggest(model: CharLM, vocab: CharVocab, prime: str, k: int = 5, max_chars: int = 20,
            boundary=BOUNDARY, *, unknown: str = UNKNOWN_AT_USE) -> dict:
    """Autosuggest after ``prime``: the ``k`` most likely next characters and word completions.

    Completions come from a beam search of width ``k``: a beam ends when the model emits a
    ``boundary`` character (space, punctuation, newline); its probability is that of the whole
    completion *and* the word ending there (summed over the boundary characters). Beams still open after ``max_chars`` characters are
    reported with ``"complete": False``.

    Returns ``{"next": [(char, prob), ...], "completions": [{"text", "prob", "complete"}, ...],
    "unknown": {...}}``, the last the prompt's characters outside the vocabulary
    (:meth:`~rnnkit.tasks.text.data.UnknownChars.to_dict`).
    """
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a whole number >= 1; got {k!r}")
    if not isinstance(max_chars, int) or max_chars < 1:
        raise ConfigError(f"max_chars must be a whole number >= 1; got {max_chars!r}")
    last, state, report = _prime(model, vocab, prime, unknown)
    lp = torch.log_softmax(last.double(), -1)[None]  # (1, V)
    top = torch.topk(lp[0], min(k, len(vocab)))
    nxt = [(vocab.chars[int(i)], float(v.exp())) for v, i in zip(top.values, top.indices)]
    scores, texts, finished = [0.0], [""], []
    for _ in range(max_chars):
        cand = []  # (log-prob, parent beam, char id)
        for b in range(len(texts)):
            t = torch.topk(lp[b], min(k, len(vocab)))
            for v, i in zip(t.values.tolist(), t.indices.tolist()):
                c = vocab.chars[i]
                if c in boundary:
                    if texts[b]:
                        finished.append((scores[b] + v, texts[b]))
                elif c != vocab.UNK:
                    cand.append((scores[b] + v, b, i))
        cand = sorted(cand, reverse=True)[:k]
        finished.sort(reverse=True)
        if not cand or (len(finished) >= k and cand[0][0] <= finished[k - 1][0]):
            cand = []
            break
        state = _select(state, torch.tensor([b for _, b, _ in cand]))
        logits, state = model(torch.tensor([[i] for *_, i in cand]), state)  # (B, 1, V)
        lp = torch.log_softmax(logits[:, -1].double(), -1)
        scores = [s for s, _, _ in cand]
        texts = [texts[b] + vocab.chars[i] for _, b, i in cand]
    merged: dict[str, float] = {}  # the same word ended by different boundaries: add the probabilities
    for s, t in finished:
        merged[t] = merged.get(t, 0.0) + math.exp(s)
    found = [{"text": t, "prob": p, "complete": True}
             for t, p in sorted(merged.items(), key=lambda tp: -tp[1])[:k]]
    if len(found) < k and cand:
        found += [{"text": t, "prob": math.exp(s), "complete": False}
                  for s, t in sorted(zip(scores, texts), reverse=True)[:k - len(found)]]
    return {"next": nxt, "completions": found, "unknown": report.to_dict("prompt")}
