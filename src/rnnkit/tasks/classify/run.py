"""A classification run directory: loading a :class:`~rnnkit.tasks.classify.workflow.ClassifierRun`
back, checked file by file. It is written by :meth:`~rnnkit.tasks.classify.workflow.ClassifierRun.save`
(this module imports the run class, so the class cannot import this module back);
:func:`save_classifier_run` is a thin call of it. The files every kind of run has are written and
checked by :mod:`rnnkit.training.runs`."""

from __future__ import annotations

import os
from pathlib import Path

from ...config import ModelConfig, TrainConfig
from ...training.rundir import consistent_read
from ...training.runs import load_weights, open_run
from .config import ClassifierConfig, SequenceDataConfig
from .model import ClassifierEnsemble, SequenceClassifier
from .workflow import ClassifierRun

__all__ = ["save_classifier_run", "load_classifier_run"]


def save_classifier_run(run: ClassifierRun, out: str | os.PathLike, force: bool = False, plots: bool = True) -> Path:
    """``run.save(out, force, plots)``: see :meth:`~rnnkit.tasks.classify.workflow.ClassifierRun.save`."""
    return run.save(out, force=force, plots=plots)


@consistent_read
def load_classifier_run(path: str | os.PathLike) -> ClassifierRun:
    """Load a classification run directory; its predictions equal the original's bit for bit.

    Every file is checked against the config before the model is built (:mod:`rnnkit.training.runcheck`)."""
    with open_run(path, "classify", {"model": ModelConfig, "head": ClassifierConfig, "data": SequenceDataConfig,
                                     "train": TrainConfig}, ("weights.safetensors", "labels.json")) as run:
        check, (mc, hc, dc, tc), meta, shapes = run
        strings, n_in = shapes["vocab_size"] is not None, shapes["input_size"]
        check.agree(meta["input"] == ("strings" if strings else "series") and meta["n_features"] == n_in
                    and (n_in == 0) == strings, "config.json",
                    f"meta (input {meta['input']!r}, n_features {meta['n_features']}) and shapes (input_size "
                    f"{n_in}, vocab_size {shapes['vocab_size']}) contradict each other")
        check.agree(hc.frame is not None and (hc.frame == 1 or not strings), "config.json",
                    f"the 'head' section's frame ({hc.frame}) is not one a run uses (an integer, 1 for strings)")
        classes = check.labels(shapes["n_classes"])
        vocab = scaler = None
        if strings:
            vocab = check.vocab(shapes["vocab_size"])
        else:
            scaler = check.scaler(n_in)
        sizes = {"classes": len(classes), "input_size": n_in}
        if strings:
            sizes.update(vocab_size=len(vocab), **{"vocab_size x embedding_dim": len(vocab) * hc.embedding_dim})
        n = hc.ensemble
        check.agree(meta["ensemble"] == n and len(meta["member_best_epochs"]) == n and (
            meta["member_val_accuracy"] is None or len(meta["member_val_accuracy"]) == n), "config.json",
            f"the 'head' section's ensemble of {n} and meta's ensemble ({meta['ensemble']}) and per-member "
            "records contradict each other")

        def build():
            one = lambda: SequenceClassifier(n_in, len(classes), mc, hc.pool, vocab_size=shapes["vocab_size"],  # noqa: E731
                                             embedding_dim=hc.embedding_dim, frame=hc.frame)
            return one() if n == 1 else ClassifierEnsemble([one() for _ in range(n)])
        model = load_weights(check, build, meta, mc, sizes)
        history, metrics = check.reports()
    return ClassifierRun(model, classes, dc, mc, hc, tc, scaler, vocab, history, metrics, meta)
