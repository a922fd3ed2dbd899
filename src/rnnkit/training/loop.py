"""The training loop: :func:`fit` (optimisers, schedules, early stopping, the fused or the torch
engine, the device) and what it returns, the :class:`History` of its epochs. One epoch of the
torch loop (batches, clipping, stateful TBPTT, the validation loss): :mod:`.epochs`.

:func:`fit` trains any model given a ``loss_fn(model, batch) -> scalar`` on in-memory tensors
(no DataLoader: for the small models rnnkit targets, per-batch Python overhead matters), or on
examples gathered a chunk of batches at a time (:class:`~.examples.LazyExamples`, e.g. a panel's
windows: the same batches in the same order, without holding them all). Training
is seeded and deterministic on the CPU: the same seed and data give an identical history.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..config import TrainConfig
from ..errors import ConfigError, ShapeError, TrainingError
from ..kernels import trainer as fused_trainer
from . import devices, distributed, examples, schedules
from .epochs import LossFn, epoch_order, evaluate_loss, sharded_loss, stateful_epoch, train_epoch
from .examples import LazyExamples
from .members import GLOBAL_RNG

__all__ = ["History", "HISTORY_COLUMNS", "TIMING_COLUMNS", "fit", "make_optimizer", "progress_enabled", "loss_printer",
           "steps_per_epoch", "planned_epochs", "epoch_order"]


#: the columns a run directory's history.csv holds: all reproduced exactly by the same seed on
#: the same machine (and thread count), so two such runs write byte-identical files. ``steps``
#: counts the optimiser steps taken up to the end of the epoch.
HISTORY_COLUMNS = ("epoch", "steps", "train_loss", "val_loss", "lr")
#: timing.csv: each epoch's wall-clock seconds, which differ from run to run, kept apart for that
TIMING_COLUMNS = ("epoch", "seconds")


@dataclass
class History:
    """One row per epoch: ``epoch``, ``steps`` (optimiser steps so far), ``train_loss`` (the mean
    over the examples the epoch trained on: fewer in an epoch the step budget cut short),
    ``val_loss`` (NaN when not checked), ``lr``, ``seconds``; plus where training stopped and
    which epoch's weights were kept.

    Every column but the wall-clock ``seconds`` is reproducible, so a run directory stores them
    apart: :meth:`to_frame` (history.csv) and :meth:`timing_frame` (timing.csv);
    :meth:`from_frames` joins them again (``seconds`` absent where there is no timing).
    """

    rows: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    engine: str = "torch"  # which loop ran: "fused" (native trainer) or "torch"
    engine_reason: str | None = None  # why the torch loop ran (None when the fused trainer did)
    device: str = "cpu"  # where it trained (TrainConfig.device resolved: "cpu", "cuda:0", ...)

    @property
    def train_loss(self) -> list[float]:
        return [r["train_loss"] for r in self.rows]

    @property
    def val_loss(self) -> list[float]:
        return [r["val_loss"] for r in self.rows]

    def to_frame(self):
        """The reproducible columns (:data:`HISTORY_COLUMNS`), one row per epoch."""
        import pandas as pd
        return pd.DataFrame(self.rows, columns=list(HISTORY_COLUMNS))

    def timing_frame(self):
        """``epoch`` and its wall-clock ``seconds`` (:data:`TIMING_COLUMNS`), one row per epoch."""
        import pandas as pd
        return pd.DataFrame(self.rows, columns=list(TIMING_COLUMNS))

    @classmethod
    def from_frames(cls, history, timing=None) -> "History":
        """Rows from a history frame and, where given, the timing frame of the same epochs.

        A history frame that still has a ``seconds`` column (run directories written before the
        timing was split out) keeps it. A timing frame of other epochs is refused (ValueError):
        the two files would then not come from one run.
        """
        rows = history.to_dict("records")
        if timing is not None:
            if list(timing.get("epoch", [])) != [r.get("epoch") for r in rows] or "seconds" not in timing:
                raise ValueError("timing.csv does not list the epochs of history.csv with their seconds")
            for row, seconds in zip(rows, timing["seconds"].tolist()):
                row["seconds"] = seconds
        return cls(rows=rows)


def progress_enabled(quiet: bool = False) -> bool:
    """Show progress bars only for a person at a terminal: not when quiet, piped, or CI=true."""
    if quiet or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    return sys.stderr.isatty()


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` names, with its learning rate and weight decay."""
    kw = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer == "adam":
        return torch.optim.Adam(params, **kw)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=config.momentum, **kw)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, **kw)
    return torch.optim.RMSprop(params, momentum=config.momentum, **kw)


def steps_per_epoch(train: Sequence[Tensor], config: TrainConfig) -> int:
    """Optimiser steps in one whole epoch over ``train``: one per batch (with ``distributed``, one per
    global batch of world x batch_size), or (stateful) one per truncated-BPTT chunk of the streams
    ``(B, N, ...)``."""
    if config.stateful:
        n, per = train[0].shape[1], config.tbptt or train[0].shape[1]
    else:
        n, per = examples.count(train), config.batch_size * _world(config)[1]
    return max(1, -(-n // per))


def _world(config: TrainConfig, device: torch.device | None = None) -> tuple[int, int]:
    """``(rank, world size)`` for ``config``: ``(0, 1)`` unless it trains distributed."""
    return distributed.process_group(device) if config.distributed else (0, 1)


def planned_epochs(config: TrainConfig, per_epoch: int) -> int:
    """The epochs training runs unless it stops early: ``epochs``, or with a step budget the
    epochs that budget needs (the last one possibly partial) when fewer."""
    if config.steps is None:
        return config.epochs
    return min(config.epochs, -(-config.steps // per_epoch))


def _check_data(data: Sequence[Tensor] | LazyExamples, what: str) -> None:
    if isinstance(data, LazyExamples):
        if len(data) == 0:
            raise ShapeError(f"{what} examples: there are none")
        return
    n = {t.shape[0] for t in data}
    if len(n) != 1 or 0 in n:
        raise ShapeError(f"{what} tensors must share a non-zero first dimension; got shapes "
                         f"{[tuple(t.shape) for t in data]}")


def fit(model: nn.Module, loss_fn: LossFn, train: Sequence[Tensor] | LazyExamples, val: Sequence[Tensor] | None,
        config: TrainConfig, *, quiet: bool = False,
        callbacks: Sequence[Callable[[dict], None]] = (), fused=None, epochs: int | None = None,
        groups: Sequence[int] | None = None) -> History:
    """Train ``model`` in place and return its :class:`History`.

    ``train`` and ``val`` are tuples of tensors sharing their first (sample) dimension, sliced into
    batches and passed to ``loss_fn(model, batch)``. Without ``val``, early stopping watches the
    training loss. With ``config.stateful``, ``train`` holds long streams ``(B, N, ...)`` instead
    (see :func:`~.epochs.stateful_epoch`). ``train`` may also be :class:`~.examples.LazyExamples`, gathered a
    chunk of batches at a time on either engine (on the CPU, each chunk moved to ``config.device``):
    the batches and so the weights are those of its materialised tensors. A NaN or infinite loss stops training with
    :class:`TrainingError`. Each callback receives the epoch's row after it is recorded.
    ``config.steps`` stops training after that many optimiser steps, mid-epoch if need be (see
    :func:`planned_epochs`).

    ``fused`` (a :class:`rnnkit.kernels.trainer.FusedTask` describing the same loss on the same
    data) lets ``config.engine`` run each epoch natively; batches, shuffling, schedules, early
    stopping and the history are the same either way.

    ``epochs`` trains exactly the first ``epochs`` of the epochs ``config`` plans, with the schedule
    sized by the planned ones, no early stopping and no best weights restored: a second training
    for the epoch count a first one's early stopping chose (a forecaster's refit on its training and
    validation rows, :mod:`rnnkit.tasks.forecast.refit`), whose learning rates follow the first's.

    ``groups`` (the sizes of consecutive groups of training examples, e.g. the windows of each
    series of a panel) samples every epoch balanced across the groups instead of taking each example
    once: :func:`epoch_order` draws as many examples as there are, each from a group chosen uniformly
    and uniformly within it, with replacement, from the seeded generator (so on both engines).

    ``config.device`` (:mod:`.devices`): the model and the tensors move there once before the first
    epoch and the model comes back where it was passed; the history records the device.
    """
    _check_data(train, "training")
    if config.distributed and config.stateful:
        raise ConfigError("distributed training shards batches of windows; stateful training reads whole streams in "
                          "order: drop one of them")
    groups = _check_groups(groups, examples.count(train))
    if isinstance(train, LazyExamples) and config.stateful:
        raise ConfigError("stateful training reads whole streams in order, not examples gathered by index")
    if groups is not None and config.stateful:
        raise ConfigError("balanced sampling draws windows; stateful training reads whole streams in order")
    if val is not None:
        _check_data(val, "validation")
    home = devices.model_device(model)
    device = devices.resolve(config.device, model, config.distributed)
    if config.engine == "fused" and device.type != "cpu":
        raise ConfigError(f"engine='fused' runs on the CPU, and device={config.device!r} trains on {device}; use "
                          "engine='auto' or 'torch' there (the torch loop), or device='cpu'")
    rank, world = _world(config, device)
    model.to(device)  # once: the batches are then cut on the device
    # lazily held examples stay on the CPU: each gathered chunk moves (training.examples.batches)
    train = train if isinstance(train, LazyExamples) else devices.move(train, device)
    val = devices.move(val, device)
    try:
        return _fit(model, loss_fn, train, val, config, quiet, callbacks, fused, epochs, groups, rank, world, device)
    finally:
        model.to(home)  # given back where it was passed (the CPU for every rnnkit job)


def _fit(model, loss_fn, train, val, config: TrainConfig, quiet: bool, callbacks, fused, epochs, groups,
         rank: int, world: int, device: torch.device) -> History:
    """:func:`fit` on ``device``, where the model and the data already are."""
    # stateful loss functions take (x, y, state) and return (loss, state); validation starts fresh
    val_fn = (lambda m, b: loss_fn(m, (*b, None))[0]) if config.stateful else loss_fn
    with GLOBAL_RNG:  # not while another thread builds a model from its seed (training.members)
        torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    per_epoch = steps_per_epoch(train, config)
    planned = planned_epochs(config, per_epoch)
    fixed = epochs is not None
    if fixed and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise ConfigError(f"epochs={epochs!r}: a fixed number of epochs must be an integer >= 1")
    epochs = min(epochs, planned) if fixed else planned
    trainer, reason = None, "engine='torch'"
    if config.engine != "torch":
        trainer, reason = fused_trainer.create(model, fused, config, insist=config.engine == "fused")
    if trainer is None:  # torch's optimiser steps the weights, its scheduler sets its lr
        opt = make_optimizer(model.parameters(), config)
        sched = schedules.torch_scheduler(opt, config, planned)
    else:  # the native epochs update the weights: only the rates are needed, and building a torch
        # optimiser for them would import torch._dynamo (seconds per process; see .schedules)
        opt, sched = None, schedules.create(config, planned)

    def current_lr() -> float:
        return sched.lr if opt is None else opt.param_groups[0]["lr"]
    history = History(engine="fused" if trainer is not None else "torch", engine_reason=reason, device=str(device))
    best, best_state, bad_checks, done = math.inf, None, 0, 0
    bar = None
    if progress_enabled(quiet or rank > 0):
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, desc="training", unit="epoch", leave=False)
    model.train()
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            # the optimiser steps of this epoch: all of them, or what is left of the step budget
            limit = per_epoch if config.steps is None else min(per_epoch, config.steps - done)
            if trainer is not None:
                order = epoch_order(examples.count(train), config, gen, groups)
                train_loss = trainer.train_epoch(order, config.batch_size, current_lr(), limit)
                if callbacks:  # they may read the model: let torch see that the weights changed
                    trainer.touch()
            elif config.stateful:
                train_loss = stateful_epoch(model, loss_fn, train, opt, config, limit)
            else:
                train_loss = train_epoch(model, loss_fn, train, opt, config, gen, limit, groups, rank, world)
            done += limit
            if not math.isfinite(train_loss):
                raise TrainingError(
                    f"training diverged at epoch {epoch} (loss is {train_loss}); lower the learning rate "
                    f"(now {config.lr}), clip gradients (clip_norm=1.0) or check the data scaling")
            checking = epoch % config.check_every == 0 or epoch == epochs
            val_loss = math.nan
            if checking:
                if val is None:
                    val_loss = train_loss
                elif trainer is not None and trainer.x_val is not None:
                    val_loss = trainer.val_loss()
                elif world > 1:
                    val_loss = sharded_loss(model, val_fn, val, rank, world)
                else:
                    val_loss = evaluate_loss(model, val_fn, val)
            row = {"epoch": epoch, "steps": done, "train_loss": train_loss, "val_loss": val_loss if val is not None else math.nan,
                   "lr": current_lr(), "seconds": time.perf_counter() - t0}
            history.rows.append(row)
            for cb in callbacks:
                cb(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{train_loss:.4g}", val=f"{val_loss:.4g}")
            if isinstance(sched, (torch.optim.lr_scheduler.ReduceLROnPlateau, schedules.Plateau)):
                if checking:
                    sched.step(val_loss)
            elif sched is not None:
                sched.step()
            if not checking:
                continue
            if val_loss < best * (1.0 - config.min_delta) or best == math.inf:
                best, bad_checks, history.best_epoch = val_loss, 0, epoch
                if config.restore_best and val is not None and not fixed:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                bad_checks += 1
                if config.patience and bad_checks >= config.patience and not fixed:
                    history.stopped_early = True
                    break
    finally:
        if bar is not None:
            bar.close()
        if trainer is not None:
            trainer.release()
    if config.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _check_groups(groups, n: int) -> Tensor | None:
    if groups is None:
        return None
    sizes = torch.as_tensor(list(groups), dtype=torch.int64)
    if sizes.dim() != 1 or sizes.numel() == 0 or bool((sizes < 1).any()) or int(sizes.sum()) != n:
        raise ShapeError(f"groups must be positive sizes summing to the {n} training examples; got {list(groups)}")
    return sizes


def loss_printer(epochs: int):
    """A callback printing the epoch's losses to stderr, about 20 times per run (``--verbose``)."""
    every = max(1, epochs // 20)

    def show(row: dict) -> None:
        if row["epoch"] % every == 0 or row["epoch"] == 1:
            print(f"epoch {row['epoch']:>5}  train {row['train_loss']:.6g}  val {row['val_loss']:.6g}",
                  file=sys.stderr)
    return show
