"""``rnnkit export --format onnx`` / ``rnnkit.export_onnx``: the written graphs run in onnxruntime and
give rnnkit's own numbers; the file's metadata; the command line's refusals.

Tolerances (float32 networks): onnxruntime's recurrent kernels and torch's (or rnnkit's native ones,
for the step) round differently, by a few float32 ulps per operation over tens of steps: about 1e-7
relative to the network's outputs, which the pipeline then scales into the data's units. So the
forecasts must agree to 1e-5 relative to their own size (issue 17's target), a margin of ~100x that
still catches any wrong weight, gate or index.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import ConfigError, RunError

ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install 'rnnkit[deploy]')")
onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx (pip install 'rnnkit[deploy]')")

from cli_cases import one_line_error  # noqa: E402
from rnnkit.cli import main  # noqa: E402
from export_cases import contexts, make_run, props, rel_diff, session, stepped  # noqa: E402

TOL = 1e-5


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman", "jordan"])
def test_round_trip_equals_rnnkit_forecasts(tmp_path, cell, strategy):
    run = make_run(torch.float32, cell=cell, strategy=strategy, **({"skip": "none"} if strategy == "recursive" else {}))
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    s = session(path)
    X = contexts(run)
    for batch in (X, X[:1]):  # the batch is dynamic
        assert rel_diff(s.run(["forecast"], {"context": batch})[0], run.predict_contexts(batch, 6)) < TOL
    meta = props(path)
    if cell == "jordan":  # unrolled over the lookback: another length is refused, never misread
        assert meta["time_axis"] == "fixed"
        with pytest.raises(Exception, match="(?i)invalid dimensions|dimension"):
            s.run(None, {"context": contexts(run, length=30)})
    else:  # torch's kernels became ONNX LSTM/GRU/RNN nodes: any context length
        assert meta["time_axis"] == "dynamic"
        X30 = contexts(run, length=30)
        assert rel_diff(s.run(None, {"context": X30})[0], run.predict_contexts(X30, 6)) < TOL


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman", "jordan"])
def test_the_step_graph_is_the_models_step(tmp_path, cell):
    run = make_run(torch.float32, cell=cell, num_layers=2)
    path = rnnkit.export_onnx(run, tmp_path / "step.onnx", step=True)
    s = session(path)
    model = run.model.eval()
    names = [i.name for i in s.get_inputs()]
    k = len(names) - 1
    assert names == ["x_t"] + [f"state_in_{i}" for i in range(k)]
    assert [o.name for o in s.get_outputs()] == ["y"] + [f"state_out_{i}" for i in range(k)]
    x = torch.tensor(contexts(run)[:5, :, :1], dtype=torch.float32)  # any inputs in the network's units
    state = model.init_state(5)
    flat = [t.numpy() for t in ((state,) if isinstance(state, torch.Tensor) else state)]
    for t in range(8):  # ONNX's state fed back into ONNX, rnnkit's into rnnkit's native step
        y, state = model.step(x[:, t], state)
        got = s.run(None, {"x_t": x[:, t].numpy(), **{f"state_in_{i}": a for i, a in enumerate(flat)}})
        flat = got[1:]
        ref = [y] + list((state,) if isinstance(state, torch.Tensor) else state)
        for g, r in zip(got, ref):
            assert g.shape == tuple(r.shape) and np.abs(g - r.numpy()).max() < TOL
    meta = props(path)
    assert meta["graph"] == "step" and meta["units"] == "network"
    assert json.loads(meta["scaler"]) == run.scaler.to_dict()


@pytest.mark.parametrize("ensemble, lookbacks", [(3, ()), (2, (24, 12))], ids=["median of 3", "two lookbacks"])
def test_ensembles_export_their_median(tmp_path, ensemble, lookbacks):
    run = make_run(torch.float32, ensemble=ensemble, lookbacks=lookbacks, cell="gru")
    s = session(rnnkit.export_onnx(run, tmp_path / "m.onnx"))
    X = contexts(run)
    assert rel_diff(s.run(None, {"context": X})[0], run.predict_contexts(X, 6)) < TOL
    if not lookbacks:  # the members step side by side: one state each, the median of their forecasts
        s = session(rnnkit.export_onnx(run, tmp_path / "s.onnx", step=True))
        state = run.model.init_state(4)
        x_t = torch.tensor(X[:4, 0], dtype=torch.float32)
        got = s.run(None, {"x_t": x_t.numpy(), **{f"state_in_{i}": m.numpy() for i, m in enumerate(state)}})
        y, state = run.model.step(x_t, state)
        assert len(got) == 1 + ensemble and np.abs(got[0] - y.numpy()).max() < TOL


def test_float64_runs_export_unrolled(tmp_path):
    # onnxruntime has ONNX's LSTM, GRU and RNN nodes in float32 only: a float64 network is unrolled
    run = make_run(torch.float64, cell="gru", lookback=12)
    path = rnnkit.export_onnx(run, tmp_path / "m.onnx")
    X = contexts(run)
    assert props(path)["time_axis"] == "fixed"
    assert rel_diff(session(path).run(None, {"context": X})[0], run.predict_contexts(X, 6)) < 1e-12
    path = rnnkit.export_onnx(run, tmp_path / "s.onnx", step=True)
    state = run.model.init_state(2)
    got = session(path).run(None, {"x_t": X[:2, 0], "state_in_0": state.numpy()})
    y, state = run.model.step(torch.tensor(X[:2, 0]), state)
    assert rel_diff(got[0], y.numpy()) < 1e-12 and rel_diff(got[1], state.numpy()) < 1e-12


def test_pipeline_variants_round_trip(tmp_path):
    # the NumPy mirrors are checked in float64 in test_export_pipeline; here that ONNX runs them too
    for k, settings in enumerate([dict(difference="seasonal", skip="none", horizon=3),
                                  dict(scaler="standard", transform="boxcox", skip="drift"),
                                  dict(source="builtin:macro", targets=("realgdp", "realcons"), covariates=("unemp",),
                                       lookback=8, normalise="none", skip="none")]):
        run = make_run(torch.float32, cell="gru", **settings)
        H = run.data_config.horizon
        path = rnnkit.export_onnx(run, tmp_path / f"m{k}.onnx", horizon=H + 2 if k == 0 else None)
        X = contexts(run)
        assert rel_diff(session(path).run(None, {"context": X})[0],
                        run.predict_contexts(X, H + 2 if k == 0 else H)) < TOL


def test_metadata_names_the_graph(tmp_path):
    run = make_run(torch.float32, cell="gru")
    meta = props(rnnkit.export_onnx(run, tmp_path / "m.onnx"))
    assert meta["rnnkit_version"] == rnnkit.__version__ and meta["graph"] == "forecast"
    assert (meta["lookback"], meta["horizon"], json.loads(meta["targets"])) == ("24", "6", ["temperature"])
    assert json.loads(meta["inputs"]) == [{"name": "context", "shape": ["batch", "time", 1], "dtype": "float64",
                                           "columns": ["temperature"], "units": "data"}]
    assert json.loads(meta["outputs"])[0]["shape"] == ["batch", 6, 1]
    assert json.loads(meta["quantiles"]) == [] and float(meta["checked_max_rel_diff"]) < TOL


def test_existing_files_and_directories(tmp_path):
    run = make_run(torch.float32, cell="gru")
    out = tmp_path / "m.onnx"
    out.write_text("mine")
    with pytest.raises(RunError, match="exists; pass --force"):
        rnnkit.export_onnx(run, out)
    assert out.read_text() == "mine"
    rnnkit.export_onnx(run, out, force=True)
    assert props(out)["graph"] == "forecast"
    with pytest.raises(RunError, match="is a directory"):
        rnnkit.export_onnx(run, tmp_path, force=True)
    with pytest.raises(ConfigError, match="horizon"):
        rnnkit.export_onnx(run, tmp_path / "h.onnx", horizon=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary file left behind


def test_cli_export_and_its_refusals(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "builtin:sine", "--lookback", "5", "--horizon", "2", "--epochs", "2", "--hidden", "4",
                 "--quiet", "--out", str(run)]) == 0
    out = tmp_path / "model.onnx"
    assert main(["export", "--run", str(run), "--format", "onnx", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "context (batch, time, 1) float64 -> forecast (batch, 2, 1) float64" in said
    x = np.sin(np.linspace(0, 1, 5))[None, :, None]
    np.testing.assert_allclose(session(out).run(None, {"context": x})[0], rnnkit.load_run(run).predict_contexts(x, 2),
                               rtol=TOL, atol=TOL)
    before = out.read_bytes()
    assert "exists; pass --force" in one_line_error(capsys, ["export", "--run", run, "--out", out])
    assert out.read_bytes() == before
    assert "invalid choice: 'tflite'" in one_line_error(capsys, ["export", "--run", run, "--format", "tflite",
                                                                 "--out", tmp_path / "m.tflite"])
    assert main(["export", "--run", str(run), "--out", str(out), "--force", "--step"]) == 0
    assert props(out)["graph"] == "step"
    assert "horizon" in one_line_error(capsys, ["export", "--run", run, "--out", tmp_path / "h.onnx",
                                                "--horizon", "-1"])
    assert "does not exist" in one_line_error(capsys, ["export", "--run", tmp_path / "nothing", "--out",
                                                       tmp_path / "n.onnx"])
    assert not (tmp_path / "n.onnx").exists()


def test_cli_exports_a_quantile_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "builtin:sine", "--lookback", "5", "--horizon", "2", "--epochs", "2", "--hidden", "4",
                 "--quantiles", "0.1,0.5,0.9", "--quiet", "--out", str(run)]) == 0
    out = tmp_path / "model.onnx"
    assert main(["export", "--run", str(run), "--format", "onnx", "--out", str(out)]) == 0
    assert "context (batch, time, 1) float64 -> forecast (batch, 2, 1, 3) float64" in capsys.readouterr().out
    x = np.sin(np.linspace(0, 1, 5))[None, :, None]
    np.testing.assert_allclose(session(out).run(None, {"context": x})[0],
                               rnnkit.load_run(run).predict_contexts(x, 2, all_levels=True), rtol=TOL, atol=TOL)
    assert "trained horizon of 2 steps" in one_line_error(capsys, ["export", "--run", run, "--out",
                                                                   tmp_path / "h.onnx", "--horizon", "3"])


def test_cli_exports_a_calendar_runs_forecast_graph_not_its_step(tmp_path, capsys):
    """The forecast graph reads the calendar features as an input (test_export_calendar.py); the step
    graph, whose step reads known inputs in the network's units, is refused."""
    run = tmp_path / "run"
    assert main(["fit", "builtin:macro", "--target", "realgdp", "--calendar", "sincos", "--lookback", "8",
                 "--horizon", "2", "--epochs", "1", "--hidden", "4", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    err = one_line_error(capsys, ["export", "--run", run, "--out", tmp_path / "m.onnx", "--step"])
    assert "known inputs (--calendar)" in err
    assert not (tmp_path / "m.onnx").exists()
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    assert [i.name for i in session(tmp_path / "m.onnx").get_inputs()] == ["context", "calendar"]


HEADS = {"quantiles": dict(quantiles=(0.1, 0.5, 0.9)), "normal": dict(distribution="normal"),
         "student-t": dict(distribution="student_t")}  # its quantiles from a table in the graph (test_student_t.py)


def assert_levels_round_trip(path, run, X):
    """The forecast graph's levels are rnnkit's (``all_levels=True``), never cross, and their centre is
    rnnkit's point forecast; the metadata lists the levels."""
    got = session(path).run(["forecast"], {"context": X})[0]
    assert got.shape == (len(X), 6, 1, len(run.levels))
    assert rel_diff(got, run.predict_contexts(X, 6, all_levels=True)) < TOL
    assert (np.diff(got, axis=-1) >= 0).all()
    assert rel_diff(got[..., run.model.centre], run.predict_contexts(X, 6)) < TOL
    meta = props(path)
    assert json.loads(meta["quantiles"]) == list(run.levels)
    assert json.loads(meta["outputs"])[0]["shape"] == ["batch", 6, 1, len(run.levels)]


@pytest.mark.parametrize("head", list(HEADS.values()), ids=list(HEADS))
@pytest.mark.parametrize("cell", ["lstm", "gru", "jordan"])
def test_quantile_and_distribution_heads_round_trip(tmp_path, cell, head):
    run = make_run(torch.float32, cell=cell, **head)
    X = contexts(run)
    assert_levels_round_trip(rnnkit.export_onnx(run, tmp_path / "model.onnx"), run, X)
    # the step graph outputs what the model's step does: the levels after this step, in the network's units
    path = rnnkit.export_onnx(run, tmp_path / "step.onnx", step=True)
    s, model = session(path), run.model.eval()
    assert json.loads(props(path)["outputs"])[0]["shape"] == ["batch", 6, 1, len(run.levels)]
    x = torch.tensor(X[:4, :, :1], dtype=torch.float32)
    for got, y, _ in stepped(s, model, x[:, :5]):
        assert got[0].shape == tuple(y.shape) and np.abs(got[0] - y.numpy()).max() < TOL
        assert (np.diff(got[0], axis=-1) >= 0).all()
    with pytest.raises(ConfigError, match="trained horizon"):  # still refused: a level fed back means nothing
        rnnkit.export_onnx(run, tmp_path / "long.onnx", horizon=7)
    assert not (tmp_path / "long.onnx").exists()


@pytest.mark.parametrize("head", list(HEADS.values()), ids=list(HEADS))
def test_float64_heads_export_although_onnxruntime_has_no_double_softplus(tmp_path, head):
    """A float64 run's heads (their scales and increments are softplus) export and round trip: the
    graph writes softplus as its formula there (it once failed to load: no double Softplus kernel)."""
    run = make_run(torch.float64, cell="gru", **head)
    assert_levels_round_trip(rnnkit.export_onnx(run, tmp_path / "model.onnx"), run, contexts(run))


@pytest.mark.parametrize("head, ensemble, lookbacks", [(HEADS["quantiles"], 3, ()), (HEADS["normal"], 2, (24, 12))],
                         ids=["quantiles, median of 3", "normal, two lookbacks"])
def test_level_ensembles_export_each_levels_median(tmp_path, head, ensemble, lookbacks):
    run = make_run(torch.float32, ensemble=ensemble, lookbacks=lookbacks, cell="gru", **head)
    assert_levels_round_trip(rnnkit.export_onnx(run, tmp_path / "m.onnx"), run, contexts(run))
