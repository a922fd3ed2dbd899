"""Classification scores: accuracy, the confusion matrix and the scores derived from it.

Labels are integer class indices 0..K-1. With C the confusion matrix (rows: true class, columns:
predicted class), for class k: precision_k = C[k,k] / sum_i C[i,k], recall_k = C[k,k] / sum_j C[k,j],
F1_k = 2 precision_k recall_k / (precision_k + recall_k); a 0/0 counts as 0 (scikit-learn's
``zero_division=0``). Balanced accuracy is the mean recall over the classes present in y_true;
macro F1 the mean F1 over the classes present in y_true or y_pred (both as scikit-learn).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import ShapeError

__all__ = ["accuracy", "confusion_matrix", "balanced_accuracy", "macro_f1", "classification_report",
           "format_confusion"]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of equal labels. ``y_pred`` may instead hold scores with one extra last axis
    (classes); its argmax is taken."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if p.ndim == t.ndim + 1:
        p = p.argmax(axis=-1)  # (..., K) scores -> (...) labels
    if t.shape != p.shape:
        raise ShapeError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}; pass "
                         f"labels of the same shape, or scores with one extra class axis")
    if t.size == 0:
        raise ShapeError("y_true and y_pred are empty; there is nothing to score")
    return float(np.mean(t == p))


def _labels_pair(y_true, y_pred, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if p.ndim == t.ndim + 1:
        p = p.argmax(axis=-1)  # (N, K) scores -> (N,) labels
    if t.shape != p.shape or t.ndim != 1:
        raise ShapeError(f"y_true {t.shape} and y_pred {p.shape} must be 1-D arrays of equal length "
                         "(or y_pred scores with one extra class axis)")
    if t.size == 0:
        raise ShapeError("y_true and y_pred are empty; there is nothing to score")
    if not (np.issubdtype(t.dtype, np.integer) and np.issubdtype(p.dtype, np.integer)):
        raise ShapeError("classification labels must be integer class indices 0..K-1")
    k = int(max(t.max(), p.max())) + 1 if n_classes is None else int(n_classes)
    if min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k:
        raise ShapeError(f"class indices must lie in [0, {k}); got values in [{min(t.min(), p.min())}, "
                         f"{max(t.max(), p.max())}]")
    return t.astype(np.int64), p.astype(np.int64), k


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """``(K, K)`` counts: row = true class, column = predicted class."""
    t, p, k = _labels_pair(y_true, y_pred, n_classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    pred, true = cm.sum(0).astype(np.float64), cm.sum(1).astype(np.float64)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    s = precision + recall
    f1 = np.divide(2 * precision * recall, s, out=np.zeros_like(tp), where=s > 0)
    return precision, recall, f1


def balanced_accuracy(y_true, y_pred, n_classes: int | None = None) -> float:
    """Mean recall over the classes that occur in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = cm.sum(1) > 0
    return float(_per_class(cm)[1][present].mean())


def macro_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    """Unweighted mean F1 over the classes that occur in ``y_true`` or ``y_pred``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = (cm.sum(1) + cm.sum(0)) > 0
    return float(_per_class(cm)[2][present].mean())


def classification_report(y_true, y_pred, labels: Sequence[str]) -> dict:
    """Every classification score at once, JSON-ready.

    Returns ``{"n", "accuracy", "balanced_accuracy", "macro_f1", "labels", "confusion_matrix",
    "per_class": {label: {"precision", "recall", "f1", "support"}}}``.
    """
    t, p, k = _labels_pair(y_true, y_pred, len(labels))
    cm = confusion_matrix(t, p, k)
    precision, recall, f1 = _per_class(cm)
    return {"n": int(t.size), "accuracy": accuracy(t, p), "balanced_accuracy": balanced_accuracy(t, p, k),
            "macro_f1": macro_f1(t, p, k), "labels": [str(x) for x in labels],
            "confusion_matrix": cm.tolist(),
            "per_class": {str(lab): {"precision": float(precision[i]), "recall": float(recall[i]),
                                     "f1": float(f1[i]), "support": int(cm[i].sum())}
                          for i, lab in enumerate(labels)}}


def format_confusion(cm, labels: Sequence[str]) -> str:
    """A confusion matrix as text: one row per true class, one column per predicted class."""
    cm = np.asarray(cm)
    names = [str(x) for x in labels]
    w0 = max(len("true \\ predicted"), *(len(n) for n in names))
    widths = [max(len(n), len(str(int(cm[:, j].max()))) if cm.size else 1) for j, n in enumerate(names)]
    lines = ["true \\ predicted".ljust(w0) + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths))]
    for i, n in enumerate(names):
        lines.append(n.ljust(w0) + "  " + "  ".join(str(int(v)).rjust(w) for v, w in zip(cm[i], widths)))
    return "\n".join(lines)
