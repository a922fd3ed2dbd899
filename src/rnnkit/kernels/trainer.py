"""The fused trainer: each epoch of training steps (forward, loss, BPTT, clipping, optimiser) runs
in one native call on a flat parameter buffer.

For the small models most rnnkit users train, torch spends nearly all of a training step in
per-operator overhead (each small op costs microseconds, ``backward()`` alone tens of them); the
arithmetic takes a few. Running the whole step natively removes that overhead. The optimiser
maths is torch's exactly (Adam's lerp form and bias correction, SGD momentum, Adagrad, RMSprop),
so the loss history equals the generic torch loop's to float tolerance on the same seed.

Also stateful truncated BPTT (streams trained in chunks, the state carried between them), one
native call per chunk; and examples gathered on demand (a panel's lazily indexed windows:
``FusedTask.gather``), one native call per chunk of whole batches, the optimiser state carried.
Supported: a model with ``rnn`` (an unidirectional :class:`~rnnkit.nn.layers.Recurrent` of a cell
the native kernels have (its CellSpec has a NativeSpec), biases on, no projection, no dropout between layers) and ``head`` (``nn.Linear``)
whose forward is ``head(out[:, -1])`` (``head_mode="last"``, also with per-sequence lengths: the
output at each sequence's last step) or ``head(out)`` (``head_mode="all"``), MSE/MAE/cross-entropy
loss, on the CPU in float32 or float64, with the training settings :data:`HONOURED` declares.
:func:`create` declines (or, when asked to insist, raises) for anything else, saying why, and the
generic loop runs instead.

This module decides whether the fused trainer runs (what it supports, :func:`unsupported_reason`;
when it pays off, :func:`pays_off`); the task a job describes and the trainer itself (the flat
buffers and the native calls) are :mod:`.epoch`'s :class:`FusedTask` and :class:`FusedTrainer`,
re-exported here.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from ..nn.cells import cell_specs
from ..nn.cells.base import NATIVE
from ..nn.layers import Recurrent
from . import _native
from .epoch import LOSSES, OPTIMIZERS, FusedTask, FusedTrainer
from .epoch import VAL_BATCH  # noqa: F401 (re-exported)
from .fused import supports_cell, unsupported_settings

__all__ = ["FusedTask", "FusedTrainer", "create", "unsupported_reason", "unsupported_setting", "pays_off",
           "auto_limits", "forward_mmacs", "HONOURED"]

#: Every :class:`~rnnkit.config.TrainConfig` field the fused trainer honours, with the values it
#: supports (None: every value TrainConfig accepts). Training with a field outside this table at
#: a value other than its default, or a value outside the listed ones, is refused
#: (:func:`unsupported_setting`): ``engine="auto"`` then runs the torch loop and records why in
#: ``History.engine_reason``, ``engine="fused"`` raises. So a new TrainConfig field is refused
#: until someone checks that the native path honours it and adds it here (and to
#: tests/kernels/test_fused_settings.py, which sets every field in turn and compares the loops).
HONOURED: dict[str, tuple | None] = {
    # run by training.loop.fit around the native epochs, with the same code as the torch loop
    "epochs": None, "patience": None, "min_delta": None, "check_every": None, "restore_best": None,
    "seed": None, "engine": None,
    "device": None,                                      # fit moves the model; unsupported_reason checks it is the CPU
    "steps": None,                                       # fit passes each epoch's step limit (the budget left)
    "shuffle": None,                                     # fit draws each epoch's order, same generator
    "lr": None,                                          # passed to every native epoch
    "schedule": ("none", "cosine", "step", "plateau"),   # fit steps training.schedules: the lr above
    # inside the native epoch, with torch's formulas (csrc/trainer_impl.h)
    "batch_size": None,
    "optimizer": tuple(OPTIMIZERS),                      # adam, sgd, adagrad, rmsprop
    "momentum": None,                                    # sgd and rmsprop (TrainConfig refuses others)
    "weight_decay": None,                                # L2 added to the gradient, as torch.optim
    "clip_value": None, "clip_norm": None,               # value first, then norm, as fit's _clip
    # the loss the job describes in its FusedTask (unsupported_reason checks they agree)
    "loss": (None, *LOSSES), "warmup": None, "many_to_many": None,
    "stateful": None, "tbptt": None,                     # chunks of tbptt steps, state carried
}


def unsupported_setting(config) -> str | None:
    """The first training setting outside :data:`HONOURED`, described for a person, or None.

    A field the table does not list counts as honoured only at its default value (which is the
    behaviour the fused trainer was written for)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name not in HONOURED:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if value != default:
                return f"the fused trainer does not implement the setting {f.name}={value!r}"
        elif HONOURED[f.name] is not None and value not in HONOURED[f.name]:
            return (f"the fused trainer does not implement {f.name}={value!r} (it supports "
                    f"{', '.join(map(repr, HONOURED[f.name]))})")
    return None


def unsupported_reason(model: nn.Module, task: FusedTask, config) -> str | None:
    """Why the fused trainer cannot run this model and task, or None when it can."""
    rnn, head = getattr(model, "rnn", None), getattr(model, "head", None)
    if not isinstance(rnn, Recurrent) or not isinstance(head, nn.Linear) or head.bias is None:
        return "the model is not a recurrent layer plus a linear head"
    if set(map(id, model.parameters())) != set(map(id, list(rnn.parameters()) + list(head.parameters()))):
        return "the model has parameters outside its recurrent layer and head"
    for m in model.modules():  # the native loop reads the raw parameters and calls no module
        if parametrize.is_parametrized(m) or m._forward_pre_hooks or m._forward_hooks or m._backward_hooks:
            return "the model has parametrizations, pruning or hooks, which the fused trainer would bypass"
    if rnn.cell_type not in NATIVE or rnn.bidirectional or not rnn.bias:
        native = "/".join(s.name for s in cell_specs() if s.native is not None)
        return f"only unidirectional layers of cells with native kernels ({native}) with biases are fused"
    if not supports_cell(rnn.cells[0]):
        return f"{rnn.cell_type.__name__}'s {' and '.join(unsupported_settings(rnn.cell_type))} are not fused"
    if rnn.dropout and rnn.num_layers > 1:
        return "dropout between layers is not fused"
    bad = unsupported_setting(config)
    if bad:
        return bad
    if config.stateful != task.stateful:
        return "the task and the training settings disagree about stateful training"
    if config.loss is not None and config.loss != task.loss:
        return f"the task's loss {task.loss!r} and the training setting loss={config.loss!r} disagree"
    if config.many_to_many and task.head_mode != "all":
        return "many_to_many=True needs a task with a loss over every step (head_mode='all')"
    if config.warmup and config.warmup != task.warmup:
        return f"the task's warm-up ({task.warmup}) and the training setting warmup={config.warmup} disagree"
    if task.stateful and (task.head_mode != "all" or task.warmup or task.lengths is not None):
        return "stateful training is fused for per-step heads without warm-up or lengths"
    if task.gather is not None and (task.stateful or task.lengths is not None or not task.n):
        return "examples gathered on demand are fused without streams or lengths, and need a count"
    p = next(model.parameters())
    if p.device.type != "cpu" or p.dtype not in (torch.float32, torch.float64):
        return "the fused trainer runs on the CPU in float32/float64"
    if task.loss not in LOSSES or task.head_mode not in ("last", "all"):
        return f"loss {task.loss!r} / head mode {task.head_mode!r} is not fused"
    if task.loss == "ce" and task.head_mode != "last":
        return "cross-entropy is fused for last-step heads only"
    bad = _bad_data(model, task)
    if bad:
        return bad
    if config.optimizer not in OPTIMIZERS:
        return f"optimizer {config.optimizer!r} is not fused"
    if not _native.available():
        return "the native kernels are unavailable"
    return None


def _bad_data(model: nn.Module, task: FusedTask) -> str | None:
    """Shapes and values the native loop would otherwise trust blindly (the torch loop then runs
    and explains the problem)."""
    P = model.head.out_features
    for x, y, lengths in ((task.x, task.y, task.lengths), (task.x_val, task.y_val, task.val_lengths)):
        if x is None:
            continue
        if y is None or x.dim() != 3 or x.shape[-1] != model.rnn.input_size or y.shape[0] != x.shape[0]:
            return "the data do not fit the model"
        if task.loss == "ce":
            if y.dim() != 1 or bool((y < 0).any()) or bool((y >= P).any()):
                return "the class labels do not fit the head"
        elif y.shape[1:] != ((x.shape[1], P) if task.head_mode == "all" else (P,)):
            return "the targets do not fit the head"
        if lengths is None:
            continue
        if task.head_mode != "last":
            return "variable lengths are fused for last-step heads only"
        if lengths.shape != (x.shape[0],) or bool((lengths < 1).any()) or bool((lengths > x.shape[1]).any()):
            return "the lengths do not fit the data"
    if task.class_weights is not None and task.class_weights.shape != (P,):
        return "the class weights do not fit the head"
    return None


def auto_limits(cell_type: type) -> tuple[int, float]:
    """Where ``engine="auto"`` picks the fused trainer for this cell (its
    :attr:`NativeSpec.trainer_limits <rnnkit.nn.cells.NativeSpec>`): at most this batch x hidden,
    and at most this many million multiply-adds in one batch's forward pass through the recurrent
    layers (:func:`forward_mmacs`).

    The native trainer runs on one core (register-blocked AVX-512/AVX2 products); torch's loop pays
    microseconds per operation but its BLAS/oneDNN use every thread. The limits were set from a
    grid of epoch times (hidden 16-256, batch 8-64, T 10/50, 1 and 2 threads, 2-core x86-64 with
    AVX-512): inside them the fused trainer was 1.2x-18x faster than the torch loop; the LSTM points
    just outside were 0.4x-1.2x (torch runs an LSTM as one oneDNN kernel), while GRU and Elman won
    at every size measured, so their limits stop at the grid's edge (see benchmarks/RESULTS.md,
    section "engine")."""
    return NATIVE[cell_type].trainer_limits


def forward_mmacs(model: nn.Module, batch: int, T: int) -> float:
    """Million multiply-adds of one batch's forward pass through ``model.rnn``'s layers: every
    weight matrix of each layer once per sequence and step (B*T*G*(in + S) for most cells; an
    output layer, Jordan's, adds its W_hy (S, H))."""
    rnn = model.rnn
    total = 0.0
    for k in range(rnn.num_layers):  # unidirectional: layer k is layer-direction k
        total += batch * T * sum(w.numel() for w in rnn.weights_of(k) if w is not None and w.dim() == 2)
    return total / 1e6


def pays_off(model: nn.Module, task: FusedTask, config) -> bool:
    """Whether the fused trainer is expected to beat the torch loop for this size (:func:`auto_limits`)."""
    rnn = model.rnn
    max_bh, max_mmacs = auto_limits(rnn.cell_type)
    if task.stateful:  # every step trains all streams on one chunk
        batch, T = task.x.shape[0], min(config.tbptt or task.x.shape[1], task.x.shape[1])
    else:
        batch, T = min(config.batch_size, task.n_train), task.x.shape[1]
    return batch * rnn.hidden_size <= max_bh and forward_mmacs(model, batch, T) <= max_mmacs


def create(model: nn.Module, task: FusedTask | None, config,
           insist: bool = False) -> tuple[FusedTrainer | None, str | None]:
    """``(trainer, None)`` where supported and (unless ``insist``) faster than the torch loop
    (:func:`pays_off`), else ``(None, why not)``, which the torch loop records in its history;
    with ``insist``, an unsupported model, task or setting raises :class:`ConfigError` instead."""
    if task is None:
        if insist:
            raise ConfigError("engine='fused' needs a task the fused trainer understands (forecasting, "
                              "classification and text jobs provide one)")
        return None, "the job describes no task for the fused trainer"
    reason = unsupported_reason(model, task, config)
    if reason is not None:
        if insist:
            raise ConfigError(f"engine='fused' cannot train this model: {reason}; use engine='auto' or 'torch'")
        return None, reason
    if not insist and not pays_off(model, task, config):
        return None, ("the model is too large for the fused trainer to pay off (see its cell's "
                      "NativeSpec.trainer_limits, kernels.trainer.auto_limits)")
    return FusedTrainer(model, task, config), None

