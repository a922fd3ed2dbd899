"""Which kernel runs a recurrent layer, and torch's own kernels as a backend.

``choose`` resolves ``backend="auto"`` per configuration; ``run_torch`` runs torch's fused
kernels (``torch._VF``, what torch.nn.RNN/LSTM/GRU call: oneDNN on CPU, cuDNN on GPU) on an
rnnkit layer's parameters.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..errors import ConfigError
from ..nn.cells.base import NATIVE
from . import _native
from . import fused as fused_kernels
from .transforms import FUNCTORCH, blocked_reason

__all__ = ["choose", "fused_pays_off", "torch_mode", "run_torch"]


def choose(layer, x: Tensor | None = None) -> str:
    """The backend that runs for input ``x (B, T, I)`` (``"auto"`` decides per configuration).

    ``"auto"``: the fused kernels on the CPU where they are faster (see :func:`fused_pays_off`:
    every Jordan layer; Elman and GRU up to batch x hidden 4096; LSTM only up to 128, since torch
    runs LSTMs as one oneDNN kernel), torch's kernels otherwise and on GPUs, the reference loop
    for what neither covers. An explicit ``"fused"`` falls back to
    ``"torch"`` (or ``"reference"``) with a one-line warning where the native kernels cannot
    be built. Under tracing, compiling and functorch transforms see :func:`_choose_blocked`.
    """
    torch_or_ref = "torch" if torch_mode(layer) is not None else "reference"
    cell = layer.cells[0]
    blocked = None if x is None else blocked_reason(x)
    if blocked is not None:
        return _choose_blocked(layer, blocked, torch_or_ref)
    if layer.backend == "fused":
        if type(cell) not in NATIVE:  # no NativeSpec in the cell's CellSpec
            raise ConfigError(f"backend='fused' has no native kernel for {type(cell).__name__}; "
                              f"use backend='auto' or '{torch_or_ref}'")
        if x is not None and not fused_kernels.supports(cell, x):
            lacks = fused_kernels.unsupported_settings(type(cell))
            raise ConfigError("backend='fused' runs on the CPU in float32/float64"
                              + (f" without {' or '.join(lacks)}" if lacks else "")
                              + f"; use backend='auto' or '{torch_or_ref}'")
        if not _native.available():
            _native.warn_unavailable()
            return torch_or_ref
        return "fused"
    if layer.backend != "auto":
        return layer.backend
    if x is None or not fused_kernels.supports(cell, x) or not fused_pays_off(layer, x):
        return torch_or_ref
    if not _native.available():
        _native.warn_unavailable()
        return torch_or_ref
    return "fused"


def _choose_blocked(layer, reason: str, torch_or_ref: str) -> str:
    """The backend under ``reason`` (tracing, compiling, a functorch transform, a dispatch mode;
    see :func:`~rnnkit.kernels.transforms.blocked_reason`), where the native kernels cannot run:
    ``auto`` falls back to torch's kernels (the reference loop for cells torch lacks, and under
    functorch transforms) with a one-time warning; an explicit ``fused`` is refused. Under
    ``torch.jit.trace`` the reference loop is refused too: the trace would record one Python
    step per time step of the example and replay exactly that many for every later input,
    silently dropping or inventing steps."""
    name = type(layer).__name__
    if layer.backend == "fused":
        raise ConfigError(f"backend='fused' cannot run under {reason}: the native kernels work outside torch's "
                          f"operations, the only thing it sees; use backend='auto' (which falls back) or "
                          f"'{torch_or_ref}' there")
    # torch has no vmap rule for its RNN kernels (torch.nn.GRU fails under vmap): the reference
    # loop's operations have every functorch rule
    auto = "reference" if reason == FUNCTORCH else torch_or_ref
    backend = auto if layer.backend == "auto" else layer.backend
    if backend == "reference" and torch.jit.is_tracing():
        alt = ("backend='torch' (or 'auto')" if torch_or_ref == "torch" else
               "torch.compile or torch.export (which follow or check the length)")
        raise ConfigError(f"torch.jit.trace cannot record {name}'s reference loop over time: the trace would "
                          f"replay the example's number of steps for every input; use {alt} instead")
    if layer.backend == "auto":
        _warn_once(f"rnnkit: the native kernels cannot run under {reason}; backend='auto' uses the {backend} "
                   f"backend there (the same results; pass backend='{backend}' to say so and silence this)")
    return backend


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """``warnings.warn(message)`` once per process and message, also while dynamo traces: it
    cannot trace ``warnings.warn``, but ``comptime`` runs a function at compile time (the
    function may not close over anything, so it reads ``message`` from this frame)."""
    if torch.compiler.is_compiling():
        from torch._dynamo.comptime import comptime
        comptime(_warn_compiling, lambda: _warn_now(message))  # (torch.export without dynamo: now)
    else:
        _warn_now(message)


def _warn_compiling(ctx) -> None:
    _warn_now(ctx.get_local("message").as_python_constant())


def _warn_now(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=6)


def fused_pays_off(layer, x: Tensor) -> bool:
    """Where the fused kernels beat torch's for this layer and input ``x (B, T, I)``: up to the
    batch x hidden its cell's :attr:`NativeSpec.layer_max_bh <rnnkit.nn.cells.NativeSpec>` says
    (measured by ``make bench``'s grid on a 2-core x86-64 CPU, 1 and 2 threads; see
    benchmarks/RESULTS.md), always where torch has no kernel for the cell (the alternative is the
    Python loop)."""
    if torch_mode(layer) is None:
        return True
    limit = NATIVE[layer.cell_type].layer_max_bh
    return limit is None or x.shape[0] * layer.hidden_size <= limit


def torch_mode(layer) -> str | None:
    """The torch._VF function for this layer's cell with its settings
    (:meth:`~rnnkit.nn.cells.RecurrentCell.torch_mode`), or None (Jordan, peephole LSTMs, minGRU)."""
    return layer.cells[0].torch_mode()


def run_torch(layer, x: Tensor, states: tuple[Tensor, ...], lengths: Tensor | None):
    """torch's fused kernels (``torch._VF``, what torch.nn.RNN itself calls) on our weights."""
    mode = torch_mode(layer)
    fn = getattr(torch._VF, mode)
    flat = [p for k in range(len(layer.cells)) for p in layer.weights_of(k) if p is not None]
    two = len(states) == 2  # torch takes a pair (h, c) as one argument, a single state as a tensor
    hx = states if two else states[0]
    args = (flat, layer.bias, layer.num_layers, layer.dropout, layer.training, layer.bidirectional)
    compiling = torch.compiler.is_compiling()  # dynamo cannot trace warning filters
    with contextlib.nullcontext() if compiling else warnings.catch_warnings():
        if not compiling:
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
        if lengths is None:
            result = fn(x, hx, *args, True)
            out, new = result[0], tuple(result[1:])
        else:
            T = x.shape[1]
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            perm, unperm = packed.sorted_indices, packed.unsorted_indices
            hx = tuple(s.index_select(1, perm.to(s.device)) for s in states)
            result = fn(packed.data, packed.batch_sizes, hx if two else hx[0], *args)
            out_packed = PackedSequence(result[0], packed.batch_sizes, perm, unperm)
            out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=T)
            new = tuple(s.index_select(1, unperm.to(s.device)) for s in result[1:])
    return out, new
