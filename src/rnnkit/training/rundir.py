"""Creating, replacing and reading run directories without ever losing a user's data.

The guarantees (the README's "What a run directory holds" states them for users):

- **Nothing but a run is ever replaced.** ``--force`` (``force=True``) replaces only a directory
  that *is* an rnnkit run: its ``config.json`` says so and it holds no file that rnnkit does not
  write (:data:`RUN_FILES`). The current directory, its ancestors, the home directory, the root and
  any directory holding the data being read are refused outright, with or without ``--force``.
- **Creation is exclusive.** A run is written to a temporary sibling and renamed into place with a
  rename that fails when the target exists, so of two fits to the same ``--out`` exactly one wins.
- **Replacement is atomic.** ``--force`` swaps the new directory with the old one in one
  ``renameat2(RENAME_EXCHANGE)`` (Linux) or ``renamex_np(RENAME_SWAP)`` (macOS) call: at every
  instant the path holds one complete run. Where the file system has no atomic swap, the old run
  is renamed aside first and put back by the next rnnkit that finds it orphaned.
- **Readers see one run or an error.** :func:`consistent_read` re-reads a run when its directory
  was swapped while being read, so a loader never mixes files of two runs.
- **No debris.** Temporaries are named after their host and process; the next write to the same
  parent removes those of dead processes (a SIGKILL during a write leaves nothing behind for long).
- Files and directories follow the umask, and are flushed to disk before the rename.

The atomic steps themselves (renames, temporaries' names, fsync) are :mod:`rnnkit.training.atomic`;
this module is the policy built on them.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from ..errors import RnnkitError, RunError
from . import atomic

__all__ = ["RUN_FILES", "RUN_KINDS", "check_out", "write_run_dir", "consistent_read", "is_run_dir", "clean_stale"]

#: every file any kind of run writes; ``--force`` refuses to replace a directory holding anything
#: else (a test checks that each kind writes only these)
RUN_FILES = frozenset({
    "config.json", "weights.safetensors", "scaler.json", "history.csv", "timing.csv", "metrics.json",
    "forecast.csv", "learning_curve.png", "forecast.png", "labels.json", "vocab.json",
    "confusion_matrix.csv", "confusion_matrix.png", "sample.txt", "intervals.json"})
RUN_KINDS = ("forecast", "classify", "text")

_T = TypeVar("_T")


def clean_stale(parent: Path) -> list[str]:
    """Remove the temporaries that dead rnnkit processes on this host left in ``parent``; put back
    an orphaned old run (a replacement killed between its two renames). Returns what was done."""
    done: list[str] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return done
    host = atomic.host()
    for name in names:
        info = atomic.parse_temp(name)
        if info is None or info[1] != host or atomic.process_alive(info[2]):
            continue
        path, target = parent / name, parent / info[0]
        if info[3] == "old" and not os.path.lexists(target) and is_run_dir(path):
            try:
                atomic.rename_noreplace(path, target)
                done.append(f"restored {target} from an interrupted replacement")
                continue
            except OSError:
                pass
        shutil.rmtree(path, ignore_errors=True)
        done.append(f"removed {path}")
    return done


# --- what may be replaced --------------------------------------------------------------------------

def is_run_dir(d: Path) -> bool:
    """Whether ``d`` is a directory rnnkit wrote: a config.json naming a run kind and no other file."""
    try:
        if not d.is_dir() or d.is_symlink():
            return False
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
        if not isinstance(config, dict) or config.get("kind", "forecast") not in RUN_KINDS \
                or "format_version" not in config:
            return False
        return all(name in RUN_FILES and (d / name).is_file() and not (d / name).is_symlink()
                   for name in os.listdir(d))
    except (OSError, ValueError, RecursionError):
        return False


def _foreign_entries(d: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(d) if n not in RUN_FILES or not (d / n).is_file()
                      or (d / n).is_symlink())
    except OSError:
        return []


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _nearest_existing(p: Path) -> Path:
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def check_out(out: str | os.PathLike, force: bool = False, protect: Iterable[str | os.PathLike | None] = (),
              probe: bool = True) -> Path:
    """Check that a run may be written to ``out`` (before spending minutes on training).

    Refuses, with a :class:`RunError` and nothing touched: an empty name; the current directory, an
    ancestor of it, the home directory or the root; a directory holding any of the ``protect``
    paths (the data being read); an existing ``out`` without ``force``; with ``force``, a ``out``
    that is not an rnnkit run or holds files rnnkit did not write; a parent that is a file or cannot
    be written to (``probe`` creates and removes a temporary directory there to find out).
    """
    if out is None or str(out).strip() == "":
        raise RunError("--out must name a run directory to create; got an empty name")
    out = Path(out)
    resolved = out.expanduser().resolve()
    cwd = Path.cwd().resolve()
    special = {Path(resolved.anchor): "the root directory", Path.home().resolve(): "your home directory"}
    if resolved in special or _is_within(cwd, resolved):
        what = special.get(resolved) or ("the current directory" if resolved == cwd else "an ancestor of the "
                                         "current directory")
        raise RunError(f"refusing to use {out} as a run directory: it is {what}; choose a new directory "
                       f"such as runs/NAME for --out")
    for p in protect:
        if p is None or str(p).startswith("builtin:"):
            continue
        if _is_within(Path(p).expanduser().resolve(), resolved):
            raise RunError(f"refusing to use {out} as a run directory: it holds the data {p}; choose another --out")
    if os.path.lexists(out):
        if out.is_symlink() or not out.is_dir():
            raise RunError(f"{out} exists and is not a directory; choose another --out")
        if not force:
            raise RunError(f"run directory {out} already exists; choose another --out or pass --force to replace it")
        if not is_run_dir(out):
            foreign = _foreign_entries(out)
            why = (f"it holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which rnnkit did not write"
                   if foreign and (out / "config.json").is_file() else "it is not an rnnkit run directory")
            raise RunError(f"--force replaces only an rnnkit run directory, and {out} is not one ({why}); "
                           f"nothing was changed: choose another --out")
    base = _nearest_existing(out.parent if str(out.parent) else Path("."))
    if not base.is_dir():
        raise RunError(f"cannot create run directory {out}: {base} is a file, not a directory; choose another --out")
    if probe:
        try:
            os.rmdir(atomic.probe_dir(base))
        except OSError as e:
            raise RunError(f"cannot create run directory {out}: {base} is not writable ({e.strerror}); "
                           "choose another --out") from None
    return out


def _write_error(out: Path, e: OSError) -> RunError:
    what = e.strerror or str(e)
    hint = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "check the permissions"
    return RunError(f"could not write run directory {out} ({what}); nothing was written: {hint} or choose "
                    "another --out")


def write_run_dir(out: str | os.PathLike, write: Callable[[Path], None], force: bool = False,
                  protect: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Create run directory ``out``: ``write(tmp)`` fills a temporary sibling, which is then renamed
    into place exclusively, or with ``force`` swapped atomically with the existing run (see the
    module docstring for what is refused and guaranteed)."""
    out = Path(out)
    protect = list(protect)
    check_out(out, force, protect, probe=False)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(out, e) from None
    clean_stale(out.parent)
    tmp = atomic.temp_name(out, "tmp")
    try:
        os.mkdir(tmp, 0o700)
    except OSError as e:
        raise _write_error(out, e) from None
    try:
        try:
            write(tmp)
            mode = 0o777 & ~atomic.current_umask()
            os.chmod(tmp, mode)
            for name in os.listdir(tmp):
                os.chmod(tmp / name, mode & 0o666)
            atomic.fsync_tree(tmp)
            _place(tmp, out, force, protect)
        except OSError as e:
            raise _write_error(out, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after a swap, tmp holds the old run
    atomic.fsync_dir(out.parent)
    return out


def _place(tmp: Path, out: Path, force: bool, protect: list) -> None:
    if force and os.path.lexists(out):
        check_out(out, force, protect, probe=False)  # still a run: nobody put their files there meanwhile
        if atomic.exchange(tmp, out):
            return
        old = atomic.temp_name(out, "old")  # no atomic swap: rename aside, put back by clean_stale if killed
        os.rename(out, old)
        try:
            atomic.rename_noreplace(tmp, out)
        except BaseException:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        atomic.rename_noreplace(tmp, out)
    except FileExistsError:
        raise RunError(f"run directory {out} was created by another process while this one was running; "
                       "this run was not saved: choose another --out or pass --force to replace it") from None


def _identity(d: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(d)
    except OSError:
        return None
    return st.st_dev, st.st_ino


#: how long a loader keeps re-reading a run that other processes keep replacing (seconds)
READ_PATIENCE = 30.0


def _being_replaced(d: Path) -> bool:
    """Whether a live rnnkit process has renamed run ``d`` aside to replace it."""
    try:
        names = os.listdir(d.parent if str(d.parent) else ".")
    except OSError:
        return False
    for name in names:
        info = atomic.parse_temp(name)
        if (info is not None and info[0] == d.name and info[3] == "old" and info[1] == atomic.host()
                and atomic.process_alive(info[2])):
            return True
    return False


@contextmanager
def _pinned(d: Path) -> Iterator[tuple[int, int] | None]:
    """The identity (device, inode) of directory ``d``, held open meanwhile: while the descriptor is
    open the inode cannot be freed, so no directory made later (a replacement's) can have the same
    identity, and "the same before and after" cannot be fooled by two swaps and a reused inode."""
    try:
        fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield None
        return
    try:
        st = os.fstat(fd)
        yield st.st_dev, st.st_ino
    finally:
        os.close(fd)


def consistent_read(load: Callable[..., _T]) -> Callable[..., _T]:
    """Decorate a loader ``load(path, ...)`` so that it never mixes two runs: the directory at
    ``path`` must be the same one (device and inode, held open: :func:`_pinned`) before and after
    every file was read, else the load is repeated (a ``--force`` replacement swapped it meanwhile)."""
    @functools.wraps(load)
    def wrapper(path, *args, **kwargs):
        deadline = time.monotonic() + READ_PATIENCE
        while time.monotonic() < deadline:
            with _pinned(Path(path)) as before:
                try:
                    result = load(path, *args, **kwargs)
                except (RnnkitError, OSError):
                    if before is not None and _identity(Path(path)) != before:
                        continue  # swapped while reading: the error may come from the old run's removal
                    if before is None and _being_replaced(Path(path)):
                        time.sleep(0.05)  # renamed aside for a replacement (no atomic swap here): wait
                        continue
                    raise
                if _identity(Path(path)) == before:
                    return result
        raise RunError(f"run directory {path} was replaced by another process again and again for "
                       f"{READ_PATIENCE:.0f} s while being read; try again when it is done")
    return wrapper
