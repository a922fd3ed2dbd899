"""``--transform log`` on a panel: each series' targets scaled, windowed and forecast on the log
scale and brought back through exp (panel.log_targets, PanelRun.transform): a closed-form forecast
with the network's output zeroed, the run reloaded, the export graph, and the refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from panel_cases import refused_fit, seasonal_panel
from rnnkit.errors import ConfigError, DataError
from rnnkit.tasks.forecast.panel_run import fit_global

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=4)
QUICK = rnnkit.TrainConfig(epochs=2, batch_size=16)
DC = rnnkit.DataConfig(id_col="id", lookback=6, horizon=3, transform="log")


def test_the_forecast_comes_back_through_exp():
    """With no normalisation or skip and the network's output zeroed, the forecast on the log scale is
    the scaled 0, the minimum of the series' log training targets: back through exp, the series' own
    training minimum, for every step and series."""
    raw = seasonal_panel(5)
    run = fit_global(DC.replace(normalise="none", skip="none"), SMALL, QUICK, raw, quiet=True)
    assert run.data_config.transform == "log" and run.transform.name == "log"
    with torch.no_grad():
        run.model.head.weight.zero_(), run.model.head.bias.zero_()
    got = run.forecast(raw)
    for sid, (end, _) in zip(run.meta["ids"], run.meta["splits"]):
        lowest = raw[raw.id == sid].y.to_numpy()[:end].min()
        np.testing.assert_allclose(got[got.id == sid].y.to_numpy(), lowest, rtol=1e-9)


def test_a_log_run_reloads_and_scores_in_the_datas_units(tmp_path):
    raw = seasonal_panel(6)
    run = fit_global(DC, SMALL, QUICK, raw, quiet=True)
    run.save(tmp_path / "run", data=raw)
    loaded = rnnkit.load_run(tmp_path / "run")
    pd.testing.assert_frame_equal(loaded.forecast(raw), run.forecast(raw))
    assert loaded.data_config.transform == "log"
    none = fit_global(DC.replace(transform="none"), SMALL, QUICK, raw, quiet=True)
    # the forecasts are in the data's units either way: the same order of magnitude as the series
    for r in (run, none):
        f = r.forecast(raw).groupby("id", sort=False).y.mean().to_numpy()
        level = raw.groupby("id", sort=False).y.mean().to_numpy()
        assert np.all((f > level / 3) & (f < level * 3))


def test_the_export_graph_takes_the_log_too(tmp_path):
    pytest.importorskip("onnxruntime", reason="the deploy extra (onnxruntime) checks the graph")
    raw = seasonal_panel(4)
    run = fit_global(DC, SMALL, QUICK, raw, quiet=True)
    # export's own check compares onnxruntime's forecasts with run.predict_contexts and refuses a mismatch
    path = rnnkit.export_onnx(run, tmp_path / "m.onnx")
    assert path.exists()


def test_refusals():
    raw = seasonal_panel(3)
    raw.loc[raw.index[40], "y"] = -1.0  # in series s1
    with pytest.raises(DataError, match=r"series 's1'.*--transform log needs positive targets"):
        fit_global(DC, SMALL, QUICK, raw, quiet=True)
    with pytest.raises(ConfigError, match="--transform boxcox: not yet for panels"):
        fit_global(DC.replace(transform="boxcox"), SMALL, QUICK, seasonal_panel(3), quiet=True)


def test_the_command_line_refuses_a_non_positive_series_in_one_line(tmp_path, capsys):
    raw = seasonal_panel(3)
    raw.loc[raw.index[3], "y"] = 0.0  # in series s0
    fit = ["fit", None, "--id-col", "id", "--target", "y", "--horizon", "3", "--lookback", "6", "--epochs", "1",
           "--hidden", "4", "--quiet", "--transform", "log"]
    assert "series 's0'): --transform log needs positive targets" in refused_fit(tmp_path, capsys, raw, fit, [])
