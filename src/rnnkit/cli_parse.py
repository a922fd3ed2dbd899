"""Pieces shared by every ``rnnkit`` parser: one-line usage errors and the seed option.

argparse's own ``error()`` prints the whole usage text (twenty lines for ``rnnkit fit``) and exits
from deep inside parsing; :class:`Parser` raises :class:`UsageError` instead, and
``rnnkit.cli.main`` prints ``rnnkit: error: <message>; see `rnnkit CMD --help``` on one line with
exit status 2, like every other user mistake. ``--help`` and ``--version`` are unchanged.
"""

from __future__ import annotations

import argparse

from .config import MAX_SEED

__all__ = ["Parser", "UsageError", "seed_arg", "seed_value"]


class UsageError(Exception):
    """A command line argparse could not parse: its message and the (sub)command's ``prog``."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message, self.prog = " ".join(message.split()), prog


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` (subparsers inherit the class)."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message, self.prog)


def seed_value(text: str) -> int:
    """An argparse ``type``: an integer seed in [0, 2^63 - 1], the range torch's generators take."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: pass an integer in [0, 2^63 - 1]") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: pass an integer in [0, 2^63 - 1] "
                                         f"({MAX_SEED})")
    return value


def seed_arg(p, default: int, what: str = "random seed") -> None:
    """Add ``--seed`` to parser or group ``p``."""
    p.add_argument("--seed", type=seed_value, default=default, metavar="N", help=f"{what} (default: {default})")
