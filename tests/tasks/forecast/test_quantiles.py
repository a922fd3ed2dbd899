"""The quantile head (ModelConfig.quantiles): levels never cross, the pinball loss against a hand
computation, coverage on data with known noise, save/load, the command line and its refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit import ConfigError, DataConfig, ModelConfig, TrainConfig
from rnnkit.cli import main
from rnnkit.data.boxcox import TargetTransform
from rnnkit.data.scaler import Scaler
from rnnkit.data.series import series_from_frame
from rnnkit.tasks.forecast.fitting import ForecastEnsemble, forecast_loss
from rnnkit.tasks.forecast.model import Forecaster
from rnnkit.tasks.forecast.normalise import WindowNorm
from rnnkit.tasks.forecast.predict import predict_windows
from rnnkit.tasks.forecast.probabilistic import pinball
from rnnkit.tasks.forecast.quantiles import (centre_beats_naive, centre_index, init_quantile_head, level_columns,
                                             ordered, zero_centre)

# tiny models: one intra-op thread keeps them fast on a loaded machine (see conftest.single_thread)
pytestmark = pytest.mark.usefixtures("single_thread")

LEVELS = (0.1, 0.5, 0.9)
FAST = TrainConfig(epochs=3, batch_size=16)


def series(n: int = 120, seed: int = 0, noise: float = 0.1) -> rnnkit.SeriesData:
    t = np.arange(n)
    y = 10 + np.sin(2 * np.pi * t / 12) + 0.01 * t + noise * np.random.default_rng(seed).standard_normal(n)
    frame = pd.DataFrame({"date": pd.date_range("2010-01-01", periods=n, freq="MS"), "sales": y})
    return series_from_frame(frame, target="sales", time_col="date", source="sales")


# --- the head: order by construction, levels, initialisation -------------------------------------------

def test_centre_is_the_median_or_the_level_nearest_it():
    assert centre_index((0.1, 0.5, 0.9)) == 1 and centre_index((0.5,)) == 0
    assert centre_index((0.05, 0.3, 0.8)) == 1  # 0.3 is nearest 0.5
    assert centre_index((0.25, 0.75)) == 0      # as near: the lower


@pytest.mark.parametrize("levels", [(0.1, 0.5, 0.9), (0.025, 0.1, 0.5, 0.9, 0.975), (0.05, 0.3, 0.7), (0.9,)])
def test_ordered_is_the_centre_plus_softplus_steps_by_hand(levels):
    # float64 reference, written from the formula: f_c = r_c, f_{c+-j} = f_c +- sum_{i<=j} softplus(r_{c+-i})
    raw = torch.randn(4, 3, 2, len(levels), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    c = centre_index(levels)
    r = raw.numpy()
    sp = np.log1p(np.exp(r))
    want = np.empty_like(r)
    want[..., c] = r[..., c]
    for k in range(c + 1, len(levels)):
        want[..., k] = want[..., k - 1] + sp[..., k]
    for k in range(c - 1, -1, -1):
        want[..., k] = want[..., k + 1] - sp[..., k]
    np.testing.assert_allclose(ordered(raw, c).numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_levels_never_cross_for_random_weights_and_inputs(seed, dtype):
    # property: whatever the weights and inputs (scaled up so that softplus saturates at both ends),
    # every level is at least the one below it; strictly above where the increment did not underflow
    g = torch.Generator().manual_seed(seed)
    levels = tuple(sorted(set(np.round(np.random.default_rng(seed).uniform(0.01, 0.99, 2 + seed), 3))))
    torch.manual_seed(seed)
    model = Forecaster(2, 2, horizon=3, config=ModelConfig(hidden_size=6, quantiles=levels)).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 20)
    x = torch.randn(64, 7, 2, generator=g, dtype=dtype) * 10
    f = model(x)
    assert f.shape == (64, 3, 2, len(levels))
    assert bool((f.diff(dim=-1) >= 0).all())
    raw = model.head(model.rnn(x)[0][:, -1]).view(64, 3, 2, len(levels))
    c = model.centre
    steps = torch.nn.functional.softplus(torch.cat([raw[..., :c], raw[..., c + 1:]], -1))  # gap k: levels k, k+1
    big = torch.maximum(f[..., 1:].abs(), f[..., :-1].abs())
    live = steps > 4 * torch.finfo(dtype).eps * big  # a gap the sum can represent next to the levels' size
    assert bool((f.diff(dim=-1) > 0)[live].all())


def test_order_survives_normalisation_scaler_transform_and_the_ensemble_median():
    # the increasing maps after the head (per-window decode, scaler inverse, log inverse) and the
    # median per level keep every level at least the one below it, in the data's units
    g = torch.Generator().manual_seed(3)
    members = []
    for k in range(3):
        torch.manual_seed(k)
        m = Forecaster(1, 1, horizon=4, config=ModelConfig(hidden_size=5, quantiles=LEVELS)).double()
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 3)
        members.append(m)
    raw = np.exp(np.random.default_rng(0).standard_normal((50, 24, 1)))  # positive: the log transform applies
    transform = TargetTransform("log", 0.0)
    scaler = Scaler("minmax").fit(transform.forward(raw.reshape(-1, 1)))
    norm = WindowNorm("window", "seasonal", 12, 1, (1e-3,))
    for model in (members[0], ForecastEnsemble(members)):
        f = predict_windows(model, scaler, raw, 4, 1, norm=norm, transform=transform, all_levels=True)
        assert f.shape == (50, 4, 1, 3) and bool((np.diff(f, axis=-1) >= 0).all())
        point = predict_windows(model, scaler, raw, 4, 1, norm=norm, transform=transform)
        assert np.array_equal(point, f[..., 1])  # the point forecast is the centre level


def test_initial_head_is_the_naive_forecast_with_gaussian_gaps():
    # targets whose root mean square about 0 (the naive forecast) is s: the untrained head forecasts
    # 0 at the centre and s * z(q) at a level q whose neighbours run symmetric to the centre
    model = Forecaster(1, 1, horizon=2, config=ModelConfig(hidden_size=4, quantiles=(0.025, 0.1, 0.5, 0.9, 0.975)))
    model = model.double()
    s = torch.tensor([[0.5], [2.0]], dtype=torch.float64)  # per step
    targets = s * torch.tensor([-1.0, 1.0], dtype=torch.float64).repeat(50)[:, None, None]  # (100, 2, 1): RMS s
    init_quantile_head(model, targets, centre_zero=True)
    f = model(torch.randn(3, 6, 1, dtype=torch.float64))  # any input: the weights are zero
    z = torch.tensor([NormalDist().inv_cdf(q) for q in model.levels], dtype=torch.float64)
    want = (s[:, :, None] * z).expand(3, 2, 1, 5)
    torch.testing.assert_close(f, want, rtol=0, atol=1e-12)


def test_fallback_zeroes_the_centre_only():
    torch.manual_seed(0)
    model = Forecaster(1, 1, horizon=2, config=ModelConfig(hidden_size=4, quantiles=LEVELS)).double()
    x = torch.randn(5, 6, 1, dtype=torch.float64)
    before = model(x)
    zero_centre(model)
    after = model(x)
    assert bool((after[..., 1] == 0).all())  # the centre is the naive forecast (a zero correction) exactly
    torch.testing.assert_close(after - after[..., 1:2], before - before[..., 1:2], rtol=0, atol=1e-12)  # spread kept


def test_gate_compares_the_centre_by_its_pinball_loss():
    y = torch.tensor([1.0, -1.0, 2.0, 0.5])
    good = torch.stack([y - 5, y + 0.1, y + 5], -1)  # only the centre matters: the others are far off
    bad = torch.stack([y, y * 3, y], -1)
    assert centre_beats_naive(good, y, LEVELS, 1) and not centre_beats_naive(bad, y, LEVELS, 1)


# --- the loss --------------------------------------------------------------------------------------------

def test_loss_is_the_mean_pinball_loss_by_hand():
    torch.manual_seed(0)
    model = Forecaster(2, 2, horizon=3, config=ModelConfig(hidden_size=4, quantiles=LEVELS)).double()
    x = torch.randn(6, 5, 2, dtype=torch.float64)
    y = torch.randn(6, 3, 2, dtype=torch.float64)
    loss = float(forecast_loss(model, TrainConfig(loss="pinball"))(model, (x, y)).detach())
    f = model(x).detach().numpy()
    total, count = 0.0, 0
    for idx in np.ndindex(*y.shape):
        for k, q in enumerate(LEVELS):
            e = float(y[idx]) - float(f[idx + (k,)])
            total += q * e if e >= 0 else (q - 1) * e
            count += 1
    assert math.isclose(loss, total / count, rel_tol=1e-12)
    assert math.isclose(loss, float(pinball(y.numpy(), f, LEVELS).mean()), rel_tol=1e-12)  # the score's


# --- coverage on data with known noise ----------------------------------------------------------------------

def test_pinball_trained_levels_cover_about_80_percent_of_fresh_points():
    # y = sin(2 pi t / 12) + N(0, s^2): the true 0.1/0.9 levels are the sine -+ 1.2816 s, which cover 80 %.
    # Scored on 2000 fresh points after the 1200 fitted on (1000 training windows, 200 validation).
    # Tolerance: the empirical coverage of a fixed band over n = 2000 points has a binomial standard
    # error sqrt(0.8 * 0.2 / 2000) = 0.009; the two learned levels are themselves estimates from about
    # 1000 windows, each off by about sqrt(0.1 * 0.9 / 1000) = 0.0095 in coverage: together about 0.016.
    # Three of those: +-0.05.
    rng = np.random.default_rng(0)
    fit_rows, fresh, s = 1200, 2000, 0.3
    t = np.arange(fit_rows + fresh)
    data = series_from_frame(pd.DataFrame({"y": np.sin(2 * np.pi * t / 12) + s * rng.standard_normal(len(t))}),
                             target="y", source="noisy sine")
    dc = DataConfig(horizon=1, lookback=24, seasonal_period=12, val_start=str(fit_rows - 200),
                    test_start=str(fit_rows), normalise="none", skip="none")
    run = rnnkit.fit_forecaster(dc, ModelConfig(hidden_size=16, quantiles=LEVELS),
                                TrainConfig(epochs=30, batch_size=64, lr=3e-3), data=data, quiet=True)
    scores = run.metrics["model"]["quantile_scores"]
    assert abs(scores["intervals"]["80"]["coverage"] - 0.8) <= 0.05, scores
    true_width = 2 * NormalDist().inv_cdf(0.9) * s
    assert abs(scores["intervals"]["80"]["width"] / true_width - 1) < 0.2, scores  # 0.77 wide, learned from data
    assert run.train_config.loss == "pinball" and run.history.engine == "torch"
    assert "pinball" in run.meta["trainer"]["reason"]  # why the fused trainer did not run


# --- the workflow: forecast table, evaluate, save/load ----------------------------------------------------

def test_forecast_columns_evaluate_and_reload_bit_for_bit(tmp_path):
    data = series()
    dc = DataConfig(horizon=3, lookback=12)
    run = rnnkit.fit_forecaster(dc, ModelConfig(hidden_size=4, quantiles=LEVELS), FAST, data=data, quiet=True,
                                search=rnnkit.SearchConfig(ensemble=2))
    fc = run.forecast(data)
    assert list(fc.columns) == ["horizon", "sales", "sales_q0.1", "sales_q0.5", "sales_q0.9"]
    assert (fc["sales"] == fc["sales_q0.5"]).all()
    assert (fc["sales_q0.1"] <= fc["sales_q0.5"]).all() and (fc["sales_q0.5"] <= fc["sales_q0.9"]).all()
    qs = run.metrics["model"]["quantile_scores"]
    assert set(qs) == {"wql", "crps", "pinball", "intervals"} and set(qs["intervals"]) == {"80"}
    assert "quantile_scores" not in run.metrics["last value"]
    out = run.save(tmp_path / "run", data=data)
    again = rnnkit.load_run(out)
    assert again.model_config.quantiles == LEVELS
    pd.testing.assert_frame_equal(again.forecast(data), fc, check_exact=True)
    assert again.evaluate(data) == run.evaluate(data)
    saved = pd.read_csv(out / "forecast.csv", index_col=0)
    assert list(saved.columns) == list(fc.columns)
    with pytest.raises(ConfigError, match="trained horizon of 3"):
        run.forecast(data, horizon=4)


def test_a_run_whose_config_and_weights_disagree_about_the_levels_is_refused(tmp_path):
    data = series()
    run = rnnkit.fit_forecaster(DataConfig(horizon=2, lookback=12), ModelConfig(hidden_size=4, quantiles=LEVELS),
                                FAST, data=data, quiet=True)
    out = run.save(tmp_path / "run", data=data)
    config = json.loads((out / "config.json").read_text())
    config["model"]["quantiles"] = [0.1, 0.9]  # two levels: the head in the weights has three per value
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(rnnkit.RnnkitError, match="head.weight"):
        rnnkit.load_run(out)


def test_a_series_too_short_to_validate_falls_back_to_the_naive_centre_with_its_spread():
    data = series(n=20)  # too short to hold out validation rows: every member forecasts the naive forecast
    run = rnnkit.fit_forecaster(DataConfig(horizon=2, lookback=4, skip="last"),
                                ModelConfig(hidden_size=4, quantiles=LEVELS), FAST, data=data, quiet=True,
                                evaluate=False)
    assert run.meta["naive_members"] == 1
    fc = run.forecast(data)
    np.testing.assert_allclose(fc["sales"], data.values[-1, 0], rtol=1e-6)  # the last value (float32 model)
    assert (fc["sales_q0.1"] < fc["sales"]).all() and (fc["sales"] < fc["sales_q0.9"]).all()


@pytest.mark.parametrize("model, train, data, needle", [
    ({"strategy": "recursive"}, {}, {}, "strategy='direct'"),
    ({}, {"loss": "mae"}, {}, "pinball"),
    ({}, {"engine": "fused"}, {}, "engine='fused' cannot train a quantile head"),
    ({}, {}, {"difference": "first"}, "quantile of a sum"),
])
def test_settings_a_quantile_head_cannot_use_are_refused(model, train, data, needle):
    with pytest.raises(ConfigError, match=needle):
        rnnkit.fit_forecaster(DataConfig(horizon=2, lookback=12, **data), ModelConfig(quantiles=LEVELS, **model),
                              TrainConfig(epochs=1, **train), data=series(), quiet=True)


def test_the_pinball_loss_needs_quantiles_and_the_levels_are_checked():
    with pytest.raises(ConfigError, match="--quantiles"):
        rnnkit.fit_forecaster(DataConfig(horizon=1, lookback=5), ModelConfig(hidden_size=4),
                              TrainConfig(epochs=1, loss="pinball"), quiet=True)
    for bad in [(0.0, 0.5), (0.5, 1.0), (0.5, 0.5), (0.9, 0.1), (float("nan"),), ("a",), (True,)]:
        with pytest.raises(ConfigError, match="quantiles"):
            ModelConfig(quantiles=bad)
    mc = ModelConfig(quantiles=[0.1, 0.5, 0.9])
    assert mc.quantiles == LEVELS and ModelConfig.from_dict(json.loads(json.dumps(mc.to_dict()))) == mc
    assert level_columns("y", (0.1, 0.025)) == ["y_q0.1", "y_q0.025"]


# --- the command line ----------------------------------------------------------------------------------

@pytest.fixture
def csv(tmp_path: Path) -> Path:
    data = series()
    path = tmp_path / "sales.csv"
    pd.DataFrame({"date": data.frame.index.strftime("%Y-%m-%d"), "sales": data.values[:, 0]}).to_csv(path, index=False)
    return path


def fit_args(data, out, *extra):
    return ["fit", str(data), "--target", "sales", "--time-col", "date", "--lookback", "12", "--horizon", "3",
            "--out", str(out), "--epochs", "3", "--hidden", "4", "--quiet", *extra]


def test_cli_round_trip(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(fit_args(csv, out, "--quantiles", "0.1,0.5,0.9")) == 0
    printed = capsys.readouterr().out
    assert "quantiles: WQL" in printed and "80% interval: coverage" in printed
    assert "does not implement loss='pinball'" in printed  # why the torch loop ran
    saved = pd.read_csv(out / "forecast.csv")
    assert list(saved.columns) == ["date", "horizon", "sales", "sales_q0.1", "sales_q0.5", "sales_q0.9"]
    assert main(["forecast", "--run", str(out), "--out", str(tmp_path / "f.csv")]) == 0
    assert (tmp_path / "f.csv").read_text() == (out / "forecast.csv").read_text()
    capsys.readouterr()
    assert main(["evaluate", "--run", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores["model"]["quantile_scores"]["intervals"]) == {"80"}
    assert json.loads((out / "config.json").read_text())["model"]["quantiles"] == [0.1, 0.5, 0.9]


@pytest.mark.parametrize("args, needle", [
    (["--quantiles", "0"], "strictly between 0 and 1"),
    (["--quantiles", "1"], "strictly between 0 and 1"),
    (["--quantiles", "0.5,0.5"], "increasing"),
    (["--quantiles", "0.9,0.1"], "increasing"),
    (["--quantiles", "abc"], "invalid list"),
    (["--quantiles", "0.1,0.9", "--strategy", "recursive"], "strategy='direct'"),
    (["--quantiles", "0.1,0.9", "--engine", "fused"], "fused"),
    (["--quantiles", "0.1,0.9", "--loss", "mse"], "pinball"),
])
def test_cli_bad_quantiles_exit_2_with_one_line(csv, tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    assert main(fit_args(csv, out, *args)) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and needle in err, err
    assert not out.exists()
