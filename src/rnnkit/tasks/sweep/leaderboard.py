"""A sweep's leaderboard: its jobs ranked on one metric, as ``leaderboard.csv`` and a bar plot
``leaderboard.png``.

Trained jobs come first, lowest ``rank_by`` first (ties and jobs without the metric, such as a
validation score of a run without validation rows, in job order after them); then the jobs ASHA
stopped early (``--prune asha``), those stopped later first, then by the loss their last rung
judged; then the failed jobs with their
messages, then those interrupted or never started. Only trained jobs with the metric get a rank.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Sequence

from ...training.atomic import write_file_atomic
from .config import RANK_BY
from .grid import describe

__all__ = ["rank_rows", "write_leaderboard", "plot_leaderboard", "METRICS", "settings_text"]

#: the score columns, in the CSV's order
METRICS = RANK_BY
_STATUS_ORDER = {"ok": 0, "pruned": 1, "failed": 2, "interrupted": 3}


def _value(row: dict, metric: str) -> float:
    v = row.get(metric)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.inf


def rank_rows(rows: Sequence[dict], rank_by: str) -> list[dict]:
    """The rows in the leaderboard's order, each with ``rank`` (1 = best; None when unranked)."""
    def within(r: dict) -> tuple:
        if r["status"] == "ok":
            return (_value(r, rank_by),)
        if r["status"] == "pruned":  # those that went further first, then by the loss their last rung judged
            rungs = r.get("rungs") or {}
            last = rungs[max(rungs, key=int)] if rungs else math.inf
            return (-(r.get("epochs") or 0), last if isinstance(last, (int, float)) else math.inf)
        return ()
    order = sorted(rows, key=lambda r: (_STATUS_ORDER.get(r["status"], 4), within(r)))
    ranked, k = [], 0
    for r in order:
        has = r["status"] == "ok" and _value(r, rank_by) < math.inf
        k += has
        ranked.append({**r, "rank": k if has else None})
    return ranked


def settings_text(settings: dict) -> str:
    """``hidden_size=16 lr=0.003``: a job's grid values as the command line writes them."""
    return " ".join(f"{k}={describe(v)}" for k, v in settings.items())


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def write_leaderboard(rows: Sequence[dict], keys: Sequence[str], path: str | os.PathLike) -> Path:
    """``leaderboard.csv``: rank, job, status, the scores, one column per grid key, the training's
    epochs, best epoch, engine and seconds, and the message of a job that did not train."""
    columns = ["rank", "job", "status", *METRICS, *keys, "best_epoch", "epochs", "engine", "seconds", "message"]

    def write(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for r in rows:
                values = {**r, **{k: describe(r["settings"][k]) for k in keys}}
                w.writerow([_cell(values.get(c)) for c in columns])
    return write_file_atomic(path, write)


#: most bars the plot shows (the best ones); the CSV has every job
MAX_BARS = 40


def plot_leaderboard(rows: Sequence[dict], rank_by: str, path: str | os.PathLike, title: str = "") -> Path | None:
    """Horizontal bars of ``rank_by`` for the ranked jobs, best at the top (None when none is ranked)."""
    ranked = [r for r in rows if r.get("rank") is not None][:MAX_BARS]
    if not ranked:
        return None
    import matplotlib
    matplotlib.use("Agg", force=True)  # never opens a window; works without a display
    import matplotlib.pyplot as plt
    labels = [f"{r['job']}  {settings_text(r['settings'])}" for r in ranked]
    values = [float(r[rank_by]) for r in ranked]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.28 * len(ranked)))
    colors = ["tab:green"] + ["tab:blue"] * (len(ranked) - 1)
    ax.barh(range(len(ranked)), values, color=colors)
    ax.set_yticks(range(len(ranked)), labels, fontsize=8)
    ax.invert_yaxis()  # the best at the top
    positive = all(v > 0 for v in values)
    if positive and max(values) / min(values) > 30:
        ax.set_xscale("log")
    others = len([r for r in rows if r.get("rank") is None])
    shown = "" if len(ranked) == len([r for r in rows if r.get("rank") is not None]) else f", best {len(ranked)} shown"
    ax.set(xlabel=f"{rank_by} (lower is better)",
           title=title or f"{len(rows)} jobs ranked on {rank_by}{shown}"
           + (f"; {others} not ranked (see leaderboard.csv)" if others else ""))
    ax.title.set_fontsize(9)
    fig.tight_layout()

    def write(p: Path) -> None:
        fig.savefig(p, dpi=110, format="png")
    try:
        return write_file_atomic(path, write)
    finally:
        plt.close(fig)
