"""``rnnkit`` and ``python -m rnnkit``: the console entry point.

Ctrl-C in the first seconds, while torch and pandas load, must print ``rnnkit: interrupted``
(exit status 130) like Ctrl-C at any later time, not a 30-line traceback from inside an import.
So this module imports only the standard library, and :func:`main` sets up that handling before
it imports the command line (``rnnkit.cli``) and, through it, everything heavy. ``rnnkit``'s
package ``__init__`` loads its public names lazily for the same reason.
"""

from __future__ import annotations

import signal
import sys

__all__ = ["main"]

EXIT_INTERRUPTED = 130


def _interrupted() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while we report must not print a traceback
    try:
        print("rnnkit: interrupted", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed: the status still says it
        pass
    return EXIT_INTERRUPTED


def main(argv=None) -> int:
    """Run ``rnnkit`` with ``argv`` (default: the command line); returns the exit status."""
    try:
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # (ignored in background jobs: keep it so)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises KeyboardInterrupt
    except ValueError:  # not the main thread: signals are the main thread's business
        pass
    try:
        from .cli import main as cli_main  # the heavy imports start here, inside the handling
        return cli_main(argv)
    except KeyboardInterrupt:
        return _interrupted()


if __name__ == "__main__":
    sys.exit(main())
