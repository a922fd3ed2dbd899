"""The cell contract every recurrent cell follows, and the helpers the cells share.

Each cell is one file next to this one (elman.py, jordan.py, lstm.py, gru.py, mingru.py), its
equations in its docstring; this file holds no gate math. Each cell file ends by registering a
:class:`CellSpec` (:func:`register_cell`): what the rest of rnnkit needs to know about the cell
(its name, gate blocks, torch.nn twins, how the native kernels run it (:class:`NativeSpec`), the
``ModelConfig`` fields it takes) is declared there, once, and read through :func:`cell_spec` /
:func:`spec_of` instead of type switches spread over the package. What depends on a cell's
settings (torch's name for it, its torch.nn twin's arguments) is a method of the cell class.

Every cell follows one contract, the Keras one::

    y_t, state_t = cell(x_t, state_{t-1})

where ``state`` is a tuple of tensors (``(h,)`` for Elman and GRU, ``(h, c)`` for LSTM, ``(y,)``
for Jordan) and ``y_t`` is what the cell emits at step t (the next layer's input). The math is
written once, in :meth:`RecurrentCell.step`, which takes the weights as arguments; ``forward``
calls it with the cell's own parameters, and :class:`rnnkit.nn.layers.Recurrent` calls it with the
parameters of each layer and direction. Parameter names, shapes, initialisation and gate order are
torch.nn's, so ``state_dict``s move to and from ``torch.nn.LSTMCell`` etc. unchanged.

Shapes: ``x_t`` is ``(B, input_size)`` (or ``(input_size,)`` unbatched, as torch allows);
every state tensor is ``(B, size)``.
"""

from __future__ import annotations

import math
import types
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ...errors import ConfigError, ConfigTypeError, ShapeError
from ..init import keras_init_weights
from .spec import NATIVE_SLOTS, CellSpec, NativeSpec

__all__ = ["RecurrentCell", "State", "check_size", "check_bool", "activation", "ACTIVATIONS", "CellSpec",
           "NativeSpec", "register_cell", "cell_spec", "cell_specs", "cell_names", "spec_of", "NATIVE"]

State = tuple[Tensor, ...]

def identity(v: Tensor) -> Tensor:
    """A named function, not a lambda: cells hold their activations, and pickle needs a name."""
    return v


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": identity,
    "linear": identity,
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


def activation(name: str, what: str) -> Callable[[Tensor], Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown {what} {name!r}; choose one of {', '.join(sorted(ACTIVATIONS))}"
        ) from None


def _no_parameters(cell, device=None, dtype=None) -> None:
    """``_create_parameters`` of :meth:`RecurrentCell.without_parameters`' instances."""


_SIZED: dict[type, type] = {}  # cell class -> its parameterless subclass


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

    # --- torch.nn's view of the cell (override where torch has it) ---------------------------
    def torch_mode(self) -> str | None:
        """torch's name for this cell with these settings, or None where torch has no such cell.

        The name is torch.nn's ``mode`` in lower case and the ``torch._VF`` kernel that runs it
        (``"lstm"``, ``"gru"``, ``"rnn_tanh"``); None for Jordan, minGRU, peephole LSTMs."""
        return None

    def torch_kwargs(self, layer: bool = True) -> dict | None:
        """The settings (beyond sizes and ``bias``) that make this cell's torch.nn twin compute the
        same (the layer, :attr:`CellSpec.torch_layer`, or with ``layer=False`` the cell,
        :attr:`CellSpec.torch_cell`), or None where that twin cannot have them."""
        return {} if self.torch_mode() is not None else None

    @classmethod
    def kwargs_from_torch(cls, module: nn.Module) -> dict:
        """This cell's settings read from its torch.nn twin ``module`` (layer or cell): the inverse
        of :meth:`torch_kwargs`."""
        return {}

    @property
    def mode(self) -> str:
        """torch.nn's mode string (``"LSTM"``, ``"GRU"``, ``"RNN_TANH"``) where torch has the cell,
        else the cell's registered name in capitals (``"JORDAN"``, ``"MINGRU"``)."""
        torch_mode = self.torch_mode()
        if torch_mode is not None:
            return torch_mode.upper()
        spec = spec_of(type(self))
        return (spec.name if spec is not None else type(self).__name__).upper()

    @classmethod
    def without_parameters(cls, *args, **kwargs) -> "RecurrentCell":
        """An instance with these settings (checked as usual) but no parameters: its
        :meth:`parameter_shapes`, ``output_size`` and ``state_sizes`` answer what a real one would
        have, for sizing a model before allocating it (``hidden_size=10**9`` included); it cannot
        run. Nothing is allocated and no random number is drawn."""
        sized = _SIZED.get(cls)
        if sized is None:
            sized = _SIZED[cls] = type(cls.__name__, (cls,), {"_create_parameters": _no_parameters,
                                                              "__module__": cls.__module__,
                                                              "__qualname__": cls.__qualname__ + ".sized"})
        return sized(*args, **kwargs)

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
            spec = spec_of(type(self))
            if spec is None:  # the gate blocks would be a guess, and a wrong one goes unnoticed
                raise ConfigError(f"init='keras' initialises each gate block on its own, and "
                                  f"{type(self).__name__} is not registered, so its gate blocks are unknown; "
                                  "register it with rnnkit.nn.cells.register_cell(CellSpec(...)) or use "
                                  "init='torch'")
            keras_init_weights(self, weights, spec.gate_blocks, spec.keras_forget_bias)
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


# --- the cell registry ----------------------------------------------------------------------------

_BY_NAME: dict[str, CellSpec] = {}  # names and aliases
_BY_CLASS: dict[type, CellSpec] = {}
_SPECS: list[CellSpec] = []  # registration order: the order choices are listed in
_NATIVE: dict[type, NativeSpec] = {}
#: cell class -> its :class:`NativeSpec`, for the cells the native kernels have (a live read-only
#: view, looked up by exact type on the kernels' hot paths: one dict lookup)
NATIVE: Mapping[type, NativeSpec] = types.MappingProxyType(_NATIVE)


def _check_native(spec: CellSpec) -> None:
    native = spec.native
    if not isinstance(native, NativeSpec):
        raise ConfigTypeError(f"CellSpec.native must be a NativeSpec or None, got {type(native).__name__}")
    check_size("NativeSpec.code", native.code, minimum=0)
    if len(native.weights) != len(NATIVE_SLOTS) or native.weights[0] is None or native.weights[1] is None:
        raise ConfigError(f"NativeSpec.weights names the cell's weights for the slots {', '.join(NATIVE_SLOTS)} "
                          f"(w_ih and w_hh required), got {native.weights!r}")
    unknown = [n for n in native.weights if n is not None and n not in spec.cell.weight_names]
    if unknown:
        raise ConfigError(f"NativeSpec.weights names {', '.join(unknown)}, which {spec.cell.__name__} does not have "
                          f"(its weight_names: {', '.join(spec.cell.weight_names)})")
    taken = next((s for s in _SPECS if s.native is not None and s.native.code == native.code
                  and s.name != spec.name), None)
    if taken is not None:
        raise ConfigError(f"the native code {native.code} is already the {taken.name} cell's; each cell has its own "
                          "line in the kernels' table (csrc/cells.h)")


def register_cell(spec: CellSpec) -> CellSpec:
    """Make ``spec.cell`` known under ``spec.name`` (and its aliases); returns ``spec``.

    Registering the same class again replaces its spec (a reloaded module); a name already
    taken by another class is refused, so one cell cannot silently shadow another.
    """
    if not isinstance(spec, CellSpec):
        raise ConfigTypeError(f"register_cell expects a CellSpec, got {type(spec).__name__}")
    if not (isinstance(spec.cell, type) and issubclass(spec.cell, RecurrentCell)):
        raise ConfigError(f"CellSpec.cell must be a RecurrentCell subclass, got {spec.cell!r}")
    names = (spec.name, *spec.aliases)
    for n in names:
        if not isinstance(n, str) or not n or n != n.lower():
            raise ConfigError(f"a cell name must be a non-empty lower-case string, got {n!r}")
        taken = _BY_NAME.get(n)
        if taken is not None and taken.cell.__qualname__ != spec.cell.__qualname__:
            raise ConfigError(f"the cell name {n!r} is already taken by {taken.cell.__name__}; choose another")
    check_size("gate_blocks", spec.gate_blocks)
    if spec.native is not None:
        _check_native(spec)
        spec.native.bind(spec.cell)
    old = next((s for s in _SPECS if s.name == spec.name), None)
    if old is not None:  # the same cell again (a reloaded module): replace it in place
        _SPECS[_SPECS.index(old)] = spec
        _BY_CLASS.pop(old.cell, None)
        _NATIVE.pop(old.cell, None)
    else:
        _SPECS.append(spec)
    _BY_NAME.update(dict.fromkeys(names, spec))
    _BY_CLASS[spec.cell] = spec
    if spec.native is not None:
        _NATIVE[spec.cell] = spec.native
    return spec


def cell_specs() -> tuple[CellSpec, ...]:
    """Every registered cell, in registration order (nn/cells/__init__.py's import order)."""
    return tuple(_SPECS)


def cell_names() -> tuple[str, ...]:
    """The registered cells' names (without aliases), the choices of ``--cell``."""
    return tuple(s.name for s in _SPECS)


def cell_spec(name: str) -> CellSpec:
    """The spec registered under ``name`` (case-insensitive; aliases too), or a ConfigError
    listing the choices."""
    spec = _BY_NAME.get(name.lower()) if isinstance(name, str) else None
    if spec is None:
        raise ConfigError(f"unknown cell {name!r}; choose one of {', '.join(cell_names())}")
    return spec


def spec_of(cell_type: type) -> CellSpec | None:
    """The spec of exactly this class, or None for an unregistered one (a subclass of a
    registered cell is not that cell: it may change the math, so it gets no native kernel and
    no torch.nn twin until it registers itself)."""
    return _BY_CLASS.get(cell_type)
