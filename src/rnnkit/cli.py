"""The ``rnnkit`` command line: each job's commands (registered in :mod:`rnnkit.tasks`, defined in
``tasks/X/cli.py``) under one parser. They call the same functions as the Python API, nothing more.

A user mistake (missing file, unknown column, bad setting, damaged run...) prints one line,
``rnnkit: error: ...``, on stderr and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable, Sequence

from ._version import __version__
from .cli_parse import EXIT_USAGE, Parser, UsageError
from .errors import RnnkitError, RnnkitWarning
from .tasks import JOBS, TOOLS
from .tasks.export import cli as export_cli

__all__ = ["main", "build_parser"]

#: every command line module: the jobs' (:data:`rnnkit.tasks.JOBS`), `rnnkit export`, then the tools'
#: (:data:`rnnkit.tasks.TOOLS`)
_CLIS = [job.cli for job in JOBS.values() if job.cli is not None] + [export_cli] + list(TOOLS)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rnnkit", description="Recurrent networks for sequences: forecasting (fit, forecast, evaluate, "
                                   "backtest), sequence classification (classify) and character models (text).")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cli in _CLIS:  # forecasting's commands, then `rnnkit classify ...`, `rnnkit text ...`, `rnnkit sweep`
        cli.register(sub)
    return parser


#: command name -> handler, collected from each job's command line (:mod:`rnnkit.tasks`)
COMMANDS = {name: handler for cli in _CLIS for name, handler in cli.COMMANDS.items()}


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """An :class:`RnnkitWarning` is for a person: one line on stderr, like an error; any other
    warning as Python shows it."""
    if issubclass(category, RnnkitWarning):
        print(f"rnnkit: warning: {message}", file=sys.stderr if file is None else file)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that a run being written is cleaned up on the way out."""


def _terminate_cleanly() -> None:
    import signal
    import threading
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        def handler(signum, frame):
            raise _Terminated()
        signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None, loaded: Callable[[], None] | None = None) -> int:
    """Run one ``rnnkit`` command; returns the exit status (2 for a user mistake, 130 when interrupted).

    ``rnnkit.__main__.main`` (the console entry point) wraps this so that Ctrl-C during the first
    imports is handled too: with ``loaded``, the libraries every command needs are imported once
    the arguments parse, then ``loaded()`` is called (``--help``, ``--version`` and usage errors
    stay fast)."""
    warnings.showwarning = _show_warning
    _terminate_cleanly()
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except UsageError as e:  # one line and where to look, not the whole usage text
            print(f"rnnkit: error: {e.message}; see `{e.prog} --help`", file=sys.stderr)
            return EXIT_USAGE
        if loaded is not None:
            import numpy, pandas, torch  # noqa: F401, E401 - see rnnkit.__main__
            loaded()
        return COMMANDS[args.command](args)
    except RnnkitError as e:
        print(f"rnnkit: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("rnnkit: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
