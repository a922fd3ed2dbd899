"""A sequence classifier's ONNX graph (:class:`~.parts.Parts`): raw series (or character ids) and
their lengths -> class probabilities.

``x (batch, time, F)`` float64 raw values (padding past each length is never read) or, for a string
classifier, ``x (batch, time)`` int64 character ids; ``lengths (batch,)`` int64 -> ``proba (batch, K)``
float64, what :meth:`ClassifierRun.predict_proba <rnnkit.tasks.classify.workflow.ClassifierRun.predict_proba>`
returns: the per-series z-normalisation (``znorm``), the scaler, the frames, the encoder (over each
series' own length: ONNX recurrent nodes take the lengths), the pooling, the softmax, and an
ensemble's mean. The classes (in column order) and the vocabulary are in the metadata.

The time axis is dynamic where every layer runs on torch's kernels (float32 LSTM, GRU, Elman) and
the series are read step by step; otherwise the graph is unrolled over the longest training series,
which the export reads from the run's training data.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import Tensor, nn

from ...errors import DataError
from ...nn.loop import valid_mask
from ..classify.data import pad_series
from ..classify.workflow import model_proba
from .parts import Parts, io_meta, rel_diff
from .pipeline import F64, Scaling
from .traceable import should_unroll, traceable

__all__ = ["ClassifierGraph", "classify_parts"]


class ClassifierGraph(nn.Module):
    """``forward(x, lengths) -> proba``: ``ClassifierRun.predict_proba`` on padded raw inputs."""

    def __init__(self, run, unroll: bool | None = None) -> None:
        super().__init__()
        self.model = traceable(run.model, should_unroll(run.model) if unroll is None else unroll)
        self.text, self.znorm = run.vocab is not None, run.data_config.znorm
        self.scaling = None if self.text else Scaling(run.scaler, 0)
        self.dtype = next(run.model.parameters()).dtype

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if not self.text:
            if self.znorm:  # each series by its own mean and deviation over its own steps (znormalise)
                mask = valid_mask(lengths, x.shape[0], x.shape[1], x.device).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
                n = lengths.to(x.dtype)[:, None, None]  # (B, 1, 1)
                mu = (x * mask).sum(1, keepdim=True) / n  # (B, 1, F)
                sd = ((((x - mu) * mask) ** 2).sum(1, keepdim=True) / n).sqrt()
                x = (x - mu) / torch.where(sd > 1e-12, sd, torch.ones_like(sd))
            x = self.scaling(x).to(self.dtype)
        return self.model.proba(x, lengths)  # (B, K), float64


def _series(run):
    """The run's training series as the graph reads them (padded raw values, or ids) with their
    lengths, and as the model reads them (``run.inputs``), for the traced length and the check."""
    try:
        data = run.load_data(run.data_config.source, require_labels=False)
    except DataError as e:
        raise DataError(f"exporting this classifier reads its training data for the series' length and a check, "
                        f"and that failed: {e}") from None
    model_in = run.inputs(data)
    if data.is_text:
        return model_in[0], model_in[1].numpy(), model_in
    X, lengths = pad_series(list(data.sequences))
    return torch.tensor(X, dtype=F64), lengths, model_in


def classify_parts(run) -> Parts:
    graph = ClassifierGraph(run)
    model, dtype = run.model, next(run.model.parameters()).dtype
    X, lengths, (X_in, L_in) = _series(run)
    dynamic = not should_unroll(model) and model.frame == 1
    T = X.shape[1]
    time = "time" if dynamic else T
    text = run.vocab is not None
    x_meta = ({"name": "x", "shape": ["batch", time], "dtype": "int64", "units": "character ids"} if text else
              {"name": "x", "shape": ["batch", time, X.shape[2]], "dtype": "float64", "units": "data"})
    inputs = [x_meta, {"name": "lengths", "shape": ["batch"], "dtype": "int64"}]
    outputs = [{"name": "proba", "shape": ["batch", len(run.classes)], "dtype": "float64",
                "columns": list(run.classes)}]
    axes = {"x": {0: "batch", **({1: "time"} if dynamic else {})}, "lengths": {0: "batch"}, "proba": {0: "batch"}}
    names = {"input_names": ["x", "lengths"], "output_names": ["proba"], "dynamic_axes": axes}
    meta = {"kind": "classify", "graph": "classify", "cell": run.model_config.cell,
            "classes": json.dumps(list(run.classes)),
            "ensemble": str(run.head_config.ensemble), "pool": run.head_config.pool, "frame": str(model.frame),
            "time_axis": "dynamic" if dynamic else "fixed", "max_length": str(T),
            **({"vocab": json.dumps(list(run.vocab.chars))} if text else {}), **io_meta(inputs, outputs)}
    rows = np.random.default_rng(0).choice(len(X), size=min(len(X), 16), replace=False)

    def check(session) -> float:
        got = session.run(None, {"x": X[rows].numpy(), "lengths": lengths[rows]})[0]
        return rel_diff(got, model_proba(run.model, X_in[rows], L_in[rows]))  # what predict_proba computes
    return Parts(graph, (X[:2], torch.as_tensor(lengths[:2])), names, meta, check, dtype,
                 f"rnnkit {run.model_config.cell} sequence classifier")
