"""Conformal intervals of a global model: the half-widths against a brute-force conformal quantile
of the calibration fit's scaled errors, the forecast's bands against them by hand, and a reload."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import rnnkit
from panel_cases import seasonal_panel
from rnnkit.errors import ConfigError
from rnnkit.tasks.forecast.levels import min_windows
from rnnkit.tasks.forecast.panel_intervals import (MAX_ORIGINS, PanelIntervals, calibrate_panel, calibration_origins,
                                                   series_scale)
from rnnkit.tasks.forecast.panel_run import fit_global

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=4)
QUICK = rnnkit.TrainConfig(epochs=3, batch_size=16)


def panel(n_series=12, seed=0) -> pd.DataFrame:
    return seasonal_panel(n_series, seed)


def test_series_scale_is_the_mean_absolute_lagged_difference():
    v = np.array([[1.0], [4.0], [2.0], [7.0]])
    np.testing.assert_allclose(series_scale(v, 1), [(3 + 2 + 5) / 3])
    np.testing.assert_allclose(series_scale(v, 2), [(1 + 3) / 2])
    np.testing.assert_allclose(series_scale(v, 4), [(3 + 2 + 5) / 3])  # too short for its season: lag 1
    np.testing.assert_array_equal(series_scale(np.ones((5, 1)), 1), [1.0])  # flat: errors in their own units


def test_half_widths_are_the_conformal_rank_of_the_scaled_errors():
    rng = np.random.default_rng(1)
    K, H = 9, 3
    actual, point = rng.normal(size=(K, H, 1)), rng.normal(size=(K, H, 1))
    scales = rng.uniform(0.5, 2.0, size=(K, 1))
    cal = calibrate_panel((80,), actual, point, scales)
    scaled = np.abs(actual - point) / scales[:, None, :]
    rank = math.ceil((K + 1) * 0.8)  # the finite-sample split-conformal quantile, per step
    per_step = np.sort(scaled, axis=0)[rank - 1]  # (H, 1)
    # then never narrower than at an earlier step: the running maximum over the steps
    np.testing.assert_array_equal(cal.widths[0], [[max(per_step[:h + 1, 0])] for h in range(H)])
    assert PanelIntervals.from_dict(cal.to_dict(), H, 1).widths.tolist() == cal.widths.tolist()


def test_panel_forecast_bands_are_point_plus_minus_width_times_scale(tmp_path):
    raw = panel()
    dc = rnnkit.DataConfig(id_col="id", horizon=3, lookback=6, seasonal_period=6)
    run = fit_global(dc, SMALL, QUICK, raw, quiet=True, search=rnnkit.SearchConfig(intervals=(80,)))
    assert run.intervals.windows == 12  # every series holds out a calibration horizon
    fc = run.forecast(raw)
    for sid, g in fc.groupby("id", sort=False):
        train_end = dict(zip(run.ids, run.meta["splits"]))[sid][0]
        values = raw.loc[raw["id"] == sid, ["y"]].to_numpy()
        scale = series_scale(values[:train_end], 6)[0]
        half = run.intervals.widths[0, :, 0] * scale
        np.testing.assert_allclose(g["y_hi_80"] - g["y"], half, rtol=1e-12)
        np.testing.assert_allclose(g["y"] - g["y_lo_80"], half, rtol=1e-12)
    assert "80" in run.metrics["summary"]["intervals"]
    run.save(tmp_path / "run", data=raw)
    again = rnnkit.load_run(tmp_path / "run")
    pd.testing.assert_frame_equal(again.forecast(raw), fc, check_exact=True)


def test_calibration_origins_are_as_few_as_the_levels_need():
    ends, L, H = [20, 14, 9], 4, 3
    assert calibration_origins(ends, L, H, (80,)) == [[(0, 17), (1, 11), (2, 6)], [(0, 14), (1, 8)]]  # 5 >= 4
    plan = calibration_origins([40, 30, 20], L, H, (80, 95))  # 19 windows: 3 a fit, then fewer as series run out
    assert [len(p) for p in plan] == [3, 3, 3, 3, 3, 2, 2] and plan[-1] == [(0, 19), (1, 9)]
    assert len(calibration_origins([10 ** 6] * 5, 4, 1, (99,))) == MAX_ORIGINS  # 100 windows >= 99


def test_the_default_is_the_levels_minimum():
    """No calibration_windows: the fewest origins whose windows bound the levels, the same plan as
    passing that minimum; a panel of as many series keeps its single fit."""
    L, H = 12, 8
    for levels in ((80,), (95,), (80, 95)):
        need = min_windows(levels)
        plan = calibration_origins([200] * 12, L, H, levels)
        assert plan == calibration_origins([200] * 12, L, H, levels, need)
        assert sum(map(len, plan)) >= need > sum(map(len, plan[:-1]))  # one fit fewer would not bound them
    assert len(calibration_origins([200] * 12, L, H, (80, 95))) == 2  # 24 windows >= 19
    assert len(calibration_origins([200] * 19, L, H, (80, 95))) == 1


def test_calibration_windows_is_a_floor_on_the_windows():
    L, H = 12, 8
    plan = calibration_origins([200] * 12, L, H, (80, 95), windows=100)
    assert len(plan) == 9 and sum(map(len, plan)) == 108  # 8 fits hold 96 < 100
    assert [o for _, o in plan[-1]] == [200 - 9 * H] * 12  # one horizon apart
    assert len(calibration_origins([200] * 12, L, H, (80, 95), windows=24)) == 2
    assert len(calibration_origins([200] * 181, L, H, (80, 95), windows=100)) == 1  # M1-size: one fit
    # never fewer than the levels need
    ends = [40, 30, 20]
    assert calibration_origins(ends, 4, 3, (95,), windows=4) == calibration_origins(ends, 4, 3, (95,))


def test_a_panel_short_of_the_floor_takes_what_it_has():
    ends, L, H = [20, 14, 9], 4, 3
    # origins until no series leaves a training window (origin >= L + H = 7): 3 + 2 + 2 + 1 windows
    plan = calibration_origins(ends, L, H, (80,), windows=100)
    assert [[o for _, o in p] for p in plan] == [[17, 11, 6], [14, 8], [11, 5], [8]]
    assert sum(map(len, calibration_origins([40, 30, 20], L, H, (80, 95), windows=100))) == 24  # 11 fits, < 100
    assert len(calibration_origins([10 ** 6] * 3, 4, 1, (80,), windows=100)) == MAX_ORIGINS  # 60: capped, not refused


def test_a_panel_short_of_the_levels_minimum_is_refused():
    ends, L, H = [20, 14, 9], 4, 3
    with pytest.raises(rnnkit.RnnkitError, match="need at least 99 held-out horizons; this panel's series hold 8"):
        calibration_origins(ends, L, H, (99,))
    with pytest.raises(rnnkit.RnnkitError, match="no calibration window"):
        calibration_origins([5, 6], L, H, (80,))
    with pytest.raises(rnnkit.RnnkitError, match="no calibration window"):  # a context, but no training window
        calibration_origins([9, 8], L, H, (80,))
    with pytest.raises(rnnkit.RnnkitError, match=f"hold {MAX_ORIGINS} "):  # one series: at most MAX_ORIGINS fits
        calibration_origins([10 ** 6], 4, 1, (99,))


def test_a_small_panel_calibrates_on_several_origins():
    """Five series, 95 %: four calibration fits, one horizon apart (20 windows, the fewest fits that
    hold the 19 the level needs); each fit's forecast errors are those of a model fitted by hand on
    the series cut at that origin, and the half-widths their conformal rank."""
    raw = panel(5)
    dc = rnnkit.DataConfig(id_col="id", horizon=3, lookback=6, seasonal_period=6)
    run = fit_global(dc, SMALL, QUICK, raw, quiet=True, search=rnnkit.SearchConfig(intervals=(95,)))
    assert run.intervals.windows == 20
    data = run.load_data(raw)
    errors = []
    for k in range(4):
        origins = [v - 3 * (k + 1) for _, v in run.meta["splits"]]
        cut = pd.concat([g.iloc[:o] for (_, g), o in zip(raw.groupby("id", sort=False), origins)])
        by_hand = fit_global(run.data_config.replace(test_frac=0.0, seasonal_period=6, lookback=6), SMALL,
                             run.train_config, cut, quiet=True, evaluate=False)
        point = by_hand.predict_at(data, origins, 3)
        actual = np.stack([s.target_values[o:o + 3] for s, o in zip(data.series, origins)])
        cut_data = by_hand.load_data(cut)
        errors.append(np.abs(actual - point) / by_hand.scales(cut_data, cut_data.lengths())[:, None, :])
    errors = np.concatenate(errors)
    rank = math.ceil(21 * 0.95)
    per_step = np.sort(errors, axis=0)[rank - 1]
    np.testing.assert_allclose(run.intervals.widths[0], np.maximum.accumulate(per_step, axis=0), rtol=1e-12)


def test_too_few_series_for_the_level_are_refused():
    with pytest.raises(rnnkit.RnnkitError, match="need at least 99 held-out horizons"):
        fit_global(rnnkit.DataConfig(id_col="id", horizon=3, lookback=6), SMALL, QUICK, panel(2), quiet=True,
                   search=rnnkit.SearchConfig(intervals=(99,)))
    with pytest.raises(ConfigError, match="as many as the levels \\(or --calibration-windows\\) need"):
        fit_global(rnnkit.DataConfig(id_col="id", horizon=3, lookback=6), SMALL, QUICK, panel(5), quiet=True,
                   search=rnnkit.SearchConfig(intervals=(80,), calibration_refit="first"))
