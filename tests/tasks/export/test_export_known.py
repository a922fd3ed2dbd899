"""The forecast graph of a run with future covariates (issue 17): ``context`` and ``future`` (the
covariates' raw values over the forecast's rows) -> ``forecast`` in the data's units, equal to the
run's own forecast of that context with those future values (``run.forecast(data, future=...)``), the
linear covariate effect included; and the known inputs the graph cannot take (the step graph's),
refused in one line. Calendar features: test_export_calendar.py.

Tolerance: 1e-5 relative to the forecasts' size for float32 networks, as in test_export_onnx.py
(onnxruntime's and torch's recurrent kernels round differently by a few float32 ulps); the graph in
float64 (torch, not onnxruntime) gives rnnkit's own numbers to 1e-12.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit import ConfigError, DataConfig, ModelConfig, SearchConfig, TrainConfig, fit_forecaster
from rnnkit.data.series import series_from_frame

ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install 'rnnkit[deploy]')")
onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx (pip install 'rnnkit[deploy]')")

from cli_cases import one_line_error  # noqa: E402
from rnnkit.cli import main  # noqa: E402
from rnnkit.tasks.export.graphs import ForecastGraph  # noqa: E402
from export_cases import props, rel_diff, session, stepped  # noqa: E402

TOL = 1e-5
N, H, L = 160, 5, 12
_rng = np.random.default_rng(3)
X_ALL = np.cumsum(_rng.normal(size=N + 3 * H))  # a random walk the target follows: a linear effect
Z_ALL = _rng.normal(size=N + 3 * H)  # a second covariate, noise
Y_ALL = 5.0 + 3.0 * X_ALL + 0.3 * _rng.normal(size=N + 3 * H)
DAYS = pd.date_range("2003-01-01", periods=N + 3 * H, freq="D")
FRAME = pd.DataFrame({"date": DAYS.strftime("%Y-%m-%d"), "y": Y_ALL, "z": Z_ALL, "x": X_ALL})
ENDS = (N - 40, N - 17, N)  # the contexts' last rows (exclusive): the series up to there, forecast after


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


def _data(end: int = N, future=("x",), past=()):
    return series_from_frame(FRAME.iloc[:end][["date", "y", *past, *future]], target="y", time_col="date",
                             covariates=[*past, *future])


def _future(end: int, rows: int, future=("x",)) -> pd.DataFrame:
    return FRAME.iloc[end:end + rows][["date", *future]].reset_index(drop=True)


def _run(dtype=torch.float32, future=("x",), linear="auto", ensemble=1, lookbacks=(), past=(), horizon=H,
         difference="none", **model):
    """A run trained for one epoch, then given random weights (a zero-initialised head would hide the
    network from the comparison); the linear effect is fitted before training, so it is the run's."""
    dc = DataConfig(horizon=horizon, lookback=None if lookbacks else L, future_covariates=tuple(future),
                    linear_covariates=linear, difference=difference)
    run = fit_forecaster(dc, ModelConfig(**{"hidden_size": 4, **model}), TrainConfig(epochs=1),
                         data=_data(N, future, past),
                         quiet=True, evaluate=False, dtype=dtype,
                         search=SearchConfig(ensemble=ensemble, ensemble_lookbacks=lookbacks))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in run.model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return run


def _cases(run, horizon: int, future=("x",), past=()):
    """For each end in ENDS: the context (the last rows of the series up to it), the future rows the
    graph reads, and rnnkit's own forecast of the series up to it with those future values, all levels."""
    rows = horizon if run.recursive else run.data_config.horizon
    Lc = run.data_config.lookback
    ctx, fut, ref = [], [], []
    for end in ENDS:
        data, ahead = _data(end, future, past), _future(end, rows, future)
        ctx.append(data.values[-Lc:])
        fut.append(ahead[list(future)].to_numpy(np.float64))
        values = run.future_values(data, ahead, horizon)  # rnnkit's own path: its known inputs of that series
        known = run.known(data, [len(data)], values, horizon)
        ref.append(run.predict_contexts(data.values[None, -Lc:], horizon, known, all_levels=True)[0])
        if not run.levels:  # the same as the forecast table's
            table = run.forecast(data, horizon=horizon, future=ahead)
            np.testing.assert_array_equal(table[list(run.targets)].to_numpy(), ref[-1])
    return np.stack(ctx), np.stack(fut), np.stack(ref)


CASES = {
    "lstm, direct, linear effect": dict(cell="lstm", strategy="direct"),
    "gru, direct, no linear effect": dict(cell="gru", strategy="direct", linear="none"),
    "lstm, recursive, no linear effect": dict(cell="lstm", strategy="recursive", linear="none"),
    "gru, recursive, linear effect, two covariates": dict(cell="gru", strategy="recursive", future=("z", "x")),
    "lstm, direct, two covariates": dict(cell="lstm", strategy="direct", future=("z", "x")),
    "gru, direct, quantile head": dict(cell="gru", strategy="direct", quantiles=(0.1, 0.5, 0.9)),
    "lstm, direct, a past covariate, differences": dict(cell="lstm", strategy="direct", past=("z",),
                                                         difference="first"),
}


@pytest.mark.parametrize("settings", list(CASES.values()), ids=list(CASES))
def test_the_graph_forecasts_what_rnnkit_forecasts_with_the_same_future_values(tmp_path, settings):
    settings = dict(settings)
    future, past = settings.get("future", ("x",)), settings.get("past", ())
    run = _run(**settings)
    assert bool(run.norm.effect) is (settings.get("linear", "auto") == "auto")  # x drives y: the F test keeps it
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    s = session(path)
    assert [i.name for i in s.get_inputs()] == ["context", "future"]
    ctx, fut, ref = _cases(run, H, future, past)
    (got,) = s.run(["forecast"], {"context": ctx, "future": fut})
    assert got.shape == ref.shape
    assert rel_diff(got, ref) < TOL
    (one,) = s.run(["forecast"], {"context": ctx[:1], "future": fut[:1]})  # the batch is dynamic
    assert rel_diff(one, ref[:1]) < TOL
    with pytest.raises(Exception, match="(?i)invalid dimensions|dimension"):  # future has exactly H rows
        s.run(None, {"context": ctx, "future": fut[:, :-1]})
    meta = props(path)
    inputs = {i["name"]: i for i in json.loads(meta["inputs"])}
    assert inputs["future"]["shape"] == ["batch", H, len(future)] and inputs["future"]["columns"] == list(future)
    assert inputs["future"]["units"] == "data" and inputs["context"]["columns"] == ["y", *past, *future]
    assert json.loads(meta["future_covariates"]) == list(future) and meta["future_rows"] == str(H)
    assert json.loads(meta["covariate_effect"]) == [list(r) for r in run.norm.effect]
    assert float(meta["checked_max_rel_diff"]) < TOL
    if run.levels:  # the point forecast is the centre level
        table = run.forecast(_data(N, future, past), future=_future(N, H, future))
        np.testing.assert_allclose(got[-1, :, :, run.model.centre], table[list(run.targets)].to_numpy(),
                                   rtol=TOL, atol=TOL * np.abs(ref).max())


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_in_float64_the_graph_is_rnnkits_forecast(strategy):
    run = _run(torch.float64, future=("z", "x"), cell="lstm", strategy=strategy)
    ctx, fut, ref = _cases(run, H, ("z", "x"))
    with torch.no_grad():
        got = ForecastGraph(run)(torch.tensor(ctx), torch.tensor(fut)).numpy()
    assert rel_diff(got, ref) < 1e-12


def test_a_context_of_another_length_and_an_ensemble_over_lookbacks(tmp_path):
    run = _run(cell="lstm", strategy="direct", ensemble=2, lookbacks=(8, 12))
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    s = session(path)
    assert props(path)["time_axis"] == "dynamic"
    ctx, fut, ref = _cases(run, H)
    assert rel_diff(s.run(None, {"context": ctx, "future": fut})[0], ref) < TOL
    end = ENDS[-1]  # a longer context: the members read its last rows, as rnnkit's do
    data, ahead = _data(end), _future(end, H)
    known = run.known(data, [len(data)], run.future_values(data, ahead), H)  # rnnkit's, over its lookback (12)
    long_ctx = data.values[None, -20:]  # (1, 20, F): the covariate x is column 1
    long_known = np.concatenate([run.scaler.transform(long_ctx[..., 1:], columns=[1]), known[:, -H:]], 1)
    want = run.predict_contexts(long_ctx, H, long_known)
    got = s.run(None, {"context": long_ctx, "future": ahead[["x"]].to_numpy(np.float64)[None]})[0]
    assert rel_diff(got, want) < TOL and rel_diff(got, ref[-1:]) < TOL


def test_a_recursive_graph_forecasts_any_horizon_a_direct_one_at_most_its_trained(tmp_path):
    run = _run(cell="gru", strategy="recursive")
    path = rnnkit.export_onnx(run, tmp_path / "long.onnx", horizon=H + 3)
    s = session(path)
    assert props(path)["future_rows"] == str(H + 3)
    ctx, fut, ref = _cases(run, H + 3)
    assert fut.shape[1] == H + 3 and rel_diff(s.run(None, {"context": ctx, "future": fut})[0], ref) < TOL
    direct = _run(cell="lstm", strategy="direct")
    path = rnnkit.export_onnx(direct, tmp_path / "short.onnx", horizon=3)  # reads the trained horizon's future rows
    ctx, fut, ref = _cases(direct, 3)
    assert fut.shape[1] == H
    assert rel_diff(session(path).run(None, {"context": ctx, "future": fut})[0], ref) < TOL
    with pytest.raises(ConfigError, match="trained horizon of 5 steps"):
        rnnkit.export_onnx(direct, tmp_path / "beyond.onnx", horizon=H + 1)
    assert not (tmp_path / "beyond.onnx").exists()
    for strategy in ("recursive", "direct"):  # one step: a recursive model feeds nothing back
        one = _run(cell="lstm", strategy=strategy, horizon=1)
        path = rnnkit.export_onnx(one, tmp_path / f"one_{strategy}.onnx")
        ctx, fut, ref = _cases(one, 1)
        assert fut.shape[1] == 1 and rel_diff(session(path).run(None, {"context": ctx, "future": fut})[0], ref) < TOL


def test_the_command_line_exports_and_refuses_what_the_graph_cannot_take(tmp_path, capsys):
    data, run = tmp_path / "data.csv", tmp_path / "run"
    FRAME.iloc[:N].to_csv(data, index=False)
    quick = ["--lookback", str(L), "--horizon", str(H), "--epochs", "1", "--hidden", "4", "--quiet"]
    assert main(["fit", str(data), "--target", "y", "--time-col", "date", "--future-covariates", "z,x", *quick,
                 "--out", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / "model.onnx"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"context (batch, time, 3) float64, future (batch, {H}, 2) float64 -> forecast (batch, {H}, 1)" in printed
    loaded = rnnkit.load_run(run)
    series = loaded.load_data()
    ahead = _future(N, H, ("z", "x"))
    want = loaded.forecast(series, future=ahead)[["y"]].to_numpy()
    got = session(out).run(None, {"context": series.values[None, -L:],
                                  "future": ahead[["z", "x"]].to_numpy(np.float64)[None]})[0]
    assert rel_diff(got, want[None]) < TOL
    for extra, needle in ((["--step"], "export its forecast graph (without --step)"),
                          (["--horizon", str(H + 1)], "trained horizon of 5 steps")):
        assert needle in one_line_error(capsys, ["export", "--run", run, "--out", tmp_path / "m.onnx", *extra])
    cal = tmp_path / "cal"
    assert main(["fit", str(data), "--target", "y", "--time-col", "date", "--future-covariates", "x", "--calendar",
                 "sincos", *quick, "--out", str(cal)]) == 0
    assert "--calendar" in one_line_error(capsys, ["export", "--run", cal, "--out", tmp_path / "m.onnx", "--step"])
    assert not (tmp_path / "m.onnx").exists()
    assert main(["export", "--run", str(cal), "--out", str(tmp_path / "cal.onnx")]) == 0  # test_export_calendar.py
    assert "calendar (batch, time + 5, 4) float64" in capsys.readouterr().out


def test_a_recursive_runs_step_graph_reads_the_next_rows_future_covariates(tmp_path):
    """One series, future covariates: the recursive network's step reads this row's target and the
    next row's covariate (network units), and the step graph is model.step; a direct run's is refused."""
    run = _run(cell="lstm", strategy="recursive")
    path = rnnkit.export_onnx(run, tmp_path / "step.onnx", step=True)
    x_t = json.loads(props(path)["inputs"])[0]
    assert x_t["columns"] == ["y", "x"] and x_t["shape"] == ["batch", 2]
    model, s = run.model.eval(), session(path)
    x = torch.randn(4, 6, 2, generator=torch.Generator().manual_seed(3))
    for got, y, _ in stepped(s, model, x):
        assert np.abs(got[0] - y.numpy()).max() < TOL
    with pytest.raises(ConfigError, match="direct network's input runs on over the horizon"):
        rnnkit.export_onnx(_run(cell="lstm"), tmp_path / "direct.onnx", step=True)
