"""Training examples gathered on demand, a chunk at a time, instead of held as tensors.

:func:`rnnkit.training.loop.fit` reads its training data either as tensors in memory (a tuple
sharing the first, example dimension) or as :class:`LazyExamples`: anything that counts its
examples and builds the tensors of any of them by index (:meth:`LazyExamples.take`), e.g. a panel's
windows (:class:`rnnkit.tasks.forecast.panel_windows.PanelWindows`), which keep each series' values
once and cut a window only when it trains, so memory grows with the data, not with windows x
lookback.

Both engines train on the same batches in the same order either way: the epoch's order is drawn
over the example count as for tensors (:func:`~rnnkit.training.loop.epoch_order`), then cut into
chunks of whole batches (:func:`chunk_size`), and each chunk is gathered in that order and trained:
the torch loop slices its batches from the chunk (:func:`batches`), the fused trainer runs one native
call per chunk with its optimiser state carried across calls
(:meth:`rnnkit.kernels.trainer.FusedTrainer.train_epoch`). A batch's tensors are then exactly the rows
``t[idx]`` a materialised set would give, so the weights are the same; only the epoch's mean loss is
summed chunk by chunk (float64 rounding, see there).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor

__all__ = ["LazyExamples", "count", "take", "column", "chunk_size", "batches"]


class LazyExamples:
    """Examples built by index. Subclasses implement ``__len__`` (the number of examples) and
    :meth:`take`; :attr:`chunk` is about how many a training loop gathers at a time (a few
    thousand: big enough that a chunk costs little Python per example, small enough to be nothing
    next to the data)."""

    chunk: int = 4096

    def __len__(self) -> int:
        raise NotImplementedError

    def take(self, idx: Tensor) -> tuple[Tensor, ...]:
        """The tensors of examples ``idx`` (int64, any order, repeats allowed), on the CPU, as
        ``tuple(t[idx] for t in tensors)`` of the materialised set would be."""
        raise NotImplementedError

    def materialise(self) -> tuple[Tensor, ...]:
        """Every example's tensors in order, gathered chunk by chunk (the memory that laziness saves:
        for small sets, validation, and tests)."""
        parts = [self.take(idx) for idx in torch.arange(len(self)).split(self.chunk)]
        return tuple(torch.cat(ts) for ts in zip(*parts))


def count(data: Sequence[Tensor] | LazyExamples) -> int:
    """The number of examples of ``data`` (tensors: their first dimension)."""
    return len(data) if isinstance(data, LazyExamples) else int(data[0].shape[0])


def take(data: Sequence[Tensor] | LazyExamples, idx: Tensor, device: torch.device | None = None) -> list[Tensor]:
    """Examples ``idx`` of ``data`` on ``device`` (tensors: where they are)."""
    if isinstance(data, LazyExamples):
        return [t if device is None else t.to(device) for t in data.take(idx)]
    return [t[idx.to(t.device)] for t in data]  # a no-op move on the CPU


def column(data: Sequence[Tensor] | LazyExamples, i: int) -> Tensor:
    """Tensor ``i`` of every example (e.g. all training targets, for a head's initial spread); lazily
    held examples are gathered for it, chunk by chunk."""
    if isinstance(data, LazyExamples):
        return torch.cat([data.take(idx)[i] for idx in torch.arange(len(data)).split(data.chunk)])
    return data[i]


def chunk_size(data: LazyExamples, batch_size: int) -> int:
    """Examples per gather: :attr:`LazyExamples.chunk` rounded down to whole batches (at least one),
    so that chunk boundaries fall between batches and every batch is the one a materialised epoch has."""
    batch_size = max(1, int(batch_size))
    return batch_size * max(1, int(data.chunk) // batch_size)


def batches(data: Sequence[Tensor] | LazyExamples, order: Tensor, batch_size: int,
            device: torch.device | None = None) -> Iterator[tuple[Tensor, list[Tensor]]]:
    """``(indices, tensors)`` of each batch of ``order``, in order: sliced from tensors in memory, or
    from each gathered chunk of lazily held examples (moved to ``device`` a chunk at a time)."""
    if not isinstance(data, LazyExamples):
        for i in range(0, order.numel(), batch_size):
            idx = order[i:i + batch_size]
            yield idx, [t[idx.to(t.device)] for t in data]
        return
    for part in order.split(chunk_size(data, batch_size)):
        tensors = take(data, part, device)
        for i in range(0, part.numel(), batch_size):
            yield part[i:i + batch_size], [t[i:i + batch_size] for t in tensors]
