"""A panel run's global model as ONNX (``rnnkit export --run PANELRUN``, ``rnnkit.export_onnx``): the
forecast graph reads each row's scaler as ``shift`` and ``scale`` and forecasts what
``PanelRun.forecast`` forecasts for that series; the per-series table next to it; the step graph; the
refusals; both files written together or not at all.

Tolerance: 1e-5 relative to each series' forecasts (float32 networks), as for one series
(test_export_onnx.py's docstring): onnxruntime's recurrent kernels and torch's round differently by a
few float32 ulps, about 1e-7 of the network's outputs, which the per-series scaler maps into the data's
units together with the forecast itself.
"""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit import ConfigError, RunError
from rnnkit.data.scaler import Scaler

ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install 'rnnkit[deploy]')")
onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx (pip install 'rnnkit[deploy]')")

from cli_cases import one_line_error  # noqa: E402
from rnnkit.cli import main  # noqa: E402
from rnnkit.tasks.export import forecast_export, panel_export  # noqa: E402
from rnnkit.training import atomic  # noqa: E402
from export_cases import props, rel_diff, scramble, session, stepped  # noqa: E402

TOL = 1e-5
L, H = 8, 3


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


def table(n_series=4, seed=0) -> pd.DataFrame:
    """Monthly series of different lengths, levels and scales, a past covariate ``temp`` and a static
    ``region``."""
    rng = np.random.default_rng(seed)
    blocks = []
    for k in range(n_series):
        n = 30 + 4 * k
        t = np.arange(n)
        y = 10 * (k + 1) + (k + 1) * (np.sin(2 * np.pi * t / 12 + k) + 0.2 * rng.standard_normal(n))
        temp = 15 + 5 * np.cos(2 * np.pi * t / 12) + rng.standard_normal(n)
        dates = pd.date_range("2001-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
        blocks.append(pd.DataFrame({"shop": f"s{k}", "date": dates, "sales": y, "temp": temp, "region": "NS"[k % 2]}))
    return pd.concat(blocks, ignore_index=True)


TABLE = table()
_RUNS: dict = {}


def panel_run(ensemble=1, counts=False, **settings):
    """A global model trained for one epoch (cached per settings), then given random weights: a head
    that starts at zero (or fell back to the naive forecast) would hide the network from the comparison.
    ``counts``: on the table's sales rounded to counts."""
    key = (ensemble, counts, tuple(sorted(settings.items())))
    if key not in _RUNS:
        model = {k: settings.pop(k) for k in list(settings) if k in rnnkit.ModelConfig.__dataclass_fields__}
        dc = rnnkit.DataConfig(id_col="shop", time_col="date", targets=("sales",), lookback=L, horizon=H, **settings)
        run = rnnkit.fit_forecaster(dc, rnnkit.ModelConfig(**{"hidden_size": 4, **model}),
                                    rnnkit.TrainConfig(epochs=1, batch_size=16), quiet=True,
                                    data=TABLE.assign(sales=TABLE.sales.round()) if counts else TABLE,
                                    evaluate=False, search=rnnkit.SearchConfig(ensemble=ensemble))
        scramble(run.model)
        _RUNS[key] = run
    return _RUNS[key]


def read_series(path, run) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The ids, shifts and scales ``(S, F)`` of the table written next to the graph ``path``."""
    t = pd.read_csv(path.with_name(panel_export.series_file_name(path)), dtype={run.data_config.id_col: str})
    assert list(t.columns) == [run.data_config.id_col, *[f"{w}_{c}" for w in ("shift", "scale") for c in run.columns]]
    F = len(run.columns)
    return list(t.iloc[:, 0]), t.iloc[:, 1:1 + F].to_numpy(), t.iloc[:, 1 + F:].to_numpy()


def onnx_forecasts(path, run, data=TABLE, horizon=H):
    """onnxruntime's forecasts for every series of ``data``: its last L rows with its shift and scale
    read from the written table, and rnnkit's own (``PanelRun.forecast``), each ``(S, H, C[, Q])``."""
    ids, shift, scale = read_series(path, run)
    panel = run.load_data(data)
    assert list(panel.ids) == ids
    contexts = np.stack([s.values[-L:] for s in panel.series])
    got = session(path).run(["forecast"], {"context": contexts, "shift": shift, "scale": scale})[0]
    fc = run.forecast(data, horizon=horizon)
    names = [f"sales_q{q!r}" for q in run.levels] or ["sales"]
    ref = np.stack([g[names].to_numpy() for _, g in fc.groupby("shop", sort=False)])  # (S, H, Q or 1)
    return got, ref[:, :, None, :] if run.levels else ref


def assert_each_series(got, ref):
    for g, r in zip(got, ref):  # each series relative to its own size: the levels differ tenfold
        assert g.shape == r.shape and rel_diff(g, r) < TOL


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_round_trip_equals_each_series_forecast(tmp_path, cell, strategy):
    # the per-window normalisation takes out each window's level and scale, and with them nearly all of
    # the series' scaler (not the covariates', nor the smallest window scale): so that each row's shift
    # and scale matter here, these runs do not normalise (the level heads' and the ensemble's below do);
    # direct models read a past covariate too
    settings = dict(covariates=("temp",)) if strategy == "direct" else {}
    run = panel_run(cell=cell, strategy=strategy, normalise="none", **settings)
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    got, ref = onnx_forecasts(path, run)
    assert_each_series(got, ref)
    ids, shift, scale = read_series(path, run)  # the table holds the run's scalers exactly
    np.testing.assert_array_equal(shift, np.stack([run.scalers[i].offset for i in ids]))
    np.testing.assert_array_equal(scale, np.stack([run.scalers[i].scale for i in ids]))
    s = session(path)
    panel = run.load_data(TABLE)
    last = np.stack([v.values[-L:] for v in panel.series])
    wrong = s.run(None, {"context": last, "shift": shift[[0] * 4], "scale": scale[[0] * 4]})[0]  # s0's scaler for all
    assert all(rel_diff(w, r) > 100 * TOL for w, r in zip(wrong[1:], ref[1:]))
    longer = np.stack([v.values[-L - 5:] for v in panel.series])  # the time axis is dynamic for LSTM and GRU
    feeds = {"context": longer[1:2], "shift": shift[1:2], "scale": scale[1:2]}  # and the batch
    assert rel_diff(s.run(None, feeds)[0], run.predict_contexts(longer[1:2], ids[1:2])) < TOL
    meta = props(path)
    assert (meta["kind"], meta["graph"], meta["units"], meta["time_axis"]) == ("panel", "forecast", "data", "dynamic")
    assert (meta["series_file"], meta["id_col"], meta["n_series"]) == ("model.series.csv", "shop", "4")
    assert [i["name"] for i in json.loads(meta["inputs"])] == ["context", "shift", "scale"]
    assert json.loads(meta["inputs"])[1]["shape"] == ["batch", len(run.columns)]
    assert json.loads(meta["columns"]) == list(run.columns) and float(meta["checked_max_rel_diff"]) < TOL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.series.csv"]


@pytest.mark.parametrize("head", [dict(quantiles=(0.1, 0.5, 0.9)), dict(distribution="normal"),
                                  dict(distribution="student_t")], ids=["quantiles", "normal", "student-t"])
def test_level_heads_round_trip(tmp_path, head):
    run = panel_run(cell="gru", **head)
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    got, ref = onnx_forecasts(path, run)
    assert got.shape == (4, H, 1, len(run.levels))
    assert_each_series(got, ref)
    assert (np.diff(got, axis=-1) >= 0).all()  # the levels never cross
    assert json.loads(props(path)["quantiles"]) == list(run.levels)


def test_ensembles_longer_horizons_and_new_series(tmp_path):
    run = panel_run(ensemble=2, cell="gru")
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx", horizon=H + 2)  # the forecasts fed back, block by block
    got, ref = onnx_forecasts(path, run, horizon=H + 2)
    assert got.shape == (4, H + 2, 1)
    assert_each_series(got, ref)
    # a series the run never saw: its scaler fitted on its rows, as rnnkit does (cold start)
    new = table(5, seed=3)
    new = new[new.shop == "s4"].assign(shop="new")
    s = new.sales.to_numpy()
    scaler = Scaler(run.data_config.scaler).fit(np.stack([s], 1))
    x = s[None, -L:, None]
    got = session(path).run(None, {"context": x, "shift": scaler.offset[None], "scale": scaler.scale[None]})[0]
    ref = run.forecast(new, horizon=H + 2)["sales"].to_numpy()
    assert rel_diff(got[0, :, 0], ref) < TOL


def test_the_step_graph_is_the_models_step(tmp_path):
    run = panel_run(cell="lstm", num_layers=2)
    path = rnnkit.export_onnx(run, tmp_path / "step.onnx", step=True)
    model, s = run.model.eval(), session(path)
    meta = props(path)
    assert (meta["kind"], meta["graph"], meta["units"], meta["series_file"]) == ("panel", "step", "network",
                                                                                  "step.series.csv")
    assert (tmp_path / "step.series.csv").exists()
    ids, shift, scale = read_series(path, run)
    raw = np.stack([v.values[:6] for v in run.load_data(TABLE).series[:3]])  # (3, 6, 1): three series' first rows
    x = torch.tensor((raw - shift[:3, None]) / scale[:3, None], dtype=torch.float32)  # through their own scalers
    for got, y, state in stepped(s, model, x):
        for g, r in zip(got, [y, *state]):
            assert g.shape == tuple(r.shape) and np.abs(g - r.numpy()).max() < TOL
    with pytest.raises(ConfigError, match="--horizon is for the forecast graph"):
        rnnkit.export_onnx(run, tmp_path / "h.onnx", step=True, horizon=2)


def test_predict_contexts_is_predict_at_after_those_rows():
    run = panel_run(cell="gru", quantiles=(0.1, 0.5, 0.9))
    panel = run.load_data(TABLE)
    ends = [len(s) - 2 for s in panel.series]
    x = np.stack([s.values[e - L:e] for s, e in zip(panel.series, ends)])
    for levels in (False, True):  # the same code after the same rows: the same numbers
        np.testing.assert_array_equal(run.predict_contexts(x, panel.ids, all_levels=levels),
                                      run.predict_at(panel, ends, H, all_levels=levels))
    with pytest.raises(rnnkit.errors.ShapeError, match=r"contexts must be \(S, L, 1\)"):
        run.predict_contexts(x[:2], panel.ids)
    with pytest.raises(rnnkit.errors.DataError, match="series 'nope' is not one of the run's"):
        run.predict_contexts(x[:1], ["nope"])
    with pytest.raises(ConfigError, match="trained horizon"):
        run.predict_contexts(x, panel.ids, horizon=H + 1)
    with pytest.raises(rnnkit.errors.ShapeError, match=r"calendar must be \(S, 11, 2\)"):  # its rows' features
        panel_run(cell="gru", calendar="sincos").predict_contexts(x, panel.ids)


@pytest.mark.parametrize("settings", [dict(static_covariates=("region",)), dict(id_embedding=True),
                                      dict(static_covariates=("region",), id_embedding=True, strategy="recursive")],
                         ids=["static covariates", "id embedding", "both, recursive"])
def test_static_features_are_the_graphs_input_static(tmp_path, settings):
    """Each series' encoded static features (a category one-hot, the id one-hot) are columns of the
    series table and the graph's input ``static``; read from there, each series is forecast as
    PanelRun.forecast forecasts it from the data's own static columns. A direct run's step graph is
    refused (a recursive one's reads them: test_a_recursive_runs_step_graph_reads_its_known_inputs)."""
    run = panel_run(cell="gru", **settings)
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    s = session(path)
    assert [i.name for i in s.get_inputs()] == ["context", "shift", "scale", "static"]
    t = pd.read_csv(tmp_path / "model.series.csv", dtype={"shop": str}).set_index("shop")
    names = [c for c in t.columns if c.startswith("static_")]
    assert names == [f"static_{n}" for n in run.statics.names] and len(names) == run.statics.width
    if "static_covariates" in settings:
        assert t.loc["s1", "static_region=S"] == 1.0 and t.loc["s1", "static_region=N"] == 0.0
    panel = run.load_data(TABLE)
    ids = list(panel.ids)
    feeds = {"context": np.stack([x.values[-L:] for x in panel.series]),
             "shift": t.loc[ids, [f"shift_{c}" for c in run.columns]].to_numpy(),
             "scale": t.loc[ids, [f"scale_{c}" for c in run.columns]].to_numpy(), "static": t.loc[ids, names].to_numpy()}
    fc = run.forecast(TABLE)
    assert_each_series(s.run(["forecast"], feeds)[0], np.stack([g[["sales"]].to_numpy() for _, g in fc.groupby("shop")]))
    other = dict(feeds, static=feeds["static"][::-1].copy())  # another series' features: another forecast
    assert rel_diff(s.run(["forecast"], other)[0], s.run(["forecast"], feeds)[0]) > 1e-4
    if settings.get("strategy") != "recursive":
        with pytest.raises(ConfigError, match="reads known inputs.*without --step"):
            rnnkit.export_onnx(run, tmp_path / "step.onnx", step=True)


def test_an_older_run_without_its_static_values_is_refused(tmp_path):
    run = panel_run(cell="gru", static_covariates=("region",))
    run.save(tmp_path / "run", data=TABLE)
    stored = json.loads((tmp_path / "run" / "scalers.json").read_text())
    assert stored["static_values"] == {"region": ["N", "S", "N", "S"]}
    del stored["static_values"]  # as rnnkit wrote runs before it kept them
    (tmp_path / "run" / "scalers.json").write_text(json.dumps(stored))
    old = rnnkit.load_run(tmp_path / "run")
    pd.testing.assert_frame_equal(old.forecast(TABLE), run.forecast(TABLE))  # it still forecasts from the data
    with pytest.raises(ConfigError, match="does not keep each series' static covariate values.*refit"):
        rnnkit.export_onnx(old, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("ensemble", [1, 2])
def test_a_recursive_normal_head_round_trips_with_its_draws_as_an_input(tmp_path, ensemble):
    """Its sampled paths' standard normal draws are the graph's last input (test_export_paths.py; an
    ensemble's, every member's); with the draws rnnkit's own forecast of the four series makes, the
    graph's levels are rnnkit's."""
    from rnnkit.tasks.forecast.paths import normal_draws
    run = panel_run(ensemble, cell="gru", distribution="normal", strategy="recursive", samples=8)
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    ids, shift, scale = read_series(path, run)
    panel = run.load_data(TABLE)
    contexts = np.stack([s.values[-L:] for s in panel.series])
    noise = normal_draws(run.model, len(ids), H).double().numpy()
    got = session(path).run(["forecast"], {"context": contexts, "shift": shift, "scale": scale, "noise": noise})[0]
    assert_each_series(got, run.predict_contexts(contexts, ids, H, all_levels=True))
    assert [i["name"] for i in json.loads(props(path)["inputs"])] == ["context", "shift", "scale", "noise"]


REFUSED = {
    "recursive normal": (dict(distribution="normal", strategy="recursive", samples=8), "sampled paths"),
    "negative binomial": (dict(distribution="negbin", counts=True), "negative-binomial"),
}
#: the graphs refused: a recursive normal head's step only (its forecast graph exports, above)
GRAPHS = [("recursive normal", True), ("negative binomial", False), ("negative binomial", True)]


@pytest.mark.parametrize("case, step", GRAPHS, ids=[f"{c}-{'step' if s else 'forecast'}" for c, s in GRAPHS])
def test_what_is_refused(tmp_path, case, step):
    settings, said = REFUSED[case]
    run = panel_run(cell="gru", **settings)
    with pytest.raises(ConfigError, match=said) as e:
        rnnkit.export_onnx(run, tmp_path / "m.onnx", step=step)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_recursive_runs_step_graph_reads_its_known_inputs(tmp_path):
    """A recursive network's step reads this row's targets and the next row's known inputs (calendar
    features, a series' static features), in the network's units: the step graph is model.step."""
    run = panel_run(cell="gru", strategy="recursive", calendar="sincos", static_covariates=("region",))
    path = rnnkit.export_onnx(run, tmp_path / "step.onnx", step=True)
    model, s = run.model.eval(), session(path)
    x_t = json.loads(props(path)["inputs"])[0]
    F = model.input_size
    assert x_t["shape"] == ["batch", F] and len(x_t["columns"]) == F and F > 1
    assert x_t["columns"][0] == "sales" and {"region=N", "region=S"} <= set(x_t["columns"])
    assert "next row's" in x_t["rows"]
    x = torch.randn(3, 5, F, generator=torch.Generator().manual_seed(2))
    for got, y, _ in stepped(s, model, x):
        assert got[0].shape == tuple(y.shape) and np.abs(got[0] - y.numpy()).max() < TOL


def test_a_calendar_runs_step_graph_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--calendar.*without --step") as e:  # its forecast graph: test_export_calendar
        rnnkit.export_onnx(panel_run(cell="gru", calendar="sincos"), tmp_path / "m.onnx", step=True)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_force_and_the_two_files(tmp_path):
    run = panel_run(cell="gru")
    out, csv = tmp_path / "m.onnx", tmp_path / "m.series.csv"
    for existing in (out, csv):  # either file already there: neither is touched without force
        existing.write_text("mine")
        with pytest.raises(RunError, match="exists.*pass --force"):
            rnnkit.export_onnx(run, out)
        assert [p.name for p in tmp_path.iterdir()] == [existing.name] and existing.read_text() == "mine"
        existing.unlink()
    out.write_text("mine")
    csv.write_text("mine")
    rnnkit.export_onnx(run, out, force=True)
    assert props(out)["kind"] == "panel" and read_series(out, run)[0] == list(run.scalers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.series.csv"]
    csv.unlink()
    csv.mkdir()
    with pytest.raises(RunError, match="is a directory"):
        rnnkit.export_onnx(run, out, force=True)


def test_nothing_is_left_behind_on_failure(tmp_path, monkeypatch):
    run = panel_run(cell="gru")
    out = tmp_path / "m.onnx"

    def full_disk(path):  # the table half written, then the disk is full
        open(path, "w").write("shop,shi")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(forecast_export, "write_series_table", lambda run: full_disk)
    with pytest.raises(RunError, match="could not write .*m.series.csv .No space left on device.; nothing was"):
        rnnkit.export_onnx(run, out)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    rnnkit.export_onnx(run, out)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    replace = os.replace

    def fail_second(src, dst):  # the graph is in place when the table's rename fails: the old graph comes back
        if str(src).endswith(".tmp") and str(dst).endswith(".series.csv"):
            raise OSError(errno.EIO, "Input/output error")
        replace(src, dst)
    monkeypatch.setattr(atomic.os, "replace", fail_second)
    other = panel_run(cell="lstm")
    with pytest.raises(RunError, match="could not write"):
        rnnkit.export_onnx(other, out, force=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_the_check_refuses_a_wrong_graph(tmp_path, monkeypatch):
    from rnnkit.tasks.export.pipeline import Scaling
    inverse = Scaling.inverse
    monkeypatch.setattr(Scaling, "inverse", lambda self, y, shift=None, scale=None: inverse(self, y, scale, shift))
    with pytest.raises(RunError, match="differ from rnnkit's .* so nothing was written"):  # shift and scale swapped
        rnnkit.export_onnx(panel_run(cell="gru", normalise="none"), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_a_panel_run(tmp_path, capsys):
    data, run = tmp_path / "panel.csv", tmp_path / "run"
    TABLE.drop(columns=["region", "temp"]).to_csv(data, index=False)
    assert main(["fit", str(data), "--id-col", "shop", "--time-col", "date", "--target", "sales", "--lookback",
                 str(L), "--horizon", str(H), "--epochs", "1", "--hidden", "4", "--quiet", "--out", str(run)]) == 0
    out = tmp_path / "model.onnx"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert ("context (batch, time, 1) float64, shift (batch, 1) float64, scale (batch, 1) float64 -> forecast "
            "(batch, 3, 1) float64") in said and "model.series.csv" in said
    loaded = rnnkit.load_run(run)
    assert_each_series(*onnx_forecasts(out, loaded))
    before = out.read_bytes()
    assert "exists; pass --force" in one_line_error(capsys, ["export", "--run", run, "--out", out])
    assert out.read_bytes() == before
    assert main(["export", "--run", str(run), "--out", str(out), "--step", "--force"]) == 0
    assert props(out)["graph"] == "step"
    fit = ["fit", str(data), "--id-col", "shop", "--time-col", "date", "--target", "sales", "--lookback", str(L),
           "--horizon", str(H), "--epochs", "1", "--hidden", "4", "--quiet", "--calendar", "sincos", "--out"]
    assert main(fit + [str(tmp_path / "cal")]) == 0
    assert "known inputs (--calendar)" in one_line_error(capsys, ["export", "--run", tmp_path / "cal", "--out",
                                                                  tmp_path / "c.onnx", "--step"])
    assert not (tmp_path / "c.onnx").exists() and not (tmp_path / "c.series.csv").exists()
    assert main(["export", "--run", str(tmp_path / "cal"), "--out", str(tmp_path / "c.onnx")]) == 0
    assert (tmp_path / "c.series.csv").exists()
