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
from typing import Any, Callable, Iterator

import numpy as np
import torch
from safetensors.torch import save_file

from .config import DataConfig, ModelConfig, TrainConfig
from .errors import RnnkitError, RunError
from .models import Forecaster
from .runcheck import RunCheck
from .rundir import consistent_read, write_run_dir
from .train import History

__all__ = ["save_run", "save_forecast_run", "load_run", "load_forecast_run", "read_config", "run_kind",
           "write_run_files", "read_run_files", "load_weights", "loading", "write_json", "read_json", "write_run_dir", "FORMAT_VERSION", "REQUIRED_FILES"]

FORMAT_VERSION = 1
REQUIRED_FILES = ("config.json", "weights.safetensors", "scaler.json")


def _versions() -> dict[str, str]:
    from . import __version__
    return {"rnnkit": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _json_safe(obj: Any) -> Any:
    """NaN/inf become null so the file is strict JSON; numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(_json_safe(obj), indent=2, allow_nan=False, ensure_ascii=False) + "\n",
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
            from .plots import plot_learning_curve
            plot_learning_curve(history, d / "learning_curve.png", title=curve_title)
    if metrics:
        write_json(d / "metrics.json", metrics)


def load_weights(check: RunCheck, build: Callable[[], torch.nn.Module], meta: dict, model_config: ModelConfig,
                 sizes: dict[str, int]):
    """``build()`` in the run's dtype with the weights of weights.safetensors, in eval mode.

    The file is checked against the model the config describes before the model is built (see
    :meth:`rnnkit.runcheck.RunCheck.weights`); ``sizes`` names the config's other widths and
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


def save_run(run, out: str | os.PathLike, force: bool = False, extra: Callable[[Path], None] | None = None,
             kind: str = "forecast", plots: bool = False) -> Path:
    """Write a :class:`~rnnkit.pipeline.ForecastRun` to ``out`` (see the module docstring).

    ``extra(tmp_dir)`` may add files (forecast.csv, plots) before the directory is renamed into place.
    """
    def write(d: Path) -> None:
        sections = {"model": run.model_config.to_dict(), "data": run.data_config.to_dict(),
                    "train": run.train_config.to_dict(), "meta": run.meta,
                    "shapes": {"input_size": run.model.input_size, "n_targets": run.model.n_targets,
                               "horizon": run.model.horizon}}
        write_run_files(d, kind, sections, run.model, run.history, run.metrics,
                        curve_title=f"{run.model_config.cell} learning curve" if plots else None)
        write_json(d / "scaler.json", run.scaler.to_dict())
        if extra is not None:
            extra(d)
    return write_run_dir(out, write, force, protect=[run.data_config.source])


#: how each kind of run is made and used, for messages
MAKE = {"forecast": "rnnkit fit", "classify": "rnnkit classify fit", "text": "rnnkit text fit"}
USE = {"forecast": "rnnkit forecast/evaluate/backtest", "classify": "rnnkit classify predict/evaluate",
       "text": "rnnkit text generate/evaluate/suggest"}


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
    got = check.entries(config, "", {"format_version": "int", "kind": "str", "versions": "dict[str]"},
                        exact=False)["kind"]
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


@consistent_read
def load_run(path: str | os.PathLike):
    """Load any run directory, ready to use: a :class:`~rnnkit.pipeline.ForecastRun`, a
    :class:`~rnnkit.classify.ClassifierRun` or a :class:`~rnnkit.text.TextRun` by its kind.

    Predictions from the loaded run equal the original's bit for bit on the same machine.
    """
    kind = run_kind(path)
    if kind == "classify":
        from .classify import load_classifier_run
        return load_classifier_run(path)
    if kind == "text":
        from .text import load_text_run
        return load_text_run(path)
    return load_forecast_run(path)


@consistent_read
def load_forecast_run(path: str | os.PathLike):
    """Load a forecasting run directory (see :func:`load_run`)."""
    from .pipeline import ForecastRun
    d = Path(path)
    config = read_config(d, "forecast")
    check = RunCheck(d, "forecast")
    with loading(d, "forecast"):
        s, meta, shapes = check.sections(config, {"model": ModelConfig, "data": DataConfig, "train": TrainConfig})
        mc, dc, tc = s["model"], s["data"], s["train"]
        n_in, n_out = len(dc.targets) + len(dc.covariates), len(dc.targets)
        check.agree(n_out >= 1 and (shapes["input_size"], shapes["n_targets"], shapes["horizon"]) ==
                    (n_in, n_out, dc.horizon), "config.json",
                    f"shapes {shapes} do not match the data section ({n_out} target(s), {n_in} input(s), "
                    f"horizon {dc.horizon})")
        rows = meta["train_rows"], meta["val_rows"], meta["test_start"], meta["n_rows"]
        check.agree(0 < rows[0] and 0 <= rows[1] and rows[0] + rows[1] == rows[2] <= rows[3], "config.json",
                    f"meta's split (train_rows {rows[0]}, val_rows {rows[1]}, test_start {rows[2]}, n_rows "
                    f"{rows[3]}) is impossible")
        scaler = check.scaler(n_in)
        model = load_weights(check, lambda: Forecaster(n_in, n_out, dc.horizon, mc), meta, mc,
                             {"input_size": n_in, "horizon x targets": dc.horizon * n_out})
        history, metrics = check.reports()
    return ForecastRun(model, scaler, dc, mc, tc, history, metrics, meta)


def save_forecast_run(run, data, out: str | os.PathLike, force: bool = False) -> Path:
    """Save ``run`` with the files a person looks at: ``forecast.csv`` (the next ``horizon`` steps
    after ``data``), ``learning_curve.png`` and ``forecast.png`` (history, test forecasts, future)."""
    from .forecast import predict_windows, windows_for
    from .plots import plot_forecast

    future = run.forecast(data)
    dc, C = run.data_config, len(run.targets)
    test_index = test_pred = None
    start = run.meta["test_start"]
    if start < len(data):
        X, _, starts = windows_for(data.values, C, dc.lookback, 1, 1, start, len(data))
        test_pred = predict_windows(run.model, run.scaler, X, 1, C)[:, 0]  # one step ahead, (W, C)
        test_index = data.frame.index[starts]

    def extra(d: Path) -> None:
        future.to_csv(d / "forecast.csv")
        index = data.frame.index
        plot_forecast(index, data.target_values, run.targets, d / "forecast.png",
                      future_index=future.index, forecast=future[list(run.targets)].to_numpy(),
                      test_start=start if start < len(data) else None, test_index=test_index,
                      test_pred=test_pred, title=f"{run.model_config.cell} forecast")
    return save_run(run, out, force=force, extra=extra, plots=True)
