"""Build, cache and load rnnkit's native kernels (plain C, called through ctypes).

The C source ships inside the package (``kernels/csrc``). On first use it is compiled with the
system C compiler (``$CC``, else ``cc``/``gcc``/``clang``) into a per-user cache directory,
keyed by the source's hash, the compiler and the machine, and reused afterwards. The compile
takes a few seconds (about 6 s on a 2-core machine) and is reported once; ``python -m rnnkit.kernels`` builds it explicitly.
Where no compiler is available (or ``RNNKIT_NO_NATIVE=1``), everything still works on the torch
and reference backends, with a one-line warning the first time a fused kernel was wanted.
``RNNKIT_NATIVE_SANITIZE=1`` builds (and caches separately) an AddressSanitizer + UBSan version
for ``make test-asan``.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from importlib.resources import files
from pathlib import Path

__all__ = ["library", "function", "available", "cache_dir", "build", "sources", "vector_bits", "cell_info", "TRAITS", "TrainSpec",
           "NativeUnavailable"]

log = logging.getLogger("rnnkit.kernels")
ABI_VERSION = 4
# -fno-trapping-math lets comparisons (the clamps in exp) become vector selects; NaN still
# propagates. No -ffast-math: the kernels must match torch to float64 rounding.
FLAGS = ["-O3", "-std=c11", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math", "-fvisibility=hidden"]
#: ``RNNKIT_NATIVE_SANITIZE=1`` (``make test-asan``) adds these: AddressSanitizer and UBSan, every
#: undefined-behaviour report fatal, debug lines for the reports. A separate cache entry (the
#: flags are in the key); the process must preload the ASan runtime (see :func:`_check_sanitizer`)
SANITIZE_FLAGS = ["-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_failed: str | None = None
_warned = False


class NativeUnavailable(RuntimeError):
    """The native kernels could not be built or loaded on this machine."""


class TrainSpec(ctypes.Structure):
    """Mirror of ``rk_train_spec`` in rnnkit_kernels.c."""

    _fields_ = [(name, ctypes.c_int32) for name in (
        "cell", "act", "out_act", "num_layers", "input_size", "hidden", "state", "head_out",
        "head_mode", "warmup", "loss", "T", "optimizer", "reserved")] + \
        [(name, ctypes.c_double) for name in (
            "lr", "beta1", "beta2", "eps", "weight_decay", "momentum", "alpha", "clip_value", "clip_norm")]


def cache_dir() -> Path:
    """Where compiled kernels live: ``$RNNKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/rnnkit``."""
    if os.environ.get("RNNKIT_CACHE_DIR"):
        return Path(os.environ["RNNKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnkit"


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc.split()[0]):
            return cc
    return None


def _source_dir() -> Path:
    return Path(str(files("rnnkit.kernels").joinpath("csrc")))


#: ``$RNNKIT_NATIVE_ISA`` caps the instruction set the kernels are compiled for
ISA_LEVELS = ("generic", "avx2", "avx512")


def _cpu_flags() -> list[str]:
    """Instruction-set flags for this CPU: AVX2+FMA, and AVX-512F, where /proc/cpuinfo lists them
    (x86-64 Linux); the matrix micro-kernel picks its vector width and register block from them.
    ``RNNKIT_NATIVE_ISA=generic|avx2|avx512`` caps the level (e.g. ``avx2`` on CPUs that slow
    down under AVX-512 code; ``generic`` for portable vectors only).

    The library is compiled on the machine that runs it; the flags are part of the cache key, so
    a cache shared with an older CPU never hands it instructions it lacks. No -march=native."""
    cap = os.environ.get("RNNKIT_NATIVE_ISA", "").strip().lower() or "avx512"
    if cap not in ISA_LEVELS:
        raise NativeUnavailable(f"RNNKIT_NATIVE_ISA={cap!r}: use one of {', '.join(ISA_LEVELS)}")
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in info.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if cap == "generic" or platform.machine() not in ("x86_64", "AMD64") or not {"avx2", "fma"} <= flags:
        return []
    return ["-mavx2", "-mfma"] + (["-mavx512f"] if cap == "avx512" and "avx512f" in flags else [])


def _sanitize() -> bool:
    return os.environ.get("RNNKIT_NATIVE_SANITIZE", "") not in ("", "0")


def _flags() -> list[str]:
    """Every compiler flag of this build (the cache key includes them all)."""
    return FLAGS + _cpu_flags() + (SANITIZE_FLAGS if _sanitize() else [])


def _check_sanitizer() -> None:
    """An ASan-instrumented library loads only into a process that started with the ASan runtime;
    otherwise ASan ends the process on the spot. Say so instead."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return  # not Linux: let the loader decide
    if "libasan" not in maps:
        raise NativeUnavailable("RNNKIT_NATIVE_SANITIZE=1 needs the AddressSanitizer runtime preloaded: run with "
                                "LD_PRELOAD=$(gcc -print-file-name=libasan.so) and CC=gcc (or use `make test-asan`)")


def vector_bits() -> int:
    """The SIMD width (bits) the loaded kernels were compiled for: 512, 256 or 128."""
    return int(library().rk_vector_bits())


def cell_info(code: int) -> tuple[int, int] | None:
    """``(gate blocks, traits)`` of the cell with this code in the kernels' table (csrc/cells.h),
    or None for a code no cell has; traits are the bits :data:`TRAITS` names."""
    info = int(library().rk_cell_info(code))
    return None if info < 0 else (info >> 8, info & 0xFF)


#: the cell traits of csrc/cells.h (RK_CELL_STATE, RK_HIDDEN_APART, RK_OUTPUT_LAYER), by bit
TRAITS = {"cell_state": 1, "hidden_apart": 2, "output_layer": 4}


def sources() -> list[Path]:
    """Every file the build reads: rnnkit_kernels.c and the headers it includes (csrc/*.h: the
    generic code and one header per cell), in a fixed order for the cache key."""
    src = _source_dir()
    return sorted([*src.glob("*.c"), *src.glob("*.h")], key=lambda p: p.name)


def _key(cc: str) -> str:
    h = hashlib.sha256()
    for path in sources():
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes())
    try:
        version = subprocess.run(cc.split() + ["--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    h.update(version.encode())
    h.update(" ".join(_flags()).encode())
    h.update(f"{sys.platform}-{platform.machine()}".encode())
    return h.hexdigest()[:16]


def build(force: bool = False) -> Path:
    """Compile the kernels if the cache has no current build; return the library's path."""
    cc = _compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler found (set CC, or install gcc or clang)")
    suffix = ".dll" if sys.platform == "win32" else ".so"
    target = cache_dir() / f"librnnkit-{_key(cc)}{suffix}"
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    src = _source_dir() / "rnnkit_kernels.c"
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=suffix, dir=target.parent)
    os.close(fd)
    t0 = time.perf_counter()
    proc = subprocess.run(cc.split() + _flags() + ["-o", tmp, str(src), "-lm"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        first = (proc.stderr or proc.stdout).strip().splitlines()[:1]
        raise NativeUnavailable(f"compiling the native kernels failed: {first[0] if first else proc.returncode}")
    os.replace(tmp, target)  # atomic: concurrent processes never load half a file
    message = f"rnnkit: compiled native kernels in {time.perf_counter() - t0:.1f} s (cached at {target})"
    log.info(message)
    if sys.stderr.isatty():
        print(message, file=sys.stderr)
    return target


def library() -> ctypes.CDLL:
    """The loaded native library; raises :class:`NativeUnavailable` (once built or failed, cached)."""
    global _lib, _failed
    if _lib is not None:
        return _lib
    if _failed is not None:
        raise NativeUnavailable(_failed)
    with _lock:
        if _lib is None and _failed is None:
            try:
                if os.environ.get("RNNKIT_NO_NATIVE", "") not in ("", "0"):
                    raise NativeUnavailable("disabled by RNNKIT_NO_NATIVE")
                if _sanitize():
                    _check_sanitizer()
                lib = ctypes.CDLL(str(build()))
                if lib.rk_abi_version() != ABI_VERSION:
                    raise NativeUnavailable("stale native kernel build (ABI mismatch); delete " + str(cache_dir()))
                _declare(lib)
                _lib = lib
            except (NativeUnavailable, OSError) as e:
                _failed = str(e)
    if _lib is None:
        raise NativeUnavailable(_failed or "unavailable")
    return _lib


_FUNCTIONS: dict = {}


def function(name: str, dtype):
    """The native function ``name`` for ``dtype`` (``rk_forward`` -> ``rk_forward_f32`` for
    ``torch.float32``, ``_f64`` for ``torch.float64``), looked up once."""
    f = _FUNCTIONS.get((name, dtype))
    if f is None:
        suffix = "f64" if str(dtype) == "torch.float64" else "f32"
        f = _FUNCTIONS[name, dtype] = getattr(library(), f"{name}_{suffix}")
    return f


def available() -> bool:
    """True when the native kernels are built and loaded (building them if needed)."""
    try:
        library()
        return True
    except NativeUnavailable:
        return False


def warn_unavailable() -> None:
    """One-line warning, once per process, that rnnkit falls back to the torch backend."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"rnnkit: native kernels unavailable ({_failed}); using the torch backend instead",
                      RuntimeWarning, stacklevel=3)


_P, _I, _L, _D = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_double
#: every exported kernel (each in an ``_f32`` and an ``_f64`` version): argument and result types,
#: mirroring the C signatures in csrc/ (a mismatch here corrupts memory, so keep them together)
SIGNATURES: dict[str, tuple[list, object]] = {
    "rk_forward": ([_I] * 7 + [_P] * 12 + [_I], None),
    "rk_backward": ([_I] * 7 + [_P] * 16, None),
    "rk_forward_work": ([_I] * 4, _L),
    "rk_backward_work": ([_I] * 3, _L),
    "rk_layer_forward": ([_I] * 8 + [_P] * 15, None),
    "rk_layer_backward": ([_I] * 8 + [_P] * 19, None),
    "rk_layer_saved_size": ([_I] * 5, _L),
    "rk_layer_work_size": ([_I] * 6, _L),
    "rk_stream": ([_I] * 8 + [_P] * 7, None),
    "rk_stream_packed": ([_P], None),
    "rk_stream_work": ([_I] * 4, _L),
    "rk_panel_size": ([_I, _I], _L),
    "rk_pack_panels": ([_P, _I, _I, _I, _P], None),
    "rk_matmul": ([_P, _I, _P, _I, _P, _I, _I, _I, _P], None),
    "rk_exp": ([_P, _P, _L], None),
    "rk_tanh": ([_P, _P, _L], None),
    "rk_num_params": ([_P], _L),
    "rk_train_epoch": ([_P] * 9 + [_L, _I, _I, _P, _P, _P], _D),
}


def _declare(lib: ctypes.CDLL) -> None:
    lib.rk_cell_info.argtypes, lib.rk_cell_info.restype = [_I], _I
    for name, (argtypes, restype) in SIGNATURES.items():
        for suf in ("f32", "f64"):
            f = getattr(lib, f"{name}_{suf}")
            f.argtypes, f.restype = argtypes, restype
