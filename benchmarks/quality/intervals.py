"""Coverage of rnnkit's split-conformal intervals (``--intervals 80,95``) on `make quality`'s 14 series.

    python benchmarks/quality/intervals.py --out DIR [--variant each --variant first --variant each-1]
                                           [--origins R] [--series NAME ...] [--seed N]

For each series and each rolling origin r = 0..R-1 the series is cut after ``n - r * H`` values
and the last H of those are held out, as `make quality` holds out the last horizon (r = 0 is
its split): rnnkit is fitted with its defaults on the rest (``test_frac=0``, the series' horizon
and season) plus ``intervals=(80, 95)`` and a variant's calibration settings, and its intervals
are compared with the held-out values. Reports the empirical coverage of every held-out point
pooled over series and origins, per series, and the wall and CPU seconds of each fit against one
fit without intervals (timed once per series, at r = 0). Writes ``DIR/intervals.json``.

Variants: ``each`` (the default: a refit before each of the K = 19 origins, spaced by
:func:`rnnkit.tasks.forecast.conformal.default_spacing`), ``each-1`` (origins one step apart),
``first`` (one refit before the first origin).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import harness  # noqa: E402,F401  (puts the checkout's src/ first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data.series import series_from_frame  # noqa: E402
from rnnkit.tasks.forecast.config import FORECAST_DEFAULTS  # noqa: E402
from quality import sources  # noqa: E402

VARIANTS = {"each": {}, "each-1": {"calibration_spacing": 1}, "first": {"calibration_refit": "first"}}
LEVELS = (80, 95)


def _data(s: sources.Series, n: int):
    timed = s.index is not None
    frame = pd.DataFrame({"time": s.index[:n], "y": s.values[:n]} if timed else {"y": s.values[:n]})
    return series_from_frame(frame, target="y", time_col="time" if timed else None, source=s.name)


def _fit(s: sources.Series, n: int, search: rnnkit.SearchConfig, seed: int = 0):
    """Fit on the first ``n - H`` values; -> (forecast frame of the next H, wall s, CPU s)."""
    data = _data(s, n - s.horizon)
    dc = rnnkit.DataConfig(horizon=s.horizon, seasonal_period=s.m, test_frac=0.0)
    mc, tc = FORECAST_DEFAULTS
    w, c = time.perf_counter(), time.process_time()
    run = rnnkit.fit_forecaster(dc, mc, tc.replace(seed=seed), data=data, quiet=True, search=search)
    frame = run.forecast(data, horizon=s.horizon)
    return frame, time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--variant", action="append", choices=list(VARIANTS))
    p.add_argument("--origins", type=int, default=1)
    p.add_argument("--series", action="append")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    variants = a.variant or ["each"]
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    warm = sources.single_series(["ShampooSales"])[0]  # the first fit in a process loads the native kernels
    _fit(warm, len(warm.values), rnnkit.SearchConfig())
    for s in sources.single_series(a.series):
        n = len(s.values)
        _, base_wall, base_cpu = _fit(s, n, rnnkit.SearchConfig(), a.seed)
        for v in variants:
            for r in range(a.origins):
                end = n - r * s.horizon
                try:
                    frame, wall, cpu = _fit(s, end, rnnkit.SearchConfig(intervals=LEVELS, **VARIANTS[v]), a.seed)
                except rnnkit.RnnkitError as e:
                    print(f"{s.name} {v} r={r}: refused: {e}", flush=True)
                    rows.append({"series": s.name, "variant": v, "origin": r, "refused": str(e)})
                    continue
                y = s.values[end - s.horizon:end]
                row = {"series": s.name, "variant": v, "origin": r, "n": end, "horizon": s.horizon,
                       "wall": wall, "cpu": cpu, "base_wall": base_wall, "base_cpu": base_cpu}
                for level in LEVELS:
                    lo, hi = frame[f"y_lo_{level}"].to_numpy(), frame[f"y_hi_{level}"].to_numpy()
                    row[f"covered_{level}"] = int(((y >= lo) & (y <= hi)).sum())
                    row[f"width_{level}"] = float(np.mean(hi - lo) / np.mean(np.abs(np.diff(s.values[:end - s.horizon]))))
                rows.append(row)
                print(f"{s.name:12s} {v:6s} r={r} H={s.horizon:2d} covered 80: {row['covered_80']}/{s.horizon} "
                      f"95: {row['covered_95']}/{s.horizon}  {wall:.1f} s wall ({wall / base_wall:.1f}x one fit "
                      f"{base_wall:.1f} s), {cpu / base_cpu:.1f}x CPU", flush=True)
    summary = {}
    for v in variants:
        ok = [r for r in rows if r["variant"] == v and "refused" not in r]
        points = sum(r["horizon"] for r in ok)
        summary[v] = {"points": points, "fits": len(ok), "refused": sum(1 for r in rows if r["variant"] == v) - len(ok),
                      **{f"coverage_{lv}": sum(r[f"covered_{lv}"] for r in ok) / max(points, 1) for lv in LEVELS},
                      **{f"series_coverage_{lv}": float(np.mean([r[f"covered_{lv}"] / r["horizon"] for r in ok]))
                         for lv in LEVELS},
                      "median_wall_ratio": float(np.median([r["wall"] / r["base_wall"] for r in ok])),
                      "median_cpu_ratio": float(np.median([r["cpu"] / r["base_cpu"] for r in ok]))}
        print(v, json.dumps(summary[v]), flush=True)
    (a.out / "intervals.json").write_text(json.dumps({"seed": a.seed, "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
