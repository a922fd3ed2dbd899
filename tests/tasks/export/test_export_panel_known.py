"""The forecast graph of a panel run with future covariates: ``context``, ``shift``, ``scale`` (each
row's series scaler, read from the table written next to the graph) and ``future`` (the covariates'
raw values over the forecast's rows) -> ``forecast``, equal to the run's own forecast of each series
with the same future values (``PanelRun.forecast(future=...)``), the panel's linear covariate effect
included (with calendar features and static features, the inputs ``calendar`` and ``static``);
the step graph of a run with known inputs, refused in one line.

Tolerance: 1e-5 relative to each series' forecasts (float32 networks), as in test_export_panel.py.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import rnnkit
from rnnkit import ConfigError
from rnnkit.data.calendar import calendar_features, future_index

ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install 'rnnkit[deploy]')")
onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx (pip install 'rnnkit[deploy]')")

from rnnkit.tasks.export import panel_export  # noqa: E402
from export_cases import props, rel_diff, scramble, session  # noqa: E402

TOL = 1e-5
L, H, AHEAD = 8, 3, 6  # AHEAD: rows kept after each series' end, its future covariates' values


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


def _table(n_series=4, seed=0) -> pd.DataFrame:
    """Monthly series of different lengths and levels; ``promo`` (0/1) lifts each series' sales by a
    quarter of its level (a linear effect), ``noise`` has none; AHEAD more rows after each series."""
    rng = np.random.default_rng(seed)
    blocks = []
    for k in range(n_series):
        n = 40 + 4 * k + AHEAD
        t = np.arange(n)
        promo = rng.integers(0, 2, n).astype(float)
        y = 10 * (k + 1) * (1 + 0.25 * promo) + (k + 1) * (np.sin(2 * np.pi * t / 12 + k) + 0.2 * rng.standard_normal(n))
        dates = pd.date_range("2001-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
        blocks.append(pd.DataFrame({"shop": f"s{k}", "date": dates, "sales": y, "promo": promo,
                                    "noise": rng.standard_normal(n), "region": "NS"[k % 2]}))
    return pd.concat(blocks, ignore_index=True)


FULL = _table()
_last = FULL.groupby("shop").cumcount(ascending=False) < AHEAD
TABLE, AFTER = FULL[~_last].reset_index(drop=True), FULL[_last].reset_index(drop=True)
_RUNS: dict = {}


def panel_run(**settings):
    """A global model with future covariates trained for one epoch (cached per settings), then given
    random weights; the linear effect is fitted before training, so it is the run's."""
    key = tuple(sorted(settings.items()))
    if key not in _RUNS:
        model = {k: settings.pop(k) for k in list(settings) if k in rnnkit.ModelConfig.__dataclass_fields__}
        dc = rnnkit.DataConfig(id_col="shop", time_col="date", targets=("sales",), lookback=L, horizon=H,
                               **{"future_covariates": ("promo", "noise"), **settings})
        run = rnnkit.fit_forecaster(dc, rnnkit.ModelConfig(**{"hidden_size": 4, "cell": "gru", **model}),
                                    rnnkit.TrainConfig(epochs=1, batch_size=16), quiet=True, data=TABLE,
                                    evaluate=False)
        scramble(run.model)
        _RUNS[key] = run
    return _RUNS[key]


def read_series(path, run):
    """The ids, shifts and scales ``(S, F)`` of the table written next to the graph, as a user reads it."""
    t = pd.read_csv(path.with_name(panel_export.series_file_name(path)), dtype={run.data_config.id_col: str})
    return (list(t.iloc[:, 0]), t[[f"shift_{c}" for c in run.columns]].to_numpy(),
            t[[f"scale_{c}" for c in run.columns]].to_numpy())


def feeds(path, run, rows):
    """Each series' last L rows, its shift and scale from the table, and its next ``rows`` rows'
    future covariates."""
    ids, shift, scale = read_series(path, run)
    panel = run.load_data(TABLE)
    assert list(panel.ids) == ids
    ahead = [AFTER[AFTER.shop == i] for i in ids]
    return {"context": np.stack([s.values[-L:] for s in panel.series]), "shift": shift, "scale": scale,
            "future": np.stack([a[["promo", "noise"]].to_numpy()[:rows] for a in ahead])}


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_the_graph_forecasts_each_series_as_rnnkit_does(tmp_path, strategy):
    run = panel_run(strategy=strategy, normalise="none")  # no normalisation: each row's shift and scale matter
    assert run.norm.effect and len(run.norm.effect) == 2  # promo drives sales: the linear effect is kept
    assert abs(run.norm.effect[0][0]) > 5 * abs(run.norm.effect[1][0])  # and noise hardly at all
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    s = session(path)
    assert [i.name for i in s.get_inputs()] == ["context", "shift", "scale", "future"]
    f = feeds(path, run, H)
    (got,) = s.run(["forecast"], f)
    ahead = AFTER[AFTER.groupby("shop").cumcount() < H][["shop", "date", "promo", "noise"]]  # the forecast's rows
    ref = fc_array(run.forecast(TABLE, future=ahead))  # (S, H, 1)
    assert got.shape == ref.shape == (4, H, 1)
    for g, r in zip(got, ref):  # each series relative to its own size
        assert rel_diff(g, r) < TOL
    ids = list(run.load_data(TABLE).ids)
    np.testing.assert_array_equal(run.predict_contexts(f["context"], ids, future=f["future"]), ref)
    other = dict(f, future=f["future"].copy())
    other["future"][..., 0] = 1 - other["future"][..., 0]  # the promotions the other way: other forecasts
    (moved,) = s.run(["forecast"], other)
    assert rel_diff(moved, got) > 100 * TOL
    assert rel_diff(moved, run.predict_contexts(f["context"], ids, future=other["future"])) < TOL
    (one,) = s.run(["forecast"], {k: v[1:2] for k, v in f.items()})  # the batch is dynamic
    assert rel_diff(one, ref[1:2]) < TOL
    with pytest.raises(Exception, match="(?i)invalid dimensions|dimension"):  # future has exactly H rows
        s.run(None, dict(f, future=f["future"][:, :-1]))
    with pytest.raises(rnnkit.errors.ShapeError, match=r"future must be \(S, 3, 2\)"):
        run.predict_contexts(f["context"], ids, future=f["future"][:, :-1])
    with pytest.raises(rnnkit.errors.ShapeError, match=r"future must be \(S, 3, 2\)"):
        run.predict_contexts(f["context"], ids)
    meta = props(path)
    inputs = {i["name"]: i for i in json.loads(meta["inputs"])}
    assert inputs["future"]["shape"] == ["batch", H, 2] and inputs["future"]["columns"] == ["promo", "noise"]
    assert (meta["kind"], meta["future_rows"]) == ("panel", str(H))
    assert json.loads(meta["covariate_effect"]) == [list(r) for r in run.norm.effect]
    assert float(meta["checked_max_rel_diff"]) < TOL


def fc_array(fc: pd.DataFrame) -> np.ndarray:
    """``PanelRun.forecast``'s table as ``(S, H, 1)``."""
    return np.stack([g[["sales"]].to_numpy() for _, g in fc.groupby("shop", sort=False)])


def test_predict_contexts_with_future_is_predict_at():
    run = panel_run(strategy="direct")
    panel = run.load_data(TABLE)
    ends = [len(s) - 4 for s in panel.series]
    x = np.stack([s.values[e - L:e] for s, e in zip(panel.series, ends)])
    future = np.stack([s.values[e:e + H, 1:] for s, e in zip(panel.series, ends)])  # promo, noise of those rows
    np.testing.assert_array_equal(run.predict_contexts(x, panel.ids, future=future),
                                  run.predict_at(panel, ends, H, [f for f in future]))


def test_future_covariates_and_calendar_features_together(tmp_path):
    """``future`` then ``calendar`` (the features of each context's stamps and of the H after them):
    each series forecast as PanelRun.forecast forecasts it with the same future values."""
    run = panel_run(strategy="direct", calendar="sincos")
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    s = session(path)
    assert [i.name for i in s.get_inputs()] == ["context", "shift", "scale", "future", "calendar"]
    f = feeds(path, run, H)
    panel = run.load_data(TABLE)
    f["calendar"] = np.stack([calendar_features(s_.frame.index[-L:].append(future_index(s_.frame.index, "MS", H)),
                                                "MS", "sincos")[0] for s_ in panel.series])
    ahead = AFTER[AFTER.groupby("shop").cumcount() < H][["shop", "date", "promo", "noise"]]
    ref = fc_array(run.forecast(TABLE, future=ahead))
    (got,) = s.run(["forecast"], f)
    for g, r in zip(got, ref):
        assert rel_diff(g, r) < TOL


def test_every_known_input_at_once(tmp_path):
    """Future covariates, calendar features and static features (a region, the id embedding): the
    inputs ``future``, ``calendar`` and ``static`` (from the series table), each series forecast as
    PanelRun.forecast forecasts it from the data."""
    run = panel_run(strategy="recursive", calendar="onehot", static_covariates=("region",), id_embedding=True)
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    s = session(path)
    assert [i.name for i in s.get_inputs()] == ["context", "shift", "scale", "future", "calendar", "static"]
    f = feeds(path, run, H)
    panel = run.load_data(TABLE)
    f["calendar"] = np.stack([calendar_features(s_.frame.index[-L:].append(future_index(s_.frame.index, "MS", H)),
                                                "MS", "onehot")[0] for s_ in panel.series])
    t = pd.read_csv(tmp_path / "model.series.csv", dtype={"shop": str}).set_index("shop")
    f["static"] = t.loc[list(panel.ids), [f"static_{n}" for n in run.statics.names]].to_numpy()
    ahead = AFTER[AFTER.groupby("shop").cumcount() < H][["shop", "date", "promo", "noise"]]
    ref = fc_array(run.forecast(TABLE, future=ahead))
    (got,) = s.run(["forecast"], f)
    for g, r in zip(got, ref):
        assert rel_diff(g, r) < TOL


@pytest.mark.parametrize("settings, said", [({}, "--future-covariates"),
                                             ({"calendar": "sincos"}, "--future-covariates, --calendar"),
                                             ({"static_covariates": ("region",)},
                                              "--future-covariates, --static-covariates")])
def test_the_step_graph_with_known_inputs_is_refused(tmp_path, settings, said):
    with pytest.raises(ConfigError, match=f"reads known inputs .{said}.*without --step") as e:
        rnnkit.export_onnx(panel_run(strategy="direct", **settings), tmp_path / "m.onnx", step=True)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
