"""Writing a run as an ONNX file: ``rnnkit export --format onnx`` and :func:`export_onnx`.

Two graphs can be written for a forecasting run (:mod:`.graphs`, :mod:`.forecast_export`):

* the **forecast graph** (default): ``context (batch, L, F)`` raw context windows, float64, in the
  data's units and columns -> ``forecast (batch, horizon, C)``, float64, in the data's units; what
  :meth:`ForecastRun.predict_contexts <rnnkit.tasks.forecast.workflow.ForecastRun.predict_contexts>`
  returns (a quantile or distribution head: its levels, ``(batch, horizon, C, Q)``, as with
  ``all_levels=True``; the metadata's ``quantiles`` lists them). The batch is dynamic, and so is L
  where every recurrent layer runs on torch's kernels (LSTM, GRU, Elman in float32); a Jordan (or
  peephole, minGRU) graph, and any network in float64 (onnxruntime runs ONNX's recurrent nodes in
  float32 only), is unrolled over the run's lookback.
* the **step graph** (``step=True``): ``x_t (batch, F)`` and ``state_in_0 ...`` -> ``y`` and
  ``state_out_0 ...``: the network's own streaming step (``model.step``) in its units (after the
  scaler and the per-window normalisation, which the metadata describes) and dtype.

A run of one series with future covariates has a forecast graph of two inputs: ``context`` and
``future (batch, H', K)``, the future covariates' raw values of the rows forecast (a direct model's
trained horizon, a recursive one's horizon), scaled into the network's known inputs inside the graph,
the linear covariate effect included (:class:`~.graphs.ForecastGraph`); its step graph is refused.

A panel run's global model (one network over many series, :mod:`.panel_export`) has the same two
graphs; its forecast graph also reads ``shift`` and ``scale (batch, F)``, the scaler of the series
each row belongs to, and the table of every training series' scaler (``<name>.series.csv``) is
written next to the graph, the two files together or not at all.

A classifier's graph (:mod:`.classify_export`) maps raw series and their lengths to class
probabilities; a character model's (:mod:`.text_export`) maps character ids and states to the next
character's logits and states.

The graphs are traced with torch's TorchScript-based exporter (``dynamo=False``): it writes torch's
recurrent kernels as ONNX ``LSTM``/``GRU``/``RNN`` nodes over a sequence of any length and exports
these small models in well under a second. Before the file is written, the graph is run with
onnxruntime (when installed) against rnnkit's own numbers; the largest difference is kept in the
metadata (``checked_max_rel_diff``). The file is written atomically: complete, or not at all.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import warnings
from pathlib import Path

import torch

from ..._version import __version__
from ...errors import ConfigError, RunError
from ...training.atomic import write_file_atomic, write_files_atomic
from .parts import Parts

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


def _parts(run, step: bool, horizon: int | None, path: Path) -> Parts:
    """What to export of ``run`` (a run object or its directory) to ``path``, by its kind."""
    if isinstance(run, (str, os.PathLike)):
        from .. import load_run
        run = load_run(run)
    from ..classify.workflow import ClassifierRun
    from ..forecast.panel_run import PanelRun
    from ..forecast.workflow import ForecastRun
    from ..text.workflow import TextRun
    if horizon is not None and (not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1):
        raise ConfigError(f"horizon must be a positive integer; got {horizon!r}")
    if isinstance(run, (ForecastRun, PanelRun)):
        from .forecast_export import forecast_parts, step_parts
        from .graphs import known_inputs_reason
        from .panel_export import series_file_name
        if step and horizon is not None:
            raise ConfigError("the step graph forecasts what the model's step does; --horizon is for the forecast "
                              "graph")
        series_file = None
        if isinstance(run, PanelRun):
            reason = known_inputs_reason(run, future=True)  # the step graph's known inputs: step_parts refuses
            if reason:
                raise ConfigError(reason)
            if run.per_series_seasons and run.norm.skip == "seasonal":
                raise ConfigError("this run's series have different frequencies and its seasonal skip repeats each "
                                  "series' own season, which the graph's inputs do not say; export covers one season "
                                  "for all (refit with --seasonal-period M, or --skip last)")
            series_file = series_file_name(path)
        return step_parts(run, series_file) if step else forecast_parts(run, horizon, series_file)
    if isinstance(run, TextRun):
        from .text_export import text_parts
        if horizon is not None:
            raise ConfigError("--horizon is for forecasting runs; a character model's graph scores the next "
                              "character")
        return text_parts(run, step)
    if isinstance(run, ClassifierRun):
        from .classify_export import classify_parts
        if step or horizon is not None:
            raise ConfigError("a classifier reads whole series: it has no step graph (--step) and no --horizon")
        return classify_parts(run)
    raise ConfigError(f"rnnkit export writes forecasting runs (of one series or a panel), classifiers and character "
                      f"models; this is a {type(run).__name__}")


def export_onnx(run, path: str | os.PathLike, *, step: bool = False, horizon: int | None = None,
                force: bool = False, check: bool = True) -> Path:
    """Write ``run`` (a :class:`~rnnkit.tasks.forecast.workflow.ForecastRun`, a
    :class:`~rnnkit.tasks.forecast.panel_run.PanelRun`, a classifier's or a
    :class:`~rnnkit.tasks.text.workflow.TextRun`, or a run directory) to the ONNX file ``path``: a
    forecaster's forecast graph, or with ``step=True`` its streaming step graph (see the module
    docstring; a panel run's also writes its per-series table next to ``path``); a character
    model's sequence graph or step graph (:mod:`.text_export`). ``horizon`` (forecast graph) is the
    number of steps the graph forecasts (default: the run's; beyond a direct model's trained horizon
    it feeds its forecasts back, as rnnkit does). An existing ``path`` (or table) is replaced only
    with ``force``. With ``check`` (and onnxruntime installed) the graph is run on random inputs and
    compared with rnnkit's own numbers first.

    A run of one series with future covariates gets a forecast graph that also reads their values over
    the forecast's rows (the input ``future``; a direct model's ``horizon`` at most its trained one).
    Refused: calendar features, a panel's known inputs (future covariates, static covariates, id
    embedding), the step graph of a run with known inputs, a quantile or distribution head's
    ``horizon`` beyond its trained one, and for ``step=True`` ensembles over several lookbacks.
    Returns the path written."""
    onnx = _need_onnx()
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{path} is a directory; pass a file name for --out (such as model.onnx)")
    if path.exists() and not force:
        raise RunError(f"{path} exists; pass --force (force=True) to replace it")
    parts = _parts(run, step, horizon, path)
    files = {path.parent / name: write for name, write in parts.files.items()}
    for other in files:
        if other.is_dir():
            raise RunError(f"{other} is a directory; the export writes a file of that name next to {path.name}: "
                           "pass another --out")
        if other.exists() and not force:
            raise RunError(f"{other} exists (the export writes it next to {path.name}); pass --force (force=True) "
                           "to replace it")
    model = _trace(parts)
    props = {"rnnkit_version": __version__, **parts.meta}
    session = _session(model.SerializeToString()) if check else None
    if session is not None:
        diff = parts.check(session)
        tol = CHECK_TOLERANCE.get(parts.dtype, 1e-4)
        if not diff <= tol:
            raise RunError(f"the exported graph's numbers differ from rnnkit's by {diff:.3g} (relative; more than "
                           f"{tol:g}), so nothing was written; please report this with the run's config.json")
        props["checked_max_rel_diff"] = f"{diff:.3g}"
    model.producer_name, model.producer_version = "rnnkit", __version__
    model.doc_string = parts.doc + "; see metadata_props"
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if files:  # the graph and what it reads (a panel's per-series table): all written, or none
        return write_files_atomic({path: lambda p: Path(p).write_bytes(data), **files})[0]
    return write_file_atomic(path, lambda p: Path(p).write_bytes(data))


def _trace(parts: Parts):
    """The ONNX model of ``parts.graph`` traced on ``parts.example`` (in memory)."""
    import onnx
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), _quiet_stderr():
        warnings.simplefilter("ignore")  # the exporter's deprecation note and tracer warnings on shape checks
        # the TorchScript-based exporter: torch 2.5 and later name it dynamo=False (and default to the other)
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        torch.onnx.export(parts.graph, parts.example, buf, opset_version=OPSET, do_constant_folding=True,
                          **legacy, **parts.names)
    return onnx.load_model_from_string(buf.getvalue())


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what the exporter's C++ code prints on file descriptor 2 (shape-inference notes about
    packed sequences, for a user nothing to act on; the graph is checked afterwards). Errors still
    raise as exceptions."""
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _session(data: bytes):
    """An onnxruntime session of the serialised model (one thread), or None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
