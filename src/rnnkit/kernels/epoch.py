"""The fused trainer's native side: :class:`FusedTask`, what a job hands it (the loss's shape and
the data in its layout), and :class:`FusedTrainer`, which owns the flat parameter, gradient and
optimiser buffers and runs each epoch (or stateful chunk, or chunk of gathered examples) in one
native call, and the validation loss likewise. :mod:`rnnkit.kernels.trainer` decides whether it
runs (what it supports, when it pays off: :func:`~rnnkit.kernels.trainer.create`) and re-exports
both classes (their home was there).
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..nn.cells.base import NATIVE
from ..nn.loop import valid_mask
from . import _native
from .fused import act_code
from .limits import check_c_int

__all__ = ["FusedTask", "FusedTrainer", "LOSSES", "OPTIMIZERS", "VAL_BATCH"]

#: the native trainer's codes for the losses and optimisers it runs (csrc/trainer_impl.h)
LOSSES = {"mse": 0, "mae": 1, "ce": 2}
OPTIMIZERS = {"adam": 0, "sgd": 1, "adagrad": 2, "rmsprop": 3}


@dataclass
class FusedTask:
    """What the fused trainer needs besides the model: the loss's shape and the data in its layout.

    ``x`` is ``(N, T, I)``; ``y`` is ``(N, P)`` for ``head_mode="last"`` (class indices ``(N,)``
    for cross-entropy) or ``(N, T, P)`` for ``"all"`` (steps before ``warmup`` are ignored).
    ``lengths`` / ``val_lengths`` (``(N,)``, ``"last"`` only): each sequence's length; the steps
    past it are padding, and the head reads the output at step ``length - 1``.
    ``stateful`` (``"all"`` only, no warm-up): ``x`` and ``y`` are ``B`` long streams ``(B, N, .)``
    trained in order in chunks of ``TrainConfig.tbptt`` steps, the state carried from chunk to
    chunk and reset every epoch (:func:`rnnkit.training.loop.fit`'s stateful loop); validation data are
    windows scored from a zero state, as there.

    ``gather`` (optional; not with ``lengths`` or ``stateful``): examples built on demand, ``gather(idx)
    -> (x, y)`` in the layout above for the ``n`` examples ``idx`` indexes; ``x`` and ``y`` then hold
    only the first examples (for the checks on shapes). Each epoch gathers its order ``chunk``
    examples at a time (rounded down to whole batches) and runs one native call per chunk
    (:meth:`FusedTrainer.train_epoch`); validation data stay in ``x_val``/``y_val``.
    """

    head_mode: str
    loss: str
    x: Tensor
    y: Tensor
    x_val: Tensor | None = None
    y_val: Tensor | None = None
    warmup: int = 0
    class_weights: Tensor | None = None
    lengths: Tensor | None = None
    val_lengths: Tensor | None = None
    stateful: bool = False
    gather: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None
    n: int | None = None
    chunk: int = 4096

    @property
    def n_train(self) -> int:
        """The number of training examples (streams, when stateful)."""
        return int(self.n) if self.gather is not None else int(self.x.shape[0])


#: windows per native pass of :meth:`FusedTrainer.val_loss`: the kernel's workspace holds every step
#: of a pass (about 2 KB a window-step at hidden 32), so 1,024 windows of 108 steps took 250 MB where
#: 256 take a quarter of it, at the same speed (a validation pass is a small part of an epoch)
VAL_BATCH = 256


class FusedTrainer:
    """Owns the flat buffers. While it lives, the model's parameters are views into ``flat``."""

    def __init__(self, model: nn.Module, task: FusedTask, config) -> None:
        self.model, self.task, self.config = model, task, config
        rnn, head = model.rnn, model.head
        params = list(model.parameters())
        dtype = params[0].dtype
        self.suffix = "f64" if dtype == torch.float64 else "f32"
        lib = _native.library()
        cell = rnn.cells[0]
        # every size goes to C as an int32, which ctypes would wrap silently: check them first
        for what, n in (("num_layers", rnn.num_layers), ("input_size", rnn.input_size),
                        ("hidden_size", rnn.hidden_size), ("the state size", cell.state_sizes[0]),
                        ("the head's outputs", head.out_features), ("warmup", task.warmup),
                        ("the sequence length", task.x.shape[1])):
            check_c_int(what, n)
        native = NATIVE[rnn.cell_type]
        spec = _native.TrainSpec()
        spec.cell = native.code
        spec.act, spec.out_act = act_code(cell)
        spec.num_layers, spec.input_size, spec.hidden = rnn.num_layers, rnn.input_size, rnn.hidden_size
        spec.state, spec.head_out = cell.state_sizes[0], head.out_features
        spec.head_mode = 0 if task.head_mode == "last" else 1
        spec.warmup, spec.loss, spec.T = task.warmup, LOSSES[task.loss], task.x.shape[1]
        spec.optimizer = OPTIMIZERS[config.optimizer]
        spec.lr, spec.weight_decay, spec.momentum = config.lr, config.weight_decay, config.momentum
        spec.beta1, spec.beta2 = 0.9, 0.999
        spec.eps = 1e-8  # Adam and RMSprop (torch's defaults); Adagrad uses 1e-10 inside
        spec.alpha = 0.99
        spec.clip_value = config.clip_value or 0.0
        spec.clip_norm = config.clip_norm or 0.0
        self.spec = spec
        self._epoch = getattr(lib, f"rk_train_epoch_{self.suffix}")
        n = int(getattr(lib, f"rk_num_params_{self.suffix}")(ctypes.byref(spec)))
        total = sum(p.numel() for p in params)
        if n != total:
            raise ConfigError(f"fused trainer layout mismatch ({n} vs {total} parameters)")
        # one flat buffer; the parameters become views into it (in parameters() order)
        self.flat = torch.cat([p.detach().reshape(-1) for p in params])
        offset = 0
        for p in params:
            p.data = self.flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        self.grad = torch.zeros_like(self.flat)
        self.s1, self.s2 = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        self.step = torch.zeros(1, dtype=torch.int64)
        self.x = task.x.to(dtype).contiguous()
        self.y = task.y.to(dtype).contiguous()
        self.x_val = None if task.x_val is None else task.x_val.to(dtype).contiguous()
        self.y_val = None if task.y_val is None else task.y_val.to(dtype).contiguous()
        self.class_w = None if task.class_weights is None else task.class_weights.to(dtype).contiguous()
        self.lens = None if task.lengths is None else task.lengths.to(torch.int64).contiguous()
        self.val_lens = None if task.val_lengths is None else task.val_lengths.to(torch.int64).contiguous()
        # padding never enters the math (0 * NaN in a weight gradient would poison it), as in
        # the torch loop, which zeroes it too
        self.x, self.x_val = _zero_padding(self.x, self.lens), _zero_padding(self.x_val, self.val_lens)
        self.state = self.chunks = None
        self.gather = task.gather
        if task.stateful:  # the chunks of every epoch, and the state carried between them
            B, N = self.x.shape[:2]
            step = min(config.tbptt or N, N)
            self.chunks = [(self.x[:, s:s + step].contiguous(), self.y[:, s:s + step].contiguous())
                           for s in range(0, N, step)]
            size = rnn.num_layers * B * (spec.state + (spec.hidden if native.cell_state else 0))
            self.state = torch.zeros(size, dtype=dtype)
            self.stream_order = torch.arange(B)

    def _call(self, x: Tensor, y: Tensor, lens: Tensor | None, order: Tensor, batch: int, train: bool,
              state: Tensor | None = None) -> float:
        order = order.to(torch.int64).contiguous()
        self.spec.T = check_c_int("the sequence length", x.shape[1])
        # a batch larger than the data is the whole data (its natural meaning), and fits a C int
        batch = check_c_int("batch_size", max(1, min(batch, order.numel())))
        return float(self._epoch(ctypes.byref(self.spec), self.flat.data_ptr(), self.grad.data_ptr(),
                                 self.s1.data_ptr(), self.s2.data_ptr(), self.step.data_ptr(),
                                 x.data_ptr(), y.data_ptr(), order.data_ptr(), order.numel(), batch,
                                 1 if train else 0, None if self.class_w is None else self.class_w.data_ptr(),
                                 None if lens is None else lens.data_ptr(),
                                 None if state is None else state.data_ptr()))

    def train_epoch(self, order: Tensor, batch_size: int, lr: float, max_steps: int | None = None) -> float:
        """One epoch over the training samples in ``order`` (stateful: the chunks in time order;
        ``order`` and ``batch_size`` do not apply), of at most ``max_steps`` optimiser steps (the
        first batches of ``order``, or the first chunks); returns the mean loss over the samples
        (steps) trained on."""
        self.spec.lr = lr
        with torch.no_grad():
            if self.gather is not None:
                return self._gathered_epoch(order, batch_size, max_steps)
            if self.chunks is None:
                if max_steps is not None:
                    order = order[:max_steps * max(1, batch_size)]
                return self._call(self.x, self.y, self.lens, order, batch_size, True)
            self.state.zero_()
            total = count = 0.0
            B = self.x.shape[0]
            for xc, yc in self.chunks[:max_steps]:  # one native call per chunk, the state carried in self.state
                loss = self._call(xc, yc, None, self.stream_order, B, True, self.state)
                if not math.isfinite(loss):
                    return loss
                total, count = total + loss * xc.shape[1], count + xc.shape[1]
            return total / count

    def _gathered_epoch(self, order: Tensor, batch_size: int, max_steps: int | None) -> float:
        """:meth:`train_epoch` on examples gathered a chunk of whole batches at a time, in ``order``:
        one native call per chunk on the same flat parameters, gradient and optimiser buffers and step
        count, so every batch and update is the one a single call on the materialised examples makes.
        The epoch's mean loss is summed from the chunks' means (each a float64 sum / count in C): equal
        to the single call's up to float64 rounding."""
        batch = max(1, batch_size)
        if max_steps is not None:
            order = order[:max_steps * batch]
        per = batch * max(1, int(self.task.chunk) // batch)
        dtype = self.flat.dtype
        total = 0.0
        for part in order.split(per):
            x, y = self.gather(part)
            x, y = x.to(dtype).contiguous(), y.to(dtype).contiguous()
            loss = self._call(x, y, None, torch.arange(part.numel()), batch, True)
            if not math.isfinite(loss):
                return loss
            total += loss * part.numel()
        return total / max(1, order.numel())

    def val_loss(self, batch_size: int = VAL_BATCH) -> float:
        """Mean validation loss (no update), from a zero state, :data:`VAL_BATCH` windows a pass."""
        n = self.x_val.shape[0]
        return self._call(self.x_val, self.y_val, self.val_lens, torch.arange(n), min(batch_size, n), False)

    def touch(self) -> None:
        """Tell torch the parameters changed (the native epochs write their memory directly):
        bumps their version counters, which caches such as the streaming step's watch."""
        for p in self.model.parameters():
            torch.autograd.graph.increment_version(p)

    def release(self) -> None:
        """Give every parameter its own storage again (so it can be saved and moved independently)."""
        for p in self.model.parameters():
            p.data = p.data.clone()
        self.touch()


def _zero_padding(x: Tensor | None, lengths: Tensor | None) -> Tensor | None:
    if x is None or lengths is None:
        return x
    return x.masked_fill(~valid_mask(lengths, *x.shape[:2]).unsqueeze(-1), 0.0).contiguous()
