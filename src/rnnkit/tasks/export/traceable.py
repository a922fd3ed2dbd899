"""A model's copy that a trace records correctly: every recurrent layer on torch's kernels, or unrolled.

The native kernels work outside torch's operations, so a trace (``torch.onnx.export``) cannot see
them; the copy runs each :class:`~rnnkit.nn.layers.Recurrent` layer on ``backend="torch"``
(``torch._VF``, which the exporter writes as ONNX ``LSTM``/``GRU``/``RNN`` nodes that read a sequence
of any length). A cell torch has no kernel for (Jordan, peephole LSTMs, minGRU), and any cell of a
network that is not float32 (onnxruntime runs those ONNX nodes in float32 only), is stepped in torch
operations by :class:`Unrolled`, the reference loop of :func:`rnnkit.nn.loop.run_direction`: its
trace repeats the example's number of steps, so such a graph reads exactly that many (its time axis
is fixed, and onnxruntime refuses another length rather than computing a wrong forecast).

Nothing of the original model is changed: the copy shares no parameters with it.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...kernels.dispatch import torch_mode
from ...nn.formats import StateLike, format_output, reverse_padded, split_state
from ...nn.layers import Recurrent
from ...nn.loop import run_direction, valid_mask
from ..forecast.distribution import t_table

__all__ = ["Unrolled", "traceable", "should_unroll"]


class Unrolled(nn.Module):
    """``layer``'s cells stepped one time step at a time in torch operations (inference: no dropout),
    with the layer's ``forward(x, state, lengths=None)`` and ``step(x_t, state)``; batch first."""

    def __init__(self, layer: Recurrent) -> None:
        super().__init__()
        if not layer.batch_first:
            raise ConfigError("an unrolled layer for export reads (B, T, F) inputs (batch_first=True)")
        self.layer = layer

    @property
    def num_directions(self) -> int:
        return self.layer.num_directions

    @property
    def output_size(self) -> int:
        return self.layer.output_size

    @property
    def bidirectional(self) -> bool:
        return self.layer.bidirectional

    def init_state(self, batch: int = 1) -> StateLike:
        return self.layer.init_state(batch)

    def forward(self, x: Tensor, state: StateLike | None = None, lengths: Tensor | None = None):
        """As :meth:`Recurrent.forward <rnnkit.nn.layers.Recurrent.forward>` on ``x (B, T, I)``: padding
        past ``lengths`` is masked (zero outputs, the state kept), as the reference loop masks it."""
        layer = self.layer
        B, T = x.shape[0], x.shape[1]
        states = split_state(layer, state, B, x, False)  # each (L*D, B, S)
        mask = None
        if lengths is not None:
            mask = valid_mask(lengths, B, T, x.device)  # (B, T)
            x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        D, layer_in, finals = layer.num_directions, x, []
        for n in range(layer.num_layers):
            outs = []
            for d in range(D):
                k = n * D + d
                seq = layer_in if d == 0 else reverse_padded(layer_in, lengths)
                out, final = run_direction(layer.cells[k], layer.weights_of(k), seq, tuple(s[k] for s in states), mask)
                outs.append(out if d == 0 else reverse_padded(out, lengths))
                finals.append(final)
            layer_in = torch.cat(outs, -1) if D == 2 else outs[0]  # (B, T, D*O)
        new = tuple(torch.stack([f[i] for f in finals]) for i in range(len(layer.state_sizes)))  # (L*D, B, S)
        return format_output(layer, layer_in, new, None, None, False)

    def step(self, x_t: Tensor, state: StateLike | None = None) -> tuple[Tensor, StateLike]:
        out, state = self(x_t.unsqueeze(1), state)  # (B, I) -> (B, 1, I)
        return out.squeeze(1), state


def should_unroll(model: nn.Module) -> bool:
    """Whether an ONNX graph of ``model`` unrolls its layers: where a layer's cell has no torch kernel,
    and for a network that is not float32 (onnxruntime runs ONNX's LSTM, GRU and RNN nodes in float32
    only)."""
    layers = [m for m in model.modules() if isinstance(m, Recurrent)]
    return any(torch_mode(m) is None for m in layers) or any(p.dtype != torch.float32 for p in model.parameters())


def traceable(model: nn.Module, unroll: bool = False) -> nn.Module:
    """A copy of ``model`` in evaluation mode whose recurrent layers a trace records correctly (see
    the module docstring): on torch's kernels, or :class:`Unrolled` where a cell has none or
    ``unroll`` asks for it. ``model`` itself is left as it is."""
    twin = copy.deepcopy(model).eval()
    for name, child in list(twin.named_modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, Recurrent):
                if torch_mode(sub) is not None and not unroll:
                    sub.backend = "torch"
                else:
                    setattr(child, attr, Unrolled(sub))
    for module in twin.modules():  # a Student-t head's quantiles in traceable operations (no incomplete beta)
        if hasattr(module, "tabulated_t"):
            module.tabulated_t = True
            if module.distribution == "student_t":  # the table made now: made in a trace, its making is recorded
                t_table(tuple(float(q) for q in module.levels))
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin
