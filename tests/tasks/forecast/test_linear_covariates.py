"""The future covariates' linear effect (rnnkit.tasks.forecast.linear): a regression with recurrent errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rnnkit import DataConfig, ModelConfig, RunError, TrainConfig, fit_forecaster, load_run
from rnnkit.data.series import series_from_frame
from rnnkit.tasks.forecast.linear import fit_effect, f_test_pvalue
from rnnkit.tasks.forecast.normalise import WindowNorm

N, H = 260, 6
rng = np.random.default_rng(3)
X_ALL = np.cumsum(rng.normal(size=N + H))  # a random walk: the covariate, known over the horizon too
E_ALL = np.zeros(N + H)
for t in range(1, N + H):  # AR(1) errors around the effect
    E_ALL[t] = 0.6 * E_ALL[t - 1] + 0.3 * rng.normal()
Y_ALL = 5.0 + 3.0 * X_ALL + E_ALL
DAYS = pd.date_range("2003-01-01", periods=N + H, freq="D")
MODEL, TRAIN = ModelConfig(hidden_size=16), TrainConfig(epochs=30, lr=0.01)


def _data(n: int = N):
    frame = pd.DataFrame({"date": DAYS[:n].strftime("%Y-%m-%d"), "y": Y_ALL[:n], "x": X_ALL[:n]})
    return series_from_frame(frame, target="y", time_col="date", covariates=["x"])


def _future():
    return pd.DataFrame({"date": DAYS[N:].strftime("%Y-%m-%d"), "x": X_ALL[N:]})


def _fit(linear: str, strategy: str = "direct"):
    dc = DataConfig(horizon=H, future_covariates=("x",), linear_covariates=linear)
    return fit_forecaster(dc, MODEL.replace(strategy=strategy), TRAIN, data=_data(), quiet=True)


@pytest.fixture(scope="module")
def runs():
    return {k: _fit(*k) for k in (("auto", "direct"), ("none", "direct"), ("auto", "recursive"))}


# --- the regression and its test -------------------------------------------------------------------

@pytest.mark.parametrize("d2", [3, 10, 57])
@pytest.mark.parametrize("f", [0.2, 1.0, 4.5, 30.0])
def test_f_test_pvalue_matches_the_closed_form_for_two_numerator_degrees(f, d2):
    # for d1 = 2, P(F > f) = (1 + 2 f / d2)^(-d2 / 2)
    assert f_test_pvalue(f, 2, d2) == pytest.approx((1 + 2 * f / d2) ** (-d2 / 2), rel=1e-10)


def test_f_test_pvalue_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for f, d1, d2 in ((0.7, 1, 20), (3.1, 4, 150), (12.0, 3, 9), (1.0, 7, 7)):
        assert f_test_pvalue(f, d1, d2) == pytest.approx(stats.f.sf(f, d1, d2), rel=1e-9)


def test_fit_effect_is_least_squares_and_keeps_only_a_real_effect():
    g = np.random.default_rng(0)
    x = g.normal(size=(200, 2))
    y0 = 1.0 + x @ np.array([2.0, -0.5]) + 0.1 * g.normal(size=200)
    # a second target exactly uncorrelated with both covariates (centred, then projected out): F = 0
    design = np.column_stack([np.ones(200), x])
    z = g.normal(size=200)
    y1 = z - design @ np.linalg.lstsq(design, z, rcond=None)[0]
    beta = fit_effect(np.column_stack([y0, y1]), x)
    np.testing.assert_allclose(beta[:, 0], np.linalg.lstsq(design, y0, rcond=None)[0][1:], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(beta[:, 1], 0.0)  # its test does not reject: no effect kept
    assert fit_effect(y1[:, None], x) is None  # nothing kept at all: the run is as without it
    assert fit_effect(y0[:4, None], x[:4]) is None  # too few rows to test two slopes


def test_the_effect_is_removed_from_the_context_and_added_to_each_level():
    beta = ((2.0, 0.5), (-1.0, 0.0))  # K = 2 covariates (columns 3 and 4), C = 2 targets
    norm = WindowNorm("window", "last", 1, 2, (1e-3, 1e-3), 0, beta, 3)
    g = np.random.default_rng(1)
    rows = g.normal(size=(4, 9, 5))
    out = norm.remove_effect(rows)
    np.testing.assert_array_equal(out[..., 2:], rows[..., 2:])
    np.testing.assert_allclose(out[..., 0], rows[..., 0] - (2.0 * rows[..., 3] - 1.0 * rows[..., 4]), atol=1e-12)
    np.testing.assert_allclose(out[..., 1], rows[..., 1] - 0.5 * rows[..., 3], atol=1e-12)
    cov = g.normal(size=(4, 7, 2))  # the horizon's covariates (more rows than the horizon is fine)
    q = np.sort(g.normal(size=(4, 5, 2, 3)), axis=-1)  # quantile levels (W, H, C, Q)
    shifted = norm.add_effect(q, cov)
    shift = cov[:, :5] @ np.asarray(beta)  # (W, H, C)
    np.testing.assert_allclose(shifted, q + shift[..., None], atol=1e-12)
    assert np.all(np.diff(shifted, axis=-1) >= 0)  # the same shift for every level: still in order
    np.testing.assert_allclose(norm.add_effect(q[..., 0], cov), q[..., 0] + shift, atol=1e-12)


# --- in a run --------------------------------------------------------------------------------------

def test_the_effect_is_fitted_on_the_training_rows_in_scaled_units(runs):
    run = runs[("auto", "direct")]
    effect = run.meta["covariate_effect"]
    assert len(effect) == 1 and len(effect[0]) == 1
    train = slice(0, run.meta["train_rows"])
    y, x = Y_ALL[:N][train], X_ALL[:N][train]
    # the minmax scaler's units: slope 3 times the covariate's range over the target's (training rows)
    expected = np.polyfit(x, y, 1)[0] * (np.ptp(x) / np.ptp(y))
    assert effect[0][0] == pytest.approx(expected, rel=1e-6)
    assert runs[("none", "direct")].meta["covariate_effect"] == []


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_the_regression_beats_the_network_alone_past_the_data(runs, strategy):
    truth = 5.0 + 3.0 * X_ALL[N:]
    errors = {}
    for linear in ("auto", "none"):
        run = runs[(linear, strategy)] if (linear, strategy) in runs else _fit(linear, strategy)
        fc = run.forecast(_data(), future=_future())["y"].to_numpy()
        errors[linear] = np.abs(fc - truth).mean()
    # the errors are AR(1) with sd about 0.37: the regression's forecast stays within them, while the
    # network alone must learn a slope of 3 on a wandering covariate from 30 epochs
    assert errors["auto"] < 0.6, errors
    assert errors["auto"] < 0.5 * errors["none"], errors


def test_a_run_with_an_effect_reloads_and_refuses_a_wrong_one(runs, tmp_path):
    run = runs[("auto", "direct")]
    out = run.save(tmp_path / "run", data=_data(), future=_future())
    back = load_run(out)
    assert back.norm.effect == run.norm.effect and back.norm.effect_col == run.norm.effect_col == 1
    a = run.forecast(_data(), future=_future())["y"].to_numpy()
    np.testing.assert_array_equal(back.forecast(_data(), future=_future())["y"].to_numpy(), a)
    config = json.loads((out / "config.json").read_text())
    config["meta"]["covariate_effect"] = [[1.0], [2.0]]  # two rows for one covariate
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="covariate_effect"):
        load_run(out)


def test_linear_covariates_must_be_a_known_choice():
    from rnnkit import ConfigError
    with pytest.raises(ConfigError, match="linear_covariates"):
        DataConfig(linear_covariates="quadratic")
