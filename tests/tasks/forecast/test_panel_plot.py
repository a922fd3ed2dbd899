"""A panel run's forecast.png (rnnkit.tasks.forecast.panel_plot): the figure a run writes, read back
from its matplotlib artists: one axes per shown series (at most 9), each axes' history, shaded test
part, forecast line and band polygons against the series and the run's forecast.csv, the title's
counts; and the file itself, written by `rnnkit fit --id-col` and by nothing half-way."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

import rnnkit
from panel_cases import seasonal_panel
from rnnkit.cli import main
from rnnkit.errors import DataError
from rnnkit.tasks.forecast import panel_plot
from rnnkit.tasks.forecast.panel_plot import MAX_SERIES, band_columns, run_figure
from rnnkit.tasks.forecast.panel_run import fit_global

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=4)
QUICK = rnnkit.TrainConfig(epochs=3, batch_size=16)
H = 3
DC = rnnkit.DataConfig(id_col="id", horizon=H, lookback=6, seasonal_period=6)


def panel(n_series, seed=0) -> pd.DataFrame:
    return seasonal_panel(n_series, seed)


def saved(tmp_path_factory, raw, name, mc=SMALL, search=None):
    """A run fitted on ``raw``, saved; returns the run, its directory and its forecast.csv."""
    run = fit_global(DC, mc, QUICK, raw, quiet=True, search=search)
    out = run.save(tmp_path_factory.mktemp(name) / "run", data=raw)
    return run, out, pd.read_csv(out / "forecast.csv")


@pytest.fixture(scope="module")
def point(tmp_path_factory):
    raw = panel(12)
    return (raw, *saved(tmp_path_factory, raw, "point"))


@pytest.fixture(scope="module")
def conformal(tmp_path_factory):
    raw = panel(20)  # the 95 % level needs 19 calibration series
    return (raw, *saved(tmp_path_factory, raw, "conformal", search=rnnkit.SearchConfig(intervals=(80, 95))))


def figure(run, raw, ids=None):
    return run_figure(run, run.load_data(raw), run.forecast(raw), ids)


def lines(ax, label):
    return [line for line in ax.get_lines() if line.get_label() == label]


def band_edges(band):
    """A fill_between polygon's lowest and highest y at each of its x values (sorted by x)."""
    v = band.get_paths()[0].vertices
    xs = np.unique(v[:, 0])
    return xs, np.array([v[v[:, 0] == x, 1].min() for x in xs]), np.array([v[v[:, 0] == x, 1].max() for x in xs])


def check_bands(ax, part, columns, steps):
    """Each band of ``ax`` spans exactly its columns of the series' forecast.csv rows, over their steps."""
    assert [b.get_label() for b in ax.collections] == [label for label, _, _ in columns]
    for band, (_, lo, hi) in zip(ax.collections, columns):
        xs, low, high = band_edges(band)
        np.testing.assert_array_equal(xs, steps)
        # forecast.csv holds the run's numbers as decimal text: equal to a few units of the last place
        np.testing.assert_allclose(low, part[lo], rtol=1e-14)
        np.testing.assert_allclose(high, part[hi], rtol=1e-14)


def test_a_run_of_twelve_series_shows_nine_and_says_so(point):
    raw, run, _, _ = point
    fig = figure(run, raw)
    assert len(fig.axes) == MAX_SERIES == 9
    assert [ax.get_title() for ax in fig.axes] == [f"s{k}" for k in range(9)]  # the first ones, in the run's order
    assert fig.get_suptitle() == "gru forecast: y (9 of 12 series shown)"


@pytest.mark.parametrize("n", [1, 4, 9])
def test_fewer_series_each_get_one_axes(point, n):
    raw, run, _, _ = point
    sub = raw[raw.id.isin([f"s{k}" for k in range(n)])]
    fig = figure(run, sub)
    assert len(fig.axes) == n
    assert fig.get_suptitle() == f"gru forecast: y (all {n} series shown)"


def test_each_axes_draws_its_series_history_test_part_and_forecast_csv(point):
    raw, run, out, fc = point
    fig = figure(run, raw)
    splits = dict(zip(run.ids, run.meta["splits"]))
    for ax in fig.axes:
        sid = ax.get_title()
        y = raw.loc[raw.id == sid, "y"].to_numpy()
        n, shown = len(y), max(4 * H, 12)  # the last four horizons, at least 12 rows
        (actual,) = lines(ax, "actual")
        np.testing.assert_array_equal(actual.get_xdata(), np.arange(n - shown, n))
        np.testing.assert_array_equal(actual.get_ydata(), y[-shown:])
        (shade,) = ax.patches  # the test part: from the end of the series' training and validation rows
        assert splits[sid][1] == n - H and shade.get_x() == n - H and shade.get_x() + shade.get_width() == n - 1
        (line,) = lines(ax, "forecast")
        part = fc[fc.id == sid]
        np.testing.assert_array_equal(line.get_xdata(), part["step"])
        np.testing.assert_array_equal(line.get_xdata(), np.arange(n, n + H))  # past the series' end
        np.testing.assert_allclose(line.get_ydata(), part["y"], rtol=1e-14)  # forecast.csv's decimal text
        assert not ax.collections  # a point run draws no band


def test_conformal_bands_span_the_interval_columns_outer_lighter(conformal):
    raw, run, out, fc = conformal
    fig = figure(run, raw)
    assert len(fig.axes) == 9 and fig.get_suptitle().endswith("(9 of 20 series shown)")
    columns = [("95 % interval", "y_lo_95", "y_hi_95"), ("80 % interval", "y_lo_80", "y_hi_80")]
    for ax in fig.axes:
        part = fc[fc.id == ax.get_title()]
        check_bands(ax, part, columns, part["step"].to_numpy())
        outer, inner = ax.collections
        assert outer.get_alpha() < inner.get_alpha()  # the wider band lighter, the narrower darker on it
        assert (part["y_lo_95"] < part["y_lo_80"]).all() and (part["y_hi_80"] < part["y_hi_95"]).all()


@pytest.mark.parametrize("head, levels, columns", [
    (dict(quantiles=(0.1, 0.5, 0.9)), (0.1, 0.5, 0.9), [("q0.1 to q0.9", "y_q0.1", "y_q0.9")]),
    (dict(distribution="normal"), (0.025, 0.1, 0.5, 0.9, 0.975),
     [("q0.025 to q0.975", "y_q0.025", "y_q0.975"), ("q0.1 to q0.9", "y_q0.1", "y_q0.9")]),
])
def test_quantile_and_distribution_heads_draw_their_level_bands(tmp_path_factory, head, levels, columns):
    raw = panel(4)
    run, out, fc = saved(tmp_path_factory, raw, "head", mc=SMALL.replace(**head))
    assert run.levels == levels
    fig = figure(run, raw)
    assert len(fig.axes) == 4
    for ax in fig.axes:
        part = fc[fc.id == ax.get_title()]
        check_bands(ax, part, columns, part["step"].to_numpy())
        np.testing.assert_allclose(lines(ax, "forecast")[0].get_ydata(), part["y_q0.5"], rtol=1e-14)
        alphas = [b.get_alpha() for b in ax.collections]
        assert alphas == sorted(alphas) and len(set(alphas)) == len(alphas)  # outer lighter than inner


def test_band_columns_choose_the_outer_and_the_inner_pair():
    assert band_columns("y") == []
    assert band_columns("y", levels=(0.5,)) == []
    assert band_columns("y", intervals=(50, 80, 95)) == [("95 % interval", "y_lo_95", "y_hi_95"),
                                                         ("50 % interval", "y_lo_50", "y_hi_50")]
    assert band_columns("y", intervals=(90,)) == [("90 % interval", "y_lo_90", "y_hi_90")]
    assert [b[1:] for b in band_columns("y", levels=(0.1, 0.25, 0.75, 0.9))] == [("y_q0.1", "y_q0.9"),
                                                                               ("y_q0.25", "y_q0.75")]
    assert [b[1:] for b in band_columns("y", levels=(0.1, 0.5, 0.9))] == [("y_q0.1", "y_q0.9")]


def test_plot_ids_choose_the_series_and_a_bad_one_leaves_no_run(point, tmp_path):
    raw, run, _, _ = point
    fig = figure(run, raw, ids=["s11", "s3", "s11"])
    assert [ax.get_title() for ax in fig.axes] == ["s11", "s3"]
    assert fig.get_suptitle().endswith("(2 of 12 series shown)")
    assert len(figure(run, raw, ids=[f"s{k}" for k in range(11, -1, -1)]).axes) == 9  # the first nine asked for
    out = run.save(tmp_path / "picked", data=raw, plot_ids=["s5"])
    assert (out / "forecast.png").is_file()
    with pytest.raises(DataError, match="no series with id"):
        run.save(tmp_path / "bad", data=raw, plot_ids=["nope"])
    assert sorted(os.listdir(tmp_path)) == ["picked"]  # no run directory, no temporary left


def test_a_failing_plot_leaves_no_run_directory(point, tmp_path, monkeypatch):
    raw, run, _, _ = point

    def broken(*args, **kwargs):
        raise RuntimeError("the plot failed")
    monkeypatch.setattr(panel_plot, "panel_figure", broken)
    with pytest.raises(RuntimeError, match="the plot failed"):
        run.save(tmp_path / "run", data=raw)
    assert os.listdir(tmp_path) == []


def test_fit_via_the_cli_writes_forecast_png(tmp_path):
    """A dated panel with a future covariate: with --future the plot has the forecasts; without, the
    history alone and a title saying why."""
    rng = np.random.default_rng(0)
    blocks = []
    for k, n in enumerate([30, 26, 24, 20]):
        t = np.arange(n)
        blocks.append(pd.DataFrame({"store": f"st{k}", "month": pd.date_range("2001-01-01", periods=n, freq="MS"),
                                    "sales": 10 * (k + 1) + np.sin(t) + rng.normal(0, 0.1, n),
                                    "promo": (t % 4 == 0).astype(int)}))
    raw = pd.concat(blocks, ignore_index=True)
    raw.to_csv(tmp_path / "p.csv", index=False)
    future = pd.DataFrame([{"store": sid, "month": part.month.iloc[-1] + pd.DateOffset(months=h), "promo": h % 2}
                           for sid, part in raw.groupby("store", sort=False) for h in (1, 2)])
    future.to_csv(tmp_path / "f.csv", index=False)
    args = ["fit", str(tmp_path / "p.csv"), "--id-col", "store", "--time-col", "month", "--target", "sales",
            "--future-covariates", "promo", "--lookback", "4", "--horizon", "2", "--epochs", "2", "--hidden", "4",
            "--quiet"]
    assert main([*args, "--future", str(tmp_path / "f.csv"), "--out", str(tmp_path / "run")]) == 0
    png = tmp_path / "run" / "forecast.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert imread(png).shape[:2] == (570, 1080)  # a grid of 2 x 3 plots of 3.6 x 2.4 inches and a header, at 100 dpi
    run = rnnkit.load_run(tmp_path / "run")
    fc = pd.read_csv(tmp_path / "run" / "forecast.csv", parse_dates=["month"])
    fig = run_figure(run, run.load_data(), run.forecast(future=tmp_path / "f.csv"))
    assert len(fig.axes) == 4 and fig.get_suptitle() == "lstm forecast: sales (all 4 series shown)"
    for ax in fig.axes:
        (line,) = lines(ax, "forecast")
        part = fc[fc.store == ax.get_title()]
        assert list(pd.DatetimeIndex(line.get_xdata())) == list(part["month"])
        np.testing.assert_allclose(line.get_ydata(), part["sales"], rtol=1e-14)

    assert main([*args, "--out", str(tmp_path / "bare")]) == 0  # no future values: no forecast.csv
    assert (tmp_path / "bare" / "forecast.png").is_file() and not (tmp_path / "bare" / "forecast.csv").exists()
    bare = rnnkit.load_run(tmp_path / "bare")
    fig = run_figure(bare, bare.load_data(), None)
    assert all(not lines(ax, "forecast") and lines(ax, "actual") for ax in fig.axes)
    assert "no forecast: it needs the future covariates' values" in fig.get_suptitle()


@pytest.mark.parametrize("freq, steps", [("MS", 20), ("h", 40), ("MS", 32), ("QS", 11), ("D", 40), ("YS", 16)])
def test_dated_axes_draw_without_a_warning(freq, steps):
    """The date ticks of every plot fit its narrow width: matplotlib's AutoDateLocator warns (and a
    user would see it on every fit) when none of its intervals gives the asked tick counts (with at
    most 4 ticks: 20 months, 40 hours)."""
    index = pd.date_range("2000-01-01", periods=steps, freq=freq)
    n = steps - 4  # history, then a horizon of 4
    item = panel_plot.SeriesPlot("a", index[:n], np.arange(n, dtype=float), n - 4, index[n:],
                                 np.ones(4), [("q0.1 to q0.9", np.zeros(4), np.full(4, 2.0))])
    fig = panel_plot.panel_figure([item], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.savefig(io.BytesIO(), format="png")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]  # dates are labelled
