"""The gated recurrent unit (torch.nn.GRUCell's twin)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import CellSpec, NativeSpec, RecurrentCell, register_cell

__all__ = ["GRUCell"]


class GRUCell(RecurrentCell):
    r"""Gated recurrent unit, torch.nn.GRUCell's twin (gate order r, z, n).

    .. math::
        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    The reset gate multiplies the hidden product *after* the matmul (and its bias), as torch and
    cuDNN do; the original paper applies it before.

    Shape: ``weight_ih (3H, I)``, ``weight_hh (3H, H)``, biases ``(3H,)``; state ``(h,)``.
    """

    weight_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias)
        self._create_parameters(device, dtype)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, I = self.hidden_size, self.input_size
        shapes = {"weight_ih": (3 * H, I), "weight_hh": (3 * H, H)}
        if self.bias:
            shapes.update(bias_ih=(3 * H,), bias_hh=(3 * H,))
        return shapes

    def step(self, x_t, state, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        (h_prev,) = state
        x_r, x_z, x_n = F.linear(x_t, w_ih, b_ih).chunk(3, -1)  # (B, 3H) -> 3 x (B, H)
        h_r, h_z, h_n = F.linear(h_prev, w_hh, b_hh).chunk(3, -1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h_prev
        return h, (h,)

    def torch_mode(self) -> str | None:
        return "gru"


# torch's GRU is a chain of small operations per step, which the fused kernels beat far further
# than its one-kernel LSTM: layers up to batch x hidden 4096, the trainer at every size measured
# (the limits are the grid's edge; benchmarks/RESULTS.md, sections "grid" and "engine").
register_cell(CellSpec("gru", GRUCell, gate_blocks=3, torch_layer=nn.GRU, torch_cell=nn.GRUCell,
                       native=NativeSpec(3, ("weight_ih", "weight_hh", "bias_ih", "bias_hh", None, None),
                                         trainer_limits=(16384, 700.0), layer_max_bh=4096, hidden_apart=True)))
