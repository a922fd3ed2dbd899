"""The Student-t distribution head (ModelConfig.distribution="student_t",
rnnkit/tasks/forecast/distribution.py): its quantile function against closed forms (and scipy
where installed), its likelihood against torch.distributions, and a fit that recovers the noise of
an AR(1) with t(3) innovations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit import ConfigError, DataConfig, ModelConfig, TrainConfig, fit_forecaster
from rnnkit.config import DISTRIBUTION_LEVELS
from rnnkit.tasks.forecast.distribution import (DF_FLOOR, params, student_t_cdf, student_t_nll, student_t_quantiles,
                                                 tabulated_t_quantiles,
                                                zero_mean)
from rnnkit.tasks.forecast.model import Forecaster

F64 = torch.float64
LEVELS = (0.001, 0.025, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.999)


def _closed_form_quantile(q: np.ndarray, df: int) -> np.ndarray:
    """The t quantile where it has a closed form: 1 (Cauchy), 2 and 4 degrees of freedom."""
    if df == 1:
        return np.tan(np.pi * (q - 0.5))
    if df == 2:
        return (2 * q - 1) / np.sqrt(2 * q * (1 - q))
    a = 4 * q * (1 - q)  # df 4 (Wikipedia, Student's t-distribution: quantile function)
    return np.sign(q - 0.5) * 2 * np.sqrt(np.cos(np.arccos(np.sqrt(a)) / 3) / np.sqrt(a) - 1)


@pytest.mark.parametrize("df", [1, 2, 4])
def test_the_quantiles_match_the_closed_forms(df):
    got = student_t_quantiles(torch.tensor([float(df)], dtype=F64), LEVELS)[0].numpy()
    np.testing.assert_allclose(got, _closed_form_quantile(np.array(LEVELS), df), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("df", [1, 2])
def test_the_cdf_matches_the_closed_forms(df):
    t = torch.linspace(-30, 30, 61, dtype=F64)
    ref = 0.5 + np.arctan(t.numpy()) / np.pi if df == 1 else 0.5 + t.numpy() / (2 * np.sqrt(2 + t.numpy() ** 2))
    np.testing.assert_allclose(student_t_cdf(t, torch.full_like(t, float(df))).numpy(), ref, rtol=0, atol=1e-14)


def test_the_quantiles_match_scipy_for_fractional_degrees_of_freedom():
    stats = pytest.importorskip("scipy.stats")
    df = torch.tensor([2.01, 2.5, 3.3, 7.0, 29.5, 400.0], dtype=F64)
    got = student_t_quantiles(df, LEVELS).numpy()  # (6, Q)
    ref = stats.t.ppf(np.array(LEVELS)[None], df.numpy()[:, None])
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12)


def test_the_tabulated_quantiles_are_newtons():
    """What an exported graph computes (a cubic interpolation in 1 / df of a table of Newton's quantiles)
    against Newton's own, over the head's whole range of degrees of freedom (above DF_FLOOR)."""
    g = torch.Generator().manual_seed(0)
    df = torch.cat([DF_FLOOR + 3 * torch.rand(3000, generator=g, dtype=torch.float64),
                    DF_FLOOR + torch.exp(11 * torch.rand(3000, generator=g, dtype=torch.float64)),
                    torch.tensor([DF_FLOOR, DF_FLOOR + 1e-9, 1e4], dtype=torch.float64)])
    got = tabulated_t_quantiles(df, DISTRIBUTION_LEVELS)
    assert got.shape == (len(df), len(DISTRIBUTION_LEVELS))
    assert (got - student_t_quantiles(df, DISTRIBUTION_LEVELS)).abs().max() < 1e-9
    assert (tabulated_t_quantiles(torch.tensor([1e12], dtype=torch.float64), (0.9,)) - 1.2815515655446004).abs() < 1e-9


def test_many_degrees_of_freedom_approach_the_normal():
    got = student_t_quantiles(torch.tensor([1e7], dtype=F64), LEVELS)[0]
    torch.testing.assert_close(got, torch.special.ndtri(torch.tensor(LEVELS, dtype=F64)), rtol=1e-6, atol=1e-6)


def test_the_loss_is_the_student_t_negative_log_likelihood():
    torch.manual_seed(0)
    mu, y = torch.randn(5, 3, 2, dtype=F64), torch.randn(5, 3, 2, dtype=F64) * 3
    sigma, df = torch.rand(5, 3, 2, dtype=F64) + 0.2, torch.rand(5, 3, 2, dtype=F64) * 10 + 2
    ref = -torch.distributions.StudentT(df, mu, sigma).log_prob(y).mean()
    torch.testing.assert_close(student_t_nll(mu, sigma, df, y), ref, rtol=1e-13, atol=1e-13)


def test_the_head_has_three_parameters_its_levels_increase_and_its_fallback_keeps_the_spread():
    torch.manual_seed(1)
    model = Forecaster(1, 2, 3, ModelConfig(hidden_size=4, distribution="student_t")).to(F64)
    assert model.head.out_features == 3 * 2 * 3 and model.levels == DISTRIBUTION_LEVELS
    x = torch.randn(4, 6, 1, dtype=F64)
    mu, sigma, df = model.params(x)
    assert mu.shape == sigma.shape == df.shape == (4, 3, 2) and bool((df > DF_FLOOR).all())
    levels = model(x)  # (B, H, C, Q)
    assert levels.shape == (4, 3, 2, 5) and bool((levels.diff(dim=-1) > 0).all())
    torch.testing.assert_close(levels[..., 2], mu)  # the median of a t is its location
    zero_mean(model)
    mu0, sigma0, df0 = model.params(x)
    assert torch.equal(mu0, torch.zeros_like(mu0)) and torch.equal(sigma0, sigma) and torch.equal(df0, df)


def test_params_reads_the_raw_outputs_as_location_scale_and_degrees_of_freedom():
    raw = torch.tensor([[0.5, 0.0, 0.0]], dtype=F64)  # one step, one target
    mu, sigma, df = params(raw, 1, 1, "student_t")
    assert mu.item() == 0.5 and sigma.item() == pytest.approx(math.log(2) + 1e-3)
    assert df.item() == pytest.approx(DF_FLOOR + math.log(2))


@pytest.fixture(scope="module")
def t_ar1():
    """An AR(1) with t(3) innovations of scale 1: y_t = 0.6 y_(t-1) + e_t."""
    rng = np.random.default_rng(0)
    e = rng.standard_t(3, size=1200)
    y = np.zeros(len(e))
    for t in range(1, len(y)):
        y[t] = 0.6 * y[t - 1] + e[t]
    data = rnnkit.data.series.series_from_frame(pd.DataFrame({"y": y}))
    dc = DataConfig(horizon=1, lookback=8, skip="none", normalise="none", scaler="none", transform="none")
    run = fit_forecaster(dc, ModelConfig(hidden_size=8, distribution="student_t"), TrainConfig(epochs=60), data=data,
                         quiet=True)
    return run, data


def test_it_learns_heavy_tails(t_ar1):
    run, data = t_ar1
    x = torch.tensor(data.values[None, -8:], dtype=torch.float32)
    _, sigma, df = run.model.params(x)
    assert 2.2 < df.item() < 5.0 and 0.8 < sigma.item() < 1.25  # measured 3.03 and 1.03 (true: 3 and 1)
    q = run.metrics["model"]["quantile_scores"]["intervals"]["95"]
    n = run.meta["n_rows"] - run.meta["test_start"]
    assert abs(q["coverage"] - 0.95) < 4 * math.sqrt(0.95 * 0.05 / n), q  # measured 0.9375 on 240 rows
    assert run.history.engine == "torch"


def test_a_student_t_run_reloads_and_forecasts_bit_for_bit(t_ar1, tmp_path):
    run, data = t_ar1
    again = rnnkit.load_run(run.save(tmp_path / "run", data=data))
    assert again.model_config.distribution == "student_t"
    pd.testing.assert_frame_equal(run.forecast(data), again.forecast(data), check_exact=True)


def test_what_is_refused():
    with pytest.raises(ConfigError, match="stateful=True with a distribution head"):  # recursive heads are sampled paths (test_paths.py), not streams
        fit_forecaster(DataConfig(source="builtin:elnino", normalise="none"),
                       ModelConfig(distribution="student_t", strategy="recursive"), TrainConfig(epochs=1, stateful=True),
                       quiet=True)
    dc = DataConfig(source="builtin:elnino", horizon=6)
    with pytest.raises(ConfigError, match="fused"):
        fit_forecaster(dc, ModelConfig(distribution="student_t"), TrainConfig(epochs=1, engine="fused"), quiet=True)


def test_a_trained_student_t_head_exports(t_ar1, tmp_path):
    """The forecast graph's levels are rnnkit's (the graph's t quantiles from the table, rnnkit's from
    Newton's iterations) on the heavy-tailed series it learned, to float32 rounding."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    run, data = t_ar1
    path = rnnkit.export_onnx(run, tmp_path / "m.onnx")
    L = run.data_config.lookback
    x = np.stack([data.values[e - L:e] for e in range(L, len(data), 7)])
    got = ort.InferenceSession(str(path)).run(None, {"context": x})[0]
    want = run.predict_contexts(x, run.data_config.horizon, all_levels=True)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
