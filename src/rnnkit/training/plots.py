"""Plots: learning curves and forecasts (matplotlib with the file-only Agg backend)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["plot_learning_curve", "plot_forecast", "plot_series_prediction"]


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)  # never opens a window; works without a display
    import matplotlib.pyplot as plt
    return plt


def plot_learning_curve(history, path: str | os.PathLike, title: str = "Learning curve") -> None:
    """Training (and validation) loss per epoch on a log scale, best epoch marked."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history.rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, history.train_loss, label="train")
    val = np.asarray(history.val_loss, dtype=float)
    if np.isfinite(val).any():
        ok = np.isfinite(val)
        ax.plot(np.asarray(epochs)[ok], val[ok], "o-" if ok.sum() < 30 else "-", ms=3, label="validation")
    if history.best_epoch is not None:
        ax.axvline(history.best_epoch, color="grey", ls=":", label=f"best epoch {history.best_epoch}")
    losses = np.asarray(history.train_loss, dtype=float)
    if (losses > 0).all():
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_forecast(index, history_values: np.ndarray, targets: Sequence[str], path: str | os.PathLike,
                  future_index=None, forecast: np.ndarray | None = None, test_start: int | None = None,
                  test_index=None, test_pred: np.ndarray | None = None, title: str = "Forecast",
                  band: tuple[np.ndarray, np.ndarray, str] | None = None) -> None:
    """One panel per target: the observed series, one-window-ahead test forecasts, and the future.

    ``history_values (N, C)`` over ``index``; ``test_pred (W, C)`` over ``test_index`` (the first
    step of each test window's forecast); ``forecast (H, C)`` over ``future_index``; ``band``
    ``(lo (H, C), hi (H, C), label)`` is shaded around the future forecast (an interval's ends).
    """
    plt = _pyplot()
    C = len(targets)
    fig, axes = plt.subplots(C, 1, figsize=(9, 3.2 * C), squeeze=False)
    for c, ax in enumerate(axes[:, 0]):
        ax.plot(index, history_values[:, c], color="black", lw=1.2, label="actual")
        if test_start is not None and test_start < len(index):
            ax.axvspan(index[test_start], index[-1], color="grey", alpha=0.12, label="test rows")
        if test_pred is not None:
            ax.plot(test_index, test_pred[:, c], color="tab:orange", lw=1.2, label="forecast (test, 1 step)")
        if forecast is not None:
            ax.plot(future_index, forecast[:, c], color="tab:blue", marker="o", ms=3, lw=1.5, label="forecast (future)")
        if band is not None and future_index is not None:
            ax.fill_between(future_index, band[0][:, c], band[1][:, c], color="tab:blue", alpha=0.2, label=band[2])
        ax.set(title=f"{title}: {targets[c]}", ylabel=targets[c])
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_series_prediction(actual: np.ndarray, predicted: np.ndarray, path: str | os.PathLike,
                           x=None, split: int | None = None, title: str = "Prediction",
                           labels: tuple[str, str] = ("actual", "predicted")) -> None:
    """A single series against a prediction (the seed tutorials' curves); ``split`` marks where
    free-running generation starts."""
    plt = _pyplot()
    x = np.arange(len(actual)) if x is None else x
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(x[:len(actual)], actual, color="black", lw=1.2, label=labels[0])
    ax.plot(x[len(actual) - len(predicted):len(actual)] if len(predicted) <= len(actual) else np.arange(len(predicted)),
            predicted, color="tab:orange", lw=1.4, ls="--", label=labels[1])
    if split is not None:
        ax.axvline(x[split], color="grey", ls=":", label="generation starts")
    ax.set(title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion_matrix(cm, labels: Sequence[str], path: str | os.PathLike, title: str = "Confusion matrix",
                          normalize: bool = True) -> None:
    """A confusion matrix as a heat map (rows: true class, columns: predicted), each cell labelled
    with its count; with ``normalize`` the colours show the fraction of each true class (recall)."""
    plt = _pyplot()
    cm = np.asarray(cm, dtype=float)
    k = len(labels)
    rows = cm.sum(1, keepdims=True)
    shade = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
    size = min(max(3.5, 1.2 + 0.55 * k), 14)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(shade, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(k), [str(x) for x in labels], rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), [str(x) for x in labels])
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if shade[i, j] > 0.5 * (shade.max() or 1) else "black")
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ += ["plot_confusion_matrix"]
