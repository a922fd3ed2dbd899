"""A panel of series at different frequencies: `make quality`'s monthly and quarterly series as one
long table, one global model across them, against each series fitted alone and seasonal naive.

    python benchmarks/quality/panel_mixed.py --out DIR [--seed N] [--option KEY=VALUE ...]

The 12 series of `make quality` with a season (m = 12 or 4: wineind, woolyrnq, ausbeer, austres,
elec_equip, macrodata's realgdp, cpi and unemp, ShampooSales, Uschange's Consumption, PBS_dataset,
seatbelts' KSI), each with its dates, one horizon of 8 for all (the last 8 values held out).
Contenders, each scored by MASE with its series' own season:

- ``global``: one model on the whole table with rnnkit's defaults (each series' season from its
  frequency: the seasonal skip, its choice and the run's scores use it);
- ``global m=1``: the same with ``seasonal_period=1`` (no season: what a panel across frequencies
  had before each series had its own);
- ``per series``: rnnkit's defaults on each series alone (its own season given, as `make quality`);
- ``seasonal naive``.

Reports per series and the mean MASE, the geometric mean relative to seasonal naive and the series
worse than seasonal naive; writes ``DIR/panel_mixed.json``. Nothing is downloaded.
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

HORIZON = 8


def mixed_series() -> list[sources.Series]:
    """The single series with a season of 4 or 12 and dates, each holding out its last 8 values."""
    import dataclasses
    return [dataclasses.replace(s, horizon=HORIZON) for s in sources.single_series()
            if s.m > 1 and s.index is not None]


def global_forecasts(panel: list[sources.Series], options: dict) -> tuple[dict[str, np.ndarray], dict]:
    """One global fit on every series' training part (with its dates): each series' forecast, and
    what the run resolved."""
    frame = pd.concat([pd.DataFrame({"id": s.name, "date": s.train.index.strftime("%Y-%m-%d"), "y": s.train.to_numpy()})
                       for s in panel], ignore_index=True)
    (dc, mc, tc, search), kwargs = rnnkit_calls._configure("forecast", options, horizon=HORIZON, test_frac=0.0,
                                                           id_col="id", time_col="date")
    run = rnnkit.fit_forecaster(dc, mc, tc, data=frame, quiet=True, search=search, **kwargs)
    fc = run.forecast(frame, horizon=HORIZON)
    rd = run.data_config
    info = {"lookback": rd.lookback, "skip": rd.skip, "seasonal_period": rd.seasonal_period,
            "seasons": run.meta.get("seasons"), "naive_members": run.meta["naive_members"]}
    return {k: g["y"].to_numpy(dtype=np.float64) for k, g in fc.groupby("id", sort=False)}, info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--option", action="append", default=[], help="KEY=VALUE added to rnnkit's defaults")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    options = {"seed": a.seed, **dict(rnnkit_calls.parse_option(o) for o in a.option)}
    panel = mixed_series()
    forecasts, seconds, runs = {}, {}, {}
    for name, extra in (("global", {}), ("global m=1", {"seasonal_period": 1})):
        t0 = time.perf_counter()
        forecasts[name], runs[name] = global_forecasts(panel, {**options, **extra})
        seconds[name] = time.perf_counter() - t0
        print(f"{name}: {runs[name]} ({seconds[name]:.1f} s)", flush=True)
    t0 = time.perf_counter()
    forecasts["per series"] = {s.name: rnnkit_calls.fit_rnnkit_forecast(s.train, HORIZON, s.m, options) for s in panel}
    seconds["per series"] = time.perf_counter() - t0
    forecasts["seasonal naive"] = {s.name: scores.seasonal_naive(s.train.to_numpy(), HORIZON, s.m) for s in panel}
    table = {}
    for method, by_name in forecasts.items():
        table[method] = [scores.mase(s.test, by_name[s.name], scores.mase_scale(s.train.to_numpy(), s.m))
                         for s in panel]
    reference = table["seasonal naive"]
    summary = {method: {"mean_mase": float(np.mean(v)), "geomean_relative": scores.relative_geomean(v, reference),
                        "worse_than_seasonal_naive": scores.worse_than(v, reference),
                        "seconds": seconds.get(method, 0.0)} for method, v in table.items()}
    print(f"{'series':<24} {'m':>3} " + " ".join(f"{k:>14}" for k in table))
    for i, s in enumerate(panel):
        print(f"{s.name:<24} {s.m:>3} " + " ".join(f"{v[i]:>14.3f}" for v in table.values()))
    for method, row in summary.items():
        print(f"{method}: mean MASE {row['mean_mase']:.3f}, geo-mean relative {row['geomean_relative']:.3f}, "
              f"worse than seasonal naive on {row['worse_than_seasonal_naive']} of {len(panel)} "
              f"({row['seconds']:.1f} s)")
    (a.out / "panel_mixed.json").write_text(json.dumps(
        {"options": options, "horizon": HORIZON, "series": [s.name for s in panel], "seasons": [s.m for s in panel],
         "mase": table, "summary": summary, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
