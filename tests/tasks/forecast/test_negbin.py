"""The negative-binomial head (ModelConfig.distribution="negbin", tasks/forecast/negbin.py): its
likelihood against torch.distributions.NegativeBinomial in float64, its CDF against the summed pmf,
its exact discrete quantiles against that CDF (and scipy's nbinom.ppf where scipy is installed), the
Gamma-Poisson draws against the distribution, the head's scaling and its naive fallback, sampled
paths that feed each count back over the window's scale, and what is refused. The fits on
synthetic counts are in test_negbin_fit.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit import ConfigError, ModelConfig
from rnnkit.config import DISTRIBUTION_LEVELS
from rnnkit.tasks.forecast.distribution import zero_mean
from rnnkit.tasks.forecast.fitting import forecast_loss
from rnnkit.tasks.forecast.model import Forecaster
from rnnkit.tasks.forecast.negbin import (ALPHA_FLOOR, NAIVE_FLOOR, count_base, negbin_cdf, negbin_draw, negbin_nll,
                                         negbin_quantiles, set_count_naive)
from rnnkit.tasks.forecast.normalise import WindowNorm
from rnnkit.tasks.forecast.paths import sample_paths
from rnnkit import TrainConfig

F64 = torch.float64
LEVELS = (0.01, 0.025, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.99)


def torch_negbin(mu: torch.Tensor, alpha: torch.Tensor) -> torch.distributions.NegativeBinomial:
    """The reference: total_count r = 1/alpha, and torch's success odds p / (1 - p) = mu / r, so
    logits = log(alpha mu) (its mean r p / (1 - p) is then mu and its variance mu + alpha mu^2)."""
    return torch.distributions.NegativeBinomial(total_count=1 / alpha, logits=torch.log(alpha * mu))


def random_params(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Means from 0.05 to about 400 and dispersions from 1e-3 to 3, log-uniform (never whole numbers)."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.exp(torch.empty(n, dtype=F64).uniform_(math.log(0.05), math.log(400), generator=g))
    alpha = torch.exp(torch.empty(n, dtype=F64).uniform_(math.log(1e-3), math.log(3), generator=g))
    return mu, alpha


def test_the_loss_is_the_negative_binomial_negative_log_likelihood():
    mu, alpha = random_params(60, 0)
    y = torch_negbin(mu, alpha).sample(torch.Size([4]))  # (4, 60) counts
    ref = -torch_negbin(mu, alpha).log_prob(y).mean()
    torch.testing.assert_close(negbin_nll(mu, alpha, y), ref, rtol=1e-12, atol=1e-12)
    # float32 parameters: computed in float64 inside, so within float32's rounding of the inputs
    got32 = negbin_nll(mu.float(), alpha.float(), y.float())
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), ref, rtol=1e-5, atol=1e-5)


def test_the_cdf_is_the_summed_pmf():
    mu = torch.tensor([0.3, 4.7, 19.3, 150.2, 2500.5], dtype=F64)
    alpha = torch.tensor([0.2, 1.7, 0.05, 0.01, ALPHA_FLOOR], dtype=F64)
    k = torch.arange(0, 3200, dtype=F64)[:, None]  # (K, 1)
    ref = torch.exp(torch_negbin(mu, alpha).log_prob(k)).cumsum(0)  # (K, 5)
    torch.testing.assert_close(negbin_cdf(k, mu, alpha), ref, rtol=0, atol=1e-10)
    assert bool((negbin_cdf(torch.tensor(-1.0, dtype=F64), mu, alpha) == 0).all())


def _reference_quantiles(mu, alpha, levels, kmax: int = 6000) -> tuple[np.ndarray, float]:
    """The smallest k with CDF(k) >= q, the CDF summed from torch's pmf, and the smallest distance
    between a level and the CDF at any k (how far the test is from a tie that rounding could decide)."""
    k = torch.arange(0, kmax, dtype=F64)[:, None]
    cdf = torch.exp(torch_negbin(mu, alpha).log_prob(k)).cumsum(0).numpy()  # (K, N)
    q = np.asarray(levels)
    assert (cdf[-1] > q.max() + 1e-6).all()  # kmax reaches every level
    ref = (cdf[:, :, None] < q).sum(0).astype(np.float64)  # (N, Q)
    return ref, float(np.abs(cdf[:, :, None] - q).min())


def test_the_quantiles_are_the_smallest_count_whose_cdf_reaches_the_level():
    mu, alpha = random_params(80, 1)
    got = negbin_quantiles(mu, alpha, LEVELS).numpy()  # (N, Q)
    ref, gap = _reference_quantiles(mu, alpha, LEVELS)
    assert gap > 1e-9  # no level sits on a CDF value, where rounding would decide
    np.testing.assert_array_equal(got, ref)
    assert (np.diff(got, axis=-1) >= 0).all() and (got == np.round(got)).all()
    odd = negbin_quantiles(torch.tensor([math.inf, math.nan, 3.0], dtype=F64), torch.tensor([0.2, 0.2, math.inf]), (0.5,))
    assert bool(odd.isnan().all())  # a diverged head gives NaN (which predict_windows refuses), never a hang


def test_the_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    mu, alpha = random_params(200, 2)
    got = negbin_quantiles(mu, alpha, LEVELS).numpy()
    ref = stats.nbinom.ppf(np.array(LEVELS)[None], 1 / alpha.numpy()[:, None], 1 / (1 + (alpha * mu).numpy()[:, None]))
    np.testing.assert_array_equal(got, ref)


def test_the_gamma_poisson_draws_have_the_negative_binomial_distribution():
    n = 200_000
    for mu, alpha in ((3.7, 0.2), (40.0, 1.5), (12.0, ALPHA_FLOOR)):
        m, a = torch.full((n,), mu, dtype=F64), torch.full((n,), alpha, dtype=F64)
        y = negbin_draw(m, a, torch.Generator().manual_seed(0)).numpy()
        assert (y == np.round(y)).all() and (y >= 0).all()
        points = torch.tensor(np.unique(np.quantile(y, [0.05, 0.2, 0.5, 0.8, 0.95])), dtype=F64)
        want = negbin_cdf(points, torch.tensor(mu, dtype=F64), torch.tensor(alpha, dtype=F64)).numpy()
        got = (y[:, None] <= points.numpy()).mean(0)
        np.testing.assert_array_less(np.abs(got - want), 4 * np.sqrt(want * (1 - want) / n))
        var = mu + alpha * mu * mu  # the mean within 4 standard errors
        assert abs(y.mean() - mu) < 4 * math.sqrt(var / n)
    a = negbin_draw(torch.full((5,), 3.0), torch.full((5,), 0.5), torch.Generator().manual_seed(4))
    b = negbin_draw(torch.full((5,), 3.0), torch.full((5,), 0.5), torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and a.dtype == torch.float32


def test_the_head_reads_the_targets_over_the_windows_mean_count_plus_one_and_emits_counts():
    torch.manual_seed(0)
    model = Forecaster(2, 1, 3, ModelConfig(hidden_size=5, distribution="negbin")).double()  # a count and a covariate
    assert model.head.out_features == 3 * 1 * 2 and model.levels == DISTRIBUTION_LEVELS
    counts = torch.poisson(torch.full((4, 7, 1), 6.0, dtype=F64))
    x = torch.cat([counts, torch.randn(4, 7, 1, dtype=F64)], -1)  # (B, T, 2)
    mu, alpha = model.params(x)
    v = 1 + counts.mean(1, keepdim=True)  # (B, 1, 1)
    out, _ = model.rnn(torch.cat([counts / v, x[..., 1:]], -1))
    raw = model.head(out[:, -1]).view(4, 3, 1, 2)
    torch.testing.assert_close(mu, v * torch.nn.functional.softplus(raw[..., 0]), rtol=1e-12, atol=0)
    torch.testing.assert_close(alpha, torch.nn.functional.softplus(raw[..., 1]) + ALPHA_FLOOR, rtol=1e-12, atol=0)
    levels = model(x)  # (B, H, C, Q)
    assert levels.shape == (4, 3, 1, 5)
    assert torch.equal(levels, negbin_quantiles(mu, alpha, model.levels))
    with pytest.raises(ConfigError, match="whole window's mean count"):
        model.step(x[:, 0])


@pytest.mark.parametrize("skip", ["last", "seasonal", "drift"])
def test_the_naive_base_is_the_windows_naive_forecast_in_counts(skip):
    rng = np.random.default_rng(0)
    x = rng.poisson(3.0, (6, 9, 2)).astype(np.float64)
    x[0, :, 0] = np.arange(9, 0, -1)  # a falling window: its drift goes below 0, clamped to the floor
    want = np.maximum(WindowNorm("none", skip, 4, 2, (1.0, 1.0)).base(x, 5), NAIVE_FLOOR)
    got = count_base(torch.tensor(x), skip, 4, 5).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


def test_the_fallback_forecasts_the_naive_mean_and_keeps_the_dispersion():
    torch.manual_seed(1)
    model = Forecaster(1, 1, 4, ModelConfig(hidden_size=4, distribution="negbin")).double()
    set_count_naive(model, "seasonal", 3)
    x = torch.poisson(torch.full((5, 6, 1), 4.0, dtype=F64))
    x[0] = 0.0  # an all-zero window: the mean is the floor
    _, alpha = model.params(x)
    zero_mean(model)
    mu, after = model.params(x)
    torch.testing.assert_close(mu, count_base(x, "seasonal", 3, 4), rtol=1e-12, atol=1e-14)
    assert torch.equal(after, alpha)


def test_the_one_step_loss_is_the_next_counts_negative_log_likelihood():
    torch.manual_seed(0)
    x, y = torch.poisson(torch.full((4, 6, 1), 5.0, dtype=F64)), torch.poisson(torch.full((4, 3, 1), 5.0, dtype=F64))
    model = Forecaster(1, 1, 3, ModelConfig(hidden_size=4, strategy="recursive", distribution="negbin")).double()
    mu, alpha = model.params(x)
    assert mu.shape == alpha.shape == (4, 6, 1)
    want = -torch_negbin(mu[:, -1], alpha[:, -1]).log_prob(y[:, 0]).mean()
    torch.testing.assert_close(forecast_loss(model, TrainConfig(loss="nll"))(model, (x, y)), want, rtol=1e-12, atol=1e-12)
    target = torch.cat([x[:, 1:], y[:, :1]], 1)  # the next count after every step
    want = -torch_negbin(mu[:, 2:], alpha[:, 2:]).log_prob(target[:, 2:]).mean()
    got = forecast_loss(model, TrainConfig(loss="nll", many_to_many=True, warmup=2))(model, (x, y))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_the_paths_feed_each_count_back_over_the_contexts_scale():
    # a minGRU unit with update gate 1 (h_t = its input) and a head whose mean reads h: the next mean is
    # mu = v softplus(c y / v + b), v = 1 + the context's mean count; the draws in the generator's order
    model = Forecaster(1, 1, 1, ModelConfig(cell="mingru", hidden_size=1, strategy="recursive", distribution="negbin",
                                            samples=7)).double()
    c, b, alpha = 1.3, -0.4, 0.3
    with torch.no_grad():
        model.rnn.weight_ih_l0.copy_(torch.tensor([[0.0], [1.0]], dtype=F64))
        model.rnn.bias_ih_l0.copy_(torch.tensor([40.0, 0.0], dtype=F64))  # sigmoid(40) is 1 in float64
        model.head.weight.copy_(torch.tensor([[c], [0.0]], dtype=F64))
        model.head.bias.copy_(torch.tensor([b, math.log(math.expm1(alpha - ALPHA_FLOOR))], dtype=F64))
    context = torch.tensor([[[2.0], [9.0], [4.0]], [[0.0], [0.0], [1.0]]], dtype=F64)  # (2, 3, 1)
    steps, S = 4, 7
    paths = sample_paths(model, context, steps, S, torch.Generator().manual_seed(5))  # (2, S, steps, 1)
    g = torch.Generator().manual_seed(5)
    v = (1 + context.mean(1)).repeat_interleave(S, 0)  # (2S, 1)
    y = context[:, -1].repeat_interleave(S, 0)  # the last context count
    a = torch.full_like(v, alpha)
    want = []
    for _ in range(steps):
        y = negbin_draw(v * torch.nn.functional.softplus(c * y / v + b), a, g)
        want.append(y)
    torch.testing.assert_close(paths.reshape(2 * S, steps), torch.cat(want, 1), rtol=0, atol=0)


def test_a_direct_head_with_known_inputs_scales_by_its_context_alone():
    """A direct model with known inputs reads lookback + horizon steps, the counts zero over the horizon
    (known.model_input): its scale is 1 + the context's mean count and its naive forecast the context's
    last count, not the zeros after it."""
    torch.manual_seed(2)
    L, H = 5, 3
    # inputs: a count, a known input and the future flag
    model = Forecaster(3, 1, H, ModelConfig(hidden_size=4, distribution="negbin"), n_known=2).double()
    assert model.reads_horizon
    counts = torch.poisson(torch.full((4, L, 1), 7.0, dtype=F64))
    x = torch.cat([torch.cat([counts, torch.zeros(4, H, 1, dtype=F64)], 1), torch.randn(4, L + H, 1, dtype=F64),
                   (torch.arange(L + H) >= L).to(F64).expand(4, -1)[..., None]], -1)  # (B, L + H, 3)
    v = 1 + counts.mean(1, keepdim=True)  # (B, 1, 1): the context's
    out, _ = model.rnn(torch.cat([x[..., :1] / v, x[..., 1:]], -1))
    raw = model.head(out[:, -1]).view(4, H, 1, 2)
    mu, _ = model.params(x)
    torch.testing.assert_close(mu, v * torch.nn.functional.softplus(raw[..., 0]), rtol=1e-12, atol=0)
    set_count_naive(model, "last", 1)
    zero_mean(model)
    mu, _ = model.params(x)
    torch.testing.assert_close(mu, counts[:, -1:].clamp(min=NAIVE_FLOOR).expand(-1, H, -1), rtol=1e-12, atol=1e-14)
