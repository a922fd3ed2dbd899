"""Coverage of a global model's intervals on the dev panels of issue 16, over rolling origins.

    python benchmarks/quality/panel_coverage.py --out DIR [--panel m1|mixed|uschange] [--origins R] [--seed N]
        [--head conformal|quantile|normal|student_t]

``--panel``: the M1 yearly panel (181 series, the default), ``mixed`` (`make quality`'s 12 monthly and
quarterly series as one panel, horizon 8, each series with its own season: panel_mixed.py) or
``uschange`` (sktime's Uschange, its 5 quarterly series). For each origin r = 0..R-1 every series
is cut after ``n - r * H`` values and the last H
of those are held out (r = 0 is `make quality`'s split): one global model is fitted with rnnkit's
defaults plus ``intervals=(80, 95)`` on the training parts of every series at once (a series too
short to leave a training window is left to rnnkit, which forecasts it as it forecasts any series),
and each series' intervals are compared with its held-out values. Reports the empirical coverage
of every held-out point, per origin and pooled over the origins, and the mean width in units of
each series' scale. Writes ``DIR/panel_coverage.json``. Nothing is downloaded. A small panel's conformal
intervals take more calibration origins (one more global fit each) until they bound the levels
(``--option calibration_windows=K``: until they hold K windows, or the series run out).

``--head`` picks the intervals: ``conformal`` (the default: ``intervals=(80, 95)``), or a head of
levels instead, one global fit per origin: ``quantile`` (``quantiles=(0.025, 0.1, 0.5, 0.9, 0.975)``,
the pinball loss) or a direct distribution head (``normal``, ``student_t``: the same levels in closed
form); the 80 % interval is then the 0.1 to 0.9 levels and the 95 % one the 0.025 to 0.975 levels.
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
from quality import rnnkit_calls, scores, sources  # noqa: E402

LEVELS = (80, 95)
#: a head's levels, and the pair of them that bounds each interval of LEVELS
QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)
PAIRS = {80: (0.1, 0.9), 95: (0.025, 0.975)}
HEADS = ("conformal", "quantile", "normal", "student_t")


def _mixed() -> list[sources.Series]:
    from quality.panel_mixed import mixed_series
    return mixed_series()


PANELS = {"m1": sources.m1_yearly, "mixed": _mixed, "uschange": sources.uschange_panel}


def min_train(name: str, panel: list[sources.Series], origins: int) -> int:
    """The training values a series must keep at an origin to be in it: as many as the shortest series
    has at r = 0 (M1: 9 years; the mixed panel: ShampooSales' 28 months), or for Uschange, whose
    series are all as long, what they keep at the last origin (all five at every origin)."""
    shortest = min(len(s.values) - s.horizon for s in panel)
    return shortest - (origins - 1) * panel[0].horizon if name == "uschange" else shortest


def head_options(head: str) -> dict:
    """The options that give ``head``'s intervals."""
    if head == "conformal":
        return {"intervals": list(LEVELS)}
    if head == "quantile":
        return {"quantiles": list(QUANTILES)}
    return {"distribution": head, "quantiles": list(QUANTILES)}


def bounds(g: pd.DataFrame, a: int, head: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``a`` % interval's ends from one series' forecast rows."""
    if head == "conformal":
        return g[f"y_lo_{a}"].to_numpy(), g[f"y_hi_{a}"].to_numpy()
    lo, hi = PAIRS[a]
    return g[f"y_q{lo!r}"].to_numpy(), g[f"y_q{hi!r}"].to_numpy()  # rnnkit's <target>_q<level> columns


def run_origin(panel: list[sources.Series], r: int, options: dict, min_train: int, head: str = "conformal") -> dict:
    H = panel[0].horizon
    dated = all(s.index is not None for s in panel)
    one_season = len({s.m for s in panel}) == 1  # else each series' own, from its dates (rnnkit's default)
    parts, tests = [], {}
    for s in panel:
        end = len(s.values) - r * H
        if end - H < min_train:
            continue
        index = s.index[:end - H] if dated else None
        parts.append(pd.Series(s.values[:end - H], index=index, name=s.name))
        tests[s.name] = s.values[end - H:end]
    frame = pd.concat([pd.DataFrame({"id": str(y.name), "y": y.to_numpy(),
                                     **({"date": y.index.strftime("%Y-%m-%d")} if dated else {})}) for y in parts],
                      ignore_index=True)
    fixed = dict(horizon=H, test_frac=0.0, id_col="id", **({"time_col": "date"} if dated else {}),
                 **({"seasonal_period": panel[0].m} if one_season else {}))
    (dc, mc, tc, search), kwargs = rnnkit_calls._configure("forecast", {**options, **head_options(head)}, **fixed)
    season = {s.name: s.m for s in panel}
    t0 = time.perf_counter()
    run = rnnkit.fit_forecaster(dc, mc, tc, data=frame, quiet=True, search=search, **kwargs)
    fc = run.forecast(frame, horizon=H)
    seconds = time.perf_counter() - t0
    covered = {a: 0 for a in LEVELS}
    width = {a: [] for a in LEVELS}
    points = 0
    for name, g in fc.groupby("id", sort=False):
        y = tests[name]
        scale = scores.mase_scale(next(p for p in parts if p.name == name).to_numpy(), season[name])
        points += len(y)
        for a in LEVELS:
            lo, hi = bounds(g, a, head)
            covered[a] += int(((y >= lo) & (y <= hi)).sum())
            width[a].append(float(np.mean(hi - lo) / scale) if scale > 0 else float("nan"))
    return {"origin": r, "series": len(parts), "points": points, "seconds": seconds,
            **{f"covered_{a}": covered[a] for a in LEVELS},
            **{f"coverage_{a}": covered[a] / points for a in LEVELS},
            **{f"width_{a}": float(np.nanmedian(width[a])) for a in LEVELS}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--panel", choices=tuple(PANELS), default="m1")
    p.add_argument("--origins", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", choices=HEADS, default="conformal", help="whose intervals: conformal, or a head's levels")
    p.add_argument("--option", action="append", default=[], help="KEY=VALUE added to rnnkit's defaults")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    options = {"seed": a.seed, **dict(rnnkit_calls.parse_option(o) for o in a.option)}
    panel = PANELS[a.panel]()
    rows = []
    for r in range(a.origins):
        row = run_origin(panel, r, options, min_train(a.panel, panel, a.origins), a.head)
        rows.append(row)
        print(f"{a.panel} {a.head} r={r}: {row['series']} series, {row['points']} points, covered 80: {row['coverage_80']:.3f} "
              f"95: {row['coverage_95']:.3f}  median width/scale 80: {row['width_80']:.2f} 95: {row['width_95']:.2f} "
              f"({row['seconds']:.1f} s)", flush=True)
    points = sum(r["points"] for r in rows)
    summary = {"points": points, **{f"coverage_{a}": sum(r[f"covered_{a}"] for r in rows) / points for a in LEVELS}}
    print("pooled", json.dumps(summary), flush=True)
    (a.out / "panel_coverage.json").write_text(json.dumps({"options": options, "panel": a.panel, "head": a.head, "summary": summary, "rows": rows},
                                                          indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
