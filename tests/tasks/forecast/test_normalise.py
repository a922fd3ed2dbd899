"""Per-window normalisation, the naive skip, target transforms and the defaults sized in horizons
(issue 15, item 1 and 3): closed forms, the baselines' own functions as references, end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit import ConfigError, DataConfig, DataError, ModelConfig, TrainConfig, fit_forecaster, load_run
from rnnkit.data.series import series_from_frame
from rnnkit.tasks.forecast.data import default_lookback, freq_season, resolve_split
from rnnkit.tasks.forecast.known import model_input
from rnnkit.tasks.forecast.metrics import last_value_forecast, seasonal_naive_forecast
from rnnkit.tasks.forecast.normalise import PER_SERIES, WindowNorm

rng = np.random.default_rng(0)


def _norm(skip="seasonal", normalise="window", m=4, C=2):
    return WindowNorm.fit(normalise, skip, m, rng.normal(size=(50, C)))


@pytest.mark.parametrize("skip", ["none", "last", "seasonal"])
@pytest.mark.parametrize("normalise", ["window", "none"])
def test_decode_inverts_encode_exactly(skip, normalise):
    norm = _norm(skip, normalise)
    X, Y = rng.normal(size=(7, 9, 3)) * 50 + 10, rng.normal(size=(7, 5, 2))  # 2 targets + 1 covariate
    Xn, Yn = norm.encode(X, Y)
    np.testing.assert_allclose(norm.decode(X, Yn), Y, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(Xn[..., 2], X[..., 2])  # covariates keep the global scaling


def test_window_inputs_ignore_level_and_scale():
    norm = _norm()
    X = rng.normal(size=(4, 8, 2))
    shifted = X * 1e4 + 3e5  # another level and unit: the network sees the same inputs
    np.testing.assert_allclose(norm.inputs(shifted), norm.inputs(X), atol=1e-9)
    Xn = norm.inputs(X)
    np.testing.assert_allclose(Xn.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(Xn.std(axis=1), 1, atol=1e-12)


def test_flat_window_is_not_blown_up():
    norm = WindowNorm.fit("window", "last", 1, np.arange(10.0)[:, None])
    X = np.full((1, 6, 1), 5.0)
    X[0, -1, 0] += 1e-9  # rounding noise on a flat window
    assert np.abs(norm.inputs(X)).max() < 1e-3


@pytest.mark.parametrize("skip, reference", [
    ("last", lambda X, H, m: last_value_forecast(X, H)),
    ("seasonal", lambda X, H, m: seasonal_naive_forecast(X, H, m)),
])
def test_base_is_the_baselines_forecast(skip, reference):
    m, H = 4, 10
    norm = WindowNorm.fit("window", skip, m, rng.normal(size=(20, 1)))
    X = rng.normal(size=(5, 9, 1))
    np.testing.assert_array_equal(norm.base(X, H), reference(X, H, m))


def test_each_window_repeats_its_own_season():
    """``seasons``: each window's seasonal naive forecast is the baselines' own with its own m (1: the last value),
    the same numbers as a normalisation of that one m; encode and decode stay inverse."""
    H, seasons = 7, np.array([12, 4, 1, 4, 12, 2])
    norm = WindowNorm.fit("window", "seasonal", PER_SERIES, rng.normal(size=(40, 2)))
    X, Y = rng.normal(size=(6, 12, 3)) * 5 + 2, rng.normal(size=(6, H, 2))
    base = norm.base(X, H, seasons)
    for w, m in enumerate(seasons):
        ref = last_value_forecast(X[w:w + 1, :, :2], H) if m == 1 else seasonal_naive_forecast(X[w:w + 1, :, :2], H, m)
        np.testing.assert_array_equal(base[w:w + 1], ref)
        one = dataclasses.replace(norm, m=int(m))
        np.testing.assert_array_equal(norm.encode(X, Y, seasons)[1][w:w + 1], one.encode(X[w:w + 1], Y[w:w + 1])[1])
    np.testing.assert_allclose(norm.decode(X, norm.encode(X, Y, seasons)[1], seasons), Y, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="pass seasons"):  # never a silent single season
        norm.base(X, H)
    with pytest.raises(ValueError, match=r"in \[1, 12\]"):
        norm.base(X, H, np.array([13, 4, 1, 4, 12, 2]))


@pytest.mark.parametrize("d", [1, 4])
@pytest.mark.parametrize("normalise", ["window", "none"])
def test_differencing_decode_inverts_encode_exactly(d, normalise):
    rng = np.random.default_rng(d)  # its own draws: the module's generator feeds other tests
    norm = WindowNorm.fit(normalise, "none", 4, rng.normal(size=(50, 2)), difference=d)
    X, Y = rng.normal(size=(7, 9, 3)) * 50 + 10, rng.normal(size=(7, 5, 2))
    np.testing.assert_allclose(norm.decode(X, norm.encode(X, Y)[1]), Y, rtol=0, atol=1e-11)


@pytest.mark.parametrize("d", [1, 3])
def test_differenced_windows_by_hand(d):
    rng = np.random.default_rng(10 + d)
    X = np.cumsum(rng.normal(size=(2, 8, 2)), axis=1)  # one target + one covariate
    Y = np.cumsum(rng.normal(size=(2, 5, 1)), axis=1) + X[:, -1:, :1]
    norm = WindowNorm.fit("none", "none", 3, rng.normal(size=(30, 1)), difference=d)
    Xn, Yn = norm.encode(X, Y)
    full = np.concatenate([X[..., :1], Y], axis=1)  # (W, 8 + 5, 1)
    want_in = np.zeros((2, 8))
    want_in[:, d:] = X[:, d:, 0] - X[:, :-d, 0]
    np.testing.assert_allclose(Xn[..., 0], want_in, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(Xn[..., 1], X[..., 1])
    want_out = np.stack([full[:, 8 + h, 0] - full[:, 8 + h - d, 0] for h in range(5)], axis=1)
    np.testing.assert_allclose(Yn[..., 0], want_out, rtol=0, atol=1e-12)
    # a zero forecast difference is the naive forecast (d=1) or the seasonal-naive one (d=m)
    naive = last_value_forecast(X[..., :1], 5) if d == 1 else seasonal_naive_forecast(X[..., :1], 5, d)
    np.testing.assert_allclose(norm.decode(X, np.zeros((2, 5, 1))), naive, rtol=0, atol=1e-12)
    # window normalisation of differences: the network's inputs ignore the window's level and unit
    wnorm = WindowNorm.fit("window", "none", 3, rng.normal(size=(30, 1)), difference=d)
    np.testing.assert_allclose(wnorm.inputs(X * 100 + 7)[..., 0], wnorm.inputs(X)[..., 0], atol=1e-9)


def test_differenced_direct_model_trains_saves_and_reloads(tmp_path):
    rng = np.random.default_rng(5)
    t = np.arange(120.0)
    data = _monthly(100 + 0.8 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(scale=0.3, size=t.size))
    for difference in ("first", "seasonal"):
        run = fit_forecaster(DataConfig(horizon=6, difference=difference, transform="none"), ModelConfig(hidden_size=8),
                             TrainConfig(epochs=20), data=data, quiet=True)
        assert run.data_config.skip == "none" and run.norm.difference == (1 if difference == "first" else 12)
        f = run.forecast(data)["y"].to_numpy()
        assert np.isfinite(f).all() and f.min() > data.values[-24:, 0].min()  # follows the trend upwards
        run.save(tmp_path / difference, data=data)
        back = load_run(tmp_path / difference)
        assert back.norm == run.norm
        np.testing.assert_array_equal(back.forecast(data)["y"].to_numpy(), f)


def _monthly(values, start="2000-01-01"):
    frame = pd.DataFrame({"date": pd.date_range(start, periods=len(values), freq="MS").strftime("%Y-%m-%d"),
                          "y": values})
    return series_from_frame(frame, time_col="date")


def test_untrained_model_forecasts_the_seasonal_naive_forecast():
    t = np.arange(96)
    data = _monthly(100 + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(size=96))
    run = fit_forecaster(DataConfig(horizon=6, transform="none"), ModelConfig(hidden_size=4),
                         TrainConfig(epochs=1, lr=1e-12), data=data, quiet=True)
    assert (run.data_config.seasonal_period, run.data_config.lookback, run.data_config.skip) == (12, 24, "seasonal")
    with torch.no_grad():  # a zero head: the correction is zero, the forecast is the naive one
        run.model.head.weight.zero_()
        run.model.head.bias.zero_()
    got = run.forecast(data)["y"].to_numpy()
    np.testing.assert_allclose(got, data.target_values[-12:-6, 0], rtol=1e-6)


def test_trend_beyond_the_training_range_is_followed():
    # a ramp: every test value lies above every training value; the old design (global min-max
    # scaling, absolute outputs) had to extrapolate with a tanh network
    y = 3.0 * np.arange(200) + 50 + rng.normal(scale=0.5, size=200)
    data = series_from_frame(pd.DataFrame({"y": y}))
    dc = DataConfig(horizon=3, lookback=10, transform="none")
    new = fit_forecaster(dc, ModelConfig(hidden_size=8), TrainConfig(epochs=60), data=data, quiet=True)
    old = fit_forecaster(dc.replace(normalise="none", skip="none"), ModelConfig(hidden_size=8),
                         TrainConfig(epochs=60), data=data, quiet=True)
    mae = lambda r, who="model": r.metrics[who]["overall"]["mae"]  # noqa: E731
    assert mae(new) < 0.5 * mae(new, "last value")  # the last value is 3 to 9 below the truth
    assert mae(new) < 0.2 * mae(old)


def test_naive_fallback_and_round_trip(tmp_path):
    # huge plain SGD steps leave the head's corrections far off: on the validation windows the
    # last value does better, so the run forecasts exactly the last value
    data = series_from_frame(pd.DataFrame({"y": np.cumsum(rng.normal(size=120))}))  # a random walk
    run = fit_forecaster(DataConfig(horizon=4, lookback=8), ModelConfig(hidden_size=4),
                         TrainConfig(epochs=3, lr=5.0, optimizer="sgd", clip_norm=5.0, patience=0,
                                     restore_best=False), data=data, quiet=True)
    assert run.meta["naive_members"] == 1
    np.testing.assert_array_equal(run.forecast(data)["y"].to_numpy(), np.repeat(data.target_values[-1, 0], 4))
    sane = fit_forecaster(DataConfig(horizon=4, lookback=8), ModelConfig(hidden_size=4), TrainConfig(epochs=30),
                          data=data, quiet=True)
    sane.save(tmp_path / "r", data=data)
    back = load_run(tmp_path / "r")
    np.testing.assert_array_equal(back.forecast(data)["y"].to_numpy(), sane.forecast(data)["y"].to_numpy())
    assert back.meta["naive_members"] == sane.meta["naive_members"]


def test_log_transform_chosen_for_growing_swings_and_saved(tmp_path):
    t = np.arange(144)
    y = np.exp(5 + 0.01 * t) * (1 + 0.25 * np.sin(2 * np.pi * t / 12))  # swings grow with the level
    data = _monthly(y)
    run = fit_forecaster(DataConfig(horizon=12), ModelConfig(hidden_size=4), TrainConfig(epochs=2), data=data,
                         quiet=True)
    assert run.data_config.transform == "log" and run.transform.lam == 0.0
    run.save(tmp_path / "r", data=data)
    back = load_run(tmp_path / "r")
    assert back.transform == run.transform
    np.testing.assert_array_equal(back.forecast(data)["y"].to_numpy(), run.forecast(data)["y"].to_numpy())
    additive = _monthly(100 + 0.1 * t + 10 * np.sin(2 * np.pi * t / 12))
    assert fit_forecaster(DataConfig(horizon=12), ModelConfig(hidden_size=4), TrainConfig(epochs=1),
                          data=additive, quiet=True).data_config.transform == "none"


def test_auto_transform_keeps_the_data_units_under_a_drift_skip():
    # yearly growth whose swings grow with the level: Guerrero picks the log, and with the last-value
    # skip the log stays; under a drift skip the log would compound the drift (exponential growth)
    t = np.arange(40.0)
    y = np.exp(3 + 0.08 * t) * (1 + 0.1 * np.random.default_rng(0).normal(size=t.size))
    data = series_from_frame(pd.DataFrame({"y": y}), target="y", source="growth")
    fit = lambda **kw: fit_forecaster(DataConfig(horizon=6, seasonal_period=1, **kw),  # noqa: E731
                                      ModelConfig(hidden_size=4), TrainConfig(epochs=1), data=data, quiet=True)
    assert fit(skip="last").data_config.transform == "log"
    drift = fit(skip="drift")
    assert drift.data_config.transform == "none" and drift.transform.name == "none"
    assert fit(skip="drift", transform="log").data_config.transform == "log"  # asked for: kept
    auto = fit()
    assert (auto.data_config.skip, auto.data_config.transform) in (("drift", "none"), ("last", "log"))


@pytest.mark.parametrize("freq, m", [("MS", 12), ("ME", 12), ("QS-OCT", 4), ("QE-DEC", 4), ("D", 7), ("h", 24),
                                     ("W-SUN", 52), ("YS-JAN", 1), ("2D", 1), ("min", 1), (None, 1)])
def test_season_from_frequency(freq, m):
    assert freq_season(freq) == m


def test_defaults_sized_in_horizons():
    t = np.arange(108)  # the monthly case: 108 months, lookback 24, horizon 12
    data = _monthly(200 + t + 20 * np.sin(2 * np.pi * t / 12))
    L, split = resolve_split(DataConfig(horizon=12, lookback=24), data, 12)
    # the old defaults left 11 validation rows (10%) for a horizon of 12 and refused the fit
    assert (L, split.train_end, split.val_end - split.train_end, split.n - split.val_end) == (24, 74, 12, 22)
    run = fit_forecaster(DataConfig(horizon=12, lookback=24), ModelConfig(hidden_size=4), TrainConfig(epochs=1),
                         data=data, quiet=True)
    assert len(run.metrics["model"]["per_step"]) == 12
    # a 36-month series, horizon 6: test and validation shrink to one horizon, the lookback to fit
    L, split = resolve_split(DataConfig(horizon=6), _monthly(np.arange(36.0) + 1), 12)
    assert (split.train_end, split.val_end, L) == (24, 30, 24 - 6 - 8 + 1)
    assert default_lookback(12, 6) == 24 and default_lookback(1, 6) == 12 and default_lookback(1, 1) == 8


def test_explicit_fractions_are_used_as_given():
    data = _monthly(np.arange(108.0) + 1)
    with pytest.raises(DataError, match="11 validation rows"):
        fit_forecaster(DataConfig(horizon=12, lookback=24, val_frac=0.1, test_frac=0.2), data=data, quiet=True)


@pytest.mark.parametrize("dc, model, train, needle", [
    (DataConfig(skip="last"), ModelConfig(strategy="recursive"), TrainConfig(), "for direct models"),
    (DataConfig(skip="seasonal", lookback=6, seasonal_period=12), ModelConfig(), TrainConfig(), "lookback of at least m"),
    (DataConfig(normalise="window"), ModelConfig(strategy="recursive"), TrainConfig(stateful=True, shuffle=False),
     "stateful training"),
    (DataConfig(difference="first"), ModelConfig(strategy="recursive"), TrainConfig(), "for direct models"),
    (DataConfig(difference="first", skip="last"), ModelConfig(), TrainConfig(), "use --skip none"),
    (DataConfig(difference="seasonal", seasonal_period=1), ModelConfig(), TrainConfig(), "seasonal period m > 1"),
    (DataConfig(difference="seasonal", lookback=12, seasonal_period=12), ModelConfig(), TrainConfig(),
     "lookback longer than its lag"),
])
def test_refused_combinations(dc, model, train, needle):
    data = _monthly(np.arange(60.0) + 1)
    with pytest.raises(ConfigError, match=needle):
        fit_forecaster(dc.replace(horizon=2), model, train.replace(epochs=1), data=data, quiet=True)


def test_recursive_model_is_normalised_without_skip():
    t = np.arange(96)
    data = _monthly(50 + 5 * np.sin(2 * np.pi * t / 12))
    run = fit_forecaster(DataConfig(horizon=3), ModelConfig(hidden_size=4, strategy="recursive"),
                         TrainConfig(epochs=2), data=data, quiet=True)
    assert (run.data_config.normalise, run.data_config.skip) == ("window", "none")
    assert run.forecast(data).shape == (3, 2)


def test_very_short_series_trains_without_validation():
    # 24 months, horizon 12 (ShampooSales-like once its last year is held out): no room for a
    # validation horizon; the default leaves validation and test out instead of refusing
    data = _monthly(np.arange(24.0) + 10)
    L, split = resolve_split(DataConfig(horizon=12), data, 12)
    assert (split.train_end, split.val_end, split.n) == (24, 24, 24) and L == 24 - 12 - 8 + 1
    run = fit_forecaster(DataConfig(horizon=12), ModelConfig(hidden_size=4), TrainConfig(epochs=2), data=data,
                         quiet=True)
    assert run.meta["val_rows"] == 0 and run.forecast(data).shape == (12, 2)


def test_drift_base_is_the_line_through_the_window():
    norm = WindowNorm.fit("window", "drift", 1, rng.normal(size=(20, 1)))
    X = np.array([[[2.0], [5.0], [4.0], [8.0]]])  # slope (8 - 2) / 3 = 2 per step
    np.testing.assert_allclose(norm.base(X, 3)[0, :, 0], [10.0, 12.0, 14.0])


@pytest.mark.parametrize("series, expected", [
    (lambda t: 0.5 * t + np.random.default_rng(2).normal(scale=0.05, size=t.size), "drift"),  # a steady trend
    (lambda t: 10 * np.sin(2 * np.pi * t / 12), "seasonal"),
    (lambda t: np.cumsum(np.random.default_rng(3).normal(size=t.size)), "last"),  # a random walk
])
def test_auto_skip_is_the_naive_forecast_that_fits_the_training_windows(series, expected):
    data = _monthly(series(np.arange(120.0)) + 100)
    run = fit_forecaster(DataConfig(horizon=6, transform="none"), ModelConfig(hidden_size=4), TrainConfig(epochs=1),
                         data=data, quiet=True)
    assert run.data_config.skip == expected


def test_calendar_features_reach_the_direct_model_over_the_horizon(tmp_path):
    t = np.arange(120)
    data = _monthly(100 + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(size=120))
    assert fit_forecaster(DataConfig(horizon=6), ModelConfig(hidden_size=4), TrainConfig(epochs=1), data=data,
                          quiet=True).data_config.calendar == "none"  # off by default (measured)
    run = fit_forecaster(DataConfig(horizon=6, calendar="sincos"), ModelConfig(hidden_size=4), TrainConfig(epochs=2),
                         data=data, quiet=True)
    L = run.data_config.lookback
    assert run.data_config.calendar == "sincos" and run.model.input_size == 1 + 2 + 1  # y, sin, cos, flag
    known = run.known(data, [len(data)])  # (1, L + 6, 2): the context's months, then the next 6
    months = np.concatenate([data.frame.index.month[-L:], (data.frame.index.month[-1] + np.arange(1, 7) - 1) % 12 + 1])
    np.testing.assert_allclose(known[0, :, 0], np.sin(2 * np.pi * months / 12), atol=1e-12)
    x = model_input(np.ones((1, L, 1)), known, 1, recursive=False)[0]  # (L + 6, 4): y, sin, cos, flag
    np.testing.assert_array_equal(x[:, 0], np.r_[np.ones(L), np.zeros(6)])  # the future values are unknown
    np.testing.assert_array_equal(x[:, 1:3], known[0])
    np.testing.assert_array_equal(x[:, 3], np.r_[np.zeros(L), np.ones(6)])
    run.save(tmp_path / "r", data=data)
    np.testing.assert_array_equal(load_run(tmp_path / "r").forecast(data)["y"].to_numpy(),
                                  run.forecast(data)["y"].to_numpy())
    with pytest.raises(ConfigError, match="calendar features"):
        run.forecast(data, horizon=7)
    plain = series_from_frame(pd.DataFrame({"y": data.target_values[:, 0]}))  # no dates: no calendar
    with pytest.raises(ConfigError, match="dated rows"):
        fit_forecaster(DataConfig(horizon=6, calendar="sincos"), data=plain, quiet=True)
