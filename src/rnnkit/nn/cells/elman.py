"""The Elman (simple) recurrent cell: the hidden state feeds back into itself."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .base import CellSpec, NativeSpec, RecurrentCell, activation, register_cell

__all__ = ["ElmanCell"]


class ElmanCell(RecurrentCell):
    r"""Elman (simple) recurrent cell, torch.nn.RNNCell's twin.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),\qquad y_t = h_t

    Args:
        input_size: features of ``x_t``.
        hidden_size: units ``H``.
        bias: learn ``b_ih`` and ``b_hh``.
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.

    Shape: ``x_t (B, I)``, state ``(h,)`` with ``h (B, H)``; ``weight_ih (H, I)``, ``weight_hh (H, H)``.
    """

    weight_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", *, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias)
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._act = activation(nonlinearity, "nonlinearity")
        self._create_parameters(device, dtype)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, I = self.hidden_size, self.input_size
        shapes = {"weight_ih": (H, I), "weight_hh": (H, H)}
        if self.bias:
            shapes.update(bias_ih=(H,), bias_hh=(H,))
        return shapes

    def step(self, x_t, state, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        (h_prev,) = state
        h = self._act(F.linear(x_t, w_ih, b_ih) + F.linear(h_prev, w_hh, b_hh))
        return h, (h,)

    def torch_mode(self) -> str | None:
        return "rnn_" + self.nonlinearity

    def torch_kwargs(self, layer: bool = True) -> dict | None:
        return {"nonlinearity": self.nonlinearity}

    @classmethod
    def kwargs_from_torch(cls, module: nn.Module) -> dict:
        return {"nonlinearity": module.nonlinearity}


# As the GRU: the fused kernels win up to batch x hidden 4096 per layer, and the trainer at every
# size measured (benchmarks/RESULTS.md, sections "grid" and "engine").
register_cell(CellSpec("elman", ElmanCell, gate_blocks=1, torch_layer=nn.RNN, torch_cell=nn.RNNCell,
                       native=NativeSpec(0, ("weight_ih", "weight_hh", "bias_ih", "bias_hh", None, None),
                                         trainer_limits=(16384, 250.0), layer_max_bh=4096),
                       config_kwargs=("nonlinearity",), aliases=("rnn",)))
