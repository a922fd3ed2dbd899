"""Writing a run as an ONNX file: ``rnnkit export --format onnx`` and :func:`export_onnx`.

Two graphs can be written for a forecasting run (:mod:`.graphs`):

* the **forecast graph** (default): ``context (batch, L, F)`` raw context windows, float64, in the
  data's units and columns -> ``forecast (batch, horizon, C)``, float64, in the data's units; what
  :meth:`ForecastRun.predict_contexts <rnnkit.tasks.forecast.workflow.ForecastRun.predict_contexts>`
  returns. The batch is dynamic, and so is L where every recurrent layer runs on torch's kernels
  (LSTM, GRU, Elman in float32); a Jordan (or peephole, minGRU) graph, and any network in float64
  (onnxruntime runs ONNX's recurrent nodes in float32 only), is unrolled over the run's lookback.
* the **step graph** (``step=True``): ``x_t (batch, F)`` and ``state_in_0 ...`` -> ``y`` and
  ``state_out_0 ...``: the network's own streaming step (``model.step``) in its units (after the
  scaler and the per-window normalisation, which the metadata describes) and dtype.

The graphs are traced with torch's TorchScript-based exporter (``dynamo=False``): it writes torch's
recurrent kernels as ONNX ``LSTM``/``GRU``/``RNN`` nodes over a sequence of any length and exports
these small models in well under a second. Before the file is written, the graph is run with
onnxruntime (when installed) against rnnkit's own numbers; the largest difference is kept in the
metadata (``checked_max_rel_diff``). The file is written atomically: complete, or not at all.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..._version import __version__
from ...errors import ConfigError, RunError
from ...training.atomic import write_file_atomic
from .graphs import ForecastGraph, StepGraph, flat_states
from .pipeline import F64
from .traceable import should_unroll

__all__ = ["export_onnx", "OPSET"]

#: ONNX opset of the written graphs (onnxruntime 1.14 and later run it)
OPSET = 17
#: the largest relative difference from rnnkit's numbers the export check accepts, by the network's
#: dtype (the tests hold the graphs to 1e-5 in float32; this only guards against a wrong graph)
CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9}


def _need_onnx():
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'rnnkit[deploy]' (onnx, onnxruntime)") \
            from None
    return onnx


def _forecast_run(run):
    from ..forecast.workflow import ForecastRun
    if isinstance(run, (str, os.PathLike)):
        from .. import load_run
        run = load_run(run)
    if not isinstance(run, ForecastRun):
        kind = {"PanelRun": "a panel (--id-col)", "ClassifierRun": "a classification",
                "TextRun": "a character model"}.get(type(run).__name__, f"a {type(run).__name__}")
        raise ConfigError(f"rnnkit export writes forecasting runs of one series; this is {kind} run")
    return run


def export_onnx(run, path: str | os.PathLike, *, step: bool = False, horizon: int | None = None,
                force: bool = False, check: bool = True) -> Path:
    """Write ``run`` (a :class:`~rnnkit.tasks.forecast.workflow.ForecastRun` or its run directory) to
    the ONNX file ``path``: its forecast graph, or with ``step=True`` its streaming step graph (see the
    module docstring). ``horizon`` (forecast graph) is the number of steps the graph forecasts (default:
    the run's; beyond a direct model's trained horizon it feeds its forecasts back, as rnnkit does).
    An existing ``path`` is replaced only with ``force``. With ``check`` (and onnxruntime installed)
    the graph is run on random contexts and compared with rnnkit's own forecasts first.

    Runs with known inputs (future covariates, calendar features) are refused, and for ``step=True``
    ensembles over several lookbacks. Returns the path written."""
    onnx = _need_onnx()
    run = _forecast_run(run)
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{path} is a directory; pass a file name for --out (such as model.onnx)")
    if path.exists() and not force:
        raise RunError(f"{path} exists; pass --force (force=True) to replace it")
    if horizon is not None and (not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1):
        raise ConfigError(f"horizon must be a positive integer; got {horizon!r}")
    if step and horizon is not None:
        raise ConfigError("the step graph forecasts what the model's step does; --horizon is for the forecast graph")
    graph, example, names, meta = _step(run) if step else _forecast(run, horizon)
    model = _trace(graph, example, names)
    props = {**meta, "rnnkit_version": __version__, "kind": "forecast", "lookback": str(run.data_config.lookback),
             "targets": json.dumps(list(run.targets)), "columns": json.dumps(list(run.columns)),
             "cell": run.model_config.cell, "strategy": run.model_config.strategy,
             "ensemble": str(run.meta.get("ensemble", 1)), "quantiles": "[]"}
    if check:
        diff = (_check_step if step else _check_forecast)(run, graph, model.SerializeToString(), names)
        if diff is not None:
            props["checked_max_rel_diff"] = f"{diff:.3g}"
    model.producer_name, model.producer_version = "rnnkit", __version__
    model.doc_string = (f"rnnkit {run.model_config.cell} forecaster ({run.model_config.strategy}), "
                        f"{'streaming step' if step else 'forecast'} graph; see metadata_props")
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    return write_file_atomic(path, lambda p: Path(p).write_bytes(data))


def _forecast(run, horizon: int | None):
    graph = ForecastGraph(run, horizon)
    H, L, F = graph.horizon, run.data_config.lookback, len(run.columns)
    # a direct model forecasting beyond its trained horizon slides a window of the traced length
    dynamic = not should_unroll(run.model) and (run.recursive or H <= run.model.horizon)
    time = "time" if dynamic else L
    io_ = {"inputs": [{"name": "context", "shape": ["batch", time, F], "dtype": "float64",
                       "columns": list(run.columns), "units": "data"}],
           "outputs": [{"name": "forecast", "shape": ["batch", H, len(run.targets)], "dtype": "float64",
                        "columns": list(run.targets), "units": "data"}]}
    names = {"input_names": ["context"], "output_names": ["forecast"],
             "dynamic_axes": {"context": {0: "batch", **({1: "time"} if dynamic else {})}, "forecast": {0: "batch"}}}
    meta = {"graph": "forecast", "horizon": str(H), "time_axis": "dynamic" if dynamic else "fixed",
            "units": "data", **{k: json.dumps(v) for k, v in io_.items()}}
    return graph, (_contexts(run, 2, seed=0),), names, meta


def _step(run):
    graph = StepGraph(run.model)
    model, dtype = run.model, next(run.model.parameters()).dtype
    states = flat_states(model.init_state(1))
    k = len(states)
    state_names = [f"state_in_{i}" for i in range(k)]
    out_names = ["y"] + [f"state_out_{i}" for i in range(k)]
    C, F = model.n_targets, model.input_size
    y_shape = ["batch", C] if model.recursive else ["batch", model.horizon, C]
    dt = str(dtype).replace("torch.", "")
    shapes = [["layers", "batch", s.shape[-1]] for s in states]
    io_ = {"inputs": [{"name": "x_t", "shape": ["batch", F], "dtype": dt, "units": "network"}]
           + [{"name": n, "shape": s, "dtype": dt} for n, s in zip(state_names, shapes)],
           "outputs": [{"name": "y", "shape": y_shape, "dtype": dt, "units": "network"}]
           + [{"name": n, "shape": s, "dtype": dt} for n, s in zip(out_names[1:], shapes)]}
    for entry, s in zip(io_["inputs"][1:] + io_["outputs"][1:], states + states):
        entry["shape"][0] = s.shape[0]  # layers x directions (x members for an ensemble, in order)
    axes = {"x_t": {0: "batch"}, "y": {0: "batch"}, **{n: {1: "batch"} for n in state_names + out_names[1:]}}
    names = {"input_names": ["x_t", *state_names], "output_names": out_names, "dynamic_axes": axes}
    norm, transform = run.norm, run.transform
    meta = {"graph": "step", "horizon": str(model.horizon if not model.recursive else 1), "units": "network",
            "time_axis": "one step", "scaler": json.dumps(run.scaler.to_dict()),
            "transform": json.dumps({"name": transform.name if transform else "none",
                                     "lambda": transform.lam if transform else 1.0}),
            "normalise": norm.normalise if norm else "none", "skip": norm.skip if norm else "none",
            "difference": str(norm.difference if norm else 0), **{k_: json.dumps(v) for k_, v in io_.items()}}
    x_t = torch.zeros(2, F, dtype=dtype)
    return graph, (x_t, *[torch.zeros(s.shape[0], 2, s.shape[2], dtype=dtype) for s in states]), names, meta


def _trace(graph, example: tuple, names: dict):
    """The ONNX model of ``graph`` traced on ``example`` (in memory)."""
    import onnx
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation note and tracer warnings on shape checks
        torch.onnx.export(graph, example, buf, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                          **names)
    return onnx.load_model_from_string(buf.getvalue())


def _contexts(run, batch: int, seed: int, length: int | None = None) -> torch.Tensor:
    """``(batch, length, F)`` float64 raw contexts within the training data's range: random in the
    scaler's units, mapped back through the scaler and the target transform (so positive where the
    transform needs it)."""
    L = length or run.data_config.lookback
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.05, 0.95, size=(batch, L, len(run.columns)))
    if run.scaler.kind == "standard":
        u = rng.standard_normal(size=u.shape)
    raw = run.scaler.inverse_transform(u)
    if run.transform is not None:
        C = len(run.targets)
        raw[..., :C] = run.transform.inverse(raw[..., :C])
    return torch.tensor(raw, dtype=F64)


def _session(data: bytes):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _check(diff: float, run) -> float:
    dtype = next(run.model.parameters()).dtype
    tol = CHECK_TOLERANCE.get(dtype, 1e-4)
    if not diff <= tol:
        raise RunError(f"the exported graph's numbers differ from rnnkit's by {diff:.3g} (relative; more than "
                       f"{tol:g}), so nothing was written; please report this with the run's config.json")
    return diff


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-12))


def _check_forecast(run, graph, data: bytes, names) -> float | None:
    session = _session(data)
    if session is None:
        return None
    x = _contexts(run, 3, seed=1).numpy()
    ref = run.predict_contexts(x, graph.horizon)
    got = session.run(None, {"context": x})[0]
    return _check(_rel(got, ref), run)


def _check_step(run, graph, data: bytes, names) -> float | None:
    session = _session(data)
    if session is None:
        return None
    model = run.model.eval()
    dtype = next(model.parameters()).dtype
    rng = np.random.default_rng(1)
    state, flat, diff = model.init_state(3), None, 0.0
    flat = [s.numpy() for s in flat_states(state)]
    for _ in range(3):
        x = rng.standard_normal((3, model.input_size)).astype(str(dtype).replace("torch.", ""))
        y, state = model.step(torch.from_numpy(x), state)
        got = session.run(None, {"x_t": x, **{f"state_in_{i}": s for i, s in enumerate(flat)}})
        flat = got[1:]
        ref = [y.numpy()] + [s.numpy() for s in flat_states(state)]
        diff = max(diff, *(_rel(g, r) for g, r in zip(got, ref)))
    return _check(diff, run)
