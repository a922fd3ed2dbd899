"""The ``fused`` backend: whole-sequence native kernels behind a torch.autograd.Function.

For each layer and direction, one native call runs the whole layer forward (input projection and
recurrence) and one runs its BPTT with every gradient (``_FusedLayer``). Layers whose buffers
exceed :data:`WHOLE_LAYER_BYTES` keep only the recurrence native and leave the input projection
and the weight gradients to torch's large matrix products (``_FusedSequence``). Either way the
kernels take the same parameters and return the same numbers as ``rnnkit.nn.cells``. The same
kernels' streaming step is :mod:`rnnkit.kernels.stream`.

The code here knows no cell by name: what differs between cells (the kernels' code for it, the
order it gives its weights in, whether its state is a pair, whether its recurrent part stays
apart, an output layer) it reads from the cell's :class:`~rnnkit.nn.cells.NativeSpec`, looked up
by exact type in :data:`NATIVE` (a live read-only view of what the CellSpecs declare; a cell
without one has no native kernel).
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor

from ..nn.cells import NativeSpec, RecurrentCell
from ..nn.cells.base import NATIVE
from . import _native
from .limits import check_c_int  # ctypes would wrap a size past 2^31 - 1 silently
from .transforms import blocked_reason, grads_by_recompute, is_plain, no_memory

__all__ = ["supports", "supports_cell", "blocked_reason", "run_layer", "NATIVE", "act_code", "unsupported_settings",
           "fold_biases", "WHOLE_LAYER_BYTES"]

ACT_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3, "linear": 3}


def act_code(cell: RecurrentCell) -> tuple[int, int]:
    # the instance __dict__, not getattr: a missing attribute costs microseconds in nn.Module
    d = cell.__dict__
    return ACT_CODES[d.get("nonlinearity", "tanh")], ACT_CODES[d.get("output_activation", "identity")]


def supports_cell(cell: RecurrentCell) -> bool:
    """Whether the fused kernels have this cell's math: its CellSpec has a NativeSpec, and none of
    the settings that spec lists as unsupported is set (the LSTM's projection and peepholes)."""
    native = NATIVE.get(type(cell))
    if native is None:
        return False
    d = cell.__dict__  # not getattr: a missing attribute costs microseconds in nn.Module
    for name in native.unsupported:  # a loop, not any(): this runs on every forward
        if d.get(name):
            return False
    return True


def unsupported_settings(cell_type: type) -> tuple[str, ...]:
    """The settings of ``cell_type`` the fused kernels lack (none for a cell they do not have)."""
    native = NATIVE.get(cell_type)
    return () if native is None else native.unsupported


def supports(cell: RecurrentCell, x: Tensor) -> bool:
    """Whether the fused kernels can run this cell on this input (CPU, float32/64)."""
    return supports_cell(cell) and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


_fn = _native.function  # the native function ``name`` for ``dtype``
_SIZES: dict = {}


def _layer_sizes(code: int, dtype: torch.dtype, B: int, T: int, I: int, H: int, S: int) -> tuple[int, int]:
    """(saved, work) buffer sizes of the whole-layer kernels, in elements (cached per shape)."""
    key = (code, dtype, B, T, I, H, S)
    sizes = _SIZES.get(key)
    if sizes is None:
        for what, n in (("batch size", B), ("sequence length", T), ("input size", I), ("hidden size", H),
                        ("state size", S)):
            check_c_int(f"the {what}", n)
        if len(_SIZES) > 4096:
            _SIZES.clear()
        sizes = _SIZES[key] = (int(_fn("rk_layer_saved_size", dtype)(code, B, T, H, S)),
                               int(_fn("rk_layer_work_size", dtype)(code, B, T, I, H, S)))
    return sizes


def fold_biases(native: NativeSpec, w: list[Tensor | None]):
    """One layer's weights ``w`` in the kernels' order, ``(w_ih, whh, b_x, b_h, why, by)``, with
    ``b_x`` the bias folded into the input projection (both biases, unless the recurrent part stays
    apart)."""
    w_ih, whh, b_ih, b_hh, why, by = native.arrange(w)
    if native.folds_biases:  # both biases join the input part
        return w_ih, whh, None if b_ih is None else b_ih + b_hh, None, why, by
    return w_ih, whh, b_ih, b_hh, why, by


#: scratch memory of the whole-layer kernels kept per thread and dtype between calls, up to this
#: size: a fresh multi-megabyte buffer per call costs more in page faults than the kernels' work
SCRATCH_KEEP_BYTES = 32 << 20
_SCRATCH = threading.local()


def _scratch(n: int, dtype: torch.dtype) -> Tensor:
    """A CPU buffer of at least ``n`` elements for one native call on this thread (reused by the
    next call: the kernels use it only while they run, and never call back into Python).

    Only an ordinary CPU tensor with memory is kept: one made under a fake or meta mode (a
    failed ``torch.export``, a ``torch.device("meta")`` block) would break every later call."""
    cache = _SCRATCH.__dict__
    buf = cache.get(dtype)
    if buf is not None and buf.numel() >= n:
        return buf
    buf = torch.empty(n, dtype=dtype, device="cpu")
    if n * buf.element_size() <= SCRATCH_KEEP_BYTES and is_plain(buf):
        cache[dtype] = buf
    return buf


class _FusedSequence(torch.autograd.Function):
    """One layer, one direction, over a whole (B, T, I) sequence."""

    @staticmethod
    def forward(ctx, cell, lengths, x, s0, c0, *w):
        native = NATIVE[type(cell)]
        w_ih, whh, b_x, b_h, why, by = fold_biases(native, list(w))
        B, T, _ = x.shape
        H, S = cell.hidden_size, cell.state_sizes[0]
        G = whh.shape[0]
        code = native.code
        act, out_act = act_code(cell)
        opts = {"dtype": x.dtype, "device": x.device}
        # every tensor whose pointer goes to the kernel is held in a variable until the call returns
        x_tm = x.transpose(0, 1).contiguous()  # (B, T, I) -> (T, B, I)
        xg = torch.matmul(x_tm, w_ih.t())  # (T, B, G)
        if b_x is not None:
            xg += b_x
        xg = xg.contiguous()
        hs = torch.empty(T + 1, B, S, **opts)
        hs[0] = s0
        cs = torch.empty(T + 1, B, H, **opts) if native.cell_state else None
        if cs is not None:
            cs[0] = c0
        gates = torch.empty(T, B, G, **opts)
        aux = torch.empty(T, B, H, **opts)
        out = torch.empty(T, B, S, **opts)
        work = torch.empty(int(_fn("rk_forward_work", x.dtype)(code, B, H, S)), **opts)
        whh_c, why_c = whh.contiguous(), None if why is None else why.contiguous()
        lens = None if lengths is None else lengths.to(torch.int64).contiguous()
        p_xg, p_whh, p_out = _ptr(xg), _ptr(whh_c), _ptr(out)
        if not (p_xg and p_whh and p_out):
            raise no_memory()
        _fn("rk_forward", x.dtype)(code, act, out_act, B, T, H, S, p_xg, p_whh, _ptr(b_h),
                                   _ptr(why_c), _ptr(by), _ptr(lens), _ptr(hs), _ptr(cs), _ptr(gates),
                                   _ptr(aux), p_out, _ptr(work), 0)
        ctx.cell, ctx.native, ctx.lens = cell, native, lens
        ctx.save_for_backward(x_tm, hs, cs if cs is not None else hs.new_empty(0), gates, aux, x, s0, c0, *w)
        c_n = cs[T] if cs is not None else x.new_empty(0)
        return out.transpose(0, 1), hs[T].clone(), c_n.clone()  # (B, T, S), (B, S), (B, H)

    @staticmethod
    def backward(ctx, dout, dsn, dcn):
        cell, native, lens = ctx.cell, ctx.native, ctx.lens
        code, two = native.code, native.cell_state  # two: the state is (s, c)
        x_tm, hs, cs, gates, aux, x, s0, c0, *w = ctx.saved_tensors
        if torch.is_grad_enabled() or not (is_plain(dout) and is_plain(dsn) and is_plain(dcn)):
            return (None, None, *grads_by_recompute(ctx, 2, cell, lens, False, (x, s0, c0 if two else None, *w),
                                                     (dout, dsn, dcn if two else None)))
        w_ih, whh, b_x, b_h, why, by = fold_biases(native, list(w))
        T, B, I = x_tm.shape
        H, S = cell.hidden_size, cell.state_sizes[0]
        G = whh.shape[0]
        act, out_act = act_code(cell)
        opts = {"dtype": x_tm.dtype, "device": x_tm.device}
        dout_tm = None if dout is None else dout.transpose(0, 1).contiguous()  # (T, B, S)
        dgx = torch.empty(T, B, G, **opts)
        dgh = torch.empty(T, B, G, **opts) if native.hidden_apart else None
        dyp = torch.empty(T, B, S, **opts) if native.output_layer else None
        ds0 = torch.empty(B, S, **opts)
        dc0 = torch.empty(B, H, **opts) if two else None
        work = torch.empty(int(_fn("rk_backward_work", x_tm.dtype)(code, H, S)), **opts)
        # keep every contiguous copy in a variable: a temporary would be freed before the call
        whh_c = whh.contiguous()
        why_c = None if why is None else why.contiguous()
        dsn_c = None if dsn is None else dsn.contiguous()
        dcn_c = None if (dcn is None or not two) else dcn.contiguous()
        _fn("rk_backward", x_tm.dtype)(code, act, out_act, B, T, H, S, _ptr(whh_c), _ptr(why_c),
                                       _ptr(lens), _ptr(hs), _ptr(cs if two else None), _ptr(gates),
                                       _ptr(aux), _ptr(dout_tm), _ptr(dsn_c), _ptr(dcn_c), _ptr(dgx),
                                       _ptr(dgh), _ptr(dyp), _ptr(ds0), _ptr(dc0), _ptr(work))
        dgx2 = dgx.reshape(T * B, G)
        s_prev = hs[:-1].reshape(T * B, S)
        dgr = (dgh if native.hidden_apart else dgx).reshape(T * B, G)
        # the gradients in the kernels' order, then in the cell's (arrange maps the one onto the other)
        g_ih = dgx2.t() @ x_tm.reshape(T * B, I)  # dW_ih (G, I)
        g_hh = dgr.t() @ s_prev  # dW_hh (G, S) (Jordan: dW_yh)
        _, _, b_ih, b_hh, _, b_y = native.arrange(w)
        g_bih = None if b_ih is None else dgx2.sum(0)
        g_bhh = None if b_hh is None else dgr.sum(0)
        g_why = g_by = None
        if native.output_layer:  # dW_hy = dy^T h, db_y = sum dy
            dy = dyp.reshape(T * B, S)
            g_why = dy.t() @ aux.reshape(T * B, H)
            g_by = None if b_y is None else dy.sum(0)
        by_slot = dict(zip(native.arrange(range(len(w))), (g_ih, g_hh, g_bih, g_bhh, g_why, g_by)))
        grads = [by_slot.get(k) for k in range(len(w))]
        dx = (dgx @ w_ih).transpose(0, 1) if ctx.needs_input_grad[2] else None  # (B, T, I)
        return (None, None, dx, ds0, dc0, *grads)


class _FusedLayer(torch.autograd.Function):
    """One layer, one direction, entirely native: input projection, recurrence, and in backward
    BPTT plus every gradient, one foreign call each way (for small layers, where a dozen torch
    operations would cost more than the arithmetic)."""

    @staticmethod
    def forward(ctx, cell, lengths, lead, x, s0, c0, *w):
        ctx.lead = lead
        native = NATIVE[type(cell)]
        code, two = native.code, native.cell_state
        act, out_act = act_code(cell)
        B, T, I = x.shape
        H, S = cell.hidden_size, cell.state_sizes[0]
        opts = {"dtype": x.dtype, "device": x.device}
        # the buffers' sizes come from the very tensors the kernel gets, never from the caller:
        # a replayed jit trace once passed the traced call's sizes with a longer input (overflow)
        n_saved, n_work = _layer_sizes(code, x.dtype, B, T, I, H, S)
        sv = torch.empty(n_saved, **opts)  # saved for backward
        work = _scratch(n_work, x.dtype)
        out = torch.empty(B, T, S, **opts)
        lead = (1,) if ctx.lead else ()  # states shaped (1, B, S), as a one-layer module has them
        sn = torch.empty(*lead, B, S, **opts)
        cn = torch.empty(*lead, B, H, **opts) if two else None
        # every tensor whose pointer goes to the kernel is held in a variable until the call returns
        x_c = x.contiguous()
        s0_c = None if s0 is None else s0.contiguous()
        c0_c = c0.contiguous() if two and c0 is not None else None
        wc = [None if t is None else t.contiguous() for t in w]
        w_ih, whh, b_ih, b_hh, why, by = native.arrange(wc)
        lens = None if lengths is None else lengths.to(torch.int64).contiguous()
        p_x, p_wih, p_out = _ptr(x_c), _ptr(w_ih), _ptr(out)
        if not (p_x and p_wih and p_out):
            raise no_memory()
        _fn("rk_layer_forward", x.dtype)(code, act, out_act, B, T, I, H, S, p_x, p_wih, _ptr(whh),
                                         _ptr(b_ih), _ptr(b_hh), _ptr(why), _ptr(by), _ptr(lens), _ptr(s0_c),
                                         _ptr(c0_c), _ptr(sv), p_out, _ptr(sn), _ptr(cn), work.data_ptr())
        ctx.cell, ctx.native, ctx.lens, ctx.n_work = cell, native, lens, n_work
        ctx.has_state = (s0 is not None, c0 is not None)
        # the inputs as given, not their contiguous copies (the same tensors in the common
        # case): a recomputing backward differentiates through them
        ctx.save_for_backward(sv, x, s0, c0, *w)
        return out, sn, cn

    @staticmethod
    def backward(ctx, dout, dsn, dcn):
        cell, native, lens = ctx.cell, ctx.native, ctx.lens
        code, two = native.code, native.cell_state
        sv, x_in, s0, c0, *w_in = ctx.saved_tensors
        if torch.is_grad_enabled() or not (is_plain(dout) and is_plain(dsn) and is_plain(dcn)):
            return (None, None, None, *grads_by_recompute(ctx, 3, cell, lens, ctx.lead, (x_in, s0, c0, *w_in),
                                                           (dout, dsn, dcn)))
        x = x_in.contiguous()
        w = [None if t is None else t.contiguous() for t in w_in]
        work = _scratch(ctx.n_work, x.dtype)
        act, out_act = act_code(cell)
        B, T, I = x.shape
        H, S = cell.hidden_size, cell.state_sizes[0]
        opts = {"dtype": x.dtype, "device": x.device}
        dout_c, dsn_c = dout.contiguous(), dsn.contiguous()
        dcn_c = dcn.contiguous() if two and dcn is not None else None
        grads = [None if t is None else torch.empty_like(t) for t in w]
        g_ih, g_hh, g_bih, g_bhh, g_why, g_by = native.arrange(grads)
        w_ih, whh, _, _, why, _ = native.arrange(w)
        lead = (1,) if ctx.lead else ()
        ds0 = torch.empty(*lead, B, S, **opts)
        dc0 = torch.empty(*lead, B, H, **opts) if two else None
        dx = torch.empty(B, T, I, **opts) if ctx.needs_input_grad[3] else None
        _fn("rk_layer_backward", x.dtype)(code, act, out_act, B, T, I, H, S, _ptr(x), _ptr(w_ih), _ptr(whh),
                                          _ptr(why), _ptr(lens), _ptr(sv), _ptr(dout_c), _ptr(dsn_c), _ptr(dcn_c),
                                          _ptr(g_ih), _ptr(g_hh), _ptr(g_bih), _ptr(g_bhh), _ptr(g_why),
                                          _ptr(g_by), _ptr(ds0), _ptr(dc0), _ptr(dx), work.data_ptr())
        return (None, None, None, dx, ds0 if ctx.has_state[0] else None, dc0 if ctx.has_state[1] else None,
                *grads)


#: memory (saved activations plus scratch) up to which a layer runs entirely in the native
#: kernels, one call each way; above it torch computes the input projection and the weight
#: gradients (large matrix products) around the native recurrence. With the register-blocked
#: products the whole-layer kernels are the faster path at every size measured once their memory
#: is reused; past this size a fresh buffer per call costs more in page faults than it saves.
WHOLE_LAYER_BYTES = 48 << 20


def run_layer(cell: RecurrentCell, w: list[Tensor | None], x: Tensor, state: tuple[Tensor, ...] | None,
              lengths: Tensor | None, lead: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Fused twin of one direction of ``Recurrent``'s reference loop: ``x (B, T, I)``; a ``None``
    state means zeros. States are ``(B, S)``, or ``(1, B, S)`` in and out with ``lead`` (a whole
    one-layer module's: no autograd views to reshape them on the common path)."""
    native = NATIVE[type(cell)]
    lstm = native.cell_state  # the state is (s, c)
    B, T, I = x.shape
    saved, work = _layer_sizes(native.code, x.dtype, B, T, I, cell.hidden_size, cell.state_sizes[0])
    if (saved + work) * x.element_size() <= WHOLE_LAYER_BYTES:
        s0, c0 = (None, None) if state is None else (state[0], state[1] if lstm else None)
        out, s_n, c_n = _FusedLayer.apply(cell, lengths, lead, x, s0, c0, *w)
        return out, ((s_n, c_n) if lstm else (s_n,))
    if state is None:
        state = tuple(torch.zeros(B, n, device=x.device, dtype=x.dtype) for n in cell.state_sizes)
    elif lead:
        state = tuple(s[0] for s in state)
    c0 = state[1].contiguous() if lstm else x.new_empty(0)
    out, s_n, c_n = _FusedSequence.apply(cell, lengths, x, state[0].contiguous(), c0, *w)
    new = (s_n, c_n) if lstm else (s_n,)
    return out, (tuple(s.unsqueeze(0) for s in new) if lead else new)
