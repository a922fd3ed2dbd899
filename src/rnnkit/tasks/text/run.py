"""A character-model run directory: saving a :class:`~rnnkit.tasks.text.workflow.TextRun` (config,
weights, vocabulary, reports and a sample) and loading it back. The files every kind of run has are
written and checked by :mod:`rnnkit.training.runs`."""

from __future__ import annotations

import os
from pathlib import Path

from ...config import ModelConfig, TrainConfig
from ...training.runcheck import RunCheck
from ...training.rundir import consistent_read
from ...training.runs import load_weights, loading, read_config, write_json, write_run_dir, write_run_files
from .config import TextConfig
from .model import CharLM
from .workflow import TextRun

__all__ = ["save_text_run", "load_text_run"]


def save_text_run(run: TextRun, out: str | os.PathLike, force: bool = False, plots: bool = True) -> Path:
    """Write ``run`` atomically: config.json, weights.safetensors, vocab.json, history.csv,
    metrics.json, sample.txt (300 characters, seed 0) and learning_curve.png."""
    sample = run.meta["first_char"] + run.generate(length=300, temperature=1.0, seed=0)

    def write(d: Path) -> None:
        sections = {"model": run.model_config.to_dict(), "text": run.text_config.to_dict(),
                    "train": run.train_config.to_dict(), "meta": run.meta,
                    "shapes": {"vocab_size": len(run.vocab), "embedding_dim": run.text_config.embedding_dim}}
        title = f"{run.model_config.cell} character model: cross-entropy (nats/char)"
        write_run_files(d, "text", sections, run.model, run.history, run.metrics,
                        curve_title=title if plots else None)
        write_json(d / "vocab.json", run.vocab.to_dict())
        (d / "sample.txt").write_text(sample + "\n", encoding="utf-8")
    return write_run_dir(out, write, force, protect=[run.text_config.source])


@consistent_read
def load_text_run(path: str | os.PathLike) -> TextRun:
    """Load a text run directory; its bits per character and samples equal the original's.

    Every file is checked against the config before the model is built (:mod:`rnnkit.training.runcheck`)."""
    d = Path(path)
    config = read_config(d, "text", ("weights.safetensors", "vocab.json"))
    check = RunCheck(d, "text")
    with loading(d, "text"):
        s, meta, shapes = check.sections(config, {"model": ModelConfig, "text": TextConfig, "train": TrainConfig})
        mc, xc, tc = s["model"], s["text"], s["train"]
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
