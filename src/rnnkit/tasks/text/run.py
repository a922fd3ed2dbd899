"""A character-model run directory: loading a :class:`~rnnkit.tasks.text.workflow.TextRun` back,
checked file by file. It is written by :meth:`~rnnkit.tasks.text.workflow.TextRun.save` (this module
imports the run class, so the class cannot import this module back); :func:`save_text_run` is a
thin call of it. The files every kind of run has are written and checked by :mod:`rnnkit.training.runs`."""

from __future__ import annotations

import os
from pathlib import Path

from ...config import ModelConfig, TrainConfig
from ...training.rundir import consistent_read
from ...training.runs import load_weights, open_run
from .config import TextConfig
from .model import CharLM
from .workflow import TextRun

__all__ = ["save_text_run", "load_text_run"]


def save_text_run(run: TextRun, out: str | os.PathLike, force: bool = False, plots: bool = True) -> Path:
    """``run.save(out, force, plots)``: see :meth:`~rnnkit.tasks.text.workflow.TextRun.save`."""
    return run.save(out, force=force, plots=plots)


@consistent_read
def load_text_run(path: str | os.PathLike) -> TextRun:
    """Load a text run directory; its bits per character and samples equal the original's.

    Every file is checked against the config before the model is built (:mod:`rnnkit.training.runcheck`)."""
    with open_run(path, "text", {"model": ModelConfig, "text": TextConfig, "train": TrainConfig},
                  ("weights.safetensors", "vocab.json")) as run:
        check, (mc, xc, tc), meta, shapes = run
        check.agree(shapes["embedding_dim"] == xc.embedding_dim, "config.json",
                    f"shapes.embedding_dim {shapes['embedding_dim']} differs from the text section's "
                    f"embedding_dim {xc.embedding_dim}")
        check.agree(len(meta["first_char"]) == 1, "config.json", "meta.first_char must be one character")
        vocab = check.vocab(shapes["vocab_size"])
        V = len(vocab)
        model = load_weights(check, lambda: CharLM(V, mc, xc.embedding_dim), meta, mc,
                             {"vocab_size": V, "vocab_size x embedding_dim": V * xc.embedding_dim})
        history, metrics = check.reports()
    return TextRun(model, vocab, xc, mc, tc, history, metrics, meta)
