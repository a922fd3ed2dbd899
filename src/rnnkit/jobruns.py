"""Run directories of the ``classify`` and ``text`` jobs, on the machinery of :mod:`rnnkit.runs`.

Both are written with :func:`rnnkit.runs.write_run_dir` (atomic: a temporary sibling renamed
into place) and carry ``config.json`` with ``"format_version"`` and ``"kind"`` (``"classify"`` or
``"text"``). They hold no ``scaler.json`` where there is nothing to scale, so reading checks the
files each kind needs itself, with the same messages as :func:`rnnkit.runs.read_config`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import RunError
from .runs import FORMAT_VERSION, _versions

__all__ = ["read_job_config", "versions", "load_run_any"]

COMMAND = {"classify": "rnnkit classify fit", "text": "rnnkit text fit", "forecast": "rnnkit fit"}


def versions() -> dict[str, str]:
    """rnnkit, torch, numpy and Python versions, as forecasting runs record them."""
    return _versions()


def read_job_config(path: str | os.PathLike, kind: str, required: tuple[str, ...]) -> dict:
    """``config.json`` of a run directory of ``kind``, checked for presence, version, kind and files."""
    d = Path(path)
    make = COMMAND[kind]
    if not d.is_dir():
        raise RunError(f"run directory {d} does not exist; pass the --out directory of `{make}`")
    if not (d / "config.json").is_file():
        raise RunError(f"run directory {d} is incomplete (missing config.json); re-run `{make}`")
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{d / 'config.json'} is not valid JSON ({e}); the run is damaged, re-run `{make}`") from None
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise RunError(f"run {d} has format version {version!r}, this rnnkit reads version {FORMAT_VERSION}; "
                       f"re-run `{make}` with this version")
    got = config.get("kind", "forecast")
    if got != kind:
        raise RunError(f"{d} is a {got!r} run, not a {kind!r} run; use it with `{COMMAND.get(got, got)}`'s "
                       f"commands, or pass a run made by `{make}`")
    missing = [f for f in required if not (d / f).is_file()]
    if missing:
        raise RunError(f"run directory {d} is incomplete (missing {', '.join(missing)}); re-run `{make}`")
    return config


def load_run_any(path: str | os.PathLike):
    """Load any run directory by its ``config.json`` ``"kind"``: a ``ForecastRun``,
    ``ClassifierRun`` or ``TextRun`` (what ``rnnkit.load_run`` can become)."""
    d = Path(path)
    kind = "forecast"
    try:
        kind = json.loads((d / "config.json").read_text(encoding="utf-8")).get("kind", "forecast")
    except (OSError, ValueError, AttributeError):
        pass  # the loader below explains what is wrong
    if kind == "classify":
        from .classify import load_classifier_run
        return load_classifier_run(d)
    if kind == "text":
        from .text import load_text_run
        return load_text_run(d)
    from .runs import load_run
    return load_run(d)
