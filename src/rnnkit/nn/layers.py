"""The recurrent layer: one generic time loop for any cell (the torch.nn drop-ins build on it).

:class:`Recurrent` runs any :class:`~rnnkit.nn.cells.RecurrentCell` over a sequence: stacked layers,
both directions, dropout between layers, variable lengths, an initial state in and the final state
out. It holds no gate math; each step calls ``cell.step``. Its parameters carry torch.nn's flat
names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), so the drop-ins ``RNN``, ``LSTM`` and
``GRU`` share ``state_dict``s with ``torch.nn.RNN/LSTM/GRU`` key for key.

``backend`` chooses how the loop runs, never what it computes:

- ``"reference"``: the Python loop over ``cells.py`` (readable, any cell, the ground truth);
- ``"torch"``: torch's native kernels (oneDNN on CPU, cuDNN on GPU) on the same parameters;
  Elman, LSTM and GRU only;
- ``"auto"`` (default): the fastest backend that supports the configuration.

It carries the surface code written for torch.nn reads (``mode``, ``proj_size``,
``_flat_weights``, ``_flat_weights_names``, ``_all_weights``, ``all_weights``,
``flatten_parameters()``, torch's ``repr``); the drop-in classes :class:`~rnnkit.nn.dropin.RNN`,
:class:`~rnnkit.nn.dropin.LSTM`, :class:`~rnnkit.nn.dropin.GRU` live in :mod:`rnnkit.nn.dropin`,
and torch.nn's input and output conventions (layouts, lengths, states) in :mod:`rnnkit.nn.formats`.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..errors import ConfigError, ShapeError
from ..kernels import dispatch
from ..kernels import fused as fused_kernels
from ..kernels import stream as stream_kernels
from .cells import RecurrentCell, cell_spec, check_bool, check_size
from .formats import StateLike, check_dropout, check_input, check_lengths, format_output, reverse_padded, split_state
from .loop import run_direction, valid_mask

__all__ = ["Recurrent", "BACKENDS", "StateLike"]

BACKENDS = ("auto", "reference", "torch", "fused")


def _cell_class(cell: str | type[RecurrentCell]) -> type[RecurrentCell]:
    if isinstance(cell, str):
        return cell_spec(cell).cell  # the registry: every cell file registers its CellSpec
    if isinstance(cell, type) and issubclass(cell, RecurrentCell):
        return cell
    raise ConfigError(f"cell must be a name or a RecurrentCell subclass, got {cell!r}")


@functools.lru_cache(maxsize=None)
def _cell_defaults(cell_type: type) -> dict:
    """The default of every keyword argument of ``cell_type`` (what ``repr`` leaves out)."""
    params = inspect.signature(cell_type.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


class Recurrent(nn.Module):
    """Any recurrent cell run over time, stacked and optionally bidirectional.

    Args:
        cell: a registered cell's name (``"lstm"``, ``"gru"``, ``"elman"`` (alias ``"rnn"``),
            ``"jordan"``, ``"mingru"``, ...; see :func:`rnnkit.nn.cells.cell_specs`) or a
            :class:`RecurrentCell` subclass.
        input_size: features per time step.
        hidden_size: units per layer and direction.
        num_layers: stacked layers; layer k > 0 reads the outputs of layer k-1.
        bias: learn biases.
        batch_first: inputs and outputs are ``(B, T, F)`` instead of ``(T, B, F)``.
        dropout: dropout on the outputs of every layer but the last, while training.
        bidirectional: also run each layer backwards and concatenate both outputs.
        backend: ``"auto"``, ``"reference"`` or ``"torch"`` (see the module docstring).
        init: ``"torch"`` (default, torch.nn's uniform) or ``"keras"`` (see ``keras_init_``).
        **cell_kwargs: passed to the cell (``nonlinearity``, ``proj_size``, ``output_size``, ...).

    ``forward(input, hx=None, lengths=None) -> (output, h_n)``. ``input`` is ``(T, B, I)``
    (``(B, T, I)`` if ``batch_first``), ``(T, I)`` unbatched, or a ``PackedSequence``.
    ``hx``/``h_n`` is a tensor ``(L*D, B, S)`` for single-state cells and a tuple ``(h, c)`` for
    LSTM. ``lengths (B,)`` marks variable-length sequences: outputs past a sequence's end are zero
    and ``h_n`` is the state at each sequence's last step, as torch gives for the packed batch; the
    output keeps the input's length T even when every length is shorter (torch's
    ``pad_packed_sequence(..., total_length=T)``). A ``PackedSequence`` gives torch's
    ``PackedSequence`` back (same ``batch_sizes`` and order).
    """

    def __init__(self, cell: str | type[RecurrentCell], input_size: int, hidden_size: int,
                 num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, backend: str = "auto",
                 init: str = "torch", device=None, dtype=None, **cell_kwargs) -> None:
        super().__init__()
        cell_cls = _cell_class(cell)
        check_size("num_layers", num_layers)
        for name, flag in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            check_bool(name, flag)
        dropout = check_dropout(dropout)
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout acts between stacked layers; with num_layers=1 it does nothing",
                          stacklevel=2)
        self.cell_type = cell_cls
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional = bidirectional
        self.proj_size = cell_kwargs.get("proj_size", 0)  # torch.nn.RNNBase has it on every layer
        self.backend = backend
        self.cell_kwargs = dict(cell_kwargs)
        self._cells: list[RecurrentCell] = []  # math only; their weights live on this module
        self._names: list[list[str]] = []  # per (layer, direction): this module's weight names
        self._all_weights: list[list[str]] = []  # the same without absent (None) weights, as torch.nn
        D = self.num_directions
        layer_in = input_size
        for layer in range(num_layers):
            for d in range(D):
                c = cell_cls(layer_in, hidden_size, bias, device=device, dtype=dtype, **cell_kwargs)
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                names = []
                for name, p in zip(c.weight_names, c.weights()):
                    names.append(name + suffix)
                    self.register_parameter(name + suffix, p)
                self._all_weights.append([n for n, p in zip(names, c.weights()) if p is not None])
                c._parameters.clear()  # one owner per tensor: this layer
                self._cells.append(c)
                self._names.append(names)
                if init != "torch":
                    c.init_weights_(self._weights(len(self._cells) - 1), init)
            layer_in = D * c.output_size
        self.output_size = c.output_size
        self.state_sizes = c.state_sizes

    # --- structure -------------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _weights(self, k: int) -> list[Tensor | None]:
        """The weights of layer-direction ``k``, read afresh on every call (never cached), so
        parametrizations (``weight_norm``, ``spectral_norm``, ``register_parametrization``) and
        pruning, which replace a parameter by a computed attribute, are seen on every forward."""
        params = self._parameters  # direct dict access: Module.__getattr__ is slow on hot paths
        try:
            return [params[n] for n in self._names[k]]
        except KeyError:  # a parametrized or pruned weight lives outside _parameters
            return [getattr(self, n) for n in self._names[k]]

    # torch.nn.RNNBase's introspection surface, for code written against torch.nn's layers
    @property
    def _flat_weights_names(self) -> list[str]:
        return [n for names in self._all_weights for n in names]

    @property
    def _flat_weights(self) -> list[Tensor]:
        """Every weight in torch's order, read through the module (parametrizations included)."""
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """The weights of each layer and direction, as ``torch.nn.RNNBase.all_weights``."""
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    @property
    def mode(self) -> str:
        """torch.nn's mode string (``"LSTM"``, ``"GRU"``, ``"RNN_TANH"``, ``"RNN_RELU"``); rnnkit's
        own cells: their name (``"JORDAN"``, ``"LSTM_PEEPHOLE"``); see
        :attr:`RecurrentCell.mode <rnnkit.nn.cells.RecurrentCell.mode>`."""
        return self._cells[0].mode

    def cells_and_weights(self) -> list[tuple[RecurrentCell, list[Tensor | None]]]:
        """``(cell, weights)`` for every layer and direction, in torch's order."""
        return [(c, self._weights(k)) for k, c in enumerate(self._cells)]

    # the view rnnkit.kernels reads (they never touch the layer's private attributes)
    @property
    def cells(self) -> tuple[RecurrentCell, ...]:
        """The cell (math only; its weights live on this module) of every layer and direction."""
        return tuple(self._cells)

    def weights_of(self, k: int) -> list[Tensor | None]:
        """The weights of layer-direction ``k``, read afresh (parametrizations and pruning included)."""
        return self._weights(k)

    def weights_are_parameters(self) -> bool:
        """Whether every weight is a plain parameter (none is computed by a parametrization or pruning)."""
        return all(n in self._parameters for names in self._names for n in names)

    def reset_parameters(self, init: str = "torch") -> None:
        for c, w in self.cells_and_weights():
            c.init_weights_(w, init)

    def flatten_parameters(self) -> None:
        """Accepted for drop-in compatibility with torch.nn (rnnkit needs no flat buffer), and
        the way to make the streaming step re-read the weights: it caches a prepared copy and
        notices every change torch tracks (in-place ops, optimisers, ``load_state_dict``, new
        parameter objects, rnnkit's trainers), but not changes through ``.data``
        (``p.data = w``, ``p.data.copy_(w)``), which torch does not track; call this after those,
        as torch asks for its own cached RNN weights."""
        self.__dict__.pop(stream_kernels.PLANS_KEY, None)  # every thread's plan

    def __getstate__(self) -> dict:
        """What pickle, ``copy.deepcopy`` and ``torch.save`` keep: everything but the streaming
        step's plans (ctypes pointer arrays into this process' memory, which cannot be pickled and
        would point nowhere in a copy); a copy builds its own on its first native step."""
        state = super().__getstate__()
        state.pop(stream_kernels.PLANS_KEY, None)
        return state

    # --- torch tools that look classes up by exact type ------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if name == "qconfig" and "qconfig" not in self.__dict__:  # torch.ao.quantization is at work
            warnings.warn(f"torch.ao.quantization leaves rnnkit.{type(self).__name__} in floating point (it "
                          "swaps only torch.nn's own classes, looked up by exact type); to quantize it, "
                          "convert it first: rnnkit.to_torch(layer)", UserWarning, stacklevel=2)
        super().__setattr__(name, value)

    def __prepare_scriptable__(self):
        """Called by ``torch.jit.script``: refuse clearly (TorchScript cannot compile the backend
        choice, ``lengths=`` or the native kernels), naming what works instead."""
        raise ConfigError(f"torch.jit.script cannot compile rnnkit.{type(self).__name__} (its backend "
                          "choice, lengths= and native kernels are Python); use torch.jit.trace or "
                          "torch.compile, or convert it to torch.nn's own layer with rnnkit.to_torch(layer)")

    def resolved_backend(self, x: Tensor | None = None) -> str:
        """The backend that runs for input ``x (B, T, I)``; see :func:`rnnkit.kernels.dispatch.choose`."""
        return dispatch.choose(self, x)

    def extra_repr(self) -> str:
        """torch.nn.RNNBase's text (``LSTM(3, 4, num_layers=2, batch_first=True)``), then the
        settings torch.nn has no word for (non-default ones only: ``nonlinearity='relu'``,
        ``backend='fused'``, ``peephole=True``, ...); :class:`Recurrent` itself names its cell first."""
        s = f"{self.input_size}, {self.hidden_size}"
        if type(self) is Recurrent:
            s = f"{self.cell_type.__name__}, " + s
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        defaults = _cell_defaults(self.cell_type)
        s += "".join(f", {k}={v!r}" for k, v in self.cell_kwargs.items()
                     if k != "proj_size" and v != defaults.get(k, False))
        return s + ("" if self.backend == "auto" else f", backend={self.backend!r}")

    # --- states ----------------------------------------------------------------------------
    def init_state(self, batch: int | None = None, *, device=None, dtype=None) -> StateLike:
        """Zero initial state in the format ``forward`` takes (``batch=None``: unbatched)."""
        ref = self._weights(0)[0]
        device, dtype = device or ref.device, dtype or ref.dtype
        lead = (self.num_layers * self.num_directions,) + (() if batch is None else (batch,))
        states = tuple(torch.zeros(*lead, s, device=device, dtype=dtype) for s in self.state_sizes)
        return states[0] if len(states) == 1 else states

    def step(self, x_t: Tensor, state: StateLike | None = None) -> tuple[Tensor, StateLike]:
        """One time step for streaming inference: ``x_t (B, I)`` -> ``(y_t (B, D*O), state)``.

        Equal to the matching step of ``forward`` on the whole sequence. The returned tensors are
        new (on the native path several steps' states share one small allocation: ``clone()`` a
        state before ``torch.save``-ing it alone). Threads may stream their own states through
        one layer at once: each thread gets its own native plan (packed weights and scratch).
        """
        if self.bidirectional:
            raise ConfigError("step() runs forward in time; a bidirectional layer needs the whole sequence")
        # under tracing, compiling or a functorch transform the general path below falls back
        fast = None if fused_kernels.blocked_reason(x_t) else stream_kernels.stream(self, x_t, state)
        if fast is not None:
            return fast
        x = x_t.unsqueeze(1) if self.batch_first else x_t.unsqueeze(0)  # (B, I) -> one step
        out, state = self(x, state)
        return (out.squeeze(1) if self.batch_first else out.squeeze(0)), state

    def step_(self, x_t: Tensor, state: StateLike) -> Tensor:
        """In-place streaming step for inference, the fastest way to run a model on a live
        stream: ``state`` (from :meth:`init_state`) is overwritten with the new state and the
        output ``y_t (B, D*O)`` is returned, on the native path as a view into it: copy ``y_t`` if
        you keep it across steps. Keep passing the same state object (do not resize it): its
        checks and pointers are set up once. Equal to :meth:`step`; no autograd.
        """
        if state is None:
            raise ConfigError("step_() updates a state in place; create one with init_state(batch)")
        fast = None if fused_kernels.blocked_reason(x_t) else stream_kernels.stream_inplace(self, x_t, state)
        if fast is not None:
            return fast
        with torch.no_grad():  # general path, then copy into the caller's buffers
            y, new = self.step(x_t, state)
            for old, fresh in zip((state,) if isinstance(state, Tensor) else state,
                                  (new,) if isinstance(new, Tensor) else new):
                old.copy_(fresh)
        return y

    # --- forward ---------------------------------------------------------------------------
    def forward(self, input: Tensor | PackedSequence, hx: StateLike | None = None,
                lengths: Tensor | Sequence[int] | None = None):
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ConfigError("pass either a PackedSequence or lengths=, not both")
            x, lengths = pad_packed_sequence(input, batch_first=True)  # (B, T, I), original order
            unbatched = False
        else:
            x, unbatched = check_input(self, input)
            if not self.batch_first:
                x = x.transpose(0, 1)  # (T, B, I) -> (B, T, I)
        B, T = x.shape[:2]
        if lengths is not None:
            lengths = check_lengths(lengths, B, T)
        ref = self._weights(0)[0]
        if x.dtype != ref.dtype:
            raise ShapeError(f"{type(self).__name__} has {ref.dtype} parameters but got "
                             f"{x.dtype} input; convert one of them (module.to(dtype) or x.to(dtype))")
        if x.device != ref.device:  # the native kernels would read another device's memory
            raise ShapeError(f"{type(self).__name__} has its parameters on {ref.device} but got input on "
                             f"{x.device}; move one of them (module.to(x.device) or x.to(device))")
        backend = self.resolved_backend(x)
        # the fused kernels start from zeros themselves: no zero tensors to build and slice
        states = None if hx is None and backend == "fused" else split_state(self, hx, B, x, unbatched)
        if backend == "torch":
            if dispatch.torch_mode(self) is None:
                raise ConfigError(f"backend='torch' does not support {self.cell_type.__name__}; "
                                  "use backend='reference' or 'auto'")
            out, new_states = dispatch.run_torch(self, x, states, lengths)
        else:
            out, new_states = self._forward_layers(x, states, lengths, fused=backend == "fused")
        return format_output(self, out, new_states, input if packed else None, lengths, unbatched)

    def _forward_layers(self, x: Tensor, states: tuple[Tensor, ...], lengths: Tensor | None, fused: bool):
        """Every layer and direction: the reference step loop, or one fused kernel per direction."""
        if fused and lengths is None and len(self._cells) == 1:  # the common case, kept lean
            return fused_kernels.run_layer(self._cells[0], self._weights(0), x, states, None, lead=True)
        D = self.num_directions
        B, T = x.shape[:2]
        mask = None
        if lengths is not None:
            mask = valid_mask(lengths, B, T, x.device)  # (B, T)
            # padding never enters the math: NaN/inf there would poison the gradients (0 * nan)
            x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        finals: list[tuple[Tensor, ...]] = []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                cell, w = self._cells[k], self._weights(k)
                seq = layer_in if d == 0 else reverse_padded(layer_in, lengths)
                state = None if states is None else tuple(s[k] for s in states)
                if fused:
                    out, state = fused_kernels.run_layer(cell, w, seq, state, lengths)
                else:
                    out, state = run_direction(cell, w, seq, state, mask)
                outs.append(out if d == 0 else reverse_padded(out, lengths))
                finals.append(state)
            layer_in = torch.cat(outs, -1) if D == 2 else outs[0]  # (B, T, D*O)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True)
        if len(finals) == 1:  # one layer, one direction: (B, S) -> (1, B, S)
            return layer_in, tuple(f.unsqueeze(0) for f in finals[0])
        new_states = tuple(torch.stack([f[i] for f in finals]) for i in range(len(self.state_sizes)))
        return layer_in, new_states  # (B, T, D*O), each (L*D, B, S)
