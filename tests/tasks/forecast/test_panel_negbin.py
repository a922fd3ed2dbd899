"""The negative-binomial head on a panel (one global model over many count series,
tasks/forecast/negbin.py through panel.py): the counts reach the head as they are (every series'
scaler keeps offset 0 and scale 1 on the targets, the lazy windows hold the raw counts), the levels
are the exact quantiles of the head's mean and dispersion (against scipy's nbinom.ppf) with no
per-series decoding, the untrained head and the naive fallback have the naive forecast as their mean,
a new series forecasts as a known one with the same counts, runs reload to the same forecast, evaluate
scores the levels, and the refusals (one line, exit status 2). A slow test fits a panel whose
distribution is known and compares the learnt levels' coverage with the truth's."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from panel_cases import refused_fit
from cli_cases import one_line_error
from rnnkit.cli import main
from rnnkit.errors import RunError
from rnnkit.tasks.forecast.distribution import zero_mean
from rnnkit.tasks.forecast.fitting import new_member
from rnnkit.tasks.forecast.negbin import NAIVE_FLOOR, init_negbin_head, negbin_cdf, negbin_quantiles, start_windows
from rnnkit.tasks.forecast.panel import prepare_panel
from rnnkit.tasks.forecast.panel_run import fit_global, load_panel

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=4, distribution="negbin")
QUICK = rnnkit.TrainConfig(epochs=3, batch_size=16)
DC = rnnkit.DataConfig(id_col="id", targets=("y",), horizon=3, lookback=6, seasonal_period=6)
LEVELS = (0.025, 0.1, 0.5, 0.9, 0.975)  # the distribution heads' default levels
NAMES = [f"y_q{q!r}" for q in LEVELS]


def level(k: int, t: np.ndarray) -> np.ndarray:
    """Series k's mean count at rows t: from about 1 (k = 0) to 40 (k = 7), a season of 6."""
    return (1 + 5 * k) * (1 + 0.4 * np.sin(2 * np.pi * t / 6))


def count_panel(n_series: int = 8, length: int = 30, alpha: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """Gamma-Poisson counts (lambda ~ Gamma(1/alpha, mean mu), y ~ Poisson(lambda)), series k of
    ``length + k`` rows at the mean :func:`level`; a static column ``region`` (two values)."""
    rng = np.random.default_rng(seed)
    blocks = []
    for k in range(n_series):
        t = np.arange(length + k)
        y = rng.poisson(rng.gamma(1 / alpha, level(k, t) * alpha)).astype(np.float64)
        blocks.append(pd.DataFrame({"id": f"s{k}", "y": y, "region": "north" if k % 2 else "south"}))
    return pd.concat(blocks, ignore_index=True)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return count_panel()


HEADS = {"direct": ({}, {}),
         "recursive": (dict(strategy="recursive", samples=64), {}),
         "recursive, a static covariate": (dict(strategy="recursive", samples=64), dict(static_covariates=("region",)))}


@pytest.fixture(scope="module", params=list(HEADS))
def fitted(request, raw):
    model, data = HEADS[request.param]
    return fit_global(DC.replace(**data), SMALL.replace(**model), QUICK, raw, quiet=True)


@pytest.fixture(scope="module")
def direct(raw):
    return fit_global(DC, SMALL, QUICK, raw, quiet=True)


def contexts(frame: pd.DataFrame, lookback: int) -> dict[str, np.ndarray]:
    """Each series' last ``lookback`` counts ``(L, 1)``, by id."""
    return {sid: g[["y"]].to_numpy()[-lookback:] for sid, g in frame.groupby("id", sort=False)}


def test_the_levels_are_whole_counts_in_order(fitted, raw):
    fc = fitted.forecast(raw)
    assert list(fc.columns) == ["id", "step", "horizon", "y", *NAMES]
    assert len(fc) == 8 * 3
    q = fc[NAMES].to_numpy()
    assert np.isfinite(q).all() and (q >= 0).all() and (q == np.round(q)).all()
    assert (np.diff(q, axis=1) >= 0).all()  # never decreasing in q (two levels may share a count)
    np.testing.assert_array_equal(fc["y"], fc["y_q0.5"])  # the point forecast is the median
    # the series' levels differ as their counts do: one global head, each window scaled by itself
    medians = fc.groupby("id", sort=False)["y"].mean()
    assert medians["s7"] > 5 * max(medians["s0"], 1)


def test_the_counts_reach_the_head_as_they_are(fitted):
    dc = fitted.data_config
    assert (dc.normalise, dc.skip, dc.transform, dc.difference) == ("none", "none", "none", "none")
    assert not fitted.norm.active
    for sc in fitted.scalers.values():
        assert sc.offset[0] == 0 and sc.scale[0] == 1
    assert fitted.history.engine == "torch"  # the negative log-likelihood: the torch loop


def test_the_lazy_windows_hold_the_raw_counts(raw):
    """Every training window of the lazily indexed panel windows is the series' raw rows, cut by hand."""
    prep = prepare_panel(DC, SMALL, QUICK, load_panel(DC, raw))
    x, y = prep.train.materialise()
    L, H = 6, 3
    want_x, want_y = [], []
    for (sid, g), (train_end, _) in zip(raw.groupby("id", sort=False), prep.splits):
        v = g["y"].to_numpy()
        for s in range(L, train_end - H + 1):  # the first target row of every window
            want_x.append(v[s - L:s])
            want_y.append(v[s:s + H])
    np.testing.assert_array_equal(x[..., 0].numpy(), np.array(want_x))  # counts are exact in float32
    np.testing.assert_array_equal(y[..., 0].numpy(), np.array(want_y))


def test_the_head_starts_alike_from_lazy_and_materialised_windows():
    """More than the 4,096 windows the head's start reads: it gathers the same evenly spread ones from
    the lazy windows as from the materialised set, so the untrained members are equal."""
    frame = count_panel(n_series=3, length=1500, seed=2)
    prep = prepare_panel(DC, SMALL, QUICK, load_panel(DC, frame))
    assert len(prep.train) > 4096
    everything = prep.train.materialise()
    x, y = start_windows(prep.train)
    pick = torch.linspace(0, len(prep.train) - 1, 4096).round().long()
    assert torch.equal(x, everything[0][pick]) and torch.equal(y, everything[1][pick])
    lazy = new_member(prep, SMALL, 0).state_dict()
    model = new_member(dataclasses.replace(prep, train=everything), SMALL, 0)
    held = model.state_dict()
    for name in lazy:
        assert torch.equal(lazy[name], held[name]), name
    init_negbin_head(model, *everything)  # the head's start from every window: it picks the same 4096 itself
    for name, value in model.state_dict().items():
        assert torch.equal(value, held[name]), name


def test_the_levels_are_the_exact_quantiles_of_the_heads_mean_and_dispersion(direct, raw):
    """The network's mean and dispersion after each series' raw counts, and scipy's nbinom.ppf of
    them: the forecast's levels, with nothing decoded per series (the targets are unscaled)."""
    stats = pytest.importorskip("scipy.stats")
    fc = direct.forecast(raw)
    for sid, x in contexts(raw, 6).items():
        with torch.no_grad():
            mu, alpha = (t.double().numpy()[0, :, 0] for t in direct.model.params(torch.tensor(x[None],
                                                                                            dtype=torch.float32)))
        r = 1 / alpha  # scipy's nbinom(n = r, p = r / (r + mu)) has mean mu and variance mu + alpha mu^2
        want = stats.nbinom.ppf(np.array(LEVELS)[None], r[:, None], (r / (r + mu))[:, None])  # (H, Q)
        np.testing.assert_array_equal(fc.loc[fc["id"] == sid, NAMES].to_numpy(), want)


def naive_by_hand(x: np.ndarray, skip: str, m: int, horizon: int) -> np.ndarray:
    """The naive forecast of counts ``x (L,)``: the last value, the last season repeated, or the line
    through the first and last values; at least the floor 0.1."""
    h = np.arange(1, horizon + 1)
    if skip == "last":
        f = np.full(horizon, x[-1])
    elif skip == "seasonal":
        f = x[len(x) - m + (h - 1) % m]
    else:
        f = x[-1] + h * (x[-1] - x[0]) / (len(x) - 1)
    return np.maximum(f, NAIVE_FLOOR)


@pytest.mark.parametrize("skip", ["last", "seasonal", "drift"])
def test_the_untrained_head_and_the_fallback_forecast_the_naive_mean(raw, skip):
    dc = DC.replace(skip=skip)
    prep = prepare_panel(dc, SMALL, QUICK, load_panel(dc, raw), dtype=torch.float64)
    assert prep.data_config.skip == skip and not prep.norm.active  # the head corrects its naive forecast itself
    untrained = new_member(prep, SMALL, 0)
    run = fit_global(dc, SMALL, QUICK, raw, quiet=True, dtype=torch.float64)
    fallback = run.model
    zero_mean(fallback)  # what the naive gate does to a member that did not beat the naive forecast
    fc = run.forecast(raw)
    for sid, x in contexts(raw, 6).items():
        want = naive_by_hand(x[:, 0], skip, 6, 3)
        for model in (untrained, fallback):
            with torch.no_grad():
                mu, alpha = model.params(torch.tensor(x[None]))
            np.testing.assert_allclose(mu[0, :, 0].numpy(), want, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(fc.loc[fc["id"] == sid, NAMES].to_numpy(),
                                      negbin_quantiles(mu, alpha, LEVELS)[0, :, 0].numpy())


def test_a_new_series_forecasts_as_a_known_one_with_the_same_counts(direct, raw):
    """Counts are not scaled, so a series the run never saw (scaled on its own rows for its
    covariates) reads exactly what a training series with the same rows reads."""
    mine = raw[raw["id"] == "s5"]
    new = mine.assign(id="new")
    a = direct.forecast(mine)
    b = direct.forecast(new)
    np.testing.assert_array_equal(a[["y", *NAMES]].to_numpy(), b[["y", *NAMES]].to_numpy())


def test_the_run_directory_reloads_to_the_same_forecast(fitted, raw, tmp_path):
    out = fitted.save(tmp_path / "run", data=raw)
    again = rnnkit.load_run(out)
    assert again.model_config.distribution == "negbin" and again.model.count_naive == fitted.model.count_naive
    fc = fitted.forecast(raw)
    pd.testing.assert_frame_equal(again.forecast(raw), fc, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(out / "forecast.csv"), fc, check_exact=True, check_dtype=False)
    metrics = pd.read_csv(out / "series_metrics.csv")
    assert {"model: wql", "model: crps", "model: coverage_80", "model: width_80"} <= set(metrics.columns)
    assert again.evaluate(raw) == fitted.evaluate(raw)


def _edit(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("damage, file", [
    (lambda d: _edit(d / "scalers.json", lambda s: s["scalers"][2].update(scale=[2.0])), "scalers.json"),
    (lambda d: _edit(d / "scalers.json", lambda s: s["scalers"][0].update(offset=[1.0])), "scalers.json"),
    (lambda d: _edit(d / "config.json", lambda c: c["data"].update(normalise="window")), "config.json"),
])
def test_a_run_whose_counts_would_be_scaled_is_refused(direct, raw, tmp_path, damage, file):
    out = direct.save(tmp_path / "run", data=raw)
    damage(out)
    with pytest.raises(RunError, match=file):
        rnnkit.load_run(out)


def test_a_reloaded_run_with_a_skip_keeps_its_naive_forecast(raw, tmp_path):
    run = fit_global(DC.replace(skip="seasonal"), SMALL, QUICK, raw, quiet=True)
    again = rnnkit.load_run(run.save(tmp_path / "run", data=raw))
    assert again.model.count_naive == ("seasonal", 6) and not again.norm.active
    pd.testing.assert_frame_equal(again.forecast(raw), run.forecast(raw), check_exact=True)


def test_evaluate_scores_the_levels_it_forecasts(fitted, raw):
    """evaluate's pooled coverage, width and WQL of each series' test horizon, against the levels
    forecast() gives from the origin before it, by hand."""
    cut = raw[raw.groupby("id").cumcount(ascending=False) >= 3]
    fc = fitted.forecast(cut)
    actual = np.concatenate([g["y"].to_numpy()[-3:] for _, g in raw.groupby("id", sort=False)])  # (S * H,)
    q = fc[NAMES].to_numpy()  # (S * H, Q), the same order
    s = fitted.evaluate(raw)["summary"]["quantile_scores"]
    inside = (q[:, 1] <= actual) & (actual <= q[:, 3])
    assert s["intervals"]["80"]["coverage"] == pytest.approx(inside.mean(), abs=1e-12)
    assert s["intervals"]["80"]["width"] == pytest.approx((q[:, 3] - q[:, 1]).mean(), rel=1e-12)
    e = actual[:, None] - q
    loss = np.maximum(np.array(LEVELS) * e, (np.array(LEVELS) - 1) * e)
    assert s["wql"] == pytest.approx(2 * loss.sum() / (len(LEVELS) * np.abs(actual).sum()), rel=1e-10)


def test_an_ensemble_takes_each_levels_median(raw):
    run = fit_global(DC, SMALL, QUICK.replace(epochs=1), raw, quiet=True, evaluate=False,
                     search=rnnkit.SearchConfig(ensemble=3))
    fc = run.forecast(raw)
    x = torch.tensor(np.stack(list(contexts(raw, 6).values())), dtype=torch.float32)  # (S, L, 1)
    with torch.no_grad():
        each = np.stack([m(x).numpy() for m in run.model.members])  # (3, S, H, 1, Q)
    want = np.median(each, axis=0)[:, :, 0].reshape(-1, len(LEVELS))  # three members: the middle count
    np.testing.assert_array_equal(fc[NAMES].to_numpy(), want)


def test_a_direct_head_reads_its_known_inputs(tmp_path):
    """Counts that triple under a promotion (a future covariate), with static covariates, an id
    embedding and calendar features as known inputs too: forecast with the promotion on over the
    horizon, the medians are about 3 times those with it off (the true means' ratio; the median ratio
    over the series' steps measured 2.5 to 3.0 over three seeds of the data, no effect would be 1), and
    the run reloads to the same numbers."""
    rng = np.random.default_rng(0)
    blocks = []
    for k in range(6):
        promo = rng.binomial(1, 0.3, 60).astype(np.float64)
        blocks.append(pd.DataFrame({"id": f"s{k}", "date": pd.date_range("2021-01-04", periods=60, freq="W-MON"),
                                    "y": rng.poisson((2 + 3 * k) * (1 + 2 * promo)).astype(np.float64),
                                    "promo": promo, "region": "north" if k % 2 else "south"}))
    frame = pd.concat(blocks, ignore_index=True)
    dc = rnnkit.DataConfig(id_col="id", time_col="date", targets=("y",), future_covariates=("promo",), horizon=3,
                           lookback=8, static_covariates=("region",), id_embedding=True, calendar="sincos")
    run = fit_global(dc, rnnkit.ModelConfig(hidden_size=8, distribution="negbin"),
                     rnnkit.TrainConfig(epochs=15, lr=1e-2), frame, quiet=True)
    assert run.model.reads_horizon

    def ahead(on: int) -> pd.DataFrame:
        dates = pd.date_range(frame["date"].max(), periods=4, freq="W-MON")[1:]
        return pd.concat([pd.DataFrame({"id": f"s{k}", "date": dates, "promo": float(on)}) for k in range(6)])
    on, off = run.forecast(frame, future=ahead(1)), run.forecast(frame, future=ahead(0))
    q = on[NAMES].to_numpy()
    assert (q == np.round(q)).all() and (np.diff(q, axis=1) >= 0).all()
    ratio = on["y"].to_numpy() / np.maximum(off["y"].to_numpy(), 1)
    assert np.median(ratio) > 2, ratio
    again = rnnkit.load_run(run.save(tmp_path / "run", data=frame, future=ahead(1)))
    pd.testing.assert_frame_equal(again.forecast(frame, future=ahead(1)), on, check_exact=True)


def test_contexts_that_are_not_counts_are_refused_naming_the_series(direct, raw):
    bad = raw.copy()
    bad.loc[bad.index[bad["id"] == "s2"][-2], "y"] = 1.5
    with pytest.raises(rnnkit.DataError, match=r"series 's2'.*'y' holds 1.5 \(not a whole number\)"):
        direct.forecast(bad)


FIT = ["fit", None, "--id-col", "id", "--target", "y", "--horizon", "3", "--lookback", "6", "--epochs", "1",
       "--hidden", "4", "--quiet", "--distribution", "negbin"]


@pytest.mark.parametrize("extra, message", [
    (["--normalise", "window"], "--normalise window with --distribution negbin: shifting a window by its mean makes"),
    (["--difference", "first"], "a difference of counts is no count"),
    (["--transform", "log"], "--transform log with --distribution negbin: the likelihood is of the counts"),
    (["--intervals", "80"], "--intervals and --distribution negbin are two kinds of interval"),
    (["--strategy", "recursive", "--skip", "last"], "skip='last' is for direct models"),
])
def test_the_command_line_refuses_in_one_line(tmp_path, capsys, raw, extra, message):
    assert message in refused_fit(tmp_path, capsys, raw, FIT, extra)


@pytest.mark.parametrize("value, what", [(-1.0, "-1 (negative)"), (2.5, "2.5 (not a whole number)")])
def test_targets_that_are_not_counts_are_refused_naming_the_series(tmp_path, capsys, raw, value, what):
    bad = raw.copy()
    bad.loc[bad.index[bad["id"] == "s3"][4], "y"] = value
    data = tmp_path / "p.csv"
    bad.to_csv(data, index=False)
    err = one_line_error(capsys, [str(data) if a is None else a for a in FIT] + ["--out", str(tmp_path / "r")])
    assert "(series 's3')" in err and f"target 'y' holds {what}" in err


def test_the_command_line_round_trip(tmp_path, capsys, raw):
    data = tmp_path / "p.csv"
    raw.to_csv(data, index=False)
    run = tmp_path / "run"
    args = [str(data) if a is None else a for a in FIT] + ["--out", str(run), "--quantiles", "0.1,0.5,0.9"]
    assert main(args) == 0
    assert "quantiles, every series' points pooled: WQL" in capsys.readouterr().out
    assert main(["forecast", "--run", str(run), "--data", str(data), "--out", str(tmp_path / "f.csv")]) == 0
    f = pd.read_csv(tmp_path / "f.csv")
    pd.testing.assert_frame_equal(f, pd.read_csv(run / "forecast.csv"), check_exact=True)
    q = f[["y_q0.1", "y_q0.5", "y_q0.9"]].to_numpy()
    assert (q == np.round(q)).all()
    assert main(["evaluate", "--run", str(run), "--data", str(data)]) == 0
    assert "80% interval: coverage" in capsys.readouterr().out


@pytest.mark.slow  # a few seconds each on 2 shared cores (measured 1 to 4 s)
@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_it_learns_the_panels_count_distribution(strategy):
    """24 series of 150 to 173 counts (means from about 1 to 116 a series, a season of 6, dispersion
    0.3), fitted on the first 110 rows of each, then forecast from 12 rolling origins over the rows
    after (horizon 3, 864 points): the learnt 0.1 and 0.9 levels against the true NB(mu_t, 0.3), whose
    CDF gives the coverage those very levels should have, their width against the true levels', the
    median's MAE against the naive forecasts', and the learnt dispersion. Measured (seed 0): direct
    coverage 0.819 (expected under the truth 0.813; the true levels' own 0.821), width 83.94 against
    80.60, MAE 26.80 against the seasonal naive's 34.73, the last value's 40.41 and the true median's
    24.57, alpha 0.343; recursive (200 paths) 0.841 (0.829), width 88.98, MAE 26.77, alpha 0.394."""
    full = count_panel(n_series=24, length=150, alpha=0.3, seed=5)
    train = full[full.groupby("id").cumcount() < 110]
    dc = rnnkit.DataConfig(id_col="id", targets=("y",), horizon=3, lookback=12, seasonal_period=6, test_frac=0.0)
    mc = rnnkit.ModelConfig(cell="gru", hidden_size=16, distribution="negbin", quantiles=(0.1, 0.5, 0.9),
                            strategy=strategy, samples=200)
    run = fit_global(dc, mc, rnnkit.TrainConfig(epochs=30, batch_size=64, lr=1e-2, patience=8), train, quiet=True)
    panel = run.load_data(full)
    origins = 110 + 3 * np.arange(12)
    items = [(k, o) for k in range(len(panel.ids)) for o in origins]
    sub = panel.subset([panel.ids[k] for k, _ in items])
    levels = run.predict_at(sub, [o for _, o in items], 3, all_levels=True)[:, :, 0]  # (N, H, Q)
    rows = np.array([o for _, o in items])[:, None] + np.arange(3)  # (N, H)
    k_of = np.array([int(panel.ids[k][1:]) for k, _ in items])[:, None]  # series "s<k>"
    mu = torch.tensor(level(k_of, rows))  # each series' rows count from 0
    series = [panel.series[k].target_values[:, 0] for k, _ in items]
    actual = np.stack([y[o:o + 3] for y, (_, o) in zip(series, items)])
    a = torch.full_like(mu, 0.3)
    lo, hi = torch.tensor(levels[..., 0]), torch.tensor(levels[..., 2])
    expected = float((negbin_cdf(hi, mu, a) - negbin_cdf(lo - 1, mu, a)).mean())
    coverage = float(np.mean((actual >= levels[..., 0]) & (actual <= levels[..., 2])))
    truth = negbin_quantiles(mu, a, (0.1, 0.9)).numpy()
    width, true_width = float((levels[..., 2] - levels[..., 0]).mean()), float((truth[..., 1] - truth[..., 0]).mean())
    assert 0.72 < expected < 0.92, expected
    # 864 points, correlated within a window's horizon and a series: a loose bound (a binomial sd is 0.014)
    assert abs(coverage - expected) < 8 * math.sqrt(0.16 / actual.size), (coverage, expected)
    assert abs(width / true_width - 1) < 0.2, (width, true_width)
    assert (levels == np.round(levels)).all()
    seasonal = np.stack([y[o - 6:o - 3] for y, (_, o) in zip(series, items)])  # the season before, m = 6 > H
    mae, naive = np.abs(actual - levels[..., 1]).mean(), np.abs(actual - seasonal).mean()
    assert mae < 0.9 * naive, (mae, naive)
    ctx = torch.tensor(np.stack([y[o - 12:o, None] for y, (_, o) in zip(series, items)]), dtype=torch.float32)
    with torch.no_grad():
        alpha = float(run.model.params(ctx)[1].mean())
    assert 0.2 < alpha < 0.5, alpha  # true 0.3 (a direct head's later steps also carry the mean's own error)
