"""The Jordan recurrent cell: the previous *output* feeds back (no torch.nn twin)."""

from __future__ import annotations

import torch.nn.functional as F

from ...errors import ConfigError
from .base import CellSpec, NativeSpec, RecurrentCell, activation, check_size, register_cell

__all__ = ["JordanCell"]


class JordanCell(RecurrentCell):
    r"""Jordan recurrent cell: the recurrent input is the previous *output*, not the hidden state.

    .. math::
        h_t = \phi(W_{ih} x_t + W_{yh} y_{t-1} + b_h),\qquad
        y_t = \psi(W_{hy} h_t + b_y)

    The state carried between steps is ``(y,)``; ``h_t`` exists only inside the step. With
    ``output_size = hidden_size`` and ``output_activation="identity"`` stacked Jordan layers pass
    ``y_t`` on as the next layer's input.

    Args:
        input_size: features of ``x_t``.
        hidden_size: hidden units ``H``.
        bias: learn ``b_h`` and ``b_y``.
        output_size: width ``O`` of ``y_t`` (default: ``hidden_size``).
        nonlinearity: ``phi``, ``"tanh"`` (default) or ``"relu"``.
        output_activation: ``psi``: ``"identity"`` (default), ``"tanh"``, ``"sigmoid"`` or ``"relu"``.

    Shape: ``weight_ih (H, I)``, ``weight_yh (H, O)``, ``bias_h (H,)``, ``weight_hy (O, H)``,
    ``bias_y (O,)``; state ``(y,)`` with ``y (B, O)``. Initialisation: uniform
    ``[-1/sqrt(fan), 1/sqrt(fan)]`` with ``fan = H`` for the recurrent part (as torch) and
    ``fan = H`` for the output layer as well.
    """

    weight_names = ("weight_ih", "weight_yh", "bias_h", "weight_hy", "bias_y")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, output_size: int | None = None,
                 nonlinearity: str = "tanh", output_activation: str = "identity", *,
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias)
        self.jordan_output_size = hidden_size if output_size is None else check_size("output_size", output_size)
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.output_activation = output_activation
        self._act = activation(nonlinearity, "nonlinearity")
        self._out_act = activation(output_activation, "output_activation")
        self._create_parameters(device, dtype)

    @property
    def output_size(self) -> int:
        return self.jordan_output_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.jordan_output_size,)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, I, O = self.hidden_size, self.input_size, self.jordan_output_size
        shapes = {"weight_ih": (H, I), "weight_yh": (H, O), "weight_hy": (O, H)}
        if self.bias:
            shapes.update(bias_h=(H,), bias_y=(O,))
        return shapes

    def step(self, x_t, state, weights):
        w_ih, w_yh, b_h, w_hy, b_y = weights
        (y_prev,) = state
        h = self._act(F.linear(x_t, w_ih, b_h) + F.linear(y_prev, w_yh))
        y = self._out_act(F.linear(h, w_hy, b_y))
        return y, (y,)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", output_size={self.jordan_output_size}"


# torch has no Jordan layer, so the fused layer kernels always beat the alternative (the Python
# loop); the trainer's limits are the Elman cell's, whose math it shares but for the output layer.
register_cell(CellSpec("jordan", JordanCell, gate_blocks=1,
                       native=NativeSpec(1, ("weight_ih", "weight_yh", "bias_h", None, "weight_hy", "bias_y"),
                                         trainer_limits=(16384, 250.0)),
                       config_kwargs=("nonlinearity", "output_activation", "output_size")))
