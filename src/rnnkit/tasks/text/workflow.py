"""Character-level language models in one place, shared by the Python API and ``rnnkit text``.

Data flows one way: UTF-8 text -> the last ``val_frac`` held out -> :class:`~rnnkit.data.vocab.CharVocab`
-> the training part cut into ``batch_size`` contiguous streams -> stateful truncated BPTT with
:func:`rnnkit.training.loop.fit` (the state carried from chunk to chunk, as min-char-rnn does) ->
validation bits per character next to add-one smoothed n-gram baselines -> :class:`TextRun`.
Sampling, priming and completion suggestions live in :mod:`rnnkit.tasks.text.generate`. A run is
written by :meth:`TextRun.save` and read back by :mod:`rnnkit.tasks.text.run` (which imports this
module, so the writing lives here: a run saves itself without an import cycle).

Bits per character of a text ``c_0 .. c_N`` is ``-(1/N) sum_{t=1..N} log2 p(c_t | c_0 .. c_{t-1})``:
the model reads the text from a zero state and scores every character after the first. A
character outside the vocabulary mapped to "no character" (id -1, :mod:`rnnkit.tasks.text.data`) is
read but not scored: N counts the scored characters only, and :func:`evaluate_text` reports both.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ...config import ModelConfig, TrainConfig
from ...data.sources import decode_utf8, load_source
from ...data.vocab import CharVocab
from ...errors import DataError, RnnkitWarning
from ...training.checks import check_training_memory
from ...training.loop import History, fit
from ...training.rundir import write_run_dir
from ...training.runs import write_json, write_run_files
from . import generate as textgen  # called through the module: its functions can be replaced in tests
from .config import TEXT_DEFAULTS, UNKNOWN_AT_USE, TextConfig, refuse_unsupported
from .data import encode_text
from .metrics import ngram_bits_per_char
from .model import CharLM

__all__ = ["TextRun", "read_text", "fit_char_lm", "lm_loss", "nll_sum", "nll_per_char", "bits_per_char",
           "evaluate_text", "make_streams"]


def read_text(source: str | os.PathLike) -> tuple[str, str, str]:
    """``(text, display name, sha256)`` of a UTF-8 text file or ``builtin:NAME``."""
    raw, name, _, _, sha = load_source(source, ("text",))
    text = decode_utf8(raw, name)
    if not text.strip():
        raise DataError(f"{name} contains only whitespace; a language model needs text to learn from")
    return text, name, sha


def make_streams(ids: np.ndarray, streams: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut ``ids`` into ``streams`` contiguous rows of (input, next character): ``(B, N)`` each."""
    per = (len(ids) - 1) // streams
    if per < 2:
        raise DataError(f"the training text has {len(ids)} characters, too few for {streams} parallel streams; "
                        "use a smaller --batch-size or a longer text")
    x = ids[:per * streams].reshape(streams, per)  # (N,) -> (B, N/B)
    y = ids[1:per * streams + 1].reshape(streams, per)
    return torch.as_tensor(x), torch.as_tensor(y)


def lm_loss(model: CharLM, batch):
    """Stateful loss for :func:`rnnkit.training.loop.fit`: ``(x, y, state) -> (mean cross-entropy in nats, state)``."""
    x, y, state = batch
    logits, state = model(x, state)  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), state


@torch.no_grad()
def nll_sum(model: CharLM, ids: np.ndarray, chunk: int = 4096) -> tuple[float, int]:
    """``(summed negative log-likelihood in nats, characters scored)`` of ``ids[1:]`` given the
    preceding ids, from a zero state. Ids -1 (characters outside the vocabulary) are read as no
    character and not scored. The text is fed in chunks with the state carried, so any length fits."""
    if len(ids) < 2:
        raise DataError("scoring a text needs at least 2 characters (the first is only read, never scored)")
    model.eval()
    ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    state, total, scored = None, 0.0, 0
    for s in range(0, len(ids_t) - 1, chunk):
        x = ids_t[s:s + chunk][None]  # (1, T)
        y = ids_t[s + 1:s + chunk + 1][None]
        x = x[:, :y.shape[1]]
        logits, state = model(x, state)
        total += float(F.cross_entropy(logits[0].double(), y[0], reduction="sum", ignore_index=-1))
        scored += int((y >= 0).sum())
    return total, scored


def _mean(total: float, scored: int) -> float:
    if scored == 0:
        raise DataError("no character of the text after the first is in the model's vocabulary; there is "
                        "nothing to score")
    return total / scored


def nll_per_char(model: CharLM, ids: np.ndarray, chunk: int = 4096) -> float:
    """Mean negative log-likelihood (nats) per scored character (:func:`nll_sum`)."""
    return _mean(*nll_sum(model, ids, chunk))


def evaluate_text(model: CharLM, vocab: CharVocab, text: str, unknown: str | None = UNKNOWN_AT_USE) -> dict:
    """Bits per character of ``text`` and what was scored: ``{"bits_per_char", "chars" (of the text),
    "scored" (characters scored), "unknown" (:meth:`UnknownChars.to_dict`)}``.

    ``unknown`` is the policy for characters outside the vocabulary (:mod:`rnnkit.tasks.text.data`;
    None: the vocabulary's own, as training used)."""
    ids, report = encode_text(vocab, text, "text", vocab.unknown if unknown is None else unknown)
    total, scored = nll_sum(model, ids)
    return {"bits_per_char": _mean(total, scored) / math.log(2.0), "chars": len(text), "scored": scored,
            "unknown": report.to_dict("text", scoring=True)}


def bits_per_char(model: CharLM, vocab: CharVocab, text: str, unknown: str | None = UNKNOWN_AT_USE) -> float:
    """Bits per character of ``text`` under ``model`` (see the module docstring): :func:`evaluate_text`'s
    number; characters outside the vocabulary are reported in an :class:`~rnnkit.errors.RnnkitWarning`."""
    result = evaluate_text(model, vocab, text, unknown)
    if result["unknown"]["message"]:
        warnings.warn(result["unknown"]["message"], RnnkitWarning, stacklevel=2)
    return result["bits_per_char"]


@dataclass
class TextRun:
    """A trained character language model with its vocabulary, settings and scores.

    :func:`load_text_run` returns one. :meth:`bits_per_char` scores a text; :meth:`generate` and
    :meth:`suggest` are :func:`rnnkit.tasks.text.generate.generate` and
    :func:`rnnkit.tasks.text.generate.suggest`.
    """

    model: CharLM
    vocab: CharVocab
    text_config: TextConfig
    model_config: ModelConfig
    train_config: TrainConfig
    history: History | None = None
    metrics: dict | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def bits_per_char(self, text: str, unknown: str | None = UNKNOWN_AT_USE) -> float:
        return bits_per_char(self.model, self.vocab, text, unknown)

    def evaluate(self, text: str, unknown: str | None = UNKNOWN_AT_USE) -> dict:
        """:func:`evaluate_text`: bits per character, characters scored and those outside the vocabulary."""
        return evaluate_text(self.model, self.vocab, text, unknown)

    def generate(self, prime: str = "", length: int = 200, temperature: float = 1.0, top_k: int = 0,
                 seed: int = 0, unknown: str = UNKNOWN_AT_USE) -> str:
        """``length`` sampled characters after ``prime`` (default: the corpus' first character)."""
        return textgen.generate(self.model, self.vocab, prime or self.meta["first_char"], length, temperature, top_k,
                                seed, unknown=unknown)

    def generate_iter(self, prime: str = "", length: int = 200, temperature: float = 1.0, top_k: int = 0,
                      seed: int = 0, chunk: int | None = None, unknown: str = UNKNOWN_AT_USE) -> Iterator[str]:
        """:meth:`generate`'s text in pieces as it is made (:func:`rnnkit.tasks.text.generate.generate_iter`;
        ``chunk`` characters each, by default :data:`rnnkit.tasks.text.generate.CHUNK_CHARS`)."""
        return textgen.generate_iter(self.model, self.vocab, prime or self.meta["first_char"], length, temperature,
                                     top_k, seed, textgen.CHUNK_CHARS if chunk is None else chunk, unknown=unknown)

    def suggest(self, prime: str, k: int = 5, max_chars: int = 20, unknown: str = UNKNOWN_AT_USE) -> dict:
        return textgen.suggest(self.model, self.vocab, prime, k, max_chars, unknown=unknown)

    def save(self, out: str | os.PathLike, force: bool = False, plots: bool = True) -> Path:
        """Write the run directory ``out`` atomically (refusing an existing one unless ``force``):
        config.json, weights.safetensors, vocab.json, history.csv, metrics.json, sample.txt (300
        characters, seed 0) and, with ``plots``, learning_curve.png."""
        sample = self.meta["first_char"] + self.generate(length=300, temperature=1.0, seed=0)

        def write(d: Path) -> None:
            sections = {"model": self.model_config.to_dict(), "text": self.text_config.to_dict(),
                        "train": self.train_config.to_dict(), "meta": self.meta,
                        "shapes": {"vocab_size": len(self.vocab), "embedding_dim": self.text_config.embedding_dim}}
            title = f"{self.model_config.cell} character model: cross-entropy (nats/char)"
            write_run_files(d, "text", sections, self.model, self.history, self.metrics,
                            curve_title=title if plots else None)
            write_json(d / "vocab.json", self.vocab.to_dict())
            (d / "sample.txt").write_text(sample + "\n", encoding="utf-8")
        return write_run_dir(out, write, force, protect=[self.text_config.source])


def fit_char_lm(text_config: TextConfig | None = None, model_config: ModelConfig | None = None,
                train_config: TrainConfig | None = None, *, text: str | None = None, quiet: bool = False,
                callbacks=None, dtype: torch.dtype = torch.float32, baselines: bool = True) -> TextRun:
    """Train a character language model on ``text_config.source`` (or ``text``) and score it.

    ``callbacks`` are called after every epoch with its history row, as in every job's ``fit_X``;
    ``quiet`` hides the progress bar.

    ``train_config.batch_size`` is the number of parallel streams; ``epochs``, ``stateful``,
    ``tbptt`` and ``shuffle`` are set from ``text_config`` (``steps`` rounded to whole passes,
    ``seq_len``), and the validation loss is checked about 10 times per run (``check_every``); a
    ``train_config`` that sets them otherwise, or sets anything else a character model does not
    use, is refused (:func:`rnnkit.tasks.text.config.refuse_unsupported`). Settings left as None start from
    :data:`rnnkit.tasks.text.config.TEXT_DEFAULTS`, as the command line does. Returns a run whose metrics
    hold training and validation bits per character and,
    with ``baselines``, those of add-one unigram, bigram and trigram models on the same split.
    """
    xc, mc = text_config or TextConfig(), model_config or TEXT_DEFAULTS[0]
    tc = train_config or TEXT_DEFAULTS[1]
    refuse_unsupported(mc, tc, text=xc)
    if text is None:
        text, name, sha = read_text(xc.source)
    else:
        if not text.strip():
            raise DataError("the text contains only whitespace; a language model needs text to learn from")
        name, sha = "<text>", hashlib.sha256(text.encode("utf-8")).hexdigest()
    n_val = int(round(len(text) * xc.val_frac))
    train_text, val_text = text[:len(text) - n_val], text[len(text) - n_val:]
    vocab = CharVocab.build(text, xc.unknown, xc.min_count)  # the whole text's characters (no counts leak)
    x, y = make_streams(vocab.encode(train_text, what="training text"), tc.batch_size)
    per_epoch = math.ceil(x.shape[1] / xc.seq_len)
    epochs = max(1, round(xc.steps / per_epoch))
    # scoring the validation text is one long sequential pass: check it about 10 times per run
    tc = tc.replace(epochs=epochs, stateful=True, tbptt=xc.seq_len, shuffle=False, loss="ce",
                    check_every=max(tc.check_every, epochs // 10))
    val = None
    if len(val_text) >= 2:
        v = torch.as_tensor(vocab.encode(val_text, what="validation text"))
        val = (v[None, :-1], v[None, 1:])  # one stream, scored from a zero state
    check_training_memory(mc, xc.embedding_dim or len(vocab), len(vocab), tc.batch_size, xc.seq_len,
                          (len(vocab), xc.embedding_dim) if xc.embedding_dim else None,
                          itemsize=torch.empty(0, dtype=dtype).element_size())
    torch.manual_seed(tc.seed)
    model = CharLM(len(vocab), mc, xc.embedding_dim).to(dtype)
    history = fit(model, lm_loss, (x, y), val, tc, quiet=quiet, callbacks=list(callbacks or ()))
    meta = {"data_source": name, "data_sha256": sha, "n_chars": len(text), "train_chars": len(train_text),
            "val_chars": len(val_text), "streams": tc.batch_size, "steps_per_epoch": per_epoch,
            "epochs": epochs, "steps": per_epoch * len(history.rows), "first_char": text[0],
            "dtype": str(dtype).replace("torch.", "")}
    run = TextRun(model, vocab, xc, mc, tc, history, None, meta)
    # scored as trained: rare characters under the vocabulary's own policy (skipped, or its U+FFFD)
    run.metrics = {"train": {"bits_per_char": run.evaluate(train_text, None)["bits_per_char"], "chars": len(train_text)}}
    if val is not None:
        run.metrics["validation"] = {"bits_per_char": run.evaluate(val_text, None)["bits_per_char"],
                                     "chars": len(val_text)}
        if baselines:
            run.metrics["baselines"] = {
                f"add-one {label}": {"bits_per_char": ngram_bits_per_char(train_text, val_text, n, len(vocab))}
                for n, label in ((1, "unigram"), (2, "bigram"), (3, "trigram"))}
    return run
