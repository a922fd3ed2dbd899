"""Sampled paths of a recursive distribution head (tasks/forecast/paths.py): the machinery against
closed forms on hand-built linear models (an AR(1), and a model whose mean reads a state carried
along each path), the empirical quantiles as order statistics that map exactly into the data's
units, the one-step loss, a trained model's h-step levels against the AR(1)'s closed form,
determinism, and what is refused."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit import ConfigError, DataConfig, ModelConfig, TrainConfig, fit_forecaster
from rnnkit.data.boxcox import TargetTransform
from rnnkit.data.scaler import Scaler
from rnnkit.tasks.forecast.distribution import SCALE_FLOOR, student_t_cdf
from rnnkit.tasks.forecast.fitting import forecast_loss
from rnnkit.tasks.forecast.model import Forecaster
from rnnkit.tasks.forecast.normalise import WindowNorm
from rnnkit.tasks.forecast.paths import (empirical_levels, level_ranks, sample_levels, sample_paths, sampled,
                                         standard_t)
from rnnkit.tasks.forecast.predict import predict_windows

LEVELS = (0.025, 0.1, 0.5, 0.9, 0.975)


def linear_model(a: float, sigma: float, keep: float, samples: int = 200, seed: int = 0) -> Forecaster:
    """A recursive normal head whose network is linear: a minGRU cell with one unit, update gate
    ``z = sigmoid(b_z)`` constant (``keep = 1 - z`` of the state stays) and candidate ``h~ = x``, so
    ``h_t = keep h_(t-1) + (1 - keep) x_t``; the head's mean is ``a h_t / (1 - keep)`` and its scale
    ``sigma`` (keep = 0: an AR(1) with coefficient a). float64."""
    model = Forecaster(1, 1, 1, ModelConfig(cell="mingru", hidden_size=1, strategy="recursive",
                                            distribution="normal", samples=samples), seed=seed).double()
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        z = 1.0 - keep
        model.rnn.weight_ih_l0.copy_(f64([[0.0], [1.0]]))  # W_z = 0, W_h = 1
        # z = sigmoid(b_z): b_z = logit(z); keep = 0 needs z = 1 exactly in float64: sigmoid(40) rounds to 1
        model.rnn.bias_ih_l0.copy_(f64([40.0 if keep == 0 else math.log(z / (1 - z)), 0.0]))
        model.head.weight.copy_(f64([[a / z], [0.0]]))
        model.head.bias.copy_(f64([0.0, math.log(math.expm1(sigma - SCALE_FLOOR))]))  # softplus^-1
    return model.eval()


def closed_form(a: float, sigma: float, keep: float, h0: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of y_1..y_steps after a primed state h0, for :func:`linear_model`:
    with ``c = a / z``, ``y_(k+1) = c h_k + sigma e``, ``h_(k+1) = phi h_k + z sigma e`` where
    ``phi = keep + z c = keep + a``; so ``E y_(k+1) = c phi^k h0`` and ``Var y_(k+1) = c^2 V_k + sigma^2``,
    ``V_(k+1) = phi^2 V_k + (z sigma)^2``, ``V_0 = 0`` (keep = 0: the AR(1)'s sum of a^(2j), j < k+1)."""
    z = 1.0 - keep
    c, phi = a / z, keep + a
    mean, var, V = [], [], 0.0
    for k in range(steps):
        mean.append(c * phi ** k * h0)
        var.append(c * c * V + sigma * sigma)
        V = phi * phi * V + (z * sigma) ** 2
    return np.array(mean), np.sqrt(var)


@pytest.mark.parametrize("keep", [0.0, 0.5])
def test_the_paths_of_a_linear_model_have_the_closed_form_mean_and_spread(keep):
    a, sigma, S, steps = 0.8 if keep == 0 else 0.4, 1.0, 20000, 6
    model = linear_model(a, sigma, keep)
    context = torch.tensor([[[0.5], [-1.0], [2.0], [3.0]]], dtype=torch.float64)  # (1, L, 1)
    _, state = model.rnn(context)
    h0 = float((state[0] if isinstance(state, tuple) else state).detach())
    if keep == 0:
        assert h0 == 3.0  # the AR(1): the primed state is the last value
    paths = sample_paths(model, context, steps, S, torch.Generator().manual_seed(0))[0, :, :, 0]  # (S, steps)
    mean, sd = closed_form(a, sigma, keep, h0, steps)
    if keep == 0:  # the AR(1)'s h-step variance, sum over k < h of 0.8^(2k)
        np.testing.assert_allclose(sd ** 2, [sum(a ** (2 * k) for k in range(h)) for h in range(1, steps + 1)])
    # Monte-Carlo tolerances from S: 4 standard errors of a mean (sd / sqrt S) and of a Gaussian sample
    # standard deviation (sd / sqrt(2 S), about 0.02 sd here)
    np.testing.assert_array_less(np.abs(paths.mean(0).numpy() - mean), 4 * sd / math.sqrt(S))
    np.testing.assert_array_less(np.abs(paths.std(0).numpy() / sd - 1), 4 / math.sqrt(2 * S))
    # the reported levels: the closed-form normal quantiles, within 4 standard errors of a sample
    # quantile, sqrt(q (1 - q)) / (S f(x_q)) with f the normal density there
    model.samples = S
    got = model.predict(context, steps)[0, :, 0].numpy()  # (steps, Q)
    nd = NormalDist()
    for j, q in enumerate(model.levels):
        z = nd.inv_cdf(q)
        se = math.sqrt(q * (1 - q) / S) / (nd.pdf(z) / sd)
        np.testing.assert_array_less(np.abs(got[:, j] - (mean + sd * z)), 4 * se)


def test_the_paths_carry_their_own_state():
    # keep = 0.5: each path's mean reads its own past through the state; a shared or reset state would
    # give every step after the first the one-step spread sigma (and the first step's mean)
    model = linear_model(0.4, 1.0, 0.5)
    context = torch.ones(1, 3, 1, dtype=torch.float64)
    paths = sample_paths(model, context, 8, 4000, torch.Generator().manual_seed(1))[0, :, :, 0]
    _, sd = closed_form(0.4, 1.0, 0.5, float(model.rnn(context)[1][0].detach().squeeze()), 8)
    assert sd[-1] > 1.2  # the spread the state carries (1.28)
    np.testing.assert_array_less(np.abs(paths.std(0).numpy() / sd - 1), 4 / math.sqrt(2 * 4000))


def test_the_first_step_draws_from_the_predicted_distribution_in_the_generators_order():
    model = linear_model(0.8, 0.7, 0.0)
    context = torch.tensor([[[1.0], [2.0]], [[0.0], [-1.0]]], dtype=torch.float64)  # (2, 2, 1)
    paths = sample_paths(model, context, 1, 5, torch.Generator().manual_seed(3))  # (2, 5, 1, 1)
    e = torch.randn(10, 1, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = torch.tensor([2.0, -1.0], dtype=torch.float64).repeat_interleave(5) * 0.8 + 0.7 * e[:, 0, 0]
    torch.testing.assert_close(paths.reshape(-1), expected, rtol=1e-12, atol=1e-12)


def test_the_empirical_quantile_is_the_ceil_qs_th_smallest_draw():
    x = torch.tensor([7.0, 3.0, 10.0, 1.0, 5.0, 9.0, 2.0, 8.0, 4.0, 6.0])[None, :, None]  # (1, S=10, 1)
    got = empirical_levels(x, (0.05, 0.1, 0.25, 0.5, 0.95, 0.999))[0, 0]
    assert got.tolist() == [1.0, 1.0, 3.0, 5.0, 10.0, 10.0]
    assert level_ranks((0.1, 0.5, 0.9), 200) == [19, 99, 179]  # 0.1 x 200 is 20 in floating point too
    assert level_ranks((0.5,), 1) == [0]


@pytest.mark.parametrize("df, cdf", [(1.0, lambda t: 0.5 + np.arctan(t) / np.pi),
                                     (2.0, lambda t: 0.5 + t / (2 * np.sqrt(2 + t * t))),
                                     (3.5, None)])
def test_the_student_t_draws_have_the_t_distribution(df, cdf):
    n = 200_000
    t = standard_t(torch.full((n,), df, dtype=torch.float64), torch.Generator().manual_seed(0)).numpy()
    points = np.array([-3.0, -1.0, -0.2, 0.0, 0.5, 2.0, 6.0])
    want = (cdf(points) if cdf is not None else
            student_t_cdf(torch.tensor(points), torch.full((len(points),), df, dtype=torch.float64)).numpy())
    got = (t[:, None] <= points).mean(0)
    np.testing.assert_array_less(np.abs(got - want), 4 * np.sqrt(want * (1 - want) / n) + 1e-12)


def test_the_levels_in_data_units_are_the_paths_mapped_draw_by_draw():
    # through the per-window normalisation, a min-max scaler and a log transform: every level is an order
    # statistic of the draws, so it equals the empirical quantile of the draws mapped one by one
    torch.manual_seed(0)
    model = Forecaster(1, 1, 1, ModelConfig(hidden_size=5, strategy="recursive", distribution="normal",
                                            samples=50), seed=7).double()
    rng = np.random.default_rng(0)
    contexts = np.exp(rng.normal(1.0, 0.3, (3, 6, 1)))  # (W, L, 1), positive
    transform = TargetTransform("log", 0.0)
    scaler = Scaler("minmax").fit(transform.forward(contexts.reshape(-1, 1)))
    norm = WindowNorm.fit("window", "none", 1, scaler.transform(transform.forward(contexts.reshape(-1, 1))))
    got = predict_windows(model, scaler, contexts, 4, 1, norm=norm, transform=transform, all_levels=True)
    x = scaler.transform(transform.forward(contexts))
    g = torch.Generator().manual_seed(7)
    paths = sample_paths(model, torch.as_tensor(norm.inputs(x)), 4, 50, g).numpy()  # (W, S, 4, 1)
    data = np.stack([transform.inverse(scaler.inverse_transform(norm.decode(x, paths[:, s]), columns=[0]))
                     for s in range(50)], 1)  # (W, S, 4, 1), each draw in the data's units
    want = empirical_levels(torch.as_tensor(data), model.levels).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert (np.diff(got, axis=-1) >= 0).all()


def test_the_one_step_loss_is_the_next_values_negative_log_likelihood():
    torch.manual_seed(0)
    x, y = torch.randn(4, 6, 1, dtype=torch.float64), torch.randn(4, 3, 1, dtype=torch.float64)
    for dist in ("normal", "student_t"):
        model = Forecaster(1, 1, 3, ModelConfig(hidden_size=4, strategy="recursive", distribution=dist)).double()
        p = model.params(x)
        assert all(t.shape == (4, 6, 1) for t in p)
        last = [t[:, -1] for t in p]
        nl = (torch.distributions.Normal(*last) if dist == "normal" else
              torch.distributions.StudentT(last[2], last[0], last[1])).log_prob(y[:, 0])
        loss = forecast_loss(model, TrainConfig(loss="nll"))(model, (x, y))
        torch.testing.assert_close(loss, -nl.mean(), rtol=1e-12, atol=1e-12)
    model = Forecaster(1, 1, 3, ModelConfig(hidden_size=4, strategy="recursive", distribution="normal")).double()
    mu, sigma = model.params(x)
    target = torch.cat([x[:, 1:], y[:, :1]], 1)  # the next value after every step
    want = -torch.distributions.Normal(mu[:, 2:], sigma[:, 2:]).log_prob(target[:, 2:]).mean()
    got = forecast_loss(model, TrainConfig(loss="nll", many_to_many=True, warmup=2))(model, (x, y))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def ar1(tmp_path_factory):
    """A Gaussian AR(1) around 10, y_t - 10 = 0.8 (y_(t-1) - 10) + e_t, e_t ~ N(0, 1), 900 points,
    and a recursive normal-head run on it (horizon 4, 1000 paths)."""
    rng = np.random.default_rng(0)
    y = np.zeros(900)
    for t in range(1, len(y)):
        y[t] = 0.8 * y[t - 1] + rng.standard_normal()
    path = tmp_path_factory.mktemp("ar1") / "ar1.csv"
    pd.DataFrame({"y": y + 10.0}).to_csv(path, index=False)
    dc = DataConfig(source=str(path), targets=("y",), horizon=4, lookback=8, normalise="none", transform="none")
    run = fit_forecaster(dc, ModelConfig(hidden_size=16, strategy="recursive", distribution="normal", samples=1000),
                         TrainConfig(epochs=60, lr=3e-3, seed=0), quiet=True)
    return run


def test_a_trained_recursive_head_approaches_the_ar1s_h_step_distribution(ar1):
    run = ar1
    data = run.load_data()
    values = data.values[:, 0]
    start = run.meta["test_start"]
    X = np.stack([values[s - 8:s, None] for s in range(start, len(values) - 3)])  # (W, 8, 1)
    levels = run.predict_contexts(X, 4, all_levels=True)[:, :, 0]  # (W, 4, Q)
    last = X[:, -1, 0] - 10.0
    q = list(run.levels)
    for h in range(1, 5):
        true_mean = 10.0 + 0.8 ** h * last
        true_sd = math.sqrt(sum(0.64 ** k for k in range(h)))
        width = (levels[:, h - 1, q.index(0.9)] - levels[:, h - 1, q.index(0.1)]).mean()
        true_width = 2 * NormalDist().inv_cdf(0.9) * true_sd
        # the learnt coefficient and scale (measured within a few per cent) and 1000 paths per window
        assert abs(width / true_width - 1) < 0.1, (h, width, true_width)
        median_error = np.abs(levels[:, h - 1, q.index(0.5)] - true_mean).mean()
        assert median_error < 0.15 * true_sd, (h, median_error)
    scores = run.metrics["model"]["quantile_scores"]["intervals"]
    n = 4 * (run.meta["n_rows"] - start - 3)  # points, correlated across steps and windows: a loose bound
    for nominal, p in (("80", 0.8), ("95", 0.95)):
        assert abs(scores[nominal]["coverage"] - p) < 8 * math.sqrt(p * (1 - p) / n), scores
    assert run.history.engine == "torch" and "nll" in run.meta["trainer"]["reason"]


def test_forecasts_are_deterministic_given_the_seed_and_reload_bit_for_bit(ar1, tmp_path):
    run = ar1
    a, b = run.forecast(horizon=6), run.forecast(horizon=6)  # past the trained horizon: paths run on
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(a.columns) == ["horizon", "y", "y_q0.025", "y_q0.1", "y_q0.5", "y_q0.9", "y_q0.975"]
    assert (a["y"] == a["y_q0.5"]).all() and (np.diff(a.iloc[:, 2:].to_numpy(), axis=1) > 0).all()
    assert run.model.sample_seed == run.train_config.seed == 0
    again = rnnkit.load_run(run.save(tmp_path / "run"))
    assert again.model.sample_seed == 0
    pd.testing.assert_frame_equal(again.forecast(horizon=6), a, check_exact=True)
    written = pd.read_csv(tmp_path / "run" / "forecast.csv")
    np.testing.assert_allclose(written["y_q0.9"], run.forecast()["y_q0.9"], rtol=1e-12)
    again.model.sample_seed = 1  # the same weights, another stream
    other = again.forecast(horizon=6)
    assert not np.array_equal(other.iloc[:, 1:].to_numpy(), a.iloc[:, 1:].to_numpy())
    # the same stream continued over chunks: the chunks do not reuse one another's draws
    context = torch.zeros(3, 4, 1, dtype=torch.float64)
    model = linear_model(0.8, 1.0, 0.0, samples=10)
    whole = sample_levels(model, context, 2)
    assert not torch.equal(whole[0], whole[1])  # same context, different draws


def test_an_ensemble_takes_each_levels_median_over_members_with_their_own_seeds(ar1):
    run = ar1
    data = run.load_data()
    ens = fit_forecaster(run.data_config, run.model_config.replace(hidden_size=4, samples=100), TrainConfig(epochs=2, seed=5),
                         quiet=True, evaluate=False, search=rnnkit.SearchConfig(ensemble=2))
    assert [m.sample_seed for m in ens.model.members] == [5, 6] and sampled(ens.model)
    X = data.values[None, -8:]
    each = [predict_windows(m, ens.scaler, X, 3, 1, norm=ens.norm, transform=ens.transform, all_levels=True)
            for m in ens.model.members]
    np.testing.assert_allclose(ens.predict_contexts(X, 3, all_levels=True), (each[0] + each[1]) / 2, rtol=1e-5)


def test_what_is_refused(ar1, tmp_path):
    with pytest.raises(ConfigError, match="--distribution normal"):  # quantiles alone on a recursive model
        ModelConfig(strategy="recursive", quantiles=(0.1, 0.9))
    with pytest.raises(ConfigError, match="samples must be an integer >= 1"):
        ModelConfig(strategy="recursive", distribution="normal", samples=0)
    with pytest.raises(ConfigError, match="drop --samples"):
        ModelConfig(strategy="recursive", samples=50)  # a point model draws no paths
    with pytest.raises(ConfigError, match="stateful=True with a distribution head"):
        fit_forecaster(DataConfig(source="builtin:nile", normalise="none"),
                       ModelConfig(strategy="recursive", distribution="normal"), TrainConfig(epochs=1, stateful=True),
                       quiet=True)
    with pytest.raises(ConfigError, match="sampled paths"):
        linear_model(0.8, 1.0, 0.0).generate(torch.zeros(1, 2, 1, dtype=torch.float64), 3)
    pytest.importorskip("onnx")
    from rnnkit.tasks.export.graphs import StepGraph
    run = ar1  # its forecast graph exports, the draws an input (tests/tasks/export/test_export_paths.py); no step graph
    with pytest.raises(ConfigError, match="sampled paths") as e:
        rnnkit.export_onnx(run, tmp_path / "m.onnx", step=True)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="sampled paths"):
        StepGraph(run.model)
    assert not (tmp_path / "m.onnx").exists()
