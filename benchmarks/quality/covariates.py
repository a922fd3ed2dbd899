"""Covariates on sktime's Uschange (issue 16's covariate data): does rnnkit use related series?

    python benchmarks/quality/covariates.py --out DIR [--origins R] [--seed N ...]

US quarterly percentage changes from 1970 Q1 (187 quarters): Consumption is forecast 8 quarters
ahead, as in `make quality`, at R rolling origins (origin r cuts the series r horizons before its
end and holds out the last horizon of the rest; r = 0 is `make quality`'s split). Contenders, each
fitted on the same training part:

* seasonal naive (lag 4) and statsforecast's AutoARIMA on Consumption alone;
* rnnkit's defaults on Consumption alone;
* rnnkit with Income, Production, Savings and Unemployment as **past** covariates (known up to the
  forecast origin: ``covariates=``), the realistic case;
* rnnkit with them as **future** covariates (``future_covariates=``, their held-out values given
  to the forecast; direct, and recursive, which reads each row's covariates at the step that
  predicts it) and AutoARIMA with them as exogenous regressors (``X_df``, the held-out values
  too): an oracle, since a forecaster does not know next year's income; it bounds what the
  covariates can add.

Reports MASE (scaled by the training part's lag-4 differences) per origin and its mean, and the
geometric mean of MASE relative to seasonal naive. Writes ``DIR/covariates.json``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
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
from quality import rnnkit_calls, scores  # noqa: E402

H, M = 8, 4
COVARIATES = ("Income", "Production", "Savings", "Unemployment")
#: --option KEY=VALUE: ModelConfig/TrainConfig settings added to rnnkit's defaults in every rnnkit fit
OPTIONS: dict = {}


def load() -> pd.DataFrame:
    import sktime.datasets as S
    y, X = S.load_uschange()
    frame = X.copy()
    frame.insert(0, "Consumption", y.to_numpy())
    frame.insert(0, "time", pd.date_range("1970-01-01", periods=len(frame), freq="QS").strftime("%Y-%m-%d"))
    return frame.reset_index(drop=True)


def _rnnkit(train: pd.DataFrame, future: pd.DataFrame, seed: int, strategy: str = "direct", **columns) -> np.ndarray:
    mc, tc = FORECAST_DEFAULTS
    mc = mc.replace(strategy=strategy, **{k: v for k, v in OPTIONS.items() if hasattr(mc, k)})
    tc = tc.replace(**{k: v for k, v in OPTIONS.items() if hasattr(tc, k)})
    dc = rnnkit.DataConfig(targets=("Consumption",), time_col="time", horizon=H, seasonal_period=M, test_frac=0.0,
                           **columns)
    keep = ["time", "Consumption", *columns.get("covariates", ()), *columns.get("future_covariates", ())]
    data = series_from_frame(train[keep], target="Consumption", time_col="time", source="Uschange",
                             covariates=[c for c in keep if c not in ("time", "Consumption")])
    run = rnnkit.fit_forecaster(dc, mc, tc.replace(seed=seed), data=data, quiet=True)
    kw = {"future": future[["time", *columns["future_covariates"]]]} if columns.get("future_covariates") else {}
    return run.forecast(data, horizon=H, **kw)["Consumption"].to_numpy(dtype=np.float64)


def _arima(train: pd.DataFrame, future: pd.DataFrame, exog: bool) -> np.ndarray:
    from statsforecast.models import AutoARIMA
    y = train["Consumption"].to_numpy(dtype=np.float64)
    if not exog:
        return np.asarray(AutoARIMA(season_length=M).forecast(y=y, h=H)["mean"])
    X = train[list(COVARIATES)].to_numpy(dtype=np.float64)
    Xf = future[list(COVARIATES)].to_numpy(dtype=np.float64)
    return np.asarray(AutoARIMA(season_length=M).forecast(y=y, h=H, X=X, X_future=Xf)["mean"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--origins", type=int, default=4)
    p.add_argument("--seed", type=int, action="append")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model or training setting added to rnnkit's defaults (repeatable)")
    a = p.parse_args(argv)
    OPTIONS.update(dict(rnnkit_calls.parse_option(o) for o in a.option))
    seeds = a.seed or [0]
    frame = load()
    rows = []
    for r in range(a.origins):
        end = len(frame) - r * H
        train, future = frame.iloc[:end - H].reset_index(drop=True), frame.iloc[end - H:end].reset_index(drop=True)
        actual = future["Consumption"].to_numpy(dtype=np.float64)
        y = train["Consumption"].to_numpy(dtype=np.float64)
        scale = scores.mase_scale(y, M)
        preds = {"seasonal naive": np.resize(y[-M:], H), "AutoARIMA": _arima(train, future, False),
                 "AutoARIMA + exogenous (oracle future)": _arima(train, future, True)}
        for seed in seeds:
            preds[f"rnnkit/{seed}"] = _rnnkit(train, future, seed)
            preds[f"rnnkit + past covariates/{seed}"] = _rnnkit(train, future, seed, covariates=COVARIATES)
            preds[f"rnnkit + future covariates (oracle future)/{seed}"] = _rnnkit(train, future, seed,
                                                                                  future_covariates=COVARIATES)
            preds[f"rnnkit recursive + future covariates (oracle future)/{seed}"] = _rnnkit(
                train, future, seed, "recursive", future_covariates=COVARIATES)
        for name, pred in preds.items():
            method, _, seed = name.partition("/")
            rows.append({"origin": r, "method": method, "seed": int(seed) if seed else None,
                         "mase": scores.mase(actual, pred, scale)})
        print(f"origin {r}: " + ", ".join(f"{k} {scores.mase(actual, v, scale):.3f}" for k, v in preds.items()),
              flush=True)
    table = pd.DataFrame(rows)
    naive = table[table.method == "seasonal naive"].set_index("origin")["mase"]
    table["relative"] = table["mase"] / table["origin"].map(naive)
    summary = {}
    for method, g in table.groupby("method", sort=False):
        summary[method] = {"mean_mase": float(g["mase"].mean()),
                           "geomean_relative_mase": float(np.exp(np.log(g["relative"]).mean())),
                           "per_origin": g.groupby("origin")["mase"].mean().round(4).tolist()}
    for method, s in summary.items():
        print(f"{method:45s} mean MASE {s['mean_mase']:.3f}  geo-mean rel. {s['geomean_relative_mase']:.3f}  "
              f"per origin {s['per_origin']}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "covariates.json").write_text(json.dumps({"seeds": seeds, "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
