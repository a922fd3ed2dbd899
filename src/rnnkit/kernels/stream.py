"""The native streaming step: ``Recurrent.step`` / ``step_`` at one time step, one cheap foreign
call per step for the whole stack (``rk_stream_packed`` in csrc/recurrence_impl.h).

A :class:`StreamPlan` prepares everything once per layer, thread, batch size and dtype (weights
packed into panels, a pointer table, scratch, a packed argument array) and re-checks only what can
change between steps. It returns the same numbers as the layer's forward on a one-step sequence.
"""

from __future__ import annotations

import ctypes
import operator
import threading

import torch
from torch import Tensor

from ..nn.cells import RecurrentCell
from ..nn.cells.base import NATIVE
from . import _native
from .fused import act_code, fold_biases, supports

__all__ = ["StreamPlan", "stream", "stream_inplace", "stream_plan", "PLANS_KEY", "STREAM_POOL_BYTES",
           "STREAM_POOL_MAX"]

_fn = _native.function  # the native function ``name`` for ``dtype``


def _panels_of_transpose(w: Tensor) -> Tensor:
    """``w (N, K)`` packed as the kernels' panels of ``w^T (K, N)`` (see rk_pack_panels)."""
    N, K = w.shape
    w = w.detach().contiguous()
    out = torch.empty(int(_fn("rk_panel_size", w.dtype)(K, N)), dtype=w.dtype)
    _fn("rk_pack_panels", w.dtype)(w.data_ptr(), K, N, 1, out.data_ptr())
    return out


#: the functional streaming step allocates the states of up to STREAM_POOL_MAX steps at once, in
#: at most STREAM_POOL_BYTES (or one step's worth); each returned state shares that allocation
STREAM_POOL_BYTES = 8192
STREAM_POOL_MAX = 32
_VERSION = operator.attrgetter("_version")
_REQUIRES_GRAD = operator.attrgetter("requires_grad")


class StreamPlan:
    """Everything the native streaming step needs, prepared once: weights packed into panels, a pointer
    table, scratch memory and a packed argument array (one cheap foreign call per step).
    :meth:`current` says whether it still matches the layer's weights (tensor identity and
    version counters), batch size and dtype. Changes torch does not track (anything through
    ``.data``) need ``layer.flatten_parameters()``, which drops the plan; the plan's own copies
    and references keep every pointer it holds valid meanwhile.

    The functional step returns new state tensors each step. Allocating them one by one would
    cost more than the step itself for small models, so they come from a pool: one allocation
    holds the outputs of up to 32 steps (8 KiB for small states), cut into views up front, and
    each step takes the next set. Every step still gets memory of its own (the pool is never
    reused), so states kept by the caller, e.g. in a beam search, stay valid.

    A plan serves one thread: its argument array, scratch memory and trusted states are rewritten
    by every step. Each thread streaming through a layer therefore gets a plan of its own
    (:class:`_ThreadPlans`), so threads may stream their own states through one layer at once."""

    def __init__(self, cells: list[RecurrentCell], weights: list[list[Tensor | None]], batch: int) -> None:
        cell = cells[0]
        native = NATIVE[type(cell)]
        code = native.code
        act, out_act = act_code(cell)
        H, S = cell.hidden_size, cell.state_sizes[0]
        # lstm: the state is a pair (s, c), as an LSTM's (the cell_state trait)
        self.B, self.L, self.H, self.S, self.lstm = batch, len(cells), H, S, native.cell_state
        self.watch = tuple(t for w in weights for t in w if t is not None)
        self.versions = list(map(_VERSION, self.watch))
        self.param_objects = tuple(t for w in weights for t in w)  # parameters() order, Nones included
        self.x_shape = torch.Size((batch, cell.input_size))
        self.view = None  # step_: the output view into the trusted state
        # state objects known to be well-formed, with their data pointers when they were checked:
        # the in-place stream's and the last one the functional step made (two slots, so mixing
        # both kinds of step costs nothing). Identity plus unchanged pointers skip the checks.
        self.trusted = self.trusted_made = None
        self.trusted_ptrs = self.made_ptrs = self.seen_ptrs = None
        self.state_shapes = [torch.Size((len(cells), batch, s)) for s in cell.state_sizes]
        self._pool: list[tuple] = []  # (y, s, c, pointers of s and c) of future steps
        with torch.no_grad():
            keep, ptrs = [], []
            for w in weights:
                w_ih, whh, b_x, b_h, why, by = fold_biases(native, list(w))
                layer = [_panels_of_transpose(w_ih), _panels_of_transpose(whh),
                         None if b_x is None else b_x.detach().contiguous(),
                         None if b_h is None else b_h.detach().contiguous(),
                         None if why is None else why.t().contiguous(),
                         None if by is None else by.detach().contiguous()]
                keep += [t for t in layer if t is not None]
                ptrs += [0 if t is None else t.data_ptr() for t in layer]
        ref = weights[0][0]
        self.dtype = ref.dtype
        self._keep = keep  # the pointer table points into these
        self.table = torch.tensor(ptrs, dtype=torch.int64)
        n = int(_fn("rk_stream_work", ref.dtype)(code, batch, H, S))
        self.scratch = torch.empty(n, dtype=ref.dtype)
        self.args = (ctypes.c_int64 * 15)(len(cells), code, act, out_act, batch, cell.input_size, H, S,
                                          self.table.data_ptr(), 0, 0, 0, 0, 0, self.scratch.data_ptr())
        self.fn = _fn("rk_stream_packed", ref.dtype)
        self.inplace_args = (ctypes.c_int64 * 15)(*self.args)

    def pointers(self, state) -> tuple[int, int] | int:
        return (state[0].data_ptr(), state[1].data_ptr()) if self.lstm else state.data_ptr()

    def current(self, parameters: dict, x_t: Tensor, state) -> bool:
        """Whether this plan may run ``x_t``/``state`` now: same parameter objects, unchanged
        (tensor version counters), same batch/dtype, contiguous CPU tensors, no autograd needed.
        Without autograd, a trusted state object whose tensors still point where they did is not
        re-checked (:attr:`seen_ptrs` then holds its pointers, else None)."""
        if type(x_t) is not Tensor or x_t.shape != self.x_shape or x_t.dtype != self.dtype \
                or not x_t.is_cpu or not x_t.is_contiguous():
            return False
        grad = torch.is_grad_enabled()
        states, self.seen_ptrs = (), None
        if state is not None:
            ref = None if grad else self.trusted_ptrs if state is self.trusted else \
                self.made_ptrs if state is self.trusted_made else None
            if ref is not None and ((state[0].data_ptr() == ref[0] and state[1].data_ptr() == ref[1])
                                    if self.lstm else state.data_ptr() == ref):
                self.seen_ptrs = ref
            if self.seen_ptrs is None:
                if self.lstm and (type(state) is not tuple or len(state) != 2):
                    return False
                states = state if self.lstm else (state,)
        for s, shape in zip(states, self.state_shapes):
            if type(s) is not Tensor or s.shape != shape or s.dtype != self.dtype or not s.is_contiguous():
                return False
        if grad and (x_t.requires_grad or any(map(_REQUIRES_GRAD, self.watch))
                     or any(s.requires_grad for s in states)):
            return False
        values = parameters.values()
        if len(values) != len(self.param_objects) or not all(map(operator.is_, values, self.param_objects)):
            return False
        return list(map(_VERSION, self.watch)) == self.versions

    def _refill(self) -> None:
        """Allocate the outputs of the next steps at once, as views (see the class docstring)."""
        L, B, H, S = self.L, self.B, self.H, self.S
        n_s, n_c = L * B * S, (L * B * H if self.lstm else 0)
        k = max(1, min(STREAM_POOL_MAX, STREAM_POOL_BYTES // ((n_s + n_c) * self.scratch.element_size())))
        pool = torch.empty(k, n_s + n_c, dtype=self.dtype)
        s = pool[:, :n_s].view(k, L, B, S)
        cs = pool[:, n_s:].view(k, L, B, H).unbind(0) if self.lstm else (None,) * k
        base, row, size = pool.data_ptr(), (n_s + n_c) * pool.element_size(), n_s * pool.element_size()
        ptrs = [(base + i * row, base + i * row + size) if self.lstm else base + i * row for i in range(k)]
        self._pool = list(zip(s[:, L - 1].unbind(0), s.unbind(0), cs, ptrs))

    def step(self, x_t: Tensor, s_in: Tensor, c_in: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """``x_t (B, I)``, ``s_in (L, B, S)``, ``c_in (L, B, H)`` -> ``(y (B, S), s (L, B, S),
        c (L, B, H) or None)``, new tensors (``y`` is a view of ``s``'s last layer); no autograd.
        The inputs must be contiguous (:meth:`current` checked) and stay alive during the call."""
        try:
            y, s_out, c_out, ptrs = self._pool.pop()
        except IndexError:
            self._refill()
            y, s_out, c_out, ptrs = self._pool.pop()
        a = self.args
        a[9], a[10] = x_t.data_ptr(), s_in.data_ptr()
        if c_out is not None:
            a[11], (a[12], a[13]) = c_in.data_ptr(), ptrs
        else:
            a[12] = ptrs
        self.fn(a)
        self.made_ptrs = ptrs  # the pointers of the state this step returns
        return y, s_out, c_out


#: the key of a layer's :class:`_ThreadPlans` in its ``__dict__`` (left out of pickles and copies)
PLANS_KEY = "_stream_plans"


class _ThreadPlans(threading.local):
    """A layer's stream plans, one per thread: ``.plan`` is the calling thread's (None before its
    first native step). A plan's argument array and scratch are rewritten by every step, so two
    threads sharing one would overwrite each other's pointers mid-call (silent garbage or a
    crash); one each costs a thread-local lookup per step and a copy of the packed weights per
    thread, and a thread's plan goes when the thread ends.

    Pointer tables and ctypes arrays are only valid in this process, so the layer's
    ``__getstate__`` leaves this object out of pickles, ``copy.deepcopy`` and ``torch.save``;
    should it be copied on its own, it copies as an empty one (``__reduce__``)."""

    plan: StreamPlan | None = None

    def __reduce__(self):
        return type(self), ()


def stream_plan(layer) -> StreamPlan | None:
    """The calling thread's stream plan for ``layer``, or None (none yet, or dropped by
    ``flatten_parameters``)."""
    plans = layer.__dict__.get(PLANS_KEY)
    return None if plans is None else plans.plan


def stream(layer, x_t: Tensor, state):
    """The native streaming step, or None where it does not apply (autograd needed, dropout
    in training, not the CPU, unusual shapes, or no native kernels). Kept lean: for small
    models these few lines are most of the per-step cost."""
    plans = layer.__dict__.get(PLANS_KEY)
    plan = None if plans is None else plans.plan
    if plan is None or (layer.training and layer.dropout) or not plan.current(layer._parameters, x_t, state):
        plan = _make_plan(layer, x_t, state)
        if plan is None:
            return None
    if state is None:
        state = layer.init_state(x_t.shape[0], dtype=x_t.dtype)
    if plan.lstm:
        y, s_out, c_out = plan.step(x_t, state[0], state[1])
        new = (s_out, c_out)
    else:
        y, new, _ = plan.step(x_t, state, None)
    plan.trusted_made = new  # plan.step recorded its pointers
    return y, new


def stream_inplace(layer, x_t: Tensor, state):
    """In-place native step: overwrites ``state`` with the new state and returns the output, a
    view into it (cached per state object), or None where the fast path does not apply."""
    plans = layer.__dict__.get(PLANS_KEY)
    plan = None if plans is None else plans.plan
    if plan is None or (layer.training and layer.dropout) or not plan.current(layer._parameters, x_t, state):
        plan = _make_plan(layer, x_t, state)
        if plan is None:
            return None
    a = plan.inplace_args
    if state is not plan.trusted or plan.seen_ptrs is None:  # checked in full by current() above
        ptrs = plan.pointers(state)
        plan.trusted, plan.trusted_ptrs = state, ptrs
        plan.view = (state[0] if plan.lstm else state)[-1]
        a[:] = plan.args  # the state's pointers stay fixed while it is reused: set them once
        if plan.lstm:
            a[10] = a[12] = ptrs[0]
            a[11] = a[13] = ptrs[1]
        else:
            a[10] = a[12] = ptrs
    a[9] = x_t.data_ptr()
    plan.fn(a)  # reads each layer's old state before writing its new one: in place is safe
    return plan.view


def _make_plan(layer, x_t: Tensor, state):
    """Check everything once; the plan then re-checks only what can change between steps."""
    if layer.backend in ("reference", "torch") or layer.bidirectional or (layer.training and layer.dropout):
        return None
    if not layer.weights_are_parameters():
        return None  # parametrized or pruned weights are computed per forward: the general path
    if type(x_t) is not Tensor or x_t.dim() != 2 or x_t.shape[1] != layer.input_size or x_t.device.type != "cpu":
        return None
    if not supports(layer.cells[0], x_t) or layer.weights_of(0)[0].dtype != x_t.dtype:
        return None
    states = () if state is None else (state,) if type(state) is Tensor else tuple(state)
    if state is not None and len(states) != len(layer.state_sizes):
        return None
    for s, size in zip(states, layer.state_sizes):
        if type(s) is not Tensor or s.shape != (layer.num_layers, x_t.shape[0], size) or s.dtype != x_t.dtype:
            return None  # the general path explains the problem
    if torch.is_grad_enabled() and (x_t.requires_grad or any(s.requires_grad for s in states) or any(
            p is not None and p.requires_grad for p in layer._parameters.values())):
        return None  # autograd is needed: the general path (not worth packing a plan to learn that)
    if not _native.available():
        return None
    plan = StreamPlan(layer.cells, [layer.weights_of(k) for k in range(len(layer.cells))], x_t.shape[0])
    if not plan.current(layer._parameters, x_t, state):
        return None  # e.g. autograd is needed: the general path handles it
    plans = layer.__dict__.get(PLANS_KEY)
    if plans is None:  # setdefault: threads making their first plans at once share one _ThreadPlans
        plans = layer.__dict__.setdefault(PLANS_KEY, _ThreadPlans())
    plans.plan = plan
    return plan
