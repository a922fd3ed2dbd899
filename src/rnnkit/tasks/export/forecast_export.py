"""The parts of a forecasting run's ONNX files (:class:`~.parts.Parts`): the forecast graph and the
step graph (see :mod:`.onnx_file`), their metadata, and their checks against rnnkit's own numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from ...data.calendar import calendar_features
from ...errors import ConfigError
from ..forecast.fitting import window_known_rows
from ..forecast.known import known_names
from ..forecast.paths import normal_draws
from .graphs import ForecastGraph, StepGraph, flat_states
from .panel_export import check_ids, is_panel, panel_meta, panel_inputs, params, static_inputs, write_series_table
from .parts import Parts, io_meta, rel_diff, state_names
from .pipeline import F64
from .traceable import should_unroll

__all__ = ["forecast_parts", "step_parts", "contexts", "known_of"]


def _common(run) -> dict[str, str]:
    return {"kind": "forecast", "lookback": str(run.data_config.lookback), "targets": json.dumps(list(run.targets)),
            "columns": json.dumps(list(run.columns)), "cell": run.model_config.cell,
            "strategy": run.model_config.strategy, "ensemble": str(run.meta.get("ensemble", 1)),
            "quantiles": json.dumps(list(run.levels))}


def _levels_axis(run) -> list[int]:
    """The forecasts' last axis: ``[Q]`` for a quantile or distribution head's Q levels, else none."""
    return [len(run.levels)] if run.levels else []


def forecast_parts(run, horizon: int | None, series_file: str | None = None) -> Parts:
    """The forecast graph of ``run``; a panel run's (:mod:`.panel_export`) reads each row's scaler as
    the inputs ``shift`` and ``scale`` and writes the per-series table ``series_file`` next to it; a
    run with future covariates reads their values over the forecast's rows as the input ``future``."""
    graph = ForecastGraph(run, horizon)
    H, L, F = graph.horizon, run.data_config.lookback, len(run.columns)
    # a direct model forecasting beyond its trained horizon slides a window of the traced length
    dynamic = not should_unroll(run.model) and (run.recursive or H <= run.model.horizon)
    panel = is_panel(run)
    inputs = [{"name": "context", "shape": ["batch", "time" if dynamic else L, F], "dtype": "float64",
               "columns": list(run.columns), "units": "data"}, *(panel_inputs(run) if panel else []),
              *_future_inputs(run, graph), *_calendar_inputs(run, graph), *(static_inputs(run) if panel else []),
              *_noise_inputs(run, graph)]
    outputs = [{"name": "forecast", "shape": ["batch", H, len(run.targets), *_levels_axis(run)], "dtype": "float64",
                "columns": list(run.targets), "units": "data"}]
    in_names = [i["name"] for i in inputs]
    names = {"input_names": in_names, "output_names": ["forecast"],
             "dynamic_axes": {"context": {0: "batch", **({1: "time"} if dynamic else {})}, "forecast": {0: "batch"},
                              **{n: {0: "batch"} for n in in_names[1:]}}}
    meta = {**_common(run), "graph": "forecast", "horizon": str(H), "time_axis": "dynamic" if dynamic else "fixed",
            "units": "data", **io_meta(inputs, outputs), **(panel_meta(run, series_file) if panel else {}),
            **(_future_meta(run, graph) if graph.future_rows else {}),
            **(_calendar_meta(run) if graph.n_calendar else {}),
            **({"samples": str(graph.samples), "sample_seed": ",".join(map(str, _sample_seeds(run)))}
               if graph.samples else {})}
    ids = check_ids(run) if panel else None

    def check(session) -> float:
        feeds = _feeds(run, 3, 1, ids, graph)
        x, calendar = feeds["context"], feeds.get("calendar")
        if panel:
            ref = run.predict_contexts(x, ids, H, all_levels=True, future=feeds.get("future"), calendar=calendar)
        else:
            ref = run.predict_contexts(x, H, known_of(run, x, feeds.get("future"), calendar), all_levels=True)
        return rel_diff(session.run(None, feeds)[0], ref)
    example = tuple(torch.from_numpy(a) for a in _feeds(run, 2, 0, None if ids is None else ids[:2], graph).values())
    return Parts(graph, example, names, meta, check, _dtype(run.model),
                 f"rnnkit {run.model_config.cell} {'global ' if panel else ''}forecaster "
                 f"({run.model_config.strategy}{', future covariates' if run.data_config.future_covariates else ''}"
                 f"{', calendar features' if graph.n_calendar else ''}{', static features' if graph.n_static else ''}"
                 f"{', sampled paths' if graph.samples else ''}"
                 "), forecast graph",
                 {series_file: write_series_table(run)} if panel else {})


def _noise_inputs(run, graph: ForecastGraph) -> list[dict]:
    """The metadata entry of the graph's ``noise`` input: a recursive normal head's paths' standard normal
    draws (none for any other head)."""
    if not graph.samples:
        return []
    M, seeds = graph.noise_members, _sample_seeds(run)
    if M:  # an ensemble's: every member's draws, member k's at [:, k]
        rows = (f"member k, path s, forecast step h: the draw that makes step h of member k's path s (mean + scale "
                f"x draw); rnnkit draws member k's from a generator seeded with its sample_seed "
                f"({', '.join(map(str, seeds))})")
    else:
        rows = (f"path s, forecast step h: the draw that makes step h of path s (mean + scale x draw); rnnkit draws "
                f"them from a generator seeded with sample_seed {seeds[0]}")
    return [{"name": "noise", "shape": ["batch", *([M] if M else []), graph.samples, graph.horizon, len(run.targets)],
             "dtype": "float64", "columns": list(run.targets), "units": "standard normal draws", "rows": rows}]


def _sample_seeds(run) -> list[int]:
    """The seed of each sampling model's draws: the run's model, or each member of its ensemble."""
    return [int(m.sample_seed) for m in getattr(run.model, "members", [run.model])]


def _future_inputs(run, graph: ForecastGraph) -> list[dict]:
    """The metadata entry of the graph's ``future`` input (none for a run without future covariates)."""
    if not run.data_config.future_covariates:
        return []
    names = list(run.data_config.future_covariates)
    return [{"name": "future", "shape": ["batch", graph.future_rows, len(names)], "dtype": "float64",
             "columns": names, "units": "data", "rows": "the forecast's, after the context's last"}]


def _calendar_inputs(run, graph: ForecastGraph) -> list[dict]:
    """The metadata entry of the graph's ``calendar`` input (none for a run without calendar features)."""
    if not graph.n_calendar:
        return []
    return [{"name": "calendar", "shape": ["batch", "time + " + str(graph.future_rows), graph.n_calendar],
             "dtype": "float64", "columns": calendar_names(run), "units": "features",
             "rows": f"the context's, then the {graph.future_rows} forecast rows after it"}]


def calendar_names(run) -> list[str]:
    """The calendar features' names, in the graph's order (those of :func:`~rnnkit.data.calendar.calendar_features`)."""
    return known_names(run.meta["freq"], run.data_config.calendar)


def _calendar_meta(run) -> dict[str, str]:
    """What a graph with calendar features adds to the metadata: their kind, the data's frequency and names."""
    return {"calendar": run.data_config.calendar, "freq": str(run.meta["freq"]),
            "calendar_columns": json.dumps(calendar_names(run))}


def calendar_rows(run, n: int, rows: int, seed: int) -> np.ndarray:
    """Calendar features ``(n, rows, Kc)`` of ``n`` runs of ``rows`` consecutive stamps at the run's
    frequency, each from a different start (the graph's check and example inputs)."""
    freq, kind = run.meta["freq"], run.data_config.calendar
    stamps = pd.date_range(pd.Timestamp("2001-01-01") + pd.Timedelta(days=seed), periods=rows + 7 * n, freq=freq)
    features = calendar_features(stamps, freq, kind)[0]
    return np.stack([features[7 * b:7 * b + rows] for b in range(n)])


def _future_meta(run, graph: ForecastGraph) -> dict[str, str]:
    """What a graph with future covariates adds to the metadata: their names, the rows ``future`` holds
    and the linear effect's slopes (``(K, C)``, scaled units; ``[]``: none)."""
    effect = run.norm.effect if run.norm is not None else ()
    return {"future_covariates": json.dumps(list(run.data_config.future_covariates)),
            "future_rows": str(graph.future_rows), "covariate_effect": json.dumps([list(r) for r in effect])}


def known_of(run, contexts: np.ndarray, future: np.ndarray | None,
             calendar: np.ndarray | None = None) -> np.ndarray | None:
    """rnnkit's known inputs ``(B, L + H', K)`` of raw ``contexts (B, L, F)`` followed by the rows of
    ``future (B, H', K)`` (raw future covariates), scaled with the run's scaler
    (:func:`~rnnkit.tasks.forecast.fitting.window_known_rows`), then the ``calendar (B, L + H', Kc)``
    features of those rows; None without either."""
    parts = [] if future is None else [window_known_rows(run.data_config, run.scaler, contexts, future)]
    parts += [] if calendar is None else [np.asarray(calendar, dtype=np.float64)]
    return np.concatenate(parts, -1) if parts else None


def _feeds(run, batch: int, seed: int, ids: list[str] | None, graph: ForecastGraph) -> dict[str, np.ndarray]:
    """The forecast graph's inputs: ``batch`` random contexts (:func:`contexts`), or for a panel run
    one context of each series ``ids`` with that series' ``shift`` and ``scale``; for a run with
    future covariates, their ``future`` rows (random within the training range too); for a run with
    calendar features, those of consecutive stamps (:func:`calendar_rows`)."""
    future_rows = graph.future_rows if run.data_config.future_covariates else 0
    scalers = None if ids is None else [run.scalers[i] for i in ids]
    n = batch if ids is None else len(ids)
    feeds = {"context": contexts(run, n, seed, scalers=scalers).numpy()}
    if ids is not None:
        feeds["shift"], feeds["scale"] = params(run, ids)
    if future_rows:
        dc = run.data_config
        first = len(dc.targets) + len(dc.covariates)
        ahead = contexts(run, n, seed + 100, length=future_rows, scalers=scalers).numpy()  # (B, H', F)
        feeds["future"] = np.ascontiguousarray(ahead[..., first:first + len(dc.future_covariates)])
    if graph.n_calendar:
        feeds["calendar"] = calendar_rows(run, n, feeds["context"].shape[1] + graph.future_rows, seed)
    if graph.n_static:
        feeds["static"] = run.static_rows(ids)
    if graph.samples:  # the draws rnnkit's own forecast of these n windows makes: the check compares like with like
        feeds["noise"] = normal_draws(run.model, n, graph.horizon).to(F64).numpy()
    return feeds


def step_parts(run, series_file: str | None = None) -> Parts:
    """The streaming step graph of ``run``, in the network's units; for a panel run the rows' scalers
    (which take a row to those units) are the per-series table ``series_file`` written next to it."""
    panel = is_panel(run)
    dc = run.data_config
    named = ", ".join(flag for flag, on in (("--future-covariates", dc.future_covariates),
                                            ("--calendar", dc.calendar != "none"),
                                            ("--static-covariates", dc.static_covariates),
                                            ("--id-embedding", dc.id_embedding)) if on)
    if named and not run.model.recursive:
        raise ConfigError(f"this run reads known inputs ({named}): a direct network's input runs on over the "
                          "horizon with a future flag, which a stream of rows does not give; export its forecast "
                          "graph (without --step)")
    graph = StepGraph(run.model)
    model, dtype = run.model, _dtype(run.model)
    states = flat_states(model.init_state(1))
    dt = str(dtype).replace("torch.", "")
    ins, outs, in_meta, out_meta = state_names(states, dt)
    C, F = model.n_targets, model.input_size
    y_shape = ["batch", C] if model.recursive else ["batch", model.horizon, C, *_levels_axis(run)]
    known = _step_known_names(run) if named else []
    x_t = {"name": "x_t", "shape": ["batch", F], "dtype": dt, "units": "network",
           "columns": list(run.targets) + known if named else list(run.columns)}
    if named:  # a recursive model's step: this row's targets, then the next row's known inputs
        x_t["rows"] = (f"this row's targets, then the next row's {len(known)} known inputs (future covariates scaled "
                       "as the run scales them, calendar features as calendar_features computes them, a series' "
                       "static features), as rnnkit's step reads them")
    inputs = [x_t]
    outputs = [{"name": "y", "shape": y_shape, "dtype": dt, "columns": list(run.targets), "units": "network"}]
    axes = {"x_t": {0: "batch"}, "y": {0: "batch"}, **{n: {1: "batch"} for n in ins + outs}}
    names = {"input_names": ["x_t", *ins], "output_names": ["y", *outs], "dynamic_axes": axes}
    norm, transform = run.norm, run.transform
    meta = {**_common(run), "graph": "step", "horizon": str(1 if model.recursive else model.horizon),
            "units": "network", "time_axis": "one step",
            **(panel_meta(run, series_file) if panel else {"scaler": json.dumps(run.scaler.to_dict())}),
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
                 f"rnnkit {run.model_config.cell} {'global ' if panel else ''}forecaster "
                 f"({run.model_config.strategy}), streaming step graph",
                 {series_file: write_series_table(run)} if panel else {})


def _step_known_names(run) -> list[str]:
    """The known inputs a recursive network reads per step after the targets, in its order: the future
    covariates, the calendar features, then a panel series' static features (and id one-hot)."""
    names = known_names(run.meta.get("freq"), run.data_config.calendar, run.data_config.future_covariates)
    statics = getattr(run, "statics", None)
    return names + (list(statics.names) if statics is not None and statics.width else [])


def _dtype(model) -> torch.dtype:
    return next(model.parameters()).dtype


def contexts(run, batch: int, seed: int, length: int | None = None, scalers=None) -> torch.Tensor:
    """``(batch, length, F)`` float64 raw contexts within the training data's range: random in the
    scaler's units, mapped back through the scaler and the target transform (so positive where the
    transform needs it); ``scalers`` (one per row: a panel's series) instead of the run's one."""
    L = length or run.data_config.lookback
    scalers = scalers or [run.scaler] * batch
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.05, 0.95, size=(batch, L, len(run.columns)))
    if scalers[0].kind == "standard":
        u = rng.standard_normal(size=u.shape)
    raw = np.stack([s.inverse_transform(r) for s, r in zip(scalers, u)])
    if run.transform is not None:
        C = len(run.targets)
        raw[..., :C] = run.transform.inverse(raw[..., :C])
    return torch.tensor(raw, dtype=F64)
