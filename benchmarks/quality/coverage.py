"""The quantile head's intervals on `make quality`'s 14 single series (issue 16's uncertainty target).

    python benchmarks/quality/coverage.py --out DIR [--seed 0 --seed 1] [--series wineind] [--origins R]

For each series and seed: rnnkit with its defaults plus ``--quantiles 0.025,0.1,0.5,0.9,0.975``, fitted
on the training part exactly as ``run.py`` fits it (the holdout is the last horizon), and rnnkit's
default point model on the same part; with ``--origins R``, at R rolling origins too (origin r cuts each
series ``r`` horizons before its end and holds out the last horizon of the rest; r = 0 is `make
quality`'s split). Reported, pooled over every holdout point of every series:
the empirical coverage of the 80 % (0.1 to 0.9) and 95 % (0.025 to 0.975) central intervals, with the
binomial standard error of a coverage estimated from that many distinct points; and, per series and as the
geometric mean of the MASE ratio, the MASE of the 0.5 level against the point default's. Writes
``coverage.json`` and ``COVERAGE.md`` into ``--out``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # import this folder as the package
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402,F401  (puts the checkout's src/ first: the working tree is measured)
import numpy as np  # noqa: E402

from quality import rnnkit_calls, scores, sources  # noqa: E402
from rnnkit import RnnkitError  # noqa: E402

LEVELS = (0.025, 0.1, 0.5, 0.9, 0.975)
INTERVALS = {"80": (0.1, 0.9), "95": (0.025, 0.975)}
#: classical references: statsforecast's prediction intervals on the same holdouts
REFERENCES = ("AutoETS", "AutoARIMA")


@functools.lru_cache(maxsize=None)  # the same for every seed
def _classical(model: str, name: str, origin: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    s = cut(sources.SINGLE[name](), origin)
    return classical_intervals(model, s.train.to_numpy(), s.horizon, s.m)


def cut(s: sources.Series, origin: int) -> sources.Series:
    """The series without its last ``origin`` horizons (its holdout is then the horizon before those)."""
    if origin == 0:
        return s
    n = len(s.values) - origin * s.horizon
    return dataclasses.replace(s, values=s.values[:n], index=None if s.index is None else s.index[:n])


def classical_intervals(model: str, y: np.ndarray, h: int, m: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import statsforecast.models as models
    out = getattr(models, model)(season_length=m).forecast(y=np.asarray(y, dtype=np.float64), h=h, level=[80, 95])
    return {k: (np.asarray(out[f"lo-{k}"]), np.asarray(out[f"hi-{k}"])) for k in INTERVALS}


def run_series(s: sources.Series, seed: int, origin: int = 0, options: dict | None = None) -> dict:
    series, s = s.name, cut(s, origin)
    y_train, h, m = s.train, s.horizon, s.m
    options = {**(options or {}), "seed": seed}
    t0 = time.perf_counter()
    point_q, levels = rnnkit_calls.fit_rnnkit_quantiles(y_train, h, m, LEVELS, options)
    seconds_q = time.perf_counter() - t0
    t0 = time.perf_counter()
    point = rnnkit_calls.fit_rnnkit_forecast(y_train, h, m, options)
    seconds_p = time.perf_counter() - t0
    scale = scores.mase_scale(y_train.to_numpy(), m)
    rec = {"name": series, "seed": seed, "origin": origin, "horizon": h, "m": m, "test": s.test.tolist(),
           "quantiles": levels.tolist(), "mase_median": scores.mase(s.test, point_q, scale),
           "mase_point": scores.mase(s.test, point, scale), "seconds": [seconds_q, seconds_p], "inside": {}}
    for name, (lo, hi) in INTERVALS.items():
        a, b = levels[:, LEVELS.index(lo)], levels[:, LEVELS.index(hi)]
        rec["inside"][name] = int(((s.test >= a) & (s.test <= b)).sum())
    rec["classical"] = {}
    for model in REFERENCES:
        try:
            bands = _classical(model, series, origin)
        except Exception as e:  # noqa: BLE001  (a reference that fails is recorded, not the script's end)
            rec["classical"][model] = {"error": f"{type(e).__name__}: {e}"}
            continue
        rec["classical"][model] = {k: int(((s.test >= a) & (s.test <= b)).sum()) for k, (a, b) in bands.items()}
    return rec


def _pooled(records: list[dict], inside) -> dict:
    """Coverage of each interval pooled over the records' holdout points (``inside(record, name)``
    counts the points inside), with the binomial standard error at the nominal rate of a coverage
    measured on that many *distinct* points (the seeds share the holdouts, so they add no points)."""
    n = sum(r["horizon"] for r in records)
    distinct = sum({(r["name"], r.get("origin", 0)): r["horizon"] for r in records}.values())
    out = {}
    for name, (lo, hi) in INTERVALS.items():
        nominal = hi - lo
        out[name] = {"coverage": sum(inside(r, name) for r in records) / n, "nominal": nominal,
                     "se": math.sqrt(nominal * (1 - nominal) / distinct), "points": distinct}
    return out


def summarise(records: list[dict]) -> dict:
    n = sum(r["horizon"] for r in records)
    # PBS_dataset's holdout is all zeros, which every method forecasts exactly: its points are covered trivially
    nontrivial = [r for r in records if np.ptp(r["test"]) > 0 or r["test"][0] != 0]
    out = {"points": n, "series": len({r["name"] for r in records}), "seeds": sorted({r["seed"] for r in records}),
           "origins": sorted({r.get("origin", 0) for r in records}),
           "intervals": _pooled(records, lambda r, k: r["inside"][k]),
           "intervals_without_constant_holdouts": _pooled(nontrivial, lambda r, k: r["inside"][k]), "classical": {}}
    for model in REFERENCES:
        ok = [r for r in records if "error" not in r["classical"][model]]
        out["classical"][model] = {"failed": len(records) - len(ok),
                                   "intervals": _pooled(ok, lambda r, k: r["classical"][model][k]) if ok else {}}
    ratios = [r["mase_median"] / r["mase_point"] for r in records if r["mase_point"] > 0]
    out["mase_ratio_geomean"] = float(np.exp(np.mean(np.log(ratios))))
    out["mase_median_mean"] = float(np.mean([r["mase_median"] for r in records]))
    out["mase_point_mean"] = float(np.mean([r["mase_point"] for r in records]))
    return out


def markdown(records: list[dict], summary: dict) -> str:
    lines = ["# Quantile head: interval coverage on the 14 single series", "",
             f"{summary['series']} series, origins {summary['origins']}, seeds {summary['seeds']}, {summary['points']} holdout points pooled "
             f"(levels {', '.join(map(str, LEVELS))}; rnnkit's defaults otherwise).", "",
             "| method | interval | coverage | nominal | points | binomial s.e. |", "|---|---|---|---|---|---|"]
    rows = [("rnnkit quantile head", summary["intervals"]),
            ("rnnkit, without constant holdouts", summary["intervals_without_constant_holdouts"])]
    rows += [(f"{m} (statsforecast)", v["intervals"]) for m, v in summary["classical"].items()]
    for method, intervals in rows:
        for name, v in intervals.items():
            lines.append(f"| {method} | {name} % | {v['coverage']:.3f} | {v['nominal']:.2f} | {v['points']} | "
                         f"{v['se']:.3f} |")
    lines += ["", f"MASE of the 0.5 level / MASE of the point default, geometric mean: "
                  f"{summary['mase_ratio_geomean']:.3f} (mean MASE {summary['mase_median_mean']:.3f} against "
                  f"{summary['mase_point_mean']:.3f})", "",
              "| series | seed | h | inside 80 % | inside 95 % | MASE q0.5 | MASE point | "
              + " | ".join(f"{m} inside 80 / 95 %" for m in REFERENCES) + " |", "|---" * (7 + len(REFERENCES)) + "|"]
    for r in records:
        refs = [r["classical"][m] for m in REFERENCES]
        where = r["name"] + (f" (origin {r['origin']})" if r.get("origin") else "")
        lines.append(f"| {where} | {r['seed']} | {r['horizon']} | {r['inside']['80']} | {r['inside']['95']} | "
                     f"{r['mase_median']:.3f} | {r['mase_point']:.3f} | "
                     + " | ".join("failed" if "error" in v else f"{v['80']} / {v['95']}" for v in refs) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for coverage.json and COVERAGE.md")
    p.add_argument("--seed", type=int, action="append", help="seeds (repeatable; default 0)")
    p.add_argument("--series", action="append", metavar="NAME", help="only this series (repeatable)")
    p.add_argument("--origins", type=int, default=1, help="rolling origins per series (default 1: the last horizon)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting added to rnnkit's defaults for both fits (repeatable)")
    args = p.parse_args(argv)
    records = []
    for seed in args.seed or [0]:
        for s, origin in [(s, r) for s in sources.single_series(args.series) for r in range(args.origins)]:
            try:
                rec = run_series(s, seed, origin, dict(rnnkit_calls.parse_option(o) for o in args.option))
            except RnnkitError as e:  # a series too short for this origin: left out, and said so
                print(f"{s.name:>14} r={origin} seed {seed}: left out ({e})", flush=True)
                continue
            records.append(rec)
            print(f"{s.name:>14} r={origin} seed {seed}: inside 80 % {rec['inside']['80']}/{rec['horizon']}, 95 % "
                  f"{rec['inside']['95']}/{rec['horizon']}; MASE q0.5 {rec['mase_median']:.3f}, point "
                  f"{rec['mase_point']:.3f}", flush=True)
    summary = summarise(records)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "coverage.json").write_text(json.dumps({"summary": summary, "series": records}, indent=2) + "\n")
    (args.out / "COVERAGE.md").write_text(markdown(records, summary))
    print(markdown(records, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
