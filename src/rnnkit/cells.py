"""Recurrent cells: one time step each. All of rnnkit's gate math lives in this file.

Every cell follows one contract, the Keras one::

    y_t, state_t = cell(x_t, state_{t-1})

where ``state`` is a tuple of tensors (``(h,)`` for Elman and GRU, ``(h, c)`` for LSTM, ``(y,)``
for Jordan) and ``y_t`` is what the cell emits at step t (the next layer's input). The math is
written once, in :meth:`RecurrentCell.step`, which takes the weights as arguments; ``forward``
calls it with the cell's own parameters, and :class:`rnnkit.layers.Recurrent` calls it with the
parameters of each layer and direction. Parameter names, shapes, initialisation and gate order are
torch.nn's, so ``state_dict``s move to and from ``torch.nn.LSTMCell`` etc. unchanged.

Shapes: ``x_t`` is ``(B, input_size)`` (or ``(input_size,)`` unbatched, as torch allows);
every state tensor is ``(B, size)``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError, ConfigTypeError, ShapeError

__all__ = ["RecurrentCell", "ElmanCell", "JordanCell", "LSTMCell", "GRUCell", "keras_init_"]

State = tuple[Tensor, ...]

def _identity(v: Tensor) -> Tensor:
    """A named function, not a lambda: cells hold their activations, and pickle needs a name."""
    return v


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": _identity,
    "linear": _identity,
}


def check_size(name: str, value, minimum: int = 1) -> int:
    """``value`` as torch.nn checks a size: an ``int`` (TypeError otherwise; rnnkit also refuses
    ``True``/``False``, which torch would take as 1/0), at least ``minimum`` (ValueError)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigTypeError(f"{name} should be of type int, got: {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ConfigError(f"{name} must be {'greater than zero' if minimum == 1 else f'at least {minimum}'}, "
                          f"got {value}")
    return value


def check_bool(name: str, value) -> bool:
    """``value`` as torch.nn checks a flag: exactly ``True`` or ``False`` (``"False"`` is not)."""
    if not isinstance(value, bool):
        raise ConfigTypeError(f"{name} should be of type bool, got: {type(value).__name__} ({value!r}); "
                              "pass True or False")
    return value


def _activation(name: str, what: str) -> Callable[[Tensor], Tensor]:
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown {what} {name!r}; choose one of {', '.join(sorted(_ACTIVATIONS))}"
        ) from None


class RecurrentCell(nn.Module):
    """Base class: parameter bookkeeping, validation and ``init_state`` shared by all cells.

    Subclasses set ``weight_names`` (in the order :meth:`step` takes them), implement
    :meth:`parameter_shapes` and :meth:`step`, and say how large their state and output are.
    """

    #: names of the tensors :meth:`step` takes, torch's names where torch has the cell
    weight_names: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.bias = check_bool("bias", bias)

    # --- what a subclass provides ---------------------------------------------------------
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every weight, by name (biases only when ``bias=True``)."""
        raise NotImplementedError

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Width of each tensor of the state tuple."""
        return (self.hidden_size,)

    @property
    def output_size(self) -> int:
        """Width of ``y_t``, the tensor the cell emits each step."""
        return self.hidden_size

    def step(self, x_t: Tensor, state: State, weights: Sequence[Tensor | None]) -> tuple[Tensor, State]:
        """One time step with explicit ``weights`` (ordered as ``weight_names``)."""
        raise NotImplementedError

    # --- shared machinery ----------------------------------------------------------------------
    def _create_parameters(self, device=None, dtype=None) -> None:
        for name in self.weight_names:
            shape = self.parameter_shapes().get(name)
            if shape is None:
                self.register_parameter(name, None)
            else:
                self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self, init: str = "torch") -> None:
        """Initialise the weights.

        ``"torch"`` (default): every weight and bias uniform in ``[-1/sqrt(H), 1/sqrt(H)]``, exactly
        as torch.nn. ``"keras"``: Glorot-uniform input weights, orthogonal recurrent weights, zero
        biases and (LSTM) forget-gate bias 1, as Keras does; see :func:`keras_init_`.
        """
        self.init_weights_(self.weights(), init)

    def init_weights_(self, weights: Sequence[Tensor | None], init: str = "torch") -> None:
        """Initialise ``weights`` (this cell's, or a layer's copy of them) in place."""
        if init == "torch":
            bound = 1.0 / math.sqrt(self.hidden_size)
            with torch.no_grad():
                for p in weights:
                    if p is not None:
                        p.uniform_(-bound, bound)
        elif init == "keras":
            _keras_init_weights(self, weights)
        else:
            raise ConfigError(f"unknown init {init!r}; choose 'torch' or 'keras'")

    def weights(self) -> list[Tensor | None]:
        """This cell's parameters in the order :meth:`step` takes them."""
        return [getattr(self, n) for n in self.weight_names]

    def init_state(self, batch: int | None = None, *, device=None, dtype=None) -> State:
        """All-zero state for ``batch`` sequences (``None``: unbatched)."""
        ref = next(p for p in self.weights() if p is not None)
        device = device if device is not None else ref.device
        dtype = dtype if dtype is not None else ref.dtype
        lead = () if batch is None else (batch,)
        return tuple(torch.zeros(*lead, s, device=device, dtype=dtype) for s in self.state_sizes)

    def forward(self, x_t: Tensor, state: State | Tensor | None = None) -> tuple[Tensor, State]:
        """Advance one step: ``(B, input_size)`` and the previous state -> ``(y_t, state_t)``."""
        weight = self.weights()[0]
        if x_t.dim() not in (1, 2) or x_t.shape[-1] != self.input_size:
            raise ShapeError(
                f"{type(self).__name__} expected input of shape (B, {self.input_size}) or "
                f"({self.input_size},), got {tuple(x_t.shape)}"
            )
        if x_t.dtype != weight.dtype:
            raise ShapeError(
                f"{type(self).__name__} has {weight.dtype} parameters but got {x_t.dtype} input; "
                f"convert one of them (e.g. cell.to({x_t.dtype}) or x.to({weight.dtype}))"
            )
        unbatched = x_t.dim() == 1
        if unbatched:
            x_t = x_t.unsqueeze(0)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)  # (B, S) already
        else:
            state = (state,) if isinstance(state, Tensor) else tuple(state)
            state = tuple(s.unsqueeze(0) if unbatched else s for s in state)  # (S,) -> (1, S)
        self._check_state(state, x_t.shape[0])
        y, new_state = self.step(x_t, state, self.weights())
        if unbatched:
            return y.squeeze(0), tuple(s.squeeze(0) for s in new_state)
        return y, new_state

    def _check_state(self, state: State, batch: int) -> None:
        expected = tuple((batch, s) for s in self.state_sizes)
        got = tuple(tuple(s.shape) for s in state)
        if got != expected:
            raise ShapeError(f"{type(self).__name__} expected state shapes {expected}, got {got}")

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


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
        self._act = _activation(nonlinearity, "nonlinearity")
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
        self._act = _activation(nonlinearity, "nonlinearity")
        self._out_act = _activation(output_activation, "output_activation")
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

    def extra_repr(self) -> str:
        return (super().extra_repr() + (f", proj_size={self.proj_size}" if self.proj_size else "")
                + (", peephole=True" if self.peephole else ""))


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


# Keras-style initialisation lives in rnnkit.init; re-exported here, where it has always been.
from .init import _keras_init_weights, keras_init_  # noqa: E402  (init imports the cells above)
