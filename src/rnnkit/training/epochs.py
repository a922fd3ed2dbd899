"""One epoch of the torch training loop, and what it reads: the order of an epoch's examples
(:func:`epoch_order`, the fused trainer's too), an epoch of batches (:func:`train_epoch`, sharded
over the ranks with ``distributed``), one of truncated-BPTT chunks over long streams
(:func:`stateful_epoch`) and the validation loss (:func:`evaluate_loss`, :func:`sharded_loss`).
:func:`rnnkit.training.loop.fit` runs them epoch after epoch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..config import TrainConfig
from . import devices, distributed, examples

__all__ = ["LossFn", "epoch_order", "train_epoch", "stateful_epoch", "evaluate_loss", "sharded_loss"]

LossFn = Callable[[nn.Module, Sequence[Tensor]], Tensor]


def _clip(model: nn.Module, config: TrainConfig) -> None:
    if config.clip_value is not None:
        nn.utils.clip_grad_value_(model.parameters(), config.clip_value)
    if config.clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)


@torch.no_grad()
def evaluate_loss(model: nn.Module, loss_fn: LossFn, data: Sequence[Tensor], batch_size: int = 1024) -> float:
    """Mean of ``loss_fn`` over ``data`` in eval mode (batches weighted by their size)."""
    was = model.training
    model.eval()
    n = data[0].shape[0]
    total = 0.0
    for i in range(0, n, batch_size):
        batch = [t[i:i + batch_size] for t in data]
        total += float(loss_fn(model, batch)) * batch[0].shape[0]
    model.train(was)
    return total / n


def epoch_order(n: int, config: TrainConfig, gen: torch.Generator, groups: Tensor | None = None) -> Tensor:
    """The examples one epoch trains on, in order: a permutation of the ``n`` examples (or ``0..n-1``
    without ``config.shuffle``), or with ``groups`` (consecutive group sizes) ``n`` draws balanced
    across the groups: a group uniformly, then an example of it uniformly, with replacement, so each
    group weighs the same whatever its size (drawn from ``gen`` whatever ``config.shuffle`` says)."""
    if groups is None:
        return torch.randperm(n, generator=gen) if config.shuffle else torch.arange(n)
    starts = torch.cumsum(groups, 0) - groups
    g = torch.randint(groups.numel(), (n,), generator=gen)
    within = (torch.rand(n, generator=gen, dtype=torch.float64) * groups[g]).long()
    return starts[g] + torch.minimum(within, groups[g] - 1)


def train_epoch(model, loss_fn, train, opt, config: TrainConfig, gen: torch.Generator, limit: int,
                groups: Tensor | None = None, rank: int = 0, world: int = 1) -> float:
    """One epoch of at most ``limit`` batches (the whole order is drawn either way, so the
    generator advances alike); returns the mean loss over the examples trained on. With ``world``
    ranks each batch is a global one of ``world x batch_size`` examples, of which this rank trains
    its part (:mod:`.distributed`)."""
    order = epoch_order(examples.count(train), config, gen, groups)
    order = order[:limit * config.batch_size * world]
    n = order.numel()
    if world > 1:
        return _sharded_epoch(model, loss_fn, train, opt, config, order, rank, world)
    total = 0.0
    for idx, batch in examples.batches(train, order, config.batch_size, devices.model_device(model)):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        loss.backward()
        _clip(model, config)
        opt.step()
        total += float(loss.detach()) * idx.numel()
    return total / n


def _sharded_epoch(model, loss_fn, train, opt, config: TrainConfig, order: Tensor, rank: int, world: int) -> float:
    """:func:`train_epoch` on one rank of ``world``: its part of each global batch, the gradients summed
    over the ranks by their shares before clipping and the step (:mod:`.distributed`)."""
    total = 0.0
    for idx, share in distributed.shard(order, config.batch_size, rank, world):
        opt.zero_grad(set_to_none=True)
        if idx.numel():
            loss = loss_fn(model, examples.take(train, idx, devices.model_device(model)))
            loss.backward()
            total += float(loss.detach()) * idx.numel()
        distributed.reduce_gradients(model, share)
        _clip(model, config)
        opt.step()
    return distributed.reduce_sums(total)[0] / order.numel()


@torch.no_grad()
def sharded_loss(model: nn.Module, loss_fn: LossFn, data: Sequence[Tensor], rank: int, world: int) -> float:
    """:func:`evaluate_loss` over every rank's contiguous part of ``data``, summed over the ranks."""
    n = data[0].shape[0]
    lo, hi = rank * n // world, (rank + 1) * n // world
    part = evaluate_loss(model, loss_fn, [t[lo:hi] for t in data]) * (hi - lo) if hi > lo else 0.0
    total, count = distributed.reduce_sums(part, hi - lo)
    return total / count


def _detach(state):
    if state is None:
        return None
    return state.detach() if isinstance(state, Tensor) else tuple(s.detach() for s in state)


def stateful_epoch(model, loss_fn, train, opt, config: TrainConfig, limit: int) -> float:
    """One pass over streams ``(B, N, ...)``: chunks of ``tbptt`` steps in order (the first
    ``limit`` of them), the state carried (and detached) between chunks and reset at the start of
    the epoch.

    ``loss_fn(model, (x_chunk, y_chunk, state))`` must return ``(loss, new_state)`` here.
    """
    N = train[0].shape[1]
    chunk = config.tbptt or N
    state, total, count = None, 0.0, 0
    for s in range(0, min(N, limit * chunk), chunk):
        batch = [t[:, s:s + chunk] for t in train]
        opt.zero_grad(set_to_none=True)
        loss, state = loss_fn(model, (*batch, state))
        loss.backward()
        _clip(model, config)
        opt.step()
        state = _detach(state)
        steps = batch[0].shape[1]
        total += float(loss.detach()) * steps
        count += steps
    return total / count
