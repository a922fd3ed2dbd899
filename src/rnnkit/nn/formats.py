"""torch.nn's conventions for what a recurrent layer takes and gives back, checked and converted
for :class:`~rnnkit.nn.layers.Recurrent`: input layouts (``(T, B, F)``, ``batch_first``, unbatched
``(T, F)``, ``PackedSequence``), ``lengths``, initial states ``(L*D, B, S)``, the output in the
caller's layout, and the ``dropout`` argument. Each refusal is a :class:`~rnnkit.errors.ShapeError`
(or ``ConfigError``) in torch's words, naming the layer and the shape it expected.

Inside, the layer works on ``(B, T, F)`` and tuples of ``(L*D, B, S)`` states.
"""

from __future__ import annotations

import numbers
from typing import Union

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from ..errors import ConfigError, ConfigTypeError, ShapeError

__all__ = ["StateLike", "check_dropout", "check_input", "check_lengths", "split_state", "format_output",
           "reverse_padded"]

#: a layer's state as torch.nn passes it: one tensor, or a tuple (an LSTM's ``(h, c)``)
StateLike = Union[Tensor, tuple[Tensor, ...]]


def check_dropout(dropout) -> float:
    """``dropout`` as torch.nn checks it: a real number (not a bool, string or tensor) in [0, 1]."""
    try:
        p = float(dropout)
    except (TypeError, ValueError):
        raise (ConfigTypeError if not isinstance(dropout, str) else ConfigError)(
            f"dropout should be a number in range [0, 1], got {dropout!r}") from None
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0.0 <= p <= 1.0:
        raise ConfigError(f"dropout should be a number in range [0, 1] (the probability of zeroing an "
                          f"element between stacked layers), got {dropout!r}")
    return p


def check_input(layer, input: Tensor) -> tuple[Tensor, bool]:
    """``input`` as ``layer`` (batch_first or not) takes it, 3-D; and whether it was unbatched."""
    if not isinstance(input, Tensor):
        raise ShapeError(f"{type(layer).__name__} expected a tensor or PackedSequence, got {type(input).__name__}")
    layout = "(B, T, F)" if layer.batch_first else "(T, B, F)"
    if input.dim() not in (2, 3) or input.shape[-1] != layer.input_size:
        raise ShapeError(f"{type(layer).__name__} expected input of shape {layout} with F={layer.input_size} "
                         f"(or (T, {layer.input_size}) unbatched), got {tuple(input.shape)}")
    if not input.is_floating_point():
        raise ShapeError(f"{type(layer).__name__} expected a floating-point input, got {input.dtype}")
    if input.dim() == 2:
        return input.unsqueeze(0 if layer.batch_first else 1), True
    return input, False


def check_lengths(lengths, B: int, T: int) -> Tensor:
    """``lengths`` as a CPU int64 ``(B,)`` tensor, each in ``[1, T]``."""
    lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
    if lengths.shape != (B,):
        raise ShapeError(f"lengths must have shape ({B},), one per sequence, got {tuple(lengths.shape)}")
    if (lengths < 1).any() or (lengths > T).any():
        raise ShapeError(f"every length must be in [1, {T}] (the padded length), got {lengths.tolist()}")
    return lengths


def split_state(layer, hx: StateLike | None, batch: int, x: Tensor, unbatched: bool) -> tuple[Tensor, ...]:
    """Validate ``hx`` for ``layer`` and input ``x (B, T, I)``; return it as a tuple of
    ``(L*D, B, S)`` tensors (zeros for ``None``)."""
    name, sizes = type(layer).__name__, layer.state_sizes
    LD = layer.num_layers * layer.num_directions
    if hx is None:
        return tuple(torch.zeros(LD, batch, s, device=x.device, dtype=x.dtype) for s in sizes)
    states = (hx,) if isinstance(hx, Tensor) else tuple(hx)
    if len(states) != len(sizes):
        expected = ", ".join(f"({LD}, {batch}, {size})" for size in sizes)
        got = ", ".join(str(tuple(s.shape)) if isinstance(s, Tensor) else type(s).__name__ for s in states)
        raise ShapeError(f"{name} expected a state of {len(sizes)} tensor(s) of shapes {expected}, got "
                         f"{len(states)}: {got}")
    if unbatched:  # (L*D, S) -> (L*D, 1, S); torch, too, requires a 2-D state here
        for s, size in zip(states, sizes):
            if s.dim() != 2:
                raise ShapeError(f"{name} with unbatched (T, {layer.input_size}) input expected an initial state "
                                 f"of shape ({LD}, {size}), got {tuple(s.shape)}")
        states = tuple(s.unsqueeze(1) for s in states)
    for s, size in zip(states, sizes):
        if tuple(s.shape) != (LD, batch, size):
            raise ShapeError(f"{name} expected initial state of shape ({LD}, {batch}, {size}), got {tuple(s.shape)}")
        if s.dtype != x.dtype:
            raise ShapeError(f"initial state has dtype {s.dtype} but the input is {x.dtype}")
        if s.device != x.device:
            raise ShapeError(f"initial state is on {s.device} but the input is on {x.device}; move one of them")
    return states


def format_output(layer, out: Tensor, states: tuple[Tensor, ...], packed_in: PackedSequence | None,
                  lengths: Tensor | None, unbatched: bool):
    """``(output, h_n)`` in the caller's format: ``out (B, T, H)`` packed like ``packed_in``,
    unbatched, or time-major; ``h_n`` one tensor or the tuple of states."""
    if packed_in is not None:
        idx = packed_in.sorted_indices
        out_s = out if idx is None else out.index_select(0, idx.to(out.device))
        len_s = lengths if idx is None else lengths.index_select(0, idx.cpu())
        data = pack_padded_sequence(out_s, len_s, batch_first=True, enforce_sorted=True).data
        out = PackedSequence(data, packed_in.batch_sizes, packed_in.sorted_indices, packed_in.unsorted_indices)
    elif unbatched:
        out = out.squeeze(0)  # (1, T, H) -> (T, H)
        states = tuple(s.squeeze(1) for s in states)
    elif not layer.batch_first:
        # (B, T, H) -> (T, B, H), contiguous as torch.nn's: user code calls out.view(T, -1)
        out = out.transpose(0, 1).contiguous()
    return out, (states[0] if len(states) == 1 else states)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of ``x (B, T, F)`` within its own length; padding stays in place."""
    if lengths is None:
        return x.flip(1)
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).expand(B, T)  # (B, T)
    n = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    idx = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))
