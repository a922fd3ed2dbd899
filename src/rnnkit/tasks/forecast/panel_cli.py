"""The command line for panels: `rnnkit fit FILE --id-col COL ...` trains one global model, and
`rnnkit forecast/evaluate --run RUN` use it (the forecasting commands hand a panel run here)."""

from __future__ import annotations

import argparse
import json

from ...errors import ConfigError
from ...training.atomic import write_file_atomic

__all__ = ["fit_panel", "forecast_panel", "evaluate_panel", "backtest_panel", "summary_table"]


def summary_table(summary: dict, label: str) -> str:
    """Mean scores over the series, one row per method (the model shown as ``label``)."""
    from ...report import format_table
    rows = {(label if name == "model" else name): scores for name, scores in summary.items()
            if isinstance(scores, dict) and "mase" in scores}  # the methods, not the intervals' or levels' scores
    return format_table(rows, ["mase", "smape", "mae", "rmse"])


def _levels_line(summary: dict) -> None:
    """A run with levels (a quantile or distribution head): their scores over every series' points, one line."""
    if "quantile_scores" in summary:
        from .quantiles import describe_level_scores
        print(f"quantiles, every series' points pooled: {describe_level_scores(summary['quantile_scores'])}")


def _report(run, label: str) -> None:
    s = run.metrics["summary"]
    print(f"test metrics, mean over {s['series']} series (each series' last horizon, original units):")
    print(summary_table(s, label))
    print(f"geometric mean of the model's MASE relative to {s['reference']}'s: {s['geomean_relative_mase']:.3f}")
    _levels_line(s)


def fit_panel(a: argparse.Namespace, dc, mc, tc, search) -> int:
    from .panel_run import fit_global, load_panel, panel_future
    panel = load_panel(dc)
    if a.future is not None:  # checked before training
        panel_future(a.future, panel, dc.replace(covariates=()), dc.horizon)
    run = fit_global(dc, mc, tc, panel, quiet=a.quiet, search=search)
    from ...training.distributed import is_writer
    if not is_writer():  # --distributed: rank 0 writes and reports
        return 0
    out = run.save(a.out, force=a.force, data=panel, future=a.future)
    h, rd, meta = run.history, run.data_config, run.meta
    members = meta["ensemble"]
    print(f"trained one global {mc.cell} ({mc.num_layers}x{mc.hidden_size}"
          + (f", ensemble of {members}, median" if members > 1 else "") + f") on {len(meta['ids'])} series "
          f"({meta['trained_series']} long enough to train on; {meta['train_windows']} training and "
          f"{meta['val_windows']} validation windows) for {len(h.rows)} epochs with the "
          f"{'fused native' if h.engine == 'fused' else 'torch'} trainer"
          + (f" on {h.device}" if h.device != "cpu" else "")
          + (f", best epoch {h.best_epoch}" if h.best_epoch else ""))
    if run.per_series_seasons:  # series of different frequencies: how many have each season
        counts = {m: meta["seasons"].count(m) for m in sorted(set(meta["seasons"]), reverse=True)}
        season = "a season per series (" + ", ".join(f"m={m}: {n} series" for m, n in counts.items()) + ")"
    else:
        season = f"season m={rd.seasonal_period}"
    print(f"lookback {rd.lookback}, {season}, normalise {rd.normalise}, skip {rd.skip}, "
          f"{rd.sampling} sampling" + (f", a learned id embedding of {len(run.statics.ids)} series" if rd.id_embedding else ""))
    if meta["naive_members"]:
        print(f"{meta['naive_members']} of {members} member(s) did not beat the {rd.skip} naive forecast on the "
              "validation windows and forecast it instead")
    shown = meta["known_inputs"][:len(meta["known_inputs"]) - len(run.statics.ids)]  # not every id of the embedding
    if shown:
        print(f"known inputs per step: {', '.join(shown)}")
    if run.metrics:
        _report(run, f"rnnkit {mc.cell}")
    if rd.future_covariates and a.future is None:
        print("no forecast.csv: forecasting past the data needs the future covariates' values; run `rnnkit "
              f"forecast --run {out} --future FILE`")
    print(f"run directory: {out}" + ("" if rd.future_covariates and a.future is None else
                                     f"  (forecast.csv: every series' next {rd.horizon} steps)") +
          ("; series_metrics.csv" if run.metrics else "") + f"; plot: {out / 'forecast.png'}")
    return 0


def forecast_panel(run, a: argparse.Namespace) -> int:
    ids = None if a.ids is None else [i.strip() for i in a.ids.split(",") if i.strip()]
    if ids is not None and not ids:
        raise ConfigError("--ids: name at least one series id (comma-separated)")
    frame = run.forecast(a.data, horizon=a.horizon, ids=ids, future=a.future)
    if a.out:
        write_file_atomic(a.out, lambda path: frame.to_csv(path, index=False))
        print(f"wrote {len(frame)} forecast rows ({frame[run.data_config.id_col].nunique()} series) to {a.out}")
    else:
        print(frame.to_string(index=False))
    return 0


def evaluate_panel(run, a: argparse.Namespace, folds: int = 1, refit: bool = False) -> int:
    scores = run.backtest(a.data, folds=folds, refit=refit, quiet=bool(getattr(a, "json", False)))
    if a.json:
        from ...training.runs import json_safe
        print(json.dumps(json_safe(scores), indent=2))
    else:
        s = scores["summary"]
        each = "on the horizon" if folds == 1 else f"on {folds} rolling origins, a horizon each,"
        print(f"scored {len({e['id'] for e in scores['series']})} series, each {each} after its training and "
              "validation rows:")
        print(summary_table(s, f"rnnkit {run.model_config.cell}"))
        print(f"geometric mean of the model's MASE relative to {s['reference']}'s: {s['geomean_relative_mase']:.3f}")
        _levels_line(s)
    return 0


def backtest_panel(run, a: argparse.Namespace) -> int:
    return evaluate_panel(run, a, folds=a.folds, refit=a.refit)
