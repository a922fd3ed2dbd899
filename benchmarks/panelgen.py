"""A seeded synthetic panel: many related series in long format (id, time, y), for scale benchmarks
and tests of rnnkit's global model (issue 16).

Series ``i`` of ``T`` monthly steps is

    y_t = level_i * (1 + trend_i * t / T) + scale_i * (amp_i * sin(2 pi t / m + phase_i) + noise_i * e_t)

with ``e_t`` an AR(1) process (coefficient ``phi_i``, unit stationary variance), and per-series draws:
level log-uniform in [1, 1000], scale = level * U(0.05, 0.3), seasonal amplitude U(0, 1.5) (some
series hardly seasonal), noise U(0.1, 1.0), trend U(-0.5, 0.5), phi U(0, 0.9). Levels span three
orders of magnitude, so a global model must scale each series on its own.

Everything is drawn from one ``numpy.random.default_rng(seed)``: the same arguments give the same
frame, bit for bit. Memory: the frame holds ``N * T`` rows of an id (string), a date and a float.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["synthetic_panel", "panel_params"]

SEASON = 12


def panel_params(n_series: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The per-series parameters :func:`synthetic_panel` draws (each an array of ``n_series``)."""
    rng = np.random.default_rng(seed)
    level = np.exp(rng.uniform(np.log(1.0), np.log(1000.0), n_series))
    return {"level": level, "scale": level * rng.uniform(0.05, 0.3, n_series),
            "amp": rng.uniform(0.0, 1.5, n_series), "phase": rng.uniform(0.0, 2 * np.pi, n_series),
            "noise": rng.uniform(0.1, 1.0, n_series), "trend": rng.uniform(-0.5, 0.5, n_series),
            "phi": rng.uniform(0.0, 0.9, n_series), "noise_seed": rng.integers(0, 2**63 - 1, dtype=np.int64)}


def synthetic_values(n_series: int, steps: int, seed: int = 0, season: int = SEASON) -> np.ndarray:
    """The panel's values as an ``(n_series, steps)`` float64 array (row i = series i)."""
    if n_series < 1 or steps < 1 or season < 1:
        raise ValueError(f"n_series, steps and season must be at least 1; got {n_series}, {steps}, {season}")
    p = panel_params(n_series, seed)
    rng = np.random.default_rng(int(p["noise_seed"]))
    shocks = rng.standard_normal((n_series, steps))
    e = np.empty_like(shocks)  # AR(1) with unit stationary variance: e_t = phi e_{t-1} + sqrt(1 - phi^2) z_t
    e[:, 0] = shocks[:, 0]
    root = np.sqrt(1.0 - p["phi"] ** 2)
    for t in range(1, steps):
        e[:, t] = p["phi"] * e[:, t - 1] + root * shocks[:, t]
    t = np.arange(steps)[None, :]  # (1, T)
    col = lambda k: p[k][:, None]  # noqa: E731  (N,) -> (N, 1)
    wave = col("amp") * np.sin(2 * np.pi * t / season + col("phase"))
    return col("level") * (1.0 + col("trend") * t / steps) + col("scale") * (wave + col("noise") * e)


def synthetic_panel(n_series: int, steps: int, seed: int = 0, season: int = SEASON,
                    start: str = "2000-01-01") -> pd.DataFrame:
    """A long DataFrame with columns ``id`` (``"s0"``, ``"s1"``, ...), ``time`` (month starts from
    ``start``) and ``y``: ``n_series * steps`` rows, series after series, each in time order."""
    values = synthetic_values(n_series, steps, seed, season)
    dates = pd.date_range(start, periods=steps, freq="MS")
    ids = np.array([f"s{i}" for i in range(n_series)], dtype=object)
    return pd.DataFrame({"id": np.repeat(ids, steps), "time": np.tile(dates.to_numpy(), n_series),
                         "y": values.reshape(-1)})
