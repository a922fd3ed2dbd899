"""Ensemble members trained side by side: each job builds its members (from consecutive seeds)
and says how one is trained; :func:`train_side_by_side` runs them on every core.

The native trainer runs outside Python's lock, so members trained in threads use every core. A
member's result does not depend on the thread it ran in, with one exception:
:func:`rnnkit.training.loop.fit` seeds torch's global generator, which only dropout between
layers draws from (and such models run the torch loop, never the fused trainer), so members of a
model with dropout train one at a time (:func:`threads_are_deterministic`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from ..config import ModelConfig

__all__ = ["train_side_by_side", "threads_are_deterministic"]

T = TypeVar("T")


def threads_are_deterministic(model_config: ModelConfig) -> bool:
    """Whether members of this design may train in threads and still reproduce exactly: not when
    dropout (between stacked layers) draws from torch's global generator, which every thread shares."""
    return not (model_config.dropout > 0 and model_config.num_layers > 1)


def train_side_by_side(train_one: Callable[[int], T], n: int, parallel: bool = True) -> list[T]:
    """``[train_one(k) for k in range(n)]``, computed on ``min(n, CPUs)`` threads when ``parallel``
    (and more than one CPU), in order; one after another otherwise."""
    threads = min(n, os.cpu_count() or 1)
    if parallel and threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(train_one, range(n)))
    return [train_one(k) for k in range(n)]
