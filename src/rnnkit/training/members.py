"""Ensemble members trained side by side: each job builds its members (from consecutive seeds)
and says how one is trained; :func:`train_side_by_side` runs them on every core.

The native trainer runs outside Python's lock, so members trained in threads use every core. A
member's result does not depend on the thread it ran in, with one exception:
:func:`rnnkit.training.loop.fit` seeds torch's global generator, which only dropout between
layers draws from (and such models run the torch loop, never the fused trainer), so members of a
model with dropout train one at a time (:func:`threads_are_deterministic`).

Ctrl-C, SIGTERM or a member's failure (a diverged loss) stops the others at the end of their
current epoch and cancels those not started, so the exception reaches the caller within an epoch
instead of after the whole ensemble. Work trained side by side may itself train side by side (the
refits of a conformal calibration, each an ensemble): the inner members stop with the outer ones.

Threads share torch's global generator, which seeds each member's initial weights: whoever seeds it
and draws from it holds :data:`GLOBAL_RNG` meanwhile (:func:`seeded`), so that one thread's seeding
never lands between another's seed and its draws.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import torch

from ..config import ModelConfig

__all__ = ["train_side_by_side", "threads_are_deterministic", "GLOBAL_RNG", "seeded"]

#: held while seeding torch's global generator and drawing from it (building a model)
GLOBAL_RNG = threading.RLock()
#: the ``halt`` of the side-by-side work the current thread runs, if any
_current = threading.local()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator with ``seed`` and hold it for the draws in the ``with`` body."""
    with GLOBAL_RNG:
        torch.manual_seed(seed)
        yield

T = TypeVar("T")
#: ``halt(row)``, one of a member's epoch callbacks: raises once the other members have stopped
Halt = Callable[[dict], None]


class _Halted(Exception):
    """Raised in a member's thread when the ensemble stops (the caller sees the first cause)."""


def threads_are_deterministic(model_config: ModelConfig) -> bool:
    """Whether members of this design may train in threads and still reproduce exactly: not when
    dropout (between stacked layers) draws from torch's global generator, which every thread shares."""
    return not (model_config.dropout > 0 and model_config.num_layers > 1)


def _never(row: dict) -> None:
    """The ``halt`` of members trained one after another: an interrupt reaches them directly."""


def train_side_by_side(train_one: Callable[[int, Halt], T], n: int, parallel: bool = True) -> list[T]:
    """``[train_one(k, halt) for k in range(n)]``, computed on ``min(n, CPUs)`` threads when
    ``parallel`` (and more than one CPU), in order; one after another otherwise. ``train_one``
    passes ``halt`` to :func:`~rnnkit.training.loop.fit` as one of its epoch callbacks."""
    outer = getattr(_current, "halt", None) or _never  # this call runs inside other side-by-side work
    threads = min(n, os.cpu_count() or 1)
    if not (parallel and threads > 1):
        return [train_one(k, outer) for k in range(n)]
    stop = threading.Event()

    def halt(row: dict) -> None:
        if stop.is_set():
            raise _Halted("the ensemble stopped")
        outer(row)

    def one(k: int) -> T:
        _current.halt = halt  # for side-by-side work train_one starts in this thread
        try:
            return train_one(k, halt)
        finally:
            _current.halt = None
    pool = ThreadPoolExecutor(threads)
    try:
        futures = [pool.submit(one, k) for k in range(n)]
        pending = set(futures)
        while pending:  # woken every 0.1 s: a signal delivered to a member's thread is handled here
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    raise f.exception()
        return [f.result() for f in futures]
    except BaseException:  # KeyboardInterrupt, SIGTERM, a member's error: stop the rest, then re-raise
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
