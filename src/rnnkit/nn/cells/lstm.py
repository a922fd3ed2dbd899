"""The long short-term memory cell (torch.nn.LSTMCell's twin, with optional projection and peepholes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .base import CellSpec, NativeSpec, RecurrentCell, check_bool, check_size, register_cell

__all__ = ["LSTMCell"]


class LSTMCell(RecurrentCell):
    r"""Long short-term memory cell, torch.nn.LSTMCell's twin (gate order i, f, g, o).

    .. math::
        \begin{aligned}
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t) \quad (\text{with projection: } h_t = W_{hr}(o_t \odot \tanh(c_t)))
        \end{aligned}

    With ``peephole=True`` the gates also see the cell state (Gers, Schraudolph & Schmidhuber,
    JMLR 3, 2002): ``w_ci * c_{t-1}`` joins the input gate's sum, ``w_cf * c_{t-1}`` the forget
    gate's and ``w_co * c_t`` the output gate's (element-wise, each ``(H,)``). torch has no such
    cell, so these layers run the reference loop.

    Args:
        input_size: features of ``x_t``.
        hidden_size: cell units ``H``.
        bias: learn ``b_ih`` and ``b_hh`` (each ``(4H,)``, stacked i, f, g, o).
        proj_size: if > 0, project ``h`` to this width ``P`` with ``weight_hr (P, H)`` (as torch.nn.LSTM).
        peephole: learn the peephole weights ``weight_ci``, ``weight_cf``, ``weight_co``.

    Shape: ``weight_ih (4H, I)``, ``weight_hh (4H, P or H)``; state ``(h, c)`` with ``h (B, P or H)``,
    ``c (B, H)``.
    """

    weight_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_ci", "weight_cf",
                    "weight_co")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, proj_size: int = 0, *,
                 peephole: bool = False, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias)
        check_size("proj_size", proj_size, minimum=0)
        if proj_size >= hidden_size:
            raise ConfigError(f"proj_size has to be smaller than hidden_size={hidden_size} (or 0 for no "
                              f"projection), got {proj_size}")
        check_bool("peephole", peephole)
        self.proj_size, self.peephole = proj_size, peephole
        self._create_parameters(device, dtype)

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.output_size, self.hidden_size)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, I, P = self.hidden_size, self.input_size, self.output_size
        shapes = {"weight_ih": (4 * H, I), "weight_hh": (4 * H, P)}
        if self.bias:
            shapes.update(bias_ih=(4 * H,), bias_hh=(4 * H,))
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, H)
        if self.peephole:
            shapes.update(weight_ci=(H,), weight_cf=(H,), weight_co=(H,))
        return shapes

    def step(self, x_t, state, weights):
        w_ih, w_hh, b_ih, b_hh, w_hr, w_ci, w_cf, w_co = weights
        h_prev, c_prev = state
        gates = F.linear(x_t, w_ih, b_ih) + F.linear(h_prev, w_hh, b_hh)  # (B, 4H)
        i, f, g, o = gates.chunk(4, -1)
        if w_ci is not None:  # peepholes: the input and forget gates see c_{t-1}
            i, f = i + w_ci * c_prev, f + w_cf * c_prev
        i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
        c = f * c_prev + i * g
        o = torch.sigmoid(o if w_co is None else o + w_co * c)  # the output gate sees c_t
        h = o * torch.tanh(c)
        if w_hr is not None:
            h = F.linear(h, w_hr)  # (B, H) -> (B, P)
        return h, (h, c)

    def torch_mode(self) -> str | None:
        return None if self.peephole else "lstm"  # torch has no peepholes

    def torch_kwargs(self, layer: bool = True) -> dict | None:
        if self.peephole or (self.proj_size and not layer):  # torch.nn.LSTMCell has no projection
            return None
        return {"proj_size": self.proj_size} if layer else {}

    @classmethod
    def kwargs_from_torch(cls, module: nn.Module) -> dict:
        return {"proj_size": getattr(module, "proj_size", 0)}

    @property
    def mode(self) -> str:
        return "LSTM_PEEPHOLE" if self.peephole else "LSTM"

    def extra_repr(self) -> str:
        return (super().extra_repr() + (f", proj_size={self.proj_size}" if self.proj_size else "")
                + (", peephole=True" if self.peephole else ""))


# The fused kernels beat torch's only for tiny LSTMs (torch runs an LSTM as one oneDNN kernel):
# layers up to batch x hidden 128, the trainer up to 4096 and 25 M multiply-adds per batch
# (benchmarks/RESULTS.md, sections "grid" and "engine").
register_cell(CellSpec("lstm", LSTMCell, gate_blocks=4, torch_layer=nn.LSTM, torch_cell=nn.LSTMCell,
                       native=NativeSpec(2, ("weight_ih", "weight_hh", "bias_ih", "bias_hh", None, None),
                                         trainer_limits=(4096, 25.0), layer_max_bh=128, cell_state=True,
                                         unsupported=("proj_size", "peephole")),
                       keras_forget_bias=True, config_kwargs=("peephole",)))
