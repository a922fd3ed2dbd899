"""Side-by-side timing: contenders interleaved in one process, ratios from the same rounds.

Shared machines are noisy, so an absolute time is not a result; a ratio measured side by side is.
:func:`compare` runs every contender once per round (A B C, then B C A, ...), each for about
``sample_s`` seconds, for ``repeats`` rounds. A ratio is computed *within* each round
(baseline time / rnnkit time, > 1 means rnnkit is faster) and reported as the median over
rounds with its min..max, so a slow spell on the machine hits both sides of a ratio alike.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # benchmark this checkout, installed or not
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

__all__ = ["Stats", "compare", "ratio", "threads", "machine_info", "fmt_time", "fmt_ratio",
           "optional_keras", "geomean", "freeze_heap", "loadavg", "parallel_probe"]


@dataclass
class Stats:
    """Seconds per unit (a training step, an epoch, a call) over the rounds."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def to_dict(self) -> dict:
        return {"median": self.median, "min": self.min, "max": self.max, "samples": self.samples}


def _calls_per_sample(f: Callable[[], object], sample_s: float) -> int:
    """How many calls of ``f`` fill about ``sample_s`` seconds (each probe call also warms up)."""
    t0 = time.perf_counter()
    f()
    per = time.perf_counter() - t0
    if per >= sample_s:
        return 1
    n = 1
    while per * n < sample_s / 5:  # probe a fifth of a sample for a steadier per-call estimate
        k = max(1, n)
        t0 = time.perf_counter()
        for _ in range(k):
            f()
        per = (time.perf_counter() - t0) / k
        n = k * 2
    return max(1, round(sample_s / per))


def compare(contenders: dict[str, Callable[[], object]], *, repeats: int = 5, sample_s: float = 0.1,
            warmup: int = 1, units: dict[str, float] | None = None) -> dict[str, Stats]:
    """Time every contender interleaved; return seconds per unit for each round.

    ``contenders`` maps a name to a zero-argument callable; ``units`` says how many units one call
    does (e.g. the training steps of an epoch; default 1). Before timing, each callable runs
    ``warmup`` times plus its calibration calls; ``sample_s=0`` means one call per sample and no
    calibration (for calls long enough to time one at a time).
    """
    names = list(contenders)
    units = units or {}
    gc.collect()  # cheap once run.py has frozen the import-time objects (gc.freeze)
    for name in names:
        for _ in range(warmup):
            contenders[name]()
    calls = {name: 1 if sample_s <= 0 else _calls_per_sample(contenders[name], sample_s) for name in names}
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:  # rotate the order every round
            f, n = contenders[name], calls[name]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            out[name].append((time.perf_counter() - t0) / n / units.get(name, 1.0))
    return {name: Stats(v) for name, v in out.items()}


def ratio(baseline: Stats, contender: Stats) -> Stats:
    """Per-round speed ratio baseline / contender (> 1: the contender is faster)."""
    return Stats([b / c for b, c in zip(baseline.samples, contender.samples)])


def geomean(values: list[float]) -> float:
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def freeze_heap() -> None:
    """Move every object alive now out of the collector's sight: a full ``gc.collect()`` with torch,
    pandas and matplotlib loaded costs ~0.2 s, after this a few milliseconds."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def threads(n: int):
    """torch intra-op threads (BLAS and oneDNN included) set to ``n`` inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def parallel_probe(n: int, rounds: int = 3, calls: int = 20) -> float:
    """Speed-up of a 256 x 256 float32 matmul at ``n`` torch threads over 1 thread (interleaved,
    median). About 1.6-1.9 for n=2 on a quiet 2-core machine; below 1 when other processes hold the
    cores, and then every torch parallel region waits for a descheduled thread (we saw a tiny LSTM
    forward take 54 ms at 2 threads instead of 70 us at 1): such timings measure the neighbours."""
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    before = torch.get_num_threads()

    def at(k: int) -> float:
        torch.set_num_threads(k)
        a @ b
        t0 = time.perf_counter()
        for _ in range(calls):
            a @ b
        return time.perf_counter() - t0
    try:
        return statistics.median(at(1) / at(n) for _ in range(rounds))
    finally:
        torch.set_num_threads(before)


def fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            v = seconds / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def fmt_ratio(r: Stats | dict) -> str:
    """``3.1x [2.9..3.4]`` (median over rounds [min..max])."""
    med, lo, hi = (r.median, r.min, r.max) if isinstance(r, Stats) else (r["median"], r["min"], r["max"])

    def f(v):
        return f"{v:.3g}" if v < 100 else f"{v:.0f}"
    return f"**{f(med)}x** [{f(lo)}..{f(hi)}]"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_extra() -> str:
    """Family/model/stepping and the vector extensions that matter for these kernels."""
    try:
        info = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    bits = [f"{k} {fields[k]}" for k in ("vendor_id", "cpu family", "model", "stepping") if k in fields]
    return ", ".join(bits + (["ISA: " + " ".join(isa)] if isa else []))


def machine_info() -> dict:
    import rnnkit
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " (src/ has uncommitted changes)" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    try:
        from rnnkit.kernels import _native
        native = f"available ({_native.vector_bits()}-bit vectors)" if _native.available() \
            else "UNAVAILABLE (fused falls back to torch)"
    except Exception as e:  # noqa: BLE001 - a report must not die on this
        native = f"unknown ({e})"
    return {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": _cpu_model(), "cpu_detail": _cpu_extra(), "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity, "python": platform.python_version(), "torch": torch.__version__,
        "rnnkit": getattr(rnnkit, "__version__", "?"), "commit": commit, "native_kernels": native,
        "platform": platform.platform(),
    }


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def optional_keras():
    """Keras 3 on the torch backend, or None (not installed, or another backend is configured)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except Exception:  # noqa: BLE001 - optional contender: any import failure means "absent"
        return None
    try:
        if not str(keras.__version__).startswith("3") or keras.backend.backend() != "torch":
            return None
    except Exception:  # noqa: BLE001
        return None
    return keras
