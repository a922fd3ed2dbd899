"""``rnnkit`` and ``python -m rnnkit``: the console entry point.

Ctrl-C in the first seconds, while torch, numpy and pandas load, must print ``rnnkit: interrupted``
(exit status 130) like Ctrl-C at any later time, not a 30-line traceback from inside an import.
So this module imports only the standard library, and :func:`main` installs the handling before
it imports anything else. While the heavy libraries load, Ctrl-C ends the process at once: there
is nothing to clean up yet, and a KeyboardInterrupt raised inside an extension's import can
surface as an unrelated ImportError (numpy turns it into "PyCapsule_Import could not import
module datetime"). Once they are loaded, Ctrl-C raises KeyboardInterrupt again, so that whatever
is under way cleans up as the exception unwinds, and ``rnnkit.cli.main`` reports it in one line.
``rnnkit``'s package ``__init__`` loads its public names lazily for the same reason.

Not covered: Ctrl-C in the first few hundredths of a second, while the Python interpreter itself
starts (before any rnnkit code runs), still gets Python's own traceback.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["main", "run"]

EXIT_INTERRUPTED = 130
_MESSAGE = b"rnnkit: interrupted\n"


def _exit_at_once(signum, frame) -> None:  # pragma: no cover - runs in a subprocess in the tests
    try:
        os.write(2, _MESSAGE)
    except OSError:
        pass
    os._exit(EXIT_INTERRUPTED)


def _interrupted() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while we report must not print a traceback
    try:
        sys.stderr.write(_MESSAGE.decode())
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: the status still says it
        pass
    return EXIT_INTERRUPTED


def main(argv=None) -> int:
    """Run ``rnnkit`` with ``argv`` (default: the command line); returns the exit status."""
    try:  # (a background job started with SIGINT ignored keeps it ignored, as Python does)
        handle = signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        if handle:
            signal.signal(signal.SIGINT, _exit_at_once)
    except ValueError:  # not the main thread: signals are the main thread's business
        handle = False

    def loaded() -> None:  # the heavy imports are done: from here on Ctrl-C unwinds and cleans up
        if handle:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["sweep"]:  # its workers' fork server imports torch while this process does
        from ._workers import start_early
        start_early(args[1:])
    try:
        from .cli import main as cli_main
        return cli_main(argv, loaded=loaded)
    except KeyboardInterrupt:
        return _interrupted()


def run() -> None:
    """The console entry point: :func:`main` on the command line, then exit with its status.

    After Ctrl-C the process ends with ``os._exit(130)`` once the output is flushed: an interrupt
    that lands inside a C extension's own ``PyRun_*`` call leaves the interpreter marked to
    re-raise SIGINT at exit, which would end the process by the signal (status -2) after the
    one-line message. Whatever cleans up (temporary run directories) has run while the exception
    unwound."""
    status = main()
    if status == EXIT_INTERRUPTED:
        _flush()
        os._exit(status)
    _exit_fast(status)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _exit_fast(status: int) -> None:
    """End the process without the interpreter's teardown, which frees every module one by one:
    0.5 to 1 s once torch is loaded, measured on 2 cores, on every command (a sweep's 16 jobs take
    about 11 s). What a normal exit does that matters still runs first: the ``atexit`` handlers
    (multiprocessing's, Ray's), then the output is flushed; output that cannot be written (a full
    disk, a closed pipe) ends with status 120 (141 for a closed pipe) and a line on stderr, as a
    normal exit's failed flush would. Only when no other thread is left (one would be cut off: a
    live executor's or tqdm's thread, whose ``threading`` exit hooks run only in a normal exit), and
    for an integer status; otherwise, and where Python has no ``atexit._run_exitfuncs``, a normal
    exit. Every file rnnkit writes is closed by then (run directories are renamed into place)."""
    import atexit
    import threading
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is None or threading.active_count() > 1 or not isinstance(status, int) \
            or isinstance(status, bool):
        sys.exit(status)
    run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        status = 141
    except (OSError, ValueError) as e:
        try:
            os.write(2, f"rnnkit: error: could not write the output ({e})\n".encode())
        except OSError:
            pass
        status = 120
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)


if __name__ == "__main__":
    run()
