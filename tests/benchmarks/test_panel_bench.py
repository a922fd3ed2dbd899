"""The panel suite's pieces (benchmarks/panelgen.py, benchmarks/suite_panel.py): the synthetic panel
generator against its formula, the window count and bytes it reports against what rnnkit really
builds, and the memory arithmetic of its report on hand-made worker results. Nothing here times."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import panelgen  # noqa: E402
import report  # noqa: E402
import suite_panel  # noqa: E402


def test_synthetic_panel_is_seeded_long_and_monthly():
    a = panelgen.synthetic_panel(7, 30, seed=3)
    b = panelgen.synthetic_panel(7, 30, seed=3)
    pd.testing.assert_frame_equal(a, b)  # the same code twice: bit for bit
    assert not np.array_equal(a["y"], panelgen.synthetic_panel(7, 30, seed=4)["y"])
    assert list(a.columns) == ["id", "time", "y"] and len(a) == 7 * 30
    assert list(dict.fromkeys(a["id"])) == [f"s{i}" for i in range(7)]
    for _, part in a.groupby("id", sort=False):
        assert list(part["time"]) == list(pd.date_range("2000-01-01", periods=30, freq="MS"))
    np.testing.assert_array_equal(a["y"].to_numpy(), panelgen.synthetic_values(7, 30, seed=3).reshape(-1))


def test_synthetic_values_follow_the_formula():
    """Without noise and seasonality the series is the trend line exactly; the residual after the
    deterministic part, over scale x noise, is an AR(1) with the drawn coefficient (checked as the
    recursion's innovations having unit variance and no lag-1 correlation, on long series)."""
    n, T = 4, 20000
    p = panelgen.panel_params(n, seed=1)
    y = panelgen.synthetic_values(n, T, seed=1)
    t = np.arange(T)[None, :]
    det = p["level"][:, None] * (1 + p["trend"][:, None] * t / T) + \
        p["scale"][:, None] * p["amp"][:, None] * np.sin(2 * np.pi * t / 12 + p["phase"][:, None])
    e = (y - det) / (p["scale"] * p["noise"])[:, None]
    z = (e[:, 1:] - p["phi"][:, None] * e[:, :-1]) / np.sqrt(1 - p["phi"] ** 2)[:, None]
    # 20,000 standard normal draws: the sample variance is within 5 standard errors (sqrt(2 / T)) of 1
    np.testing.assert_allclose(z.var(axis=1), 1.0, atol=5 * np.sqrt(2 / T))
    lag1 = (z[:, 1:] * z[:, :-1]).mean(axis=1)
    np.testing.assert_allclose(lag1, 0.0, atol=5 / np.sqrt(T))
    assert p["level"].min() >= 1.0 and p["level"].max() <= 1000.0


def test_the_suite_counts_the_windows_rnnkit_builds():
    """expected_windows and window_bytes against prepare_panel's tensors on a small panel."""
    from rnnkit.tasks.forecast.panel import prepare_panel
    from rnnkit.tasks.forecast.panel_run import load_panel
    n, T = 5, 80
    dc, mc, tc = suite_panel._configs(1)
    panel = load_panel(dc, panelgen.synthetic_panel(n, T))
    assert panel.freq == "MS" and len(panel) == n
    prep = prepare_panel(dc, mc, tc, panel)
    train, val = suite_panel.expected_windows(n, T)
    assert (len(prep.train), len(prep.val[0])) == (train, val)
    assert prep.data_config.lookback == suite_panel.LOOKBACK and prep.data_config.horizon == suite_panel.HORIZON
    held = sum(t.numel() * t.element_size() for t in (*prep.train.materialise(), *prep.val))  # had they been made
    assert suite_panel.window_bytes(train + val) == held


def _record(series: int, peak_mb: float, steps: int = 200) -> dict:
    train, val = suite_panel.expected_windows(series, steps)
    stages = [{"stage": s, "peak_mb": v, "now_mb": v, "seconds": 1.0}
              for s, v in zip(("imports", "frame", "load", "prepare", "train"),
                              (100.0, 100.0, 100.0, peak_mb, peak_mb))]
    return {"series": series, "steps": steps, "stages": stages, "train_windows": train, "val_windows": val,
            "train_steps": 500}


def test_memory_report_arithmetic():
    """Peaks exactly linear in the series (0.5 MB a series) -> increment ratio 1.00, 512 KB a series,
    and the memory target judged against the float32 window bytes a series adds."""
    recs = [_record(n, 100.0 + 0.5 * n) for n in (1000, 3000, 10000)]
    rows, notes = suite_panel.memory_rows(recs)
    assert len(rows) == 3 and rows[2][:4] == ["10,000", 200, "1,410,000", "500"]
    assert "512.0 KB per series" in notes[0] and "1.00" in notes[-2]
    assert notes[-1].endswith("prepare +512.0, train +0.0")  # by stage: all of it in the stage named prepare
    per_series_windows = suite_panel.window_bytes(141 + 1)  # 141 training windows + 1 validation window
    assert per_series_windows == 142 * 36 * 4
    row = report._panel_rows({"memory": recs, "speed": []})[0]
    assert row[2] == "no" and f"{0.5 * 2**20 / per_series_windows:.1f}x its float32 windows" in row[1]
    small = [_record(n, 100.0 + 0.001 * n) for n in (1000, 10000)]  # 1 KB a series: fewer than its windows
    assert report._panel_rows({"memory": small, "speed": []})[0][2] == "yes"


def test_memory_report_splits_each_series_peak_between_loading_and_windows():
    """Peaks 0.375 MB a series after load_panel and 0.125 MB a series more after training: 384 KB
    and 128 KB of the 512 KB each series adds, in the target row and by stage in the notes."""
    names = ("imports", "frame built", "load_panel (validate)", "prepare_panel (split)", "train_members (1 epoch)")
    recs = []
    for n in (1000, 10000):
        rec = _record(n, 0.0)
        peaks = (100.0, 100.0, 100.0 + 0.375 * n, 100.0 + 0.375 * n, 100.0 + 0.5 * n)
        rec["stages"] = [{"stage": s, "peak_mb": v, "now_mb": v, "seconds": 1.0} for s, v in zip(names, peaks)]
        recs.append(rec)
    row = report._panel_rows({"memory": recs, "speed": []})[0]
    assert "512 KB a series" in row[1] and "(the frame and `load_panel` 384 KB, windows and training +128 KB)" in row[1]
    _, notes = suite_panel.memory_rows(recs)
    assert notes[-1].endswith("frame +0.0, load_panel +384.0, prepare_panel +0.0, train_members +128.0")


@pytest.mark.parametrize("ratios, met", [((2.0, 3.0), "yes"), ((0.5, 3.0), "partly"), ((0.5,), "no")])
def test_speed_target_against_neuralforecast(ratios, met):
    speed = [{"threads": k + 1, "baseline": "NeuralForecast 3 LSTM", "ratio": {"median": r}}
             for k, r in enumerate(ratios)]
    speed.append({"threads": 1, "baseline": "torch.nn.LSTM + Linear loop", "ratio": {"median": 0.1}})
    assert report._panel_rows({"memory": [], "speed": speed})[0][2] == met
    skipped = report._panel_rows({"memory": [], "speed": [], "skipped": "not importable"})
    assert skipped == [["panel: epochs/s ahead of NeuralForecast's LSTM on the same windows",
                        "not measured: not importable", "n/a"]]
