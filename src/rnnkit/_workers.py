"""How a sweep's local worker processes are made (:mod:`rnnkit.tasks.sweep.executors`), in the
standard library only and outside ``rnnkit.tasks`` (whose package imports torch), so that ``rnnkit
sweep`` can start their fork server before it imports anything heavy (:func:`start_early`, called
by :mod:`rnnkit.__main__`).

The pool never forks the sweep's own process (its torch may have started threads, whose locks do
not survive ``fork``): its workers come from a fork server, a fresh process that only imports what
a job needs (:data:`PRELOAD`), or where there is none (Windows) from ``spawn``.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["PRELOAD", "pool_context", "children_ignore_sigint", "start_early"]

#: what the fork server imports once, before it forks each worker (every module a job uses)
PRELOAD = ["rnnkit.tasks.sweep.preload"]


def pool_context(multiprocessing):
    """``forkserver`` where the system has it (Linux, macOS), else ``spawn``: never a plain ``fork``
    of this process, whose torch may have started threads. The fork server is a fresh process that
    only imports (:data:`PRELOAD`) and computes nothing, so each worker starts with torch loaded
    and no thread started; preloading is a speed-up only (a server already running is used as it is)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


@contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Processes started inside the block ignore Ctrl-C from their first instruction (an ignored
    signal stays ignored across exec, and Python then installs no handler of its own), so that a
    Ctrl-C while a worker imports torch cannot kill it with a traceback: a job turns Ctrl-C on
    while it runs, and the parent stops the workers between jobs."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    if main:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, before if before is not None else signal.default_int_handler)


def start_early(args) -> bool:
    """Start the fork server now, for ``rnnkit sweep ARGS...`` whose jobs will run in a local pool
    (no ``--executor ray``, no ``--workers 1``, more than one usable CPU), so that it imports torch
    and the job's modules while this process imports them too: on two cores the two imports overlap
    instead of following each other. Returns whether it started one. A speed-up only, read from
    the raw arguments before they are parsed: the pool starts the server itself when it is not
    running, and one started for a sweep that then runs its jobs here (a single job, a refused
    setting, ``--help``) ends with this process."""
    import multiprocessing
    args = list(args)
    if any(a in ("-h", "--help") for a in args):
        return False
    if _option(args, "--executor") not in (None, "local") or _option(args, "--workers") == "1":
        return False
    try:
        if len(os.sched_getaffinity(0)) < 2:
            return False
    except AttributeError:  # macOS
        if (os.cpu_count() or 1) < 2:
            return False
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    from multiprocessing import forkserver
    pool_context(multiprocessing)
    with children_ignore_sigint():
        forkserver.ensure_running()
    return True


def _option(args: list[str], name: str) -> str | None:
    """The last value given to option ``name`` (``--name V`` or ``--name=V``), or None."""
    value = None
    for k, a in enumerate(args):
        if a == name and k + 1 < len(args):
            value = args[k + 1]
        elif a.startswith(name + "="):
            value = a[len(name) + 1:]
    return value
