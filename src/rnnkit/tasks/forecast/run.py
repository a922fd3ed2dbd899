"""A forecasting run directory: saving a :class:`~rnnkit.tasks.forecast.workflow.ForecastRun` (with
its forecast.csv and plots) and loading it back. The files every kind of run has are written and
checked by :mod:`rnnkit.training.runs`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ...config import ModelConfig, TrainConfig
from ...training.plots import plot_forecast
from ...training.runcheck import RunCheck
from ...training.rundir import consistent_read, write_run_dir
from ...training.runs import load_weights, loading, read_config, write_json, write_run_files
from .config import DataConfig
from .model import Forecaster
from .predict import predict_windows, windows_for
from .workflow import ForecastRun

__all__ = ["save_run", "save_forecast_run", "load_forecast_run"]


def save_run(run, out: str | os.PathLike, force: bool = False, extra: Callable[[Path], None] | None = None,
             kind: str = "forecast", plots: bool = False) -> Path:
    """Write a :class:`~rnnkit.tasks.forecast.workflow.ForecastRun` to ``out`` (see the module docstring).

    ``extra(tmp_dir)`` may add files (forecast.csv, plots) before the directory is renamed into place.
    """
    def write(d: Path) -> None:
        sections = {"model": run.model_config.to_dict(), "data": run.data_config.to_dict(),
                    "train": run.train_config.to_dict(), "meta": run.meta,
                    "shapes": {"input_size": run.model.input_size, "n_targets": run.model.n_targets,
                               "horizon": run.model.horizon}}
        write_run_files(d, kind, sections, run.model, run.history, run.metrics,
                        curve_title=f"{run.model_config.cell} learning curve" if plots else None)
        write_json(d / "scaler.json", run.scaler.to_dict())
        if extra is not None:
            extra(d)
    return write_run_dir(out, write, force, protect=[run.data_config.source])


@consistent_read
def load_forecast_run(path: str | os.PathLike):
    """Load a forecasting run directory (see :func:`load_run`)."""
    d = Path(path)
    config = read_config(d, "forecast")
    check = RunCheck(d, "forecast")
    with loading(d, "forecast"):
        s, meta, shapes = check.sections(config, {"model": ModelConfig, "data": DataConfig, "train": TrainConfig})
        mc, dc, tc = s["model"], s["data"], s["train"]
        n_in, n_out = len(dc.targets) + len(dc.covariates), len(dc.targets)
        check.agree(n_out >= 1 and (shapes["input_size"], shapes["n_targets"], shapes["horizon"]) ==
                    (n_in, n_out, dc.horizon), "config.json",
                    f"shapes {shapes} do not match the data section ({n_out} target(s), {n_in} input(s), "
                    f"horizon {dc.horizon})")
        rows = meta["train_rows"], meta["val_rows"], meta["test_start"], meta["n_rows"]
        check.agree(0 < rows[0] and 0 <= rows[1] and rows[0] + rows[1] == rows[2] <= rows[3], "config.json",
                    f"meta's split (train_rows {rows[0]}, val_rows {rows[1]}, test_start {rows[2]}, n_rows "
                    f"{rows[3]}) is impossible")
        scaler = check.scaler(n_in)
        model = load_weights(check, lambda: Forecaster(n_in, n_out, dc.horizon, mc), meta, mc,
                             {"input_size": n_in, "horizon x targets": dc.horizon * n_out})
        history, metrics = check.reports()
    return ForecastRun(model, scaler, dc, mc, tc, history, metrics, meta)


def save_forecast_run(run, data, out: str | os.PathLike, force: bool = False) -> Path:
    """Save ``run`` with the files a person looks at: ``forecast.csv`` (the next ``horizon`` steps
    after ``data``), ``learning_curve.png`` and ``forecast.png`` (history, test forecasts, future)."""
    future = run.forecast(data)
    dc, C = run.data_config, len(run.targets)
    test_index = test_pred = None
    start = run.meta["test_start"]
    if start < len(data):
        X, _, starts = windows_for(data.values, C, dc.lookback, 1, 1, start, len(data))
        test_pred = predict_windows(run.model, run.scaler, X, 1, C)[:, 0]  # one step ahead, (W, C)
        test_index = data.frame.index[starts]

    def extra(d: Path) -> None:
        future.to_csv(d / "forecast.csv")
        index = data.frame.index
        plot_forecast(index, data.target_values, run.targets, d / "forecast.png",
                      future_index=future.index, forecast=future[list(run.targets)].to_numpy(),
                      test_start=start if start < len(data) else None, test_index=test_index,
                      test_pred=test_pred, title=f"{run.model_config.cell} forecast")
    return save_run(run, out, force=force, extra=extra, plots=True)
