"""Data-parallel training of one model on several processes (``TrainConfig.distributed``).

Launch one process per core or GPU with torch's launcher, e.g.
``torchrun --nproc_per_node=4 -m rnnkit fit DATA ... --distributed``; every process trains the same
model on its share of each batch:

- **the order**: every rank draws the epoch's order from the same seeded generator, so all ranks
  agree on it; the order is cut into global batches of ``world x batch_size`` examples and rank r
  takes the r-th ``batch_size`` of each (:func:`shard`);
- **the gradients**: after each rank's backward pass on the mean loss over its examples, each
  gradient is weighted by the rank's share of the global batch and summed over the ranks
  (``all_reduce``), so every rank steps with the gradient of the mean loss over the whole global
  batch, as torch's DistributedDataParallel averages them, exactly even where the last batch is
  split unevenly; clipping then acts on that gradient, and the optimisers stay identical on every
  rank;
- **the losses**: the training loss and the validation loss (each rank scores a contiguous part
  of the validation rows) are summed over the ranks with their counts, so early stopping, the
  schedule and the best epoch are decided alike everywhere;
- **the run**: only rank 0 writes (:func:`is_writer`), the others return.

So ``N`` ranks with ``batch_size=b`` train as one process with ``batch_size=N*b`` would, to
floating-point rounding (tests/training/test_distributed.py checks 2 ranks against one process
in float64 to 1e-10). The torch loop runs (the fused trainer is a single-process kernel), on the
CPU with the gloo backend, on GPUs (``device="cuda"``: rank r trains on ``cuda:LOCAL_RANK``) with
nccl.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["process_group", "is_writer", "shard", "reduce_gradients", "reduce_sums", "LAUNCH_HINT"]

LAUNCH_HINT = ("launch one process per worker with torchrun (torchrun --nproc_per_node=2 -m rnnkit fit ... "
               "--distributed), or call torch.distributed.init_process_group first")


def process_group(device: torch.device | None = None) -> tuple[int, int]:
    """``(rank, world size)`` of the default process group, initialising it from the environment
    torchrun sets (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) when it is not yet:
    nccl when training on a CUDA ``device`` (the rank's own GPU, made the current one), gloo
    otherwise. ConfigError without either."""
    import torch.distributed as dist
    if not dist.is_available():
        raise ConfigError("distributed training needs torch.distributed, which this torch build lacks")
    if not dist.is_initialized():
        if not all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
            raise ConfigError(f"distributed=True (--distributed) needs a process group: {LAUNCH_HINT}")
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    return dist.get_rank(), dist.get_world_size()


def is_writer() -> bool:
    """Whether this process writes files: always, except the ranks other than 0 of a process group."""
    import torch.distributed as dist
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def shard(order: Tensor, batch_size: int, rank: int, world: int) -> list[tuple[Tensor, float]]:
    """Rank ``rank``'s part of each global batch of ``world * batch_size`` examples of ``order``:
    ``(indices, share)`` per global batch, ``share`` = its examples / the global batch's."""
    step = world * batch_size
    out = []
    for i in range(0, order.numel(), step):
        chunk = order[i:i + step]
        mine = chunk[rank * batch_size:(rank + 1) * batch_size]
        out.append((mine, mine.numel() / chunk.numel()))
    return out


def reduce_gradients(model: nn.Module, share: float) -> None:
    """Weight each gradient by this rank's ``share`` of the global batch and sum over the ranks (a
    rank without examples in the batch contributes zeros). One all-reduce over the flattened
    gradients, so every rank ends with the same gradient."""
    import torch.distributed as dist
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) * share for p in params]
    flat = torch.cat(grads)
    dist.all_reduce(flat)
    k = 0
    for p in params:
        n = p.numel()
        p.grad = flat[k:k + n].view_as(p).clone()
        k += n


def reduce_sums(*values: float) -> list[float]:
    """The sums over the ranks of these numbers (float64)."""
    import torch.distributed as dist
    nccl = dist.get_backend() == "nccl"  # nccl reduces GPU tensors only
    t = torch.tensor(values, dtype=torch.float64, device=torch.cuda.current_device() if nccl else "cpu")
    dist.all_reduce(t)
    return t.tolist()
