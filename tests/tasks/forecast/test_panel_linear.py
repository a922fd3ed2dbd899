"""The future covariates' linear effect on a panel (tasks/forecast/panel.py panel_effect,
linear.fit_effect with groups): the fixed-effects slopes against a regression with one intercept
column per series, the F test's degrees of freedom against scipy, the prepared rows less the effect
by hand, the run saved and reloaded with it, and what it buys on a panel whose targets move with
their covariate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit.data.panel import panel_from_frame
from rnnkit.tasks.forecast.linear import P_VALUE, f_test_pvalue, fit_effect
from rnnkit.tasks.forecast.panel import prepare_panel
from rnnkit.tasks.forecast.panel_run import fit_global

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=8)
QUICK = rnnkit.TrainConfig(epochs=3, batch_size=16)


def price_panel(n_series=6, n=60, slope=3.0, seed=0, extra=0) -> pd.DataFrame:
    """Monthly series whose target is its own level plus ``slope`` x a random price (known ahead)
    plus AR(1) noise; ``extra`` more rows of price alone (the future)."""
    rng = np.random.default_rng(seed)
    blocks = []
    for k in range(n_series):
        price = rng.normal(10, 2, n + extra)
        noise = np.zeros(n)
        for t in range(1, n):
            noise[t] = 0.6 * noise[t - 1] + rng.normal(0, 0.5)
        blocks.append(pd.DataFrame({
            "id": f"s{k}", "date": pd.date_range("2000-01-01", periods=n + extra, freq="MS").strftime("%Y-%m-%d"),
            "y": np.r_[20.0 * (k + 1) + slope * price[:n] + noise, [np.nan] * extra], "price": price}))
    return pd.concat(blocks, ignore_index=True)


def dummies_fit(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, float, int, int]:
    """Least squares with one intercept column per group: (slopes, F statistic, d1, d2)."""
    D = (groups[:, None] == np.unique(groups)[None, :]).astype(float)
    full = np.column_stack([D, x])
    coef, *_ = np.linalg.lstsq(full, y, rcond=None)
    rss1 = float(((y - full @ coef) ** 2).sum())
    c0, *_ = np.linalg.lstsq(D, y, rcond=None)
    rss0 = float(((y - D @ c0) ** 2).sum())
    d1, d2 = x.shape[1], len(y) - D.shape[1] - x.shape[1]
    return coef[D.shape[1]:], ((rss0 - rss1) / d1) / (rss1 / d2), d1, d2


def test_fixed_effects_slopes_and_f_test_against_one_intercept_per_series():
    stats = pytest.importorskip("scipy.stats", reason="scipy is the F distribution's reference")
    rng = np.random.default_rng(1)
    groups = np.repeat([3, 7, 1, 9], [30, 12, 25, 40])  # any labels, groups of different sizes
    x = rng.normal(size=(len(groups), 2))
    y = (np.array([5.0, -2, 1, 8])[np.searchsorted([1, 3, 7, 9], groups)] + x @ [0.4, -0.15])[:, None] \
        + rng.normal(0, 1, (len(groups), 1))
    slopes, f, d1, d2 = dummies_fit(y, x, groups)
    np.testing.assert_allclose(fit_effect(y, x, p_value=1.0, groups=groups), slopes, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f_test_pvalue(float(f), d1, d2), stats.f.sf(float(f), d1, d2), rtol=1e-8)
    p = stats.f.sf(float(f), d1, d2)  # kept exactly when the F test rejects at the level asked
    assert (fit_effect(y, x, p_value=p * 1.01, groups=groups) is not None) and fit_effect(y, x, p * 0.99, groups) is None
    assert fit_effect(y, rng.normal(size=(len(groups), 2)), groups=groups) is None  # noise covariates: no effect


def test_prepared_rows_are_the_scaled_targets_less_the_pooled_effect():
    raw = price_panel()
    dc = rnnkit.DataConfig(id_col="id", time_col="date", targets=("y",), future_covariates=("price",),
                           lookback=12, horizon=3)
    panel = panel_from_frame(raw, "id", "y", "date", ("price",))
    prep = prepare_panel(dc, SMALL, QUICK, panel, dtype=torch.float64)
    assert prep.data_config.linear_covariates == "auto" and len(prep.norm.effect) == 1
    assert prep.norm.effect_col == 1  # after the target; no past covariates
    scaled = [sc.transform(s.values) for sc, s in zip(prep.scalers, panel.series)]
    ends = [e for e, _ in prep.splits]
    y = np.concatenate([z[:e, :1] for z, e in zip(scaled, ends)])
    x = np.concatenate([z[:e, 1:2] for z, e in zip(scaled, ends)])
    groups = np.repeat(np.arange(len(ends)), ends)
    slopes, *_ = dummies_fit(y, x, groups)
    np.testing.assert_allclose(np.asarray(prep.norm.effect), slopes, rtol=1e-9)
    rows = prep.train.rows
    for k, z in enumerate(scaled):
        a, b = rows.offsets[k], rows.offsets[k + 1]
        np.testing.assert_allclose(rows.values[a:b, 0], z[:, 0] - z[:, 1] * slopes[0, 0], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(rows.values[a:b, 1], z[:, 1])  # the covariate itself is unchanged


def test_a_run_keeps_the_effect_through_save_and_load(tmp_path):
    raw = price_panel(extra=3)
    data, future = raw[raw.y.notna()], raw[raw.y.isna()].drop(columns="y")
    dc = rnnkit.DataConfig(id_col="id", time_col="date", future_covariates=("price",), lookback=12, horizon=3)
    run = fit_global(dc, SMALL, QUICK, data, quiet=True)
    assert run.data_config.linear_covariates == "auto" and run.meta["covariate_effect"]
    run.save(tmp_path / "run", data=data, future=future)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["meta"]["covariate_effect"] == run.meta["covariate_effect"]
    loaded = rnnkit.load_run(tmp_path / "run")
    pd.testing.assert_frame_equal(loaded.forecast(data, future=future), run.forecast(data, future=future))
    off = fit_global(dc.replace(linear_covariates="none"), SMALL, QUICK, data, quiet=True)
    assert off.data_config.linear_covariates == "none" and off.meta["covariate_effect"] == []


def test_the_forecast_is_the_networks_plus_the_horizons_effect():
    """With the network's output zeroed (and no normalisation or skip), a forecast is the effect of
    the horizon's own covariate values alone, back in the data's units: y_h = offset_y + scale_y x beta
    x (price_h - offset_p) / scale_p with each series' own scaler; the effect is never taken from the
    context's rows."""
    raw = price_panel(extra=3)
    data, future = raw[raw.y.notna()], raw[raw.y.isna()].drop(columns="y")
    dc = rnnkit.DataConfig(id_col="id", time_col="date", future_covariates=("price",), lookback=12, horizon=3,
                           normalise="none", skip="none")
    run = fit_global(dc, SMALL, QUICK.replace(epochs=1), data, quiet=True)
    with torch.no_grad():
        run.model.head.weight.zero_(), run.model.head.bias.zero_()
    (beta,), = run.norm.effect
    got = run.forecast(data, future=future)
    for sid, part in future.groupby("id", sort=False):
        sc = run.scalers[sid]
        expected = sc.offset[0] + sc.scale[0] * beta * (part.price.to_numpy() - sc.offset[1]) / sc.scale[1]
        np.testing.assert_allclose(got[got.id == sid].y.to_numpy(), expected, rtol=1e-6)


@pytest.mark.slow
def test_the_effect_lowers_the_error_where_the_targets_follow_their_covariate():
    raw = price_panel(n_series=8, n=80, seed=4)
    dc = rnnkit.DataConfig(id_col="id", time_col="date", future_covariates=("price",), horizon=6)
    errors = {}
    for linear in ("auto", "none"):
        run = fit_global(dc.replace(linear_covariates=linear), rnnkit.ModelConfig(), rnnkit.TrainConfig(epochs=30),
                         raw, quiet=True)
        errors[linear] = run.metrics["summary"]["model"]["mase"]  # mean over the series
    assert errors["auto"] < 0.5 * errors["none"], errors  # measured: 0.10 against 0.96


@pytest.mark.parametrize("effect", [[[1.0, 2.0]], [[1.0], [2.0]], [["x"]]])
def test_a_damaged_effect_is_refused_on_load(effect, tmp_path):
    from rnnkit.errors import RunError
    raw = price_panel(n_series=3, n=40)
    dc = rnnkit.DataConfig(id_col="id", time_col="date", future_covariates=("price",), lookback=12, horizon=3)
    run = fit_global(dc, SMALL, QUICK.replace(epochs=1), raw, quiet=True)
    run.save(tmp_path / "run", data=raw)
    path = tmp_path / "run" / "config.json"
    config = json.loads(path.read_text())
    config["meta"]["covariate_effect"] = effect
    path.write_text(json.dumps(config))
    with pytest.raises(RunError, match="covariate_effect") as e:
        rnnkit.load_run(tmp_path / "run")
    assert "\n" not in str(e.value)
