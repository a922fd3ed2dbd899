"""What an export writes, before it is traced: :class:`Parts` (the graph as a torch module, an example
input, the names of its inputs and outputs, its metadata and how to check it), built per kind of run
(:mod:`.forecast_export`, :mod:`.text_export`) and written by :mod:`.onnx_file`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

__all__ = ["Parts", "rel_diff", "io_meta", "state_names"]


@dataclass
class Parts:
    """One graph to export.

    ``names``: ``input_names``, ``output_names`` and ``dynamic_axes`` for ``torch.onnx.export``;
    ``meta``: the file's metadata (strings); ``check(session)``: the largest relative difference of
    the graph, run in an onnxruntime session, from rnnkit's own numbers; ``dtype``: the network's;
    ``doc``: one line for the file's doc string; ``files``: the files written next to the graph, by
    name, each with its writer (a panel's per-series table), written with it or not at all."""

    graph: nn.Module
    example: tuple
    names: dict[str, Any]
    meta: dict[str, str]
    check: Callable[[Any], float]
    dtype: torch.dtype
    doc: str
    files: dict[str, Callable[[Path], None]] = field(default_factory=dict)


def rel_diff(got, ref) -> float:
    """``max |got - ref|`` relative to ``max |ref|``."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))


def io_meta(inputs: list[dict], outputs: list[dict]) -> dict[str, str]:
    """The ``inputs`` and ``outputs`` metadata entries (JSON lists of name, shape, dtype, ...)."""
    return {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs)}


def state_names(states: list[torch.Tensor], dtype: str) -> tuple[list[str], list[str], list[dict], list[dict]]:
    """Names and metadata entries of explicit state inputs and outputs (``state_in_k``/``state_out_k``,
    each ``(layers, batch, size)``) for a model's flat list of ``states``."""
    ins = [f"state_in_{i}" for i in range(len(states))]
    outs = [f"state_out_{i}" for i in range(len(states))]
    shapes = [[s.shape[0], "batch", s.shape[-1]] for s in states]
    return (ins, outs, [{"name": n, "shape": s, "dtype": dtype} for n, s in zip(ins, shapes)],
            [{"name": n, "shape": s, "dtype": dtype} for n, s in zip(outs, shapes)])
