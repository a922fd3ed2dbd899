"""A sweep described in a TOML file (``rnnkit sweep --config sweep.toml``)::

    data = "builtin:airline"      # DATA: a file (relative to the working directory) or builtin:NAME
    out = "sweeps/airline"        # --out
    workers = 2                   # any SweepConfig field: random, optuna, random_seed, per_series, workers, ...;

    [settings]                    # what every job shares: any forecasting field (as `rnnkit fit`'s options)
    horizon = 12
    epochs = 200

    [grid]                        # what varies: each field's values; the jobs are every combination
    hidden_size = [16, 32]
    lr = [1e-3, 3e-3]
    cell = ["lstm", "gru"]

Keys are the fields' names (or their options', ``hidden``, or with their section,
``model.hidden_size``; a ``[settings.model]`` or ``[grid.model]`` table works too), values typed as
the field is (``"none"`` for a field that may be None). A number field of the grid may take a range
instead, a table of ``low``, ``high`` and optionally ``log`` and ``int``, for ``random`` or
``optuna`` to sample (:mod:`rnnkit.tasks.sweep.ranges`)::

    [grid]
    lr = {low = 1e-4, high = 1e-2, log = true}
    hidden_size = {low = 16, high = 128, int = true}

Options given on the command line override the file's.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .config import SweepConfig
from .grid import normalise_grid, normalise_settings

__all__ = ["read_spec", "SWEEP_FIELDS"]

#: the SweepConfig fields a file may set at its top level
SWEEP_FIELDS = tuple(f.name for f in dataclasses.fields(SweepConfig))
_TOP = ("data", "out", "settings", "grid") + SWEEP_FIELDS


def _toml():
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError("reading a TOML file needs Python 3.11 or the tomli package (pip install tomli)") \
                from None
    return tomllib


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """``{"data", "out", "settings", "grid", "sweep"}`` from the file (each absent key None or empty):
    settings and grid keyed by field name and typed (:mod:`rnnkit.tasks.sweep.grid`), ``sweep`` the
    SweepConfig fields it sets."""
    path = Path(path)
    tomllib = _toml()
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no such sweep file: {path}") from None
    except OSError as e:
        raise ConfigError(f"cannot read the sweep file {path} ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {' '.join(str(e).split())}") from None
    unknown = [k for k in doc if k not in _TOP]
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; the top level takes {', '.join(_TOP)} (forecasting "
                          "settings go in [settings], the values to sweep in [grid])")
    for key in ("data", "out"):
        if key in doc and not (isinstance(doc[key], str) and doc[key].strip()):
            raise ConfigError(f"{path}: {key} must be a path (a string); got {doc[key]!r}")
    for key in ("settings", "grid"):
        if key in doc and not isinstance(doc[key], dict):
            raise ConfigError(f"{path}: {key} must be a table ([{key}]); got {doc[key]!r}")
    sweep = {k: doc[k] for k in SWEEP_FIELDS if k in doc}
    if "address" in sweep and isinstance(sweep["address"], str) and sweep["address"].lower() == "none":
        sweep["address"] = None
    return {"data": doc.get("data"), "out": doc.get("out"),
            "settings": normalise_settings(doc.get("settings", {}), f"{path} [settings]"),
            "grid": normalise_grid(doc["grid"], f"{path} [grid]") if doc.get("grid") else {},
            "sweep": sweep}
