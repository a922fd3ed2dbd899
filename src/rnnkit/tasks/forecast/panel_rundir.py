"""A global model's run directory (kind ``"panel"``), written by :func:`write_panel_run`:
config.json, weights.safetensors, scalers.json (:data:`SCALERS_FILE`: one scaler per series id, the
static encoder and each series' static values), history, metrics.json, series_metrics.csv,
forecast.csv and forecast.png. :mod:`.panel_load` reads it back."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ...data.panel import PanelData
from ...training.rundir import write_run_dir
from ...training.runs import json_safe, write_json, write_run_files
from .panel_plot import write_panel_plot
from .panel_scores import series_table

__all__ = ["write_panel_run", "SCALERS_FILE"]

SCALERS_FILE = "scalers.json"


def write_panel_run(run, out, force: bool = False, ahead: pd.DataFrame | None = None,
                    panel: PanelData | None = None, plot_ids: Sequence[str] | None = None) -> Path:
    """The run directory of ``run`` (a :class:`~.panel_run.PanelRun`: :meth:`~.panel_run.PanelRun.save`),
    written atomically: a failure (of the plot too) leaves none. ``ahead`` (the forecast table) is its forecast.csv; with ``panel`` (the series
    forecast) it has forecast.png (:func:`~rnnkit.tasks.forecast.run.save_run` passes neither)."""
    def write(d: Path) -> None:
        sections = {"model": run.model_config.to_dict(), "data": run.data_config.to_dict(),
                    "train": run.train_config.to_dict(), "search": run.search.to_dict(), "meta": run.meta,
                    "shapes": {"input_size": run.model.input_size, "n_targets": run.model.n_targets,
                               "horizon": run.model.horizon}}
        write_run_files(d, "panel", sections, run.model, run.history, None,
                        curve_title=f"{run.model_config.cell} learning curve")
        write_json(d / SCALERS_FILE, {"ids": list(run.scalers), "scalers": [s.to_dict() for s in run.scalers.values()],
                                      "statics": run.statics.to_dict(),
                                      **({"static_values": {c: list(v) for c, v in run.static_values.items()}}
                                         if run.static_values is not None else {})})
        if run.metrics:
            write_json(d / "metrics.json", json_safe(run.metrics))
            series_table(run.metrics).to_csv(d / "series_metrics.csv", index=False)
        if ahead is not None:
            ahead.to_csv(d / "forecast.csv", index=False)
        if panel is not None:
            write_panel_plot(d / "forecast.png", run, panel, ahead, plot_ids)
    return write_run_dir(out, write, force, protect=[run.data_config.source])
