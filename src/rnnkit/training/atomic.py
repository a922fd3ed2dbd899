"""Atomic file-system steps, the bricks of :mod:`rnnkit.training.rundir`: renames that never replace
(``renameat2(RENAME_NOREPLACE)``, else a lock file) and that exchange two directories in one step
(``renameat2(RENAME_EXCHANGE)`` on Linux, ``renamex_np(RENAME_SWAP)`` on macOS); rnnkit's temporary
names (``.NAME~rnnkit~HOST~PID~RAND.tmp``: who made them, so a later process can tell whether
their owner is dead); flushing to disk; the umask; and a single output file written through a
temporary sibling.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from ..errors import RunError

__all__ = ["TAG", "rename_noreplace", "exchange", "host", "temp_name", "parse_temp", "process_alive",
           "current_umask", "probe_dir", "fsync_tree", "fsync_dir", "write_file_atomic", "write_files_atomic"]

#: the word in every temporary's name that says rnnkit made it
TAG = "rnnkit"


# --- atomic renames --------------------------------------------------------------------------------

def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to call
        return None


_LIBC = _libc()
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "arm64": 276}.get(os.uname().machine if hasattr(os, "uname") else "")


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)`` (Linux: 1 = NOREPLACE, 2 = EXCHANGE) or ``renamex_np`` (macOS:
    4 = EXCL, 2 = SWAP, passed in the same ``flags``). True when done; False when this system or
    file system cannot do it (the caller falls back); OSError for a real failure (EEXIST...)."""
    if _LIBC is None:
        return False
    a, b = os.fsencode(src), os.fsencode(dst)
    if sys.platform.startswith("linux"):
        fn = getattr(_LIBC, "renameat2", None)
        if fn is not None:
            rc = fn(-100, a, -100, b, ctypes.c_uint(flags))  # AT_FDCWD
        elif _SYS_RENAMEAT2 is not None:
            rc = _LIBC.syscall(_SYS_RENAMEAT2, -100, a, -100, b, ctypes.c_uint(flags))
        else:
            return False
    elif sys.platform == "darwin":
        fn = getattr(_LIBC, "renamex_np", None)
        if fn is None:
            return False
        rc = fn(a, b, ctypes.c_uint({1: 4, 2: 2}[flags]))
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, failing with FileExistsError when ``dst`` exists (even empty)."""
    if _rename2(src, dst, 1):
        return
    # no atomic no-replace here: a lock file makes check-and-rename exclusive among rnnkit processes
    lock = dst.parent / f".{dst.name}.{TAG}-lock"
    deadline = time.monotonic() + 10.0
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise RunError(f"{lock} is held by another rnnkit process; remove it if none is running") from None
            time.sleep(0.05)
    try:
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "File exists", str(dst))
        os.rename(src, dst)
    finally:
        os.close(fd)
        os.unlink(lock)


def exchange(new: Path, old: Path) -> bool:
    """Exchange two directories atomically; False where the system cannot."""
    return _rename2(new, old, 2)


# --- temporaries -----------------------------------------------------------------------------------

def host() -> str:
    return socket.gethostname().replace("~", "-") or "host"


def temp_name(out: Path, suffix: str) -> Path:
    return out.parent / f".{out.name}~{TAG}~{host()}~{os.getpid()}~{secrets.token_hex(4)}.{suffix}"


def parse_temp(name: str) -> tuple[str, str, int, str] | None:
    """(run name, host, pid, "tmp"|"old") of a temporary's file name, None if not one of ours."""
    if not name.startswith(".") or not (name.endswith(".tmp") or name.endswith(".old")):
        return None
    parts = name[1:-4].rsplit("~", 4)
    if len(parts) != 5 or parts[1] != TAG or not parts[3].isdigit():
        return None
    return parts[0], parts[2], int(parts[3]), name[-3:]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def current_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it the only portable way (not thread-safe, rare)
    os.umask(mask)
    return mask


def probe_dir(parent: Path) -> Path:
    p = parent / f".{TAG}-probe~{os.getpid()}~{secrets.token_hex(4)}"
    os.mkdir(p)
    return p


def fsync_tree(d: Path) -> None:
    for root, dirs, files in os.walk(d):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(d)


def fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def write_file_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a single output file (``forecast --out``, predictions) through a temporary sibling, so a
    failure (a full disk) leaves the old file or none, never a truncated one."""
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{path} is a directory; pass a file name for --out")
    try:
        if os.path.exists(path) and not path.is_file():  # /dev/stdout, a pipe: write to it as it is
            write(path)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}~{TAG}~{host()}~{os.getpid()}~{secrets.token_hex(4)}.tmp"
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    except OSError as e:
        what = e.strerror or str(e)
        raise RunError(f"could not write {path} ({what}); nothing was written: free some space, check the "
                       "permissions or choose another --out") from None
    return path


def write_files_atomic(writes: dict[Path, Callable[[Path], None]]) -> list[Path]:
    """Write several output files that belong together (an ONNX graph and its table of per-series
    parameters): every one through a temporary sibling, all of them complete before the first is
    renamed into place. A failure leaves the old files or none, never one new file beside an old or a
    missing one: a file already put in place is put back (its old version kept as a hard link until
    all are in place) or removed."""
    paths = [Path(p) for p in writes]
    for path in paths:
        if path.is_dir():
            raise RunError(f"{path} is a directory; pass a file name for --out")
    temps: dict[Path, Path] = {}
    olds: dict[Path, Path] = {}
    placed: list[Path] = []
    current = paths[0]
    try:
        try:
            for current, write in zip(paths, writes.values()):
                current.parent.mkdir(parents=True, exist_ok=True)
                temps[current] = temp_name(current, "tmp")
                write(temps[current])
            for current in paths:
                if current.exists():
                    olds[current] = temp_name(current, "old")
                    try:
                        os.link(current, olds[current])  # the old version, until every new file is in place
                    except OSError:  # a file system without hard links
                        shutil.copyfile(current, olds[current])
                os.replace(temps[current], current)
                placed.append(current)
        except OSError as e:
            for path in placed:  # put back what was there, remove what was not
                if path in olds:
                    os.replace(olds.pop(path), path)
                else:
                    os.unlink(path)
            what = e.strerror or str(e)
            raise RunError(f"could not write {current} ({what}); nothing was "
                           "written: free some space, check the permissions or choose another --out") from None
    finally:
        for tmp in [*temps.values(), *olds.values()]:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    return paths
