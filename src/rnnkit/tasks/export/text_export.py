"""A character model's ONNX graphs (:class:`~.parts.Parts`): the sequence graph and the step graph.

* **sequence graph** (default): ``ids (batch, time)`` int64 and ``state_in_0 ...`` -> ``logits
  (batch, time, V)`` (the scores of the character after each one) and ``state_out_0 ...``: what
  ``CharLM.forward(ids, state)`` returns. Start from zero states to prime on a text; feed
  ``state_out_k`` back to continue it (one character at a time is ``time = 1``).
* **step graph** (``step=True``): ``ids (batch,)`` and the states -> ``logits (batch, V)`` and the
  states: ``CharLM.step``.

The vocabulary (``vocab``: the characters in id order, ``unknown_id``) is in the metadata; sampling
(temperature, top-k) is the caller's, as it needs a random generator. A character outside the
vocabulary is the id -1 (rnnkit's ``CharVocab.NO_ID``: a zero input), or ``unknown_id`` when the
vocabulary has one; any id below 0 reads as -1 in the graph (rnnkit refuses ids below -1).
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .graphs import flat_states, nest, structure
from .parts import Parts, io_meta, rel_diff, state_names
from .traceable import should_unroll, traceable

__all__ = ["CharGraph", "text_parts"]


class CharGraph(nn.Module):
    """``CharLM.forward(ids, state)`` (or, with ``step``, ``CharLM.step``) with explicit states, on a
    traceable copy of the model; unknown ids (< 0) are zero inputs, as ``CharLM`` reads -1."""

    def __init__(self, model, step: bool = False, unroll: bool | None = None) -> None:
        super().__init__()
        self.model = traceable(model, should_unroll(model) if unroll is None else unroll)
        self.step, self.like = step, structure(model.init_state(1))

    def inputs(self, ids: Tensor) -> Tensor:
        """``CharLM``'s recurrent input for ``ids (...)``: the embedding or one-hot of each id, zero
        for an unknown one (always masked here: a trace cannot branch on whether any id is unknown)."""
        m = self.model
        known = ids >= 0
        safe = torch.where(known, ids, torch.zeros_like(ids))
        x = m.embedding(safe) if m.embedding is not None else F.one_hot(safe, m.vocab_size).to(m.head.weight.dtype)
        return x * known.unsqueeze(-1).to(x.dtype)  # (..., E or V)

    def forward(self, ids: Tensor, *state_in: Tensor):
        state, _ = nest(list(state_in), self.like)
        x = self.inputs(ids)
        out, state = self.model.rnn.step(x, state) if self.step else self.model.rnn(x, state)
        return (self.model.head(out), *flat_states(state))  # (B[, T], V), states


def text_parts(run, step: bool) -> Parts:
    model = run.model.eval()
    dtype = next(model.parameters()).dtype
    graph = CharGraph(model, step)
    states = flat_states(model.init_state(1))
    dt = str(dtype).replace("torch.", "")
    ins, outs, in_meta, out_meta = state_names(states, dt)
    V = model.vocab_size
    dynamic = not should_unroll(model)
    T = 8  # the traced length: the unrolled graph of a Jordan (or float64) model reads exactly this many
    time = "time" if dynamic else T
    ids_shape, logits_shape = (["batch"], ["batch", V]) if step else (["batch", time], ["batch", time, V])
    inputs = [{"name": "ids", "shape": ids_shape, "dtype": "int64"}]
    outputs = [{"name": "logits", "shape": logits_shape, "dtype": dt}]
    seq = {} if step else {1: "time"} if dynamic else {}
    axes = {"ids": {0: "batch", **seq}, "logits": {0: "batch", **seq}, **{n: {1: "batch"} for n in ins + outs}}
    names = {"input_names": ["ids", *ins], "output_names": ["logits", *outs], "dynamic_axes": axes}
    meta = {"kind": "text", "graph": "step" if step else "sequence", "cell": run.model_config.cell,
            "vocab": json.dumps(list(run.vocab.chars)), "unknown_id": str(run.vocab.unknown_id),
            "time_axis": "one step" if step else "dynamic" if dynamic else "fixed",
            **io_meta(inputs + in_meta, outputs + out_meta)}
    rng = np.random.default_rng(0)

    def ids(shape) -> Tensor:
        return torch.from_numpy(rng.integers(-1, V, size=shape))  # -1: a character outside the vocabulary

    def check(session) -> float:
        state = model.init_state(3)
        flat, diff = [s.numpy() for s in flat_states(state)], 0.0
        for _ in range(3):  # chunks (or steps) with the state carried, rnnkit's and the graph's own
            x = ids((3,) if step else (3, T))
            got = session.run(None, {"ids": x.numpy(), **dict(zip(ins, flat))})
            with torch.no_grad():
                y, state = model.step(x, state) if step else model(x, state)
            flat = got[1:]
            diff = max(diff, *(rel_diff(g, r) for g, r in zip(got, [y, *flat_states(state)])))
        return diff
    example = (ids((2,) if step else (2, T)), *[torch.zeros(s.shape[0], 2, s.shape[2], dtype=dtype) for s in states])
    return Parts(graph, example, names, meta, check, dtype,
                 f"rnnkit {run.model_config.cell} character model, {'step' if step else 'sequence'} graph")
