"""What a panel run's ONNX export adds to a forecaster's (:mod:`.forecast_export`): the per-series
scaler parameters, as graph inputs and as the table written next to the graph.

A panel run (:class:`~rnnkit.tasks.forecast.panel_run.PanelRun`) is one global network over many
series, each series scaled by its own :class:`~rnnkit.data.scaler.Scaler` (``(x - offset) / scale``
per column, fitted on that series' training rows). The forecast graph takes each row's parameters as
two more inputs, ``shift`` and ``scale`` ``(batch, F)`` float64 (the scaler's offset and scale, one
per column), so one graph forecasts every series, and a series new to the run too (its parameters
computed as rnnkit fits them). The table ``<name>.series.csv`` next to the graph holds the training
series' parameters: the id column, then ``shift_<column>`` for every column, then ``scale_<column>``,
then for a run with static covariates or an id embedding each series' encoded features
``static_<feature>`` (numbers standardised, categories and the id one-hot), the graph's input
``static``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["is_panel", "series_file_name", "params", "series_table", "write_series_table", "panel_inputs",
           "static_inputs", "panel_meta", "check_ids"]

#: what the per-series table's name adds to the graph's (``model.onnx`` -> ``model.series.csv``)
SERIES_SUFFIX = ".series.csv"


def is_panel(run) -> bool:
    from ..forecast.panel_run import PanelRun
    return isinstance(run, PanelRun)


def series_file_name(path: str | Path) -> str:
    """The name of the per-series table written next to the graph ``path``."""
    path = Path(path)
    return (path.stem if path.suffix else path.name) + SERIES_SUFFIX


def params(run, ids) -> tuple[np.ndarray, np.ndarray]:
    """The scalers' offsets and scales of the series ``ids``, each ``(len(ids), F)`` float64."""
    return (np.stack([run.scalers[i].offset for i in ids]).astype(np.float64),
            np.stack([run.scalers[i].scale for i in ids]).astype(np.float64))


def series_table(run) -> pd.DataFrame:
    """Every training series' scaler: the run's id column, ``shift_<column>``, ``scale_<column>``, then
    with static features (static covariates, an id embedding) ``static_<feature>`` for each of them."""
    ids = list(run.scalers)
    shift, scale = params(run, ids)
    table = {run.data_config.id_col: ids}
    table.update({f"shift_{c}": shift[:, j] for j, c in enumerate(run.columns)})
    table.update({f"scale_{c}": scale[:, j] for j, c in enumerate(run.columns)})
    if run.statics.width:
        rows = run.static_rows(ids)
        table.update({f"static_{name}": rows[:, j] for j, name in enumerate(run.statics.names)})
    return pd.DataFrame(table)


def write_series_table(run):
    """A writer of :func:`series_table` as CSV to a path (floats written so that they read back exactly)."""
    table = series_table(run)
    return lambda path: table.to_csv(path, index=False)


def panel_inputs(run) -> list[dict]:
    """The metadata entries of the graph's ``shift`` and ``scale`` inputs."""
    F = len(run.columns)
    return [{"name": name, "shape": ["batch", F], "dtype": "float64", "columns": list(run.columns),
             "units": "data", "per": "series"} for name in ("shift", "scale")]


def static_inputs(run) -> list[dict]:
    """The metadata entry of the graph's ``static`` input (none without static features)."""
    if not run.statics.width:
        return []
    return [{"name": "static", "shape": ["batch", run.statics.width], "dtype": "float64",
             "columns": list(run.statics.names), "units": "features", "per": "series",
             "table": "the series table's static_<feature> columns"}]


def panel_meta(run, series_file: str) -> dict[str, str]:
    return {"kind": "panel", "id_col": run.data_config.id_col, "series_file": series_file,
            "n_series": str(len(run.scalers)), "scaler_kind": run.data_config.scaler}


def check_ids(run, n: int = 4) -> list[str]:
    """Up to ``n`` of the run's series, spread over its ids (first, last and between)."""
    ids = list(run.scalers)
    return [ids[k] for k in sorted(set(np.linspace(0, len(ids) - 1, min(n, len(ids))).round().astype(int)))]
