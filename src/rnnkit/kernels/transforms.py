"""The native kernels under torch's program transforms: when they must not run, and a backward
that is itself differentiable.

The kernels read and write raw memory outside torch's operations, so tracing (``torch.jit.trace``),
compiling (``torch.compile``, ``torch.export``), functorch transforms and dispatch modes cannot
see them. :func:`blocked_reason` says when one of those is active (the dispatch then picks
another backend); :func:`grads_by_recompute` is the fused Functions' backward when autograd
records the backward itself or hands it batched gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..nn.cells.base import RecurrentCell
from ..nn.loop import run_direction, valid_mask

__all__ = ["blocked_reason", "FUNCTORCH", "is_plain", "grads_by_recompute", "no_memory"]

_IS_COMPILING = torch.compiler.is_compiling  # dynamo knows the function itself, under any name
_IS_TRACING = torch._C._is_tracing
_FUNCTORCH_LEVEL = torch._C._functorch.peek_interpreter_stack
_DISPATCH_MODES = torch._C._len_torch_dispatch_stack
_HAS_STORAGE = torch._C._has_storage
_PLAIN = (Tensor, torch.nn.Parameter)

FUNCTORCH = "a torch.func transform (vmap, grad, jacrev, jacfwd, ...)"


def blocked_reason(x: Tensor) -> str | None:
    """Why the native kernels must not run on ``x`` now (None: they may).

    The kernels read and write raw memory through pointers, outside torch's dispatcher, so
    nothing that records or transforms torch operations sees them: ``torch.jit.trace`` would
    record an opaque Python call (frozen arguments, no saving), ``torch.compile`` and
    ``torch.export`` trace with fake tensors that have no memory, functorch transforms (vmap,
    grad, jacrev, jacfwd) wrap their tensors, and dispatch modes (FakeTensorMode,
    FlopCounterMode, ...) would miss the work.
    About 0.2 us: the cheapest questions torch can answer (measured ~1% of a small layer's
    forward, ~7% of its in-place streaming step)."""
    if _IS_COMPILING():  # first: dynamo answers it at trace time, and would stumble on the others
        return "torch.compile/torch.export"
    if _IS_TRACING():
        return "torch.jit.trace"
    if _FUNCTORCH_LEVEL() is not None:
        return FUNCTORCH
    if _DISPATCH_MODES():
        return "a TorchDispatchMode (FakeTensorMode, ...)"
    if type(x) not in _PLAIN:
        return f"a tensor subclass ({type(x).__name__})"
    return None


def is_plain(t: Tensor | None) -> bool:
    """Whether ``t`` is None or an ordinary tensor with memory (not batched, wrapped or fake)."""
    return t is None or (type(t) in _PLAIN and _HAS_STORAGE(t))


def no_memory() -> RuntimeError:
    """The last line of defence: fake and meta tensors report a null data pointer (FakeTensor
    only warns), which a kernel would write through. The layers' dispatch never gets here."""
    return RuntimeError("rnnkit's native kernels got a tensor without memory (a fake or meta tensor, e.g. under "
                        "FakeTensorMode or torch.export); run the layer with backend='auto' or 'torch' there")


def grads_by_recompute(ctx, first: int, cell: RecurrentCell, lengths: Tensor | None, lead: bool,
                       inputs: tuple, grads: tuple) -> tuple:
    """The gradients for ``inputs = (x, s0, c0, *w)`` of one fused layer and direction, by
    differentiating the reference loop (``cells.py``'s step, torch operations) instead of the
    native BPTT. Autograd calls a backward this way when it records the backward itself
    (``create_graph=True``: double backward, hvp, gradgradcheck) or hands it batched or wrapped
    gradients the kernels cannot read (``jacobian(vectorize=True)``); the gradients are then
    themselves differentiable and batchable, at the reference loop's speed. ``first`` is where
    ``x`` sits among the Function's inputs; ``lead``: states are ``(1, B, S)``, else ``(B, S)``."""
    x, s0, c0 = inputs[:3]
    need = ctx.needs_input_grad[first:]
    wanted = [i for i, t in enumerate(inputs) if t is not None and need[i]]
    result: list[Tensor | None] = [None] * len(inputs)
    if not wanted:
        return tuple(result)
    B, T, _ = x.shape
    with torch.enable_grad():
        state = tuple(x.new_zeros(B, n) if s is None else (s[0] if lead else s)  # (1, B, S) -> (B, S)
                      for s, n in zip((s0, c0), cell.state_sizes))
        mask = None if lengths is None else valid_mask(lengths, B, T, x.device)  # (B, T)
        out, new = run_direction(cell, list(inputs[3:]), x, state, mask)
    outs, douts = [out], [grads[0]]
    for s, g in zip(new, grads[1:]):
        if g is not None:  # the state's gradient, not the state, reshaped: (1, B, S) -> (B, S); under
            outs.append(s)  # jacobian(vectorize=True)'s vmap a view of ``s`` would lose its grad_fn
            douts.append(g[0] if lead else g)
    got = torch.autograd.grad(outs, [inputs[i] for i in wanted], douts, create_graph=torch.is_grad_enabled(),
                              allow_unused=True)
    for i, g in zip(wanted, got):
        result[i] = g
    return tuple(result)
