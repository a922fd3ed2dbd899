"""A classification run directory: saving a :class:`~rnnkit.tasks.classify.workflow.ClassifierRun`
(config, weights, labels, scaler or vocabulary, reports, confusion matrix and plots) and loading it back.
The files every kind of run has are written and checked by :mod:`rnnkit.training.runs`."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ...config import ModelConfig, TrainConfig
from ...training.plots import plot_confusion_matrix
from ...training.runcheck import RunCheck
from ...training.rundir import consistent_read
from ...training.runs import load_weights, loading, read_config, write_json, write_run_dir, write_run_files
from .config import ClassifierConfig, SequenceDataConfig
from .model import SequenceClassifier
from .workflow import ClassifierRun

__all__ = ["save_classifier_run", "load_classifier_run"]


def save_classifier_run(run: ClassifierRun, out: str | os.PathLike, force: bool = False, plots: bool = True) -> Path:
    """Write ``run`` atomically: config.json, weights.safetensors, labels.json, scaler.json or
    vocab.json, history.csv, metrics.json, confusion_matrix.csv and the plots."""
    def write(d: Path) -> None:
        sections = {"model": run.model_config.to_dict(), "head": run.head_config.to_dict(),
                    "data": run.data_config.to_dict(), "train": run.train_config.to_dict(), "meta": run.meta,
                    "shapes": {"input_size": run.meta["n_features"], "n_classes": len(run.classes),
                               "vocab_size": None if run.vocab is None else len(run.vocab)}}
        write_run_files(d, "classify", sections, run.model, run.history, run.metrics,
                        curve_title=f"{run.model_config.cell} classifier: cross-entropy" if plots else None)
        write_json(d / "labels.json", {"classes": list(run.classes)})
        if run.scaler is not None:
            write_json(d / "scaler.json", run.scaler.to_dict())
        if run.vocab is not None:
            write_json(d / "vocab.json", run.vocab.to_dict())
        if run.metrics:
            part = "test" if "test" in run.metrics else "validation" if "validation" in run.metrics else "train"
            cm = run.metrics[part]["confusion_matrix"]
            pd.DataFrame(cm, index=pd.Index(run.classes, name="true"), columns=list(run.classes)).to_csv(
                d / "confusion_matrix.csv")
            if plots:
                plot_confusion_matrix(cm, run.classes, d / "confusion_matrix.png",
                                      title=f"{run.model_config.cell} classifier, {part} data")
    return write_run_dir(out, write, force, protect=[run.data_config.source, run.data_config.test_source])


@consistent_read
def load_classifier_run(path: str | os.PathLike) -> ClassifierRun:
    """Load a classification run directory; its predictions equal the original's bit for bit.

    Every file is checked against the config before the model is built (:mod:`rnnkit.training.runcheck`)."""
    d = Path(path)
    config = read_config(d, "classify", ("weights.safetensors", "labels.json"))
    check = RunCheck(d, "classify")
    with loading(d, "classify"):
        s, meta, shapes = check.sections(config, {"model": ModelConfig, "head": ClassifierConfig,
                                                  "data": SequenceDataConfig, "train": TrainConfig})
        mc, hc, dc, tc = s["model"], s["head"], s["data"], s["train"]
        strings, n_in = shapes["vocab_size"] is not None, shapes["input_size"]
        check.agree(meta["input"] == ("strings" if strings else "series") and meta["n_features"] == n_in
                    and (n_in == 0) == strings, "config.json",
                    f"meta (input {meta['input']!r}, n_features {meta['n_features']}) and shapes (input_size "
                    f"{n_in}, vocab_size {shapes['vocab_size']}) contradict each other")
        classes = check.labels(shapes["n_classes"])
        vocab = scaler = None
        if strings:
            vocab = check.vocab(shapes["vocab_size"])
        else:
            scaler = check.scaler(n_in)
        sizes = {"classes": len(classes), "input_size": n_in}
        if strings:
            sizes.update(vocab_size=len(vocab), **{"vocab_size x embedding_dim": len(vocab) * hc.embedding_dim})
        model = load_weights(check, lambda: SequenceClassifier(n_in, len(classes), mc, hc.pool, vocab_size=shapes[
            "vocab_size"], embedding_dim=hc.embedding_dim), meta, mc, sizes)
        history, metrics = check.reports()
    return ClassifierRun(model, classes, dc, mc, hc, tc, scaler, vocab, history, metrics, meta)
