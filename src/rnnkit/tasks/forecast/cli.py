"""``rnnkit fit|forecast|evaluate|backtest|datasets|demo``: forecasting's command line.

:func:`register` adds the commands to ``rnnkit``'s subparsers; :data:`COMMANDS` maps their names to
handlers. The handlers call the same functions as the Python API (:mod:`rnnkit.tasks.forecast`),
nothing more; ``rnnkit.cli.main`` reports their errors (one line, exit status 2). The job's modules
are imported when a command runs, so that ``--help`` and usage errors stay fast.
"""

from __future__ import annotations

import argparse
import json

from ...cli_parse import config_arg, config_values
from ...config import ModelConfig, TrainConfig
from ...training.atomic import write_file_atomic
from ...training.rundir import check_out
from .config import DataConfig, SearchConfig

__all__ = ["register", "COMMANDS", "add_fit_options"]

# the defaults every option shows and starts from are the config dataclasses' own
_D, _M, _T, _S = DataConfig(), ModelConfig(), TrainConfig(), SearchConfig()


def _add_data_args(p: argparse.ArgumentParser, data_optional: bool = False) -> None:
    g = p.add_argument_group("data")
    g.add_argument("data", metavar="DATA", help="CSV/TSV/Parquet file, or a built-in series such as builtin:sine "
                                               "(see `rnnkit datasets`)", **({"nargs": "?"} if data_optional else {}))
    for name in ("targets", "id_col", "time_col", "covariates", "future_covariates", "linear_covariates",
                 "static_covariates", "sampling",
                 "id_embedding", "calendar", "fill", "lookback", "horizon", "stride", "val_frac", "test_frac", "val_start", "test_start", "scaler", "seasonal_period",
                 "normalise", "skip", "transform", "difference", "refit"):
        config_arg(g, _D, name)
    g.add_argument("--future", metavar="FILE", help="the future covariates' values for the horizon after the data "
                   "(see `rnnkit forecast --future`): the run's forecast.csv needs them (default: none, and no "
                   "forecast.csv when there are future covariates)")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    for name in ("cell", "hidden_size", "num_layers", "dropout", "bidirectional", "strategy", "init", "peephole",
                 "quantiles", "distribution", "samples"):
        config_arg(g, _M, name)


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    config_arg(g, _T, "epochs")
    config_arg(g, _T, "steps", help="training budget in optimiser steps (one per batch; stateful: per chunk); "
                                    "--epochs is then a cap")
    config_arg(g, _T, "batch_size", help="windows per batch; more than there are windows means all of them")
    for name in ("lr", "optimizer", "momentum", "weight_decay", "clip_norm", "clip_value", "schedule"):
        config_arg(g, _T, name)
    # forecast_loss: None is mse, or the pinball loss of a quantile head (which no other loss trains)
    config_arg(g, _T, "loss", choices=("mse", "mae"), default_text="mse; pinball with --quantiles")
    for name in ("patience", "min_delta", "check_every", "many_to_many", "warmup", "stateful", "tbptt", "seed",
                 "engine", "device", "distributed"):
        config_arg(g, _T, name)


def _add_search_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ensembles and search")
    for name in ("ensemble", "ensemble_lookbacks", "auto", "time_budget", "combine", "gate_origins"):
        config_arg(g, _S, name)
    g = p.add_argument_group("prediction intervals")
    for name in ("intervals", "calibration_windows", "calibration_spacing", "calibration_refit"):
        config_arg(g, _S, name)


def add_fit_options(p: argparse.ArgumentParser, data_optional: bool = False) -> None:
    """The options of ``rnnkit fit`` but its output's: DATA and the data, model, training and search
    options, built from the configs, for another command that fits forecasters (``rnnkit sweep``)."""
    _add_data_args(p, data_optional), _add_model_args(p), _add_train_args(p), _add_search_args(p)


def _add_output_args(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    p.add_argument("--out", required=out_required, metavar="RUN", help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--verbose", action="store_true", help="print the loss every few epochs")


def register(sub) -> None:
    """Add forecasting's commands to ``rnnkit``'s subparsers."""
    p = sub.add_parser("fit", help="train a forecaster and write a run directory",
                       description="Train a recurrent forecaster on DATA and write a run directory with the "
                                   "weights, scaler, history, test metrics, a forecast and plots.")
    _add_data_args(p), _add_model_args(p), _add_train_args(p), _add_search_args(p), _add_output_args(p)

    p = sub.add_parser("forecast", help="forecast past the end of the data with a trained run")
    p.add_argument("--run", required=True, metavar="RUN", help="run directory from `rnnkit fit`")
    p.add_argument("--data", metavar="DATA", help="series to continue (default: the training data)")
    p.add_argument("--horizon", type=int, help="steps to forecast (default: the trained horizon)")
    p.add_argument("--future", metavar="FILE", help="CSV/TSV/Parquet file of the future covariates' values for the "
                   "forecast steps after the data (the time column, if the run has one, and one column per future "
                   "covariate; exactly one row per step); needed by runs with --future-covariates")
    p.add_argument("--ids", metavar="ID,ID,...", help="panel runs: forecast only these series (comma-separated; "
                   "default: every series of the data)")
    p.add_argument("--out", metavar="FILE.csv", help="write the forecast here (default: print it)")

    p = sub.add_parser("evaluate", help="metrics of a run against naive baselines")
    p.add_argument("--run", required=True, metavar="RUN", help="run directory from `rnnkit fit`")
    p.add_argument("--data", metavar="DATA", help="data to score on (default: the run's test rows)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")

    p = sub.add_parser("backtest", help="rolling-origin evaluation over the last folds of the data")
    p.add_argument("--run", required=True, metavar="RUN", help="run directory from `rnnkit fit`")
    p.add_argument("--data", required=True, metavar="DATA", help="series to backtest on")
    p.add_argument("--folds", type=int, required=True, metavar="K", help="number of forecast origins")
    p.add_argument("--refit", action="store_true", help="retrain on the expanding window at every fold (slow)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")

    sub.add_parser("datasets", help="list the built-in series")

    p = sub.add_parser("demo", help="the whole workflow on a built-in series")
    p.add_argument("--out", default="runs/demo", metavar="RUN", help="run directory (default: runs/demo)")
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def _configs(a: argparse.Namespace) -> tuple[DataConfig, ModelConfig, TrainConfig, SearchConfig]:
    dc = DataConfig(source=a.data, **config_values(a, DataConfig))
    mc = ModelConfig(**config_values(a, ModelConfig))
    values = config_values(a, TrainConfig)
    tc = TrainConfig(**values, shuffle=not values["stateful"])  # stateful streams are read in order
    return dc, mc, tc, SearchConfig(**config_values(a, SearchConfig))


def _print_quantile_scores(scores: dict) -> None:
    """A quantile run's scores of its levels, one line (nothing for a point forecast)."""
    if "quantile_scores" in scores.get("model", {}):
        from .quantiles import describe_level_scores
        print(f"quantiles: {describe_level_scores(scores['model']['quantile_scores'])}")


def _metrics_table(scores: dict, label: str = "model") -> str:
    """Overall metrics, one row per forecaster: the model (shown as ``label``) and the baselines."""
    from ...report import format_table
    return format_table({(label if name == "model" else name): s["overall"] for name, s in scores.items()})


def _intervals_text(scores: dict, what: str) -> str:
    """One line: the coverage and mean width of each level's intervals (``scores["model"]["intervals"]``)."""
    each = [f"{name} %: coverage {s['coverage']:.3f} (mean width {s['width']:.4g})"
            for name, s in scores["model"]["intervals"].items()]
    return f"intervals on {what}: " + "; ".join(each)


def cmd_fit(a: argparse.Namespace) -> int:
    from ...training.distributed import is_writer
    from .data import load_data
    from .workflow import fit_forecaster
    from .run import save_forecast_run
    dc, mc, tc, search = _configs(a)
    check_out(a.out, a.force, protect=[a.data])  # refuse before spending minutes on training
    if dc.id_col is not None:  # a panel: one global model over every series
        from .panel_cli import fit_panel
        return fit_panel(a, dc, mc, tc, search)
    data = load_data(dc)
    if a.future is not None:  # checked before training too
        from ...errors import ConfigError
        from .future import future_values
        if not dc.future_covariates:
            raise ConfigError("--future gives the future covariates' values, and there are none; pass "
                              "--future-covariates COL, or drop --future")
        future_values(a.future, dc.future_covariates, dc.time_col, data.frame.index, data.freq, dc.horizon)
    run = fit_forecaster(dc, mc, tc, data=data, quiet=a.quiet, verbose=a.verbose, search=search)
    if not is_writer():  # --distributed: the ranks other than 0 trained alongside; rank 0 writes and reports
        return 0
    out = save_forecast_run(run, data, a.out, force=a.force, future=a.future)
    h, mc, rd, meta = run.history, run.model_config, run.data_config, run.meta
    if meta["selection"]["search"]:
        tried = len(meta["selection"]["search"])
        print(f"auto: tried {tried} setting(s); chose lookback {rd.lookback}, hidden {mc.hidden_size}, "
              f"lr {run.train_config.lr:g}, normalise {rd.normalise}, skip {rd.skip}")
    members = meta["ensemble"]
    print(f"trained {mc.cell} ({mc.num_layers}x{mc.hidden_size}, {mc.strategy}"
          + (f", ensemble of {members}, median" if members > 1 else "") + f") for {len(h.rows)} epochs "
          f"with the {'fused native' if h.engine == 'fused' else 'torch'} trainer"
          + (f" on {h.device}" if h.device != "cpu" else "")
          + (f" ({h.engine_reason})" if mc.quantiles and h.engine_reason else "")
          + (f", best epoch {h.best_epoch}" if h.best_epoch else "") + (" (stopped early)" if h.stopped_early else ""))
    refit = [e for e in meta["refit_epochs"] if e]
    if refit:
        print(f"refitted {len(refit)} of {members} member(s) on the training and validation rows for "
              f"{refit[0] if members == 1 else refit} epochs (the epochs validation chose; --refit none to keep the "
              "first training)")
    gate = meta.get("gate")
    if gate:
        print(f"naive gate: skipped, {gate['skipped']}" if "skipped" in gate else
              f"naive gate: refitted at {len(gate['origins'])} origins, the pipeline's error was "
              f"{gate['relative_mae']:.3g}x the naive forecast's: "
              + ("the run forecasts the naive forecast" if gate["fell_back"] else "kept"))
    looks = run.search.ensemble_lookbacks
    if looks:  # members cycle over the lookbacks, each with the skip and transform of its own windows
        each = "; ".join(f"{v['lookback']} (skip {v['skip']}, transform {v['transform']})"
                         for v in meta["lookback_members"])
        print(f"lookbacks {each}, season m={rd.seasonal_period}, normalise {rd.normalise}")
    else:
        print(f"lookback {rd.lookback}, season m={rd.seasonal_period}, normalise {rd.normalise}, skip {rd.skip}, "
              f"transform {rd.transform}")
    if meta["known_inputs"]:
        print(f"known inputs per step: {', '.join(meta['known_inputs'])}")
    if rd.future_covariates and a.future is None:
        print("no forecast.csv: forecasting past the data needs the future covariates' values; run `rnnkit "
              f"forecast --run {out} --future FILE`")
    if meta["naive_members"]:
        naive = "their" if looks else f"the {rd.skip}"
        print(f"{meta['naive_members']} of {members} member(s) did not beat {naive} naive forecast on the "
              "validation rows and forecast it instead"
              + (" (as the centre; the other quantiles keep their trained spread)" if mc.quantiles else ""))
    weights = [w for w in meta.get("naive_weights", []) if w < 1.0]
    if weights:
        print("combined with the naive forecast by validation errors: the network's weight "
              + ", ".join(f"{w:.2f}" for w in weights) + " (--combine none: the network alone)")
    if run.metrics:
        print(f"test metrics ({run.meta['n_rows'] - run.meta['test_start']} rows, original units):")
        print(_metrics_table(run.metrics, f"rnnkit {mc.cell}"))
    cal = run.calibration
    if cal is not None:
        print(f"split-conformal intervals {', '.join(f'{v:g}' for v in cal.levels)} %, calibrated on {cal.windows} "
              f"rolling origins {cal.spacing} step(s) apart ({'a refit before each' if cal.refit == 'each' else 'one refit'})")
        if run.metrics:
            print(_intervals_text(run.metrics, "the test rows"))
    if run.metrics:
        _print_quantile_scores(run.metrics)
    print(f"run directory: {out}")
    return 0


def _load(path):
    """``(run, is_panel)``: a forecasting run, of one series or of a panel (:mod:`.panel_load`), by
    its kind (any other kind is refused by the one-series loader, which says what to do)."""
    from ...training.runs import run_kind
    if run_kind(path) == "panel":
        from .panel_load import load_panel_run
        return load_panel_run(path), True
    from .run import load_forecast_run
    return load_forecast_run(path), False


def cmd_forecast(a: argparse.Namespace) -> int:
    run, panel = _load(a.run)
    if panel:
        from .panel_cli import forecast_panel
        return forecast_panel(run, a)
    if a.ids is not None:
        from ...errors import ConfigError
        raise ConfigError("--ids picks series of a panel run (one fitted with --id-col); this run forecasts one series")
    data = run.load_data(a.data) if a.data else run.load_data()
    frame = run.forecast(data, horizon=a.horizon, future=a.future)
    if a.out:
        write_file_atomic(a.out, frame.to_csv)
        print(f"wrote {len(frame)} forecast steps to {a.out}")
    else:
        print(frame.to_string())
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    run, panel = _load(a.run)
    if panel:
        from .panel_cli import evaluate_panel
        return evaluate_panel(run, a)
    data = run.load_data(a.data) if a.data else run.load_data()
    import pandas as pd
    start = run.scoring_start(data)
    scores = run.evaluate(data)
    if a.json:
        from ...training.runs import json_safe
        print(json.dumps(json_safe(scores), indent=2))
    else:
        when = data.frame.index[start]
        print(f"scored {len(data) - start} rows after the training and validation rows (from "
              f"{'row ' + str(start) if not isinstance(when, pd.Timestamp) else str(when.date())}), "
              f"{len(data) - start - run.data_config.horizon + 1} forecast origins:")
        print(_metrics_table(scores, f"rnnkit {run.model_config.cell}"))
        if "intervals" in scores["model"]:
            print(_intervals_text(scores, "these rows"))
        _print_quantile_scores(scores)
    return 0


def cmd_backtest(a: argparse.Namespace) -> int:
    run, panel = _load(a.run)
    if panel:
        from .panel_cli import backtest_panel
        return backtest_panel(run, a)
    result = run.backtest(run.load_data(a.data), folds=a.folds, refit=a.refit, quiet=True)
    if a.json:
        from ...training.runs import json_safe
        print(json.dumps(json_safe(result), indent=2))
        return 0
    print(f"{a.folds} folds, origins at rows {[f['origin'] for f in result['folds']]}, "
          f"horizon {run.data_config.horizon}{', refit each fold' if a.refit else ''}:")
    print(_metrics_table(result["overall"], f"rnnkit {run.model_config.cell}"))
    if "intervals" in result["overall"]["model"]:
        print(_intervals_text(result["overall"], "the folds"))
    return 0


def cmd_datasets(a: argparse.Namespace) -> int:
    from ...data.builtin import list_builtins
    rows = [("name", "rows", "m", "columns", "description")]
    for b in list_builtins():
        rows.append((f"builtin:{b.name}", str(b.n_rows), str(b.m), ",".join(b.columns), b.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    """The ReNom set-up: sin(x) on 50 points of [-10, 10], lookback 5, first half for training."""
    from .data import load_data
    from .workflow import fit_forecaster
    from .run import save_forecast_run
    dc = DataConfig(source="builtin:sine", lookback=5, horizon=1, val_frac=0.0, test_frac=0.5)
    mc = ModelConfig(cell="lstm", hidden_size=16)
    tc = TrainConfig(epochs=500, batch_size=5, lr=0.01, patience=0, seed=0)
    check_out(a.out, a.force)
    print("rnnkit demo: LSTM(16) on builtin:sine (sin(x), 50 points on [-10, 10]), lookback 5, "
          "first half train / second half test, Adam lr 0.01, batch 5, 500 epochs")
    data = load_data(dc)
    run = fit_forecaster(dc, mc, tc, data=data, quiet=a.quiet)
    out = save_forecast_run(run, data, a.out, force=a.force)
    mse = run.metrics["model"]["overall"]["rmse"] ** 2
    print(f"test MSE {mse:.6f} (the ReNom tutorial reports a test loss of about 0.002 with a smaller LSTM; "
          "its loss is half the MSE, so an MSE of about 0.004)")
    print(_metrics_table(run.metrics, f"rnnkit {mc.cell}"))
    print(f"run directory: {out}  (plots: {out / 'learning_curve.png'}, {out / 'forecast.png'})")
    print(f"next: rnnkit evaluate --run {out}    rnnkit forecast --run {out} --horizon 10")
    return 0


COMMANDS = {"fit": cmd_fit, "forecast": cmd_forecast, "evaluate": cmd_evaluate, "backtest": cmd_backtest,
            "datasets": cmd_datasets, "demo": cmd_demo}
