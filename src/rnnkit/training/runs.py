"""The run directory: rnnkit's unit of reproducibility.

A run directory holds ``config.json`` (every setting, the seed, versions, the data's hash),
``weights.safetensors``, ``scaler.json``, ``history.csv``, ``metrics.json``, ``forecast.csv``
and the plots. It is written atomically (a temporary sibling directory renamed into place), so a
failure never leaves half a run behind, and it loads without pickle.
"""

from __future__ import annotations

import json
import math
import os
import platform
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch
from safetensors.torch import save_file

from .._version import __version__
from ..config import ModelConfig
from ..errors import RnnkitError, RunError
from .loop import History
from .plots import plot_learning_curve
from .runcheck import MAKE, USE, RunCheck
from .runschema import TOP
from .rundir import write_run_dir

__all__ = ["open_run", "OpenRun", "read_config", "run_kind", "write_run_files", "read_run_files", "load_weights", "loading", "write_json",
           "read_json", "json_safe", "write_run_dir", "FORMAT_VERSION", "REQUIRED_FILES", "MAKE", "USE"]

FORMAT_VERSION = 1
REQUIRED_FILES = ("config.json", "weights.safetensors", "scaler.json")


def _versions() -> dict[str, str]:
    return {"rnnkit": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def json_safe(obj: Any) -> Any:
    """NaN/inf become null so the file is strict JSON; numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(json_safe(obj), indent=2, allow_nan=False, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_run_files(d: Path, kind: str, sections: dict[str, Any], model, history=None, metrics=None,
                    curve_title: str | None = None) -> None:
    """The files every kind of run has: config.json (format version, kind, versions and
    ``sections``), weights.safetensors, and history.csv / timing.csv / metrics.json /
    learning_curve.png (when ``curve_title`` is given) where there is a history. history.csv holds
    only what the seed reproduces; the wall-clock seconds per epoch go to timing.csv."""
    write_json(d / "config.json", {"format_version": FORMAT_VERSION, "kind": kind, "versions": _versions(),
                                   **sections})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(d / "weights.safetensors"))
    if history is not None:
        history.to_frame().to_csv(d / "history.csv", index=False)
        history.timing_frame().to_csv(d / "timing.csv", index=False)
        if curve_title is not None and history.rows:
            plot_learning_curve(history, d / "learning_curve.png", title=curve_title)
    if metrics:
        write_json(d / "metrics.json", metrics)


def load_weights(check: RunCheck, build: Callable[[], torch.nn.Module], meta: dict, model_config: ModelConfig,
                 sizes: dict[str, int]):
    """``build()`` in the run's dtype with the weights of weights.safetensors, in eval mode.

    The file is checked against the model the config describes before the model is built (see
    :meth:`rnnkit.training.runcheck.RunCheck.weights`); ``sizes`` names the config's other widths and
    counts (inputs, outputs, vocabulary) that the file's size must bound."""
    mc = model_config
    layers = mc.num_layers * (2 if mc.bidirectional else 1)
    sizes = {"hidden_size": mc.hidden_size, "output_size": mc.output_size or 0, **sizes}
    return check.weights(build, meta["dtype"], layers, sizes)


def read_run_files(d: Path, kind: str = "forecast") -> tuple[History | None, dict | None]:
    """history.csv and metrics.json of a run directory, None where absent; reports only, so a
    damaged one is ignored with an :class:`~rnnkit.errors.RnnkitWarning` (it never stops a load)."""
    return RunCheck(d, kind).reports()


@contextmanager
def loading(d: Path, kind: str) -> Iterator[None]:
    """Turn any failure while rebuilding a run from its files into one :class:`RunError`."""
    try:
        yield
    except RnnkitError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as e:
        raise RunError(f"run {d} could not be loaded ({type(e).__name__}: {str(e).splitlines()[0]}); it may be "
                       f"damaged or from an incompatible version, re-run `{MAKE.get(kind, 'rnnkit fit')}`") from None


class OpenRun(NamedTuple):
    """A run directory being loaded (:func:`open_run`): its checker, its config's dataclass sections
    in the order asked for, and its ``meta`` and ``shapes`` tables, all checked."""

    check: RunCheck
    sections: tuple
    meta: dict
    shapes: dict


@contextmanager
def open_run(path: str | os.PathLike, kind: str, sections: dict[str, type],
             required: tuple[str, ...] = REQUIRED_FILES) -> Iterator[OpenRun]:
    """The opening every job's run loader shares: ``config.json`` of the run directory ``path``
    read and checked (:func:`read_config`: presence, format version, kind, the ``required``
    files), then every dataclass section (``{"model": ModelConfig, ...}``), ``meta`` and
    ``shapes`` checked (:meth:`RunCheck.sections`). The ``with`` body checks and loads the rest
    through ``run.check``; any failure in it that is not already an rnnkit error becomes one
    :class:`RunError` (:func:`loading`)::

        with open_run(path, "text", {"model": ModelConfig, "text": TextConfig}) as run:
            (mc, xc), check = run.sections, run.check
    """
    d = Path(path)
    config = read_config(d, kind, required)
    check = RunCheck(d, kind)
    with loading(d, kind):
        objs, meta, shapes = check.sections(config, sections)
        yield OpenRun(check, tuple(objs[name] for name in sections), meta, shapes)


def read_config(path: str | os.PathLike, kind: str = "forecast",
                required: tuple[str, ...] = REQUIRED_FILES) -> dict:
    """``config.json`` of a run directory of ``kind``, checked for presence, version, kind and the
    ``required`` files, in that order, each failure a :class:`RunError` saying what to do."""
    d = Path(path)
    make = MAKE.get(kind, "rnnkit fit")
    if not d.is_dir():
        raise RunError(f"run directory {d} does not exist; pass the --out directory of `{make}`")
    if not os.path.lexists(d / "config.json"):
        raise RunError(f"run directory {d} is incomplete (missing config.json); re-run `{make}`")
    check = RunCheck(d, kind)
    config = check.json("config.json")
    if not isinstance(config, dict):
        check.fail("config.json", "is not a JSON object")
    version = config.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # not true, 1.0 or "1"
        raise RunError(f"run {d} has format version {version!r} (config.json), this rnnkit reads version "
                       f"{FORMAT_VERSION}; re-run `{make}` with this version")
    got = check.entries(config, "", TOP, exact=False)["kind"]
    if got != kind:
        raise RunError(f"{d} is a {got!r} run, not a {kind!r} run; use it with `{USE.get(got, got)}`, "
                       f"or pass a run made by `{make}`")
    missing = [f for f in required if not os.path.lexists(d / f)]
    if missing:
        raise RunError(f"run directory {d} is incomplete (missing {', '.join(missing)}); re-run `{make}`")
    return config


def run_kind(path: str | os.PathLike) -> str:
    """The ``kind`` a run directory's config.json declares (``"forecast"`` when unreadable: the
    loader then explains what is wrong)."""
    try:
        kind = RunCheck(Path(path), "forecast").json("config.json").get("kind", "forecast")
    except (RunError, AttributeError):
        return "forecast"
    return kind if isinstance(kind, str) else "forecast"
