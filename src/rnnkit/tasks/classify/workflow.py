"""Sequence classification in one place, shared by the Python API and ``rnnkit classify``.

Data flows one way: file -> :class:`~rnnkit.tasks.classify.data.SequenceData` -> stratified split (seeded)
-> per-series z-normalisation (optional) -> scaler fitted on the training steps only (series) or
a :class:`~rnnkit.data.vocab.CharVocab` built from the training strings -> padded tensors with lengths
-> :func:`rnnkit.training.loop.fit` (cross-entropy, optionally class-weighted; for an ensemble, one
member per seed, side by side) -> accuracy, balanced accuracy, macro F1, confusion matrix ->
:class:`ClassifierRun`, written atomically as a run directory
by :meth:`ClassifierRun.save` and read back by :mod:`rnnkit.tasks.classify.run` (which imports this
module, so the writing lives here: a run saves itself without an import cycle).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ...config import ModelConfig, TrainConfig
from ...data.scaler import Scaler
from ...data.vocab import CharVocab
from ...errors import ConfigError, DataError
from ...kernels.trainer import FusedTask
from ...training.checks import check_training_memory
from ...training.loop import History, fit
from ...training.members import threads_are_deterministic, train_side_by_side
from ...training.plots import plot_confusion_matrix
from ...training.rundir import write_run_dir
from ...training.runs import write_json, write_run_files
from .config import CLASSIFY_DEFAULTS, ClassifierConfig, SequenceDataConfig, frame_for, refuse_unsupported
from .data import SequenceData, pad_series, read_sequences, sort_labels, stratified_split, znormalise
from .metrics import classification_report
from .model import ClassifierEnsemble, SequenceClassifier

__all__ = ["ClassifierRun", "fit_classifier", "classification_loss", "balanced_class_weights",
           "classification_fused_task"]


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (K * n_k)`` for each class k (scikit-learn's ``"balanced"``): rare classes weigh more."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return len(y) / (n_classes * np.maximum(counts, 1.0))


def classification_loss(weight: torch.Tensor | None = None):
    """The loss :func:`rnnkit.training.loop.fit` calls: cross-entropy of ``model(x, lengths)`` against ``y``.

    Each batch is cut to its longest sequence first, so short batches cost no padded steps.
    """
    def loss_fn(model, batch):
        x, lengths, y = batch
        T = int(lengths.max())
        return F.cross_entropy(model(x[:, :T], lengths), y, weight=None if weight is None else weight.to(y.device))
    return loss_fn


def classification_fused_task(model: SequenceClassifier, train, val, weight):
    """The same loss for the fused trainer, where it applies: real-valued series (of any lengths:
    the padding is masked; in the model's frames), last-step pooling, one direction; None
    otherwise (the torch loop runs)."""
    if model.pool != "last" or model.embedding is not None or model.rnn.bidirectional:
        return None
    x, lengths = model.framed(train[0], train[1])
    y = train[2]
    if val is not None:
        val = (*model.framed(val[0], val[1]), val[2])
    T = max(x.shape[1], 0 if val is None else val[0].shape[1])

    def padded(t):  # zeros past the end: masked by the lengths, never read
        return t if t.shape[1] == T else F.pad(t, (0, 0, 0, T - t.shape[1]))
    full = bool((lengths == T).all()) and (val is None or bool((val[1] == T).all()))
    return FusedTask("last", "ce", padded(x), y, None if val is None else padded(val[0]),
                     None if val is None else val[2], class_weights=weight,
                     lengths=None if full else lengths, val_lengths=None if full or val is None else val[1])


@dataclass
class ClassifierRun:
    """A trained sequence classifier with what it needs to read new data: classes, scaler or vocabulary.

    :func:`load_classifier_run` returns one; :meth:`predict_proba`, :meth:`predict` and
    :meth:`evaluate` take a :class:`SequenceData` or a path (read with the run's column settings).
    ``model`` is a :class:`ClassifierEnsemble` when ``head_config.ensemble > 1``.
    """

    model: SequenceClassifier | ClassifierEnsemble
    classes: tuple[str, ...]
    data_config: SequenceDataConfig
    model_config: ModelConfig
    head_config: ClassifierConfig
    train_config: TrainConfig
    scaler: Scaler | None = None
    vocab: CharVocab | None = None
    history: History | None = None
    metrics: dict | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def load_data(self, source: str | os.PathLike, require_labels: bool = True) -> SequenceData:
        """Read ``source`` with the run's label/id/text column settings."""
        dc = self.data_config
        return read_sequences(source, dc.label_col, dc.id_col, dc.text_col, require_labels=require_labels)

    def _data(self, data, require_labels: bool) -> SequenceData:
        return data if isinstance(data, SequenceData) else self.load_data(data, require_labels)

    def inputs(self, data: SequenceData) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, lengths)`` as the model reads them: ids ``(N, T)`` or scaled series ``(N, T, F)``."""
        text = self.vocab is not None
        if data.is_text != text:
            raise DataError(f"{data.source} holds {'strings' if data.is_text else 'numeric series'}, but the model "
                            f"was trained on {'strings' if text else 'numeric series'}")
        if text:
            ids = [self.vocab.encode(s, what=f"text of {data.source}, row {i}") for s, i in zip(data.sequences, data.ids)]
            empty = [i for x, i in zip(ids, data.ids) if len(x) == 0]
            if empty:
                raise DataError(f"{data.source}, row {empty[0]}: no character of the text is in the vocabulary")
            lengths = np.array([len(x) for x in ids], dtype=np.int64)
            X = np.zeros((len(ids), int(lengths.max())), dtype=np.int64)
            for r, x in enumerate(ids):
                X[r, :len(x)] = x
            return torch.as_tensor(X), torch.as_tensor(lengths)
        n_feat = self.model.input_size
        if data.n_features != n_feat:
            raise DataError(f"{data.source} has {data.n_features} feature(s) per step, the model was trained on "
                            f"{n_feat}; pass data with the same dimensions")
        seqs = znormalise(data.sequences) if self.data_config.znorm else list(data.sequences)
        X, lengths = pad_series([self.scaler.transform(s) for s in seqs])
        dtype = next(self.model.parameters()).dtype
        return torch.as_tensor(X, dtype=dtype), torch.as_tensor(lengths)

    def encode_labels(self, data: SequenceData) -> np.ndarray:
        """The class index of every label; a label the model never saw is an error."""
        if data.labels is None:
            raise DataError(f"{data.source} has no class labels; evaluation needs labelled data")
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = [lab for lab in dict.fromkeys(data.labels) if lab not in index]
        if unknown:
            raise DataError(f"{data.source} has class(es) {', '.join(map(repr, unknown[:5]))} with no examples in "
                            f"the training data (the model knows {', '.join(self.classes)}); remove those series "
                            "or retrain with examples of them")
        return np.array([index[lab] for lab in data.labels], dtype=np.int64)

    def predict_proba(self, data, batch_size: int = 512) -> np.ndarray:
        """Class probabilities ``(N, K)`` (float64), columns in the order of :attr:`classes`; an
        ensemble's are the mean of its members'."""
        data = self._data(data, require_labels=False)
        return model_proba(self.model, *self.inputs(data), batch_size)

    def predict(self, data) -> list[str]:
        """The most probable class of every sequence."""
        return [self.classes[k] for k in self.predict_proba(data).argmax(1)]

    def evaluate(self, data) -> dict:
        """:func:`rnnkit.tasks.classify.metrics.classification_report` of the predictions on labelled ``data``."""
        data = self._data(data, require_labels=True)
        y = self.encode_labels(data)
        return classification_report(y, self.predict_proba(data).argmax(1), self.classes)

    def predictions_frame(self, data) -> pd.DataFrame:
        """One row per sequence: id, (text,) predicted label, (true label,) one probability per class."""
        data = self._data(data, require_labels=False)
        p = self.predict_proba(data)
        frame = pd.DataFrame({"id": list(data.ids)})
        if data.is_text:
            frame["text"] = list(data.sequences)
        frame["label"] = [self.classes[k] for k in p.argmax(1)]
        if data.labels is not None:
            frame["true"] = list(data.labels)
        for k, c in enumerate(self.classes):
            frame[f"p_{c}"] = p[:, k]
        return frame

    def save(self, out: str | os.PathLike, force: bool = False, plots: bool = True) -> Path:
        """Write the run directory ``out`` atomically (refusing an existing one unless ``force``):
        config.json, weights.safetensors, labels.json, scaler.json or vocab.json, history.csv,
        metrics.json, confusion_matrix.csv and, with ``plots``, the plots."""
        def write(d: Path) -> None:
            sections = {"model": self.model_config.to_dict(), "head": self.head_config.to_dict(),
                        "data": self.data_config.to_dict(), "train": self.train_config.to_dict(), "meta": self.meta,
                        "shapes": {"input_size": self.meta["n_features"], "n_classes": len(self.classes),
                                   "vocab_size": None if self.vocab is None else len(self.vocab)}}
            write_run_files(d, "classify", sections, self.model, self.history, self.metrics,
                            curve_title=f"{self.model_config.cell} classifier: cross-entropy" if plots else None)
            write_json(d / "labels.json", {"classes": list(self.classes)})
            if self.scaler is not None:
                write_json(d / "scaler.json", self.scaler.to_dict())
            if self.vocab is not None:
                write_json(d / "vocab.json", self.vocab.to_dict())
            if self.metrics:
                part = "test" if "test" in self.metrics else "validation" if "validation" in self.metrics else "train"
                cm = self.metrics[part]["confusion_matrix"]
                pd.DataFrame(cm, index=pd.Index(self.classes, name="true"), columns=list(self.classes)).to_csv(
                    d / "confusion_matrix.csv")
                if plots:
                    plot_confusion_matrix(cm, self.classes, d / "confusion_matrix.png",
                                          title=f"{self.model_config.cell} classifier, {part} data")
        return write_run_dir(out, write, force, protect=[self.data_config.source, self.data_config.test_source])


@torch.no_grad()
def model_proba(model: SequenceClassifier | ClassifierEnsemble, X: torch.Tensor, lengths: torch.Tensor,
                batch_size: int = 512) -> np.ndarray:
    """``model.proba`` of inputs ``X (N, T[, F])`` with ``lengths (N,)``, in batches, each cut to its
    longest sequence: ``(N, K)`` float64."""
    model.eval()
    out = []
    for i in range(0, len(X), batch_size):
        L = lengths[i:i + batch_size]
        out.append(model.proba(X[i:i + batch_size, :int(L.max())], L).numpy())
    return np.concatenate(out, 0)


def _check_test(data: SequenceData, test: SequenceData, classes: tuple[str, ...]) -> None:
    if test.is_text != data.is_text or test.n_features != data.n_features:
        raise DataError(f"the test data {test.source} has {test.n_features or 'string'} input(s) per step, the "
                        f"training data {data.n_features or 'string'}; they must match")
    if test.labels is None:
        raise DataError(f"the test data {test.source} has no class labels")
    unknown = [c for c in dict.fromkeys(test.labels) if c not in classes]
    if unknown:
        raise DataError(f"the test data {test.source} has class(es) {', '.join(map(repr, unknown[:5]))} with no "
                        f"examples in the training data {data.source}; a classifier cannot learn a class it never "
                        "sees: add training examples or drop those test series")


def fit_classifier(data_config: SequenceDataConfig | None = None, model_config: ModelConfig | None = None,
                   head_config: ClassifierConfig | None = None, train_config: TrainConfig | None = None, *,
                   data: SequenceData | None = None, test: SequenceData | None = None, quiet: bool = False,
                   callbacks=None, dtype: torch.dtype = torch.float32, ensemble: int | None = None) -> ClassifierRun:
    """Read, split, normalise, train and score: the whole classification job, returned as a run.

    ``callbacks`` are called after every epoch (of the first member) with its history row, as in
    every job's ``fit_X``; ``quiet`` hides the progress bar.

    ``ensemble=N`` (short for ``head_config.replace(ensemble=N)``, which it overrides) trains N
    classifiers from the seeds ``seed`` to ``seed + N - 1`` on one split, side by side, and
    predicts the mean of their class probabilities; the run's ``history`` is the first member's,
    its ``meta`` records every member's best epoch and validation accuracy.

    ``data``/``test`` may be passed already read; otherwise ``data_config.source`` and
    ``test_source`` are read. Metrics are computed on the validation split and the test data.
    Settings left as None start from :data:`rnnkit.tasks.classify.config.CLASSIFY_DEFAULTS` (as the command line
    does); settings classification does not use are refused (:func:`rnnkit.tasks.classify.config.refuse_unsupported`).
    """
    dc, mc = data_config or SequenceDataConfig(), model_config or CLASSIFY_DEFAULTS[0]
    hc, tc = head_config or CLASSIFY_DEFAULTS[1], train_config or CLASSIFY_DEFAULTS[2]
    if ensemble is not None:
        hc = hc.replace(ensemble=ensemble)  # checked here, before anything is read
    refuse_unsupported(mc, tc)
    tc = tc.replace(loss="ce")  # recorded as the loss used
    data = data if data is not None else read_sequences(dc.source, dc.label_col, dc.id_col, dc.text_col)
    _refuse_unused_inputs(data, dc, hc)
    if data.labels is None:
        raise DataError(f"{data.source} has no class labels; training needs labelled data")
    if test is None and dc.test_source:
        test = read_sequences(dc.test_source, dc.label_col, dc.id_col, dc.text_col)
    classes = sort_labels(data.labels)
    if len(classes) < 2:
        raise DataError(f"{data.source} has only one class ({classes[0]!r}); a classifier needs at least two")
    if data.declared_classes:
        absent = [c for c in data.declared_classes if c not in classes]
        if absent:
            raise DataError(f"class(es) {', '.join(map(repr, absent))} declared in the header of {data.source} have "
                            "no examples in the training data; add examples or remove them from @classLabel")
    if test is not None:
        _check_test(data, test, classes)
    # the frame is chosen from the longest training series and stored in the run's settings
    hc = hc.replace(frame=1 if data.is_text and hc.frame is None else frame_for(hc.frame, int(data.lengths.max())))
    train_idx, val_idx = stratified_split(data.labels, dc.val_frac, tc.seed)
    tr = data.subset(train_idx)
    va = data.subset(val_idx) if len(val_idx) else None
    vocab = scaler = None
    if data.is_text:
        vocab = CharVocab.build(tr.sequences, dc.unknown, dc.min_count)
    else:
        seqs = znormalise(tr.sequences) if dc.znorm else tr.sequences
        scaler = Scaler(dc.scaler).fit(np.concatenate(seqs, 0))  # (sum T_i, F): training steps only
    check_training_memory(mc, data.n_features * hc.frame, len(classes), min(tc.batch_size, len(train_idx)),
                          -(-int(data.lengths.max()) // hc.frame), (len(vocab), hc.embedding_dim) if vocab else None,
                          itemsize=torch.empty(0, dtype=dtype).element_size())
    members = []
    for k in range(hc.ensemble):  # built one after another: each one's weights depend only on its seed
        torch.manual_seed(tc.seed + k)
        members.append(SequenceClassifier(data.n_features, len(classes), mc, hc.pool, embedding_dim=hc.embedding_dim,
                                          vocab_size=len(vocab) if vocab else None, frame=hc.frame).to(dtype))
    model = members[0] if hc.ensemble == 1 else ClassifierEnsemble(members)
    meta = {"data_source": data.source, "data_sha256": data.sha256, "n_series": len(data),
            "n_train": len(train_idx), "n_val": len(val_idx), "val_index": val_idx.tolist(),
            "input": "strings" if data.is_text else "series", "n_features": data.n_features,
            "dtype": str(dtype).replace("torch.", ""),
            "test_source": None if test is None else test.source,
            "test_sha256": None if test is None else test.sha256}
    run = ClassifierRun(model, classes, dc, mc, hc, tc, scaler, vocab, meta=meta)
    y_tr = run.encode_labels(tr)
    meta["train_class_counts"] = dict(zip(classes, np.bincount(y_tr, minlength=len(classes)).tolist()))
    weight = None
    if hc.class_weights == "balanced":
        weight = torch.as_tensor(balanced_class_weights(y_tr, len(classes)), dtype=dtype)
    train = (*run.inputs(tr), torch.as_tensor(y_tr))
    val = None if va is None else (*run.inputs(va), torch.as_tensor(run.encode_labels(va)))

    def train_one(k: int, halt) -> History:
        m, c = members[k], tc.replace(seed=tc.seed + k)
        return fit(m, classification_loss(weight), train, val, c, quiet=quiet or hc.ensemble > 1,
                   callbacks=[*(callbacks or () if k == 0 else ()), halt],
                   fused=classification_fused_task(m, train, val, weight))
    histories = train_side_by_side(train_one, hc.ensemble, parallel=threads_are_deterministic(mc))
    run.history = histories[0]
    meta.update(ensemble=hc.ensemble, member_best_epochs=[h.best_epoch or 0 for h in histories],
                member_val_accuracy=None if val is None else [
                    float((model_proba(m, val[0], val[1]).argmax(1) == val[2].numpy()).mean()) for m in members])
    run.metrics = {"train": run.evaluate(tr)}
    if va is not None:
        run.metrics["validation"] = run.evaluate(va)
    if test is not None:
        run.metrics["test"] = run.evaluate(test)
    return run


def _refuse_unused_inputs(data: SequenceData, dc: SequenceDataConfig, hc: ClassifierConfig) -> None:
    """Settings for strings are refused for numeric series and the other way round, never ignored."""
    d, dh = SequenceDataConfig(), ClassifierConfig()
    if data.is_text:
        unused = [n for n, v, dv in (("znorm", dc.znorm, d.znorm), ("scaler", dc.scaler, d.scaler)) if v != dv]
        unused += ["frame"] if hc.frame not in (None, 1) else []  # strings are read character by character
        kind, other = "strings", "numeric series"
    else:
        unused = [n for n, v, dv in (("embedding_dim", hc.embedding_dim, dh.embedding_dim),
                                     ("unknown", dc.unknown, d.unknown), ("min_count", dc.min_count, d.min_count))
                  if v != dv]
        kind, other = "numeric series", "strings"
    if unused:
        raise ConfigError(f"{', '.join(unused)} {'applies' if len(unused) == 1 else 'apply'} to {other}, and "
                          f"{data.source} holds {kind}; leave {'it' if len(unused) == 1 else 'them'} at the default")
