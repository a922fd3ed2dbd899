"""The minimal GRU of Feng et al. (2024): gates from the input only (no torch.nn twin, reference path only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CellSpec, RecurrentCell, register_cell

__all__ = ["MinGRUCell"]


class MinGRUCell(RecurrentCell):
    r"""Minimal GRU (minGRU) of Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We
    Needed?" (2024): the update gate and the candidate state depend on the input only.

    .. math::
        \begin{aligned}
        z_t &= \sigma(W_{iz} x_t + b_{iz}) \\
        \tilde h_t &= W_{ih} x_t + b_{ih} \\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t
        \end{aligned}

    Because neither ``z_t`` nor ``\tilde h_t`` reads ``h_{t-1}``, the paper computes the
    recurrence with a parallel scan; rnnkit runs it step by step like every other cell (the
    reference loop: torch.nn has no such layer and the native kernels do not have its math, so
    ``backend="auto"`` picks the reference loop and ``"torch"``/``"fused"`` refuse it).

    Args:
        input_size: features of ``x_t``.
        hidden_size: units ``H``.
        bias: learn ``b_iz`` and ``b_ih``.

    Shape: ``x_t (B, I)``, state ``(h,)`` with ``h (B, H)``; ``weight_ih (2H, I)`` stacks
    ``W_iz`` and ``W_ih`` (in that order, torch's layout for stacked gates), ``bias_ih (2H,)``;
    there is no ``weight_hh``. Initialisation: torch's rule, uniform ``[-1/sqrt(H), 1/sqrt(H)]``.
    """

    weight_names = ("weight_ih", "bias_ih")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias)
        self._create_parameters(device, dtype)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, I = self.hidden_size, self.input_size
        shapes = {"weight_ih": (2 * H, I)}
        if self.bias:
            shapes["bias_ih"] = (2 * H,)
        return shapes

    def step(self, x_t, state, weights):
        w_ih, b_ih = weights
        (h_prev,) = state
        x_z, h_tilde = F.linear(x_t, w_ih, b_ih).chunk(2, -1)  # (B, 2H) -> 2 x (B, H)
        z = torch.sigmoid(x_z)
        h = (1 - z) * h_prev + z * h_tilde
        return h, (h,)


register_cell(CellSpec("mingru", MinGRUCell, gate_blocks=2))
