"""The parts of a forecasting run's ONNX files (:class:`~.parts.Parts`): the forecast graph and the
step graph (see :mod:`.onnx_file`), their metadata, and their checks against rnnkit's own numbers."""

from __future__ import annotations

import json

import numpy as np
import torch

from .graphs import ForecastGraph, StepGraph, flat_states
from .parts import Parts, io_meta, rel_diff, state_names
from .pipeline import F64
from .traceable import should_unroll

__all__ = ["forecast_parts", "step_parts", "contexts"]


def _common(run) -> dict[str, str]:
    return {"kind": "forecast", "lookback": str(run.data_config.lookback), "targets": json.dumps(list(run.targets)),
            "columns": json.dumps(list(run.columns)), "cell": run.model_config.cell,
            "strategy": run.model_config.strategy, "ensemble": str(run.meta.get("ensemble", 1)),
            "quantiles": json.dumps(list(run.levels))}


def _levels_axis(run) -> list[int]:
    """The forecasts' last axis: ``[Q]`` for a quantile or distribution head's Q levels, else none."""
    return [len(run.levels)] if run.levels else []


def forecast_parts(run, horizon: int | None) -> Parts:
    graph = ForecastGraph(run, horizon)
    H, L, F = graph.horizon, run.data_config.lookback, len(run.columns)
    # a direct model forecasting beyond its trained horizon slides a window of the traced length
    dynamic = not should_unroll(run.model) and (run.recursive or H <= run.model.horizon)
    inputs = [{"name": "context", "shape": ["batch", "time" if dynamic else L, F], "dtype": "float64",
               "columns": list(run.columns), "units": "data"}]
    outputs = [{"name": "forecast", "shape": ["batch", H, len(run.targets), *_levels_axis(run)], "dtype": "float64",
                "columns": list(run.targets), "units": "data"}]
    names = {"input_names": ["context"], "output_names": ["forecast"],
             "dynamic_axes": {"context": {0: "batch", **({1: "time"} if dynamic else {})}, "forecast": {0: "batch"}}}
    meta = {**_common(run), "graph": "forecast", "horizon": str(H), "time_axis": "dynamic" if dynamic else "fixed",
            "units": "data", **io_meta(inputs, outputs)}

    def check(session) -> float:
        x = contexts(run, 3, seed=1).numpy()
        return rel_diff(session.run(None, {"context": x})[0], run.predict_contexts(x, H, all_levels=True))
    return Parts(graph, (contexts(run, 2, seed=0),), names, meta, check, _dtype(run.model),
                 f"rnnkit {run.model_config.cell} forecaster ({run.model_config.strategy}), forecast graph")


def step_parts(run) -> Parts:
    graph = StepGraph(run.model)
    model, dtype = run.model, _dtype(run.model)
    states = flat_states(model.init_state(1))
    dt = str(dtype).replace("torch.", "")
    ins, outs, in_meta, out_meta = state_names(states, dt)
    C, F = model.n_targets, model.input_size
    y_shape = ["batch", C] if model.recursive else ["batch", model.horizon, C, *_levels_axis(run)]
    inputs = [{"name": "x_t", "shape": ["batch", F], "dtype": dt, "columns": list(run.columns), "units": "network"}]
    outputs = [{"name": "y", "shape": y_shape, "dtype": dt, "columns": list(run.targets), "units": "network"}]
    axes = {"x_t": {0: "batch"}, "y": {0: "batch"}, **{n: {1: "batch"} for n in ins + outs}}
    names = {"input_names": ["x_t", *ins], "output_names": ["y", *outs], "dynamic_axes": axes}
    norm, transform = run.norm, run.transform
    meta = {**_common(run), "graph": "step", "horizon": str(1 if model.recursive else model.horizon),
            "units": "network", "time_axis": "one step", "scaler": json.dumps(run.scaler.to_dict()),
            "transform": json.dumps({"name": transform.name if transform else "none",
                                     "lambda": transform.lam if transform else 1.0}),
            "normalise": norm.normalise if norm else "none", "skip": norm.skip if norm else "none",
            "difference": str(norm.difference if norm else 0), **io_meta(inputs + in_meta, outputs + out_meta)}

    def check(session) -> float:
        rng = np.random.default_rng(1)
        model.eval()
        state = model.init_state(3)
        flat, diff = [s.numpy() for s in flat_states(state)], 0.0
        for _ in range(3):
            x = torch.from_numpy(rng.standard_normal((3, F))).to(dtype)
            got = session.run(None, {"x_t": x.numpy(), **dict(zip(ins, flat))})
            y, state = model.step(x, state)
            flat = got[1:]
            diff = max(diff, *(rel_diff(g, r) for g, r in zip(got, [y, *flat_states(state)])))
        return diff
    example = (torch.zeros(2, F, dtype=dtype), *[torch.zeros(s.shape[0], 2, s.shape[2], dtype=dtype) for s in states])
    return Parts(graph, example, names, meta, check, dtype,
                 f"rnnkit {run.model_config.cell} forecaster ({run.model_config.strategy}), streaming step graph")


def _dtype(model) -> torch.dtype:
    return next(model.parameters()).dtype


def contexts(run, batch: int, seed: int, length: int | None = None) -> torch.Tensor:
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
