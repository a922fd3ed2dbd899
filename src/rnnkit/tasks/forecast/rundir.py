"""A forecasting run's directory, for one series: the files every forecasting run has (config,
weights, scaler, history, metrics, intervals; :func:`write_forecast_run`) and the ones
:meth:`ForecastRun.save <rnnkit.tasks.forecast.workflow.ForecastRun.save>` adds for a person to
look at (forecast.csv and forecast.png: :func:`forecast_files`). ``run`` is a
:class:`~rnnkit.tasks.forecast.workflow.ForecastRun` (which imports this module, so it is not
imported here). :mod:`rnnkit.tasks.forecast.run` reads the directory back; a panel's is
:mod:`.panel_rundir`'s."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pandas as pd

from ...data.series import SeriesData
from ...training.plots import plot_forecast
from ...training.rundir import write_run_dir
from ...training.runs import write_json, write_run_files
from .conformal import level_name
from .predict import windows_for
from .quantiles import outer_band

__all__ = ["write_forecast_run", "forecast_files"]


def write_forecast_run(run, out: str | os.PathLike, force: bool = False,
                       extra: Callable[[Path], None] | None = None, kind: str = "forecast",
                       plots: bool = False) -> Path:
    """Write the files every forecasting run has (config, weights, scaler, history, metrics) to ``out``
    atomically; ``extra(tmp_dir)`` may add files (forecast.csv, plots) before the directory is
    renamed into place. :meth:`~rnnkit.tasks.forecast.workflow.ForecastRun.save` adds those
    (:func:`forecast_files`); :func:`rnnkit.save_run` does not."""
    def write(d: Path) -> None:
        sections = {"model": run.model_config.to_dict(), "data": run.data_config.to_dict(),
                    "train": run.train_config.to_dict(), "search": run.search.to_dict(), "meta": run.meta,
                    "shapes": {"input_size": run.model.input_size, "n_targets": run.model.n_targets,
                               "horizon": run.model.horizon}}
        write_run_files(d, kind, sections, run.model, run.history, run.metrics,
                        curve_title=f"{run.model_config.cell} learning curve" if plots else None)
        write_json(d / "scaler.json", run.scaler.to_dict())
        if run.calibration is not None:
            write_json(d / "intervals.json", run.calibration.to_dict())
        if extra is not None:
            extra(d)
    return write_run_dir(out, write, force, protect=[run.data_config.source])


def forecast_files(run, data: SeriesData, ahead: pd.DataFrame | None, future=None) -> Callable[[Path], None]:
    """The ``extra`` that :meth:`~rnnkit.tasks.forecast.workflow.ForecastRun.save` passes to
    :func:`write_forecast_run`: it writes ``ahead`` (the forecast after ``data``; None: the run has
    future covariates and no ``future`` gives their values) to forecast.csv, and forecast.png:
    ``data``'s history, the one-step-ahead forecasts of its rows from the run's test start, and
    ``ahead`` with its intervals (conformal, or a quantile run's outermost central one). The test
    forecasts are made here, before the directory is written."""
    dc, C = run.data_config, len(run.targets)
    test_index = test_pred = None
    start = run.meta["test_start"]
    # a direct model with future covariates reads a whole horizon of them: without the future
    # rows, only the windows whose horizon lies in the data are shown
    reach = dc.horizon if dc.future_covariates and not run.recursive and ahead is None else 1
    if len(data) - start >= reach:
        X, _, starts = windows_for(data.values, C, dc.lookback, reach, 1, start, len(data))
        values = run.future_values(data, future) if ahead is not None else None
        test_pred = run.predict_contexts(X, 1, run.known(data, starts, values, 1))[:, 0]  # one step ahead, (W, C)
        test_index = data.frame.index[starts]

    point = None if ahead is None else ahead[list(run.targets)].to_numpy()  # (H, C)
    bands = None
    if point is not None and run.calibration is not None:  # conformal intervals
        bands = [(f"{level_name(a)} % interval", lo[0], hi[0]) for a, lo, hi in run.calibration.bands(point[None])]
    elif point is not None:  # a quantile run's outermost central interval (none for a point forecast)
        band = outer_band(ahead, run.targets, run.levels)
        bands = [band] if band is not None else None

    def extra(d: Path) -> None:
        if ahead is not None:
            ahead.to_csv(d / "forecast.csv")
        plot_forecast(data.frame.index, data.target_values, run.targets, d / "forecast.png",
                      future_index=None if ahead is None else ahead.index, forecast=point, bands=bands,
                      test_start=start if start < len(data) else None, test_index=test_index,
                      test_pred=test_pred, title=f"{run.model_config.cell} forecast")
    return extra
