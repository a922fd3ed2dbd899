"""Panels the panel tests share: seasonal series of different levels, scales and lengths, and how a
refused panel fit on the command line must look (one line, exit 2, nothing written)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cli_cases import one_line_error


def seasonal_panel(n_series: int, seed: int = 0, length: int = 30) -> pd.DataFrame:
    """Series s0, s1, ... of ``length + k`` rows, no time column: level and noise grow with k (k + 1
    times a season of 6 around 5, noise 0.3 (k + 1))."""
    rng = np.random.default_rng(seed)
    blocks = []
    for k in range(n_series):
        n = length + k
        t = np.arange(n)
        y = (k + 1) * (5 + np.sin(2 * np.pi * t / 6)) + rng.normal(0, 0.3 * (k + 1), n)
        blocks.append(pd.DataFrame({"id": f"s{k}", "y": y}))
    return pd.concat(blocks, ignore_index=True)


def refused_fit(tmp_path, capsys, raw: pd.DataFrame, fit: list, extra: list) -> str:
    """The one-line refusal of the command-line fit ``fit`` (``None`` stands for the panel's CSV file)
    plus ``extra`` on ``raw``; the fit must leave nothing but that file behind."""
    data = tmp_path / "p.csv"
    raw.to_csv(data, index=False)
    err = one_line_error(capsys, [str(data) if a is None else a for a in fit] + ["--out", str(tmp_path / "r"), *extra])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]
    return err
