"""The distribution head (ModelConfig.distribution="normal", tasks/forecast/distribution.py): its
loss is the Gaussian negative log-likelihood, its levels are mu + sigma * Phi^-1(q) in closed form
and never cross, it learns the noise of a Gaussian AR(1) (coverage and width of the 80 % interval
against the true conditional distribution), and a run reloads bit for bit."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit import ConfigError, DataConfig, ModelConfig, TrainConfig, fit_forecaster
from rnnkit.config import DISTRIBUTION_LEVELS
from rnnkit.tasks.forecast.distribution import gaussian_nll, normal_params, zero_mean
from rnnkit.tasks.forecast.model import Forecaster


def test_the_loss_is_the_gaussian_negative_log_likelihood():
    g = torch.Generator().manual_seed(0)
    mu, y = torch.randn(5, 3, 2, generator=g, dtype=torch.float64), torch.randn(5, 3, 2, generator=g, dtype=torch.float64)
    sigma = torch.rand(5, 3, 2, generator=g, dtype=torch.float64) + 0.1
    by_hand = -torch.distributions.Normal(mu, sigma).log_prob(y).mean()
    torch.testing.assert_close(gaussian_nll(mu, sigma, y), by_hand, rtol=1e-12, atol=1e-12)


def test_the_levels_are_the_normal_quantiles_and_never_cross():
    torch.manual_seed(0)
    levels = (0.01, 0.1, 0.3, 0.5, 0.7, 0.95)
    model = Forecaster(2, 3, 4, ModelConfig(hidden_size=8, distribution="normal", quantiles=levels)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 2.0)  # large weights: scales from tiny to large
    x = torch.randn(7, 5, 2, dtype=torch.float64)
    out = model(x)  # (B, H, C, Q)
    assert out.shape == (7, 4, 3, len(levels))
    mu, sigma = model.params(x)
    z = torch.tensor([NormalDist().inv_cdf(q) for q in levels], dtype=torch.float64)
    torch.testing.assert_close(out, mu[..., None] + sigma[..., None] * z, rtol=1e-12, atol=1e-12)
    assert (sigma > 0).all() and (out.diff(dim=-1) > 0).all()
    assert torch.equal(out[..., levels.index(0.5)], mu)  # the point forecast is the mean


def test_the_default_levels_and_what_is_refused():
    assert ModelConfig(distribution="normal").quantiles == DISTRIBUTION_LEVELS
    assert ModelConfig(distribution="normal", quantiles=(0.2, 0.5, 0.8)).quantiles == (0.2, 0.5, 0.8)
    assert ModelConfig(distribution="normal", strategy="recursive").quantiles == DISTRIBUTION_LEVELS  # sampled paths
    with pytest.raises(ConfigError, match="closed form"):  # a direct head draws no paths
        ModelConfig(distribution="normal", samples=50)
    with pytest.raises(ConfigError, match="distribution"):
        ModelConfig(distribution="student")
    dc = DataConfig(source="builtin:elnino", horizon=6)
    with pytest.raises(ConfigError, match="negative log-likelihood"):
        fit_forecaster(dc, ModelConfig(distribution="normal"), TrainConfig(epochs=1, loss="mae"), quiet=True)
    with pytest.raises(ConfigError, match="fused"):
        fit_forecaster(dc, ModelConfig(distribution="normal"), TrainConfig(epochs=1, engine="fused"), quiet=True)
    with pytest.raises(ConfigError, match="intervals"):
        fit_forecaster(dc, ModelConfig(distribution="normal"), TrainConfig(epochs=1), quiet=True,
                       search=rnnkit.SearchConfig(intervals=(80,)))


def test_the_naive_fallback_zeroes_the_mean_and_keeps_the_scale():
    torch.manual_seed(0)
    model = Forecaster(1, 2, 3, ModelConfig(hidden_size=4, distribution="normal"))
    x = torch.randn(4, 6, 1)
    _, before = model.params(x)
    zero_mean(model)
    mu, after = model.params(x)
    assert torch.equal(mu, torch.zeros_like(mu)) and torch.equal(after, before)


@pytest.fixture(scope="module")
def ar1(tmp_path_factory):
    """A Gaussian AR(1), y_t = 0.7 y_(t-1) + e_t, e_t ~ N(0, 1): one step ahead, the forecast
    distribution is N(0.7 y_(t-1), 1)."""
    rng = np.random.default_rng(0)
    y = np.zeros(900)
    for t in range(1, len(y)):
        y[t] = 0.7 * y[t - 1] + rng.standard_normal()
    path = tmp_path_factory.mktemp("ar1") / "ar1.csv"
    pd.DataFrame({"y": y + 10.0}).to_csv(path, index=False)
    dc = DataConfig(source=str(path), targets=("y",), horizon=1, lookback=8, normalise="none", transform="none")
    run = fit_forecaster(dc, ModelConfig(hidden_size=16, distribution="normal", quantiles=(0.1, 0.5, 0.9)),
                         TrainConfig(epochs=60, lr=3e-3, seed=0), quiet=True)
    return run


def test_it_learns_the_noise_of_a_gaussian_ar1(ar1):
    q = ar1.metrics["model"]["quantile_scores"]["intervals"]["80"]
    n = ar1.meta["n_rows"] - ar1.meta["test_start"]
    se = math.sqrt(0.8 * 0.2 / n)
    assert abs(q["coverage"] - 0.8) < 4 * se, q  # 180 test points: 4 standard errors is 0.12 (measured 0.856)
    true_width = 2 * NormalDist().inv_cdf(0.9)  # the 80 % interval of N(., 1)
    assert abs(q["width"] / true_width - 1) < 0.1, q  # measured 2.564 against 2.563
    assert ar1.history.engine == "torch" and ar1.meta["trainer"]["reason"]


def test_a_distribution_run_reloads_and_forecasts_bit_for_bit(ar1, tmp_path):
    out = ar1.save(tmp_path / "run")
    again = rnnkit.load_run(out)
    assert again.model_config.distribution == "normal"
    a, b = ar1.forecast(), again.forecast()
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(a.columns) == ["horizon", "y", "y_q0.1", "y_q0.5", "y_q0.9"]
    written = pd.read_csv(out / "forecast.csv")
    assert np.allclose(written["y_q0.9"].to_numpy(), a["y_q0.9"].to_numpy(), rtol=1e-12)


def test_normal_params_shapes():
    raw = torch.zeros(3, 4 * 2 * 2)
    mu, sigma = normal_params(raw, 4, 2)
    assert mu.shape == sigma.shape == (3, 4, 2)
    torch.testing.assert_close(sigma, torch.full((3, 4, 2), math.log(2.0) + 1e-3))
