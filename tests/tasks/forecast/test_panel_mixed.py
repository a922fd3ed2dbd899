"""A panel of series at different frequencies (monthly and quarterly): one model across them only
with a season given (``--seasonal-period``, 1 for none) and no calendar features; each series keeps
its own frequency for its forecast dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import rnnkit
from cli_cases import one_line_error
from rnnkit.errors import DataError
from rnnkit.tasks.forecast.panel_run import fit_global

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=4)
QUICK = rnnkit.TrainConfig(epochs=2, batch_size=16)


def mixed_panel() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    blocks = []
    for sid, freq, n in (("m1", "MS", 40), ("m2", "MS", 36), ("q1", "QS", 30), ("q2", "QS", 28)):
        dates = pd.date_range("2000-01-01", periods=n, freq=freq).strftime("%Y-%m-%d")
        blocks.append(pd.DataFrame({"id": sid, "date": dates, "y": 50 + np.cumsum(rng.normal(0, 1, n))}))
    return pd.concat(blocks, ignore_index=True)


def test_one_model_across_frequencies_with_a_season_given(tmp_path):
    raw = mixed_panel()
    dc = rnnkit.DataConfig(id_col="id", time_col="date", lookback=8, horizon=4, seasonal_period=1)
    run = fit_global(dc, SMALL, QUICK, raw, quiet=True)
    assert run.meta["freq"] is None and run.data_config.seasonal_period == 1 and run.data_config.skip != "seasonal"
    fc = run.forecast(raw)
    last = raw.groupby("id", sort=False).date.last()
    for sid, offset in (("m1", pd.DateOffset(months=1)), ("q1", pd.DateOffset(months=3))):
        dates = pd.to_datetime(fc[fc.id == sid].date).tolist()  # each series continues at its own frequency
        assert dates == [pd.Timestamp(last[sid]) + offset * h for h in range(1, 5)]
    run.save(tmp_path / "run", data=raw)
    pd.testing.assert_frame_equal(rnnkit.load_run(tmp_path / "run").forecast(raw), fc)


def test_without_a_season_or_with_a_calendar_it_is_refused():
    raw = mixed_panel()
    dc = rnnkit.DataConfig(id_col="id", time_col="date", lookback=8, horizon=4)
    with pytest.raises(DataError, match="series 'q1' has frequency QS-JAN but series 'm1' has MS.*--seasonal-period"):
        fit_global(dc, SMALL, QUICK, raw, quiet=True)
    with pytest.raises(DataError, match="without --calendar"):
        fit_global(dc.replace(seasonal_period=1, calendar="sincos"), SMALL, QUICK, raw, quiet=True)


def test_the_command_line(tmp_path, capsys):
    raw = mixed_panel()
    raw.to_csv(tmp_path / "p.csv", index=False)
    fit = ["fit", str(tmp_path / "p.csv"), "--id-col", "id", "--time-col", "date", "--target", "y", "--lookback", "8",
           "--horizon", "4", "--epochs", "1", "--hidden", "4", "--quiet", "--out", str(tmp_path / "run")]
    assert "--seasonal-period" in one_line_error(capsys, fit)
    assert rnnkit.cli.main(fit + ["--seasonal-period", "1"]) == 0
    assert (tmp_path / "run" / "forecast.csv").exists()
