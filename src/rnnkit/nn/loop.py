"""The one readable time loop: a cell stepped over a sequence, and the mask of valid steps.

:class:`rnnkit.nn.layers.Recurrent` runs it for every layer and direction on the reference
backend; the native kernels differentiate it where they need a backward that is itself
differentiable (double backward, see :mod:`rnnkit.kernels.transforms`). It sits below both, so
neither imports the other for it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .cells.base import RecurrentCell

__all__ = ["valid_mask", "run_direction"]


def valid_mask(lengths: Tensor | Sequence[int] | None, B: int, T: int, device=None) -> Tensor:
    """``(B, T)`` True at the steps inside each sequence's length (all True without lengths)."""
    if lengths is None:
        return torch.ones(B, T, dtype=torch.bool, device=device)
    t = torch.arange(T, device=device).unsqueeze(0)  # (1, T)
    return t < torch.as_tensor(lengths, device=device).unsqueeze(1)  # (B, T)


def run_direction(cell: RecurrentCell, w, seq: Tensor, state: tuple[Tensor, ...], mask: Tensor | None):
    """``cell.step`` at every step of ``seq`` ``(B, T, I)`` from ``state``; padded steps (``mask``
    False) keep the state and output zeros. Returns ``(B, T, O)`` and the final state."""
    ys = []
    for t in range(seq.shape[1]):
        y, new = cell.step(seq[:, t], state, w)
        if mask is not None:
            m = mask[:, t].unsqueeze(1)  # (B, 1)
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state))
            y = torch.where(m, y, torch.zeros_like(y))
        state = new
        ys.append(y)
    return torch.stack(ys, 1), state  # T x (B, O) -> (B, T, O)
