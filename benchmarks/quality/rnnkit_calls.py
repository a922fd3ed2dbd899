"""How `make quality` calls rnnkit: one function per job, through the public Python API.

Keep these two functions the only place that knows how rnnkit is called, so that the call can
follow the defaults and options as they evolve. ``options`` are ``--rnnkit-option key=value``
settings: each key is a field of one of the job's configs (``DataConfig``, ``ModelConfig``,
``TrainConfig``, ...) or a keyword of its ``fit_*`` function, and starts from the job's own
defaults (``FORECAST_DEFAULTS``/``CLASSIFY_DEFAULTS``), exactly as ``rnnkit fit`` does.

:data:`VARIANTS` are the rnnkit contenders: its defaults, and ``auto`` (the issue's ``--auto``)
where the job accepts an ``auto`` option; a variant whose options the job does not know is left
out of the benchmark, and the report says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json

import numpy as np
import pandas as pd

import rnnkit
from rnnkit.data.series import series_from_frame
from rnnkit.tasks.classify.config import CLASSIFY_DEFAULTS
from rnnkit.tasks.forecast.config import FORECAST_DEFAULTS

__all__ = ["VARIANTS", "GLOBAL", "fit_rnnkit_forecast", "fit_rnnkit_quantiles", "fit_rnnkit_global",
           "fit_rnnkit_classifier", "parse_option", "accepts", "job_options"]

#: rnnkit contender name -> its options (before the user's --rnnkit-option settings)
VARIANTS = {"rnnkit": {}, "rnnkit --auto": {"auto": True}}
JOBS = ("forecast", "classify")
#: the contender name of one global model over a whole panel (issue 16), with its defaults
GLOBAL = "rnnkit global"


def parse_option(text: str) -> tuple[str, object]:
    """``"lr=0.003"`` -> ``("lr", 0.003)``: the value is read as JSON (numbers, true/false, null), else
    kept as a string (``cell=gru``). A ``forecast.`` or ``classify.`` prefix limits it to that job."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--rnnkit-option {text!r}: write it as key=value, e.g. lookback=24")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def _targets(job: str) -> list:
    """The configs (defaults first) and the fit function an option of ``job`` may set."""
    if job == "forecast":
        return [rnnkit.DataConfig(), *FORECAST_DEFAULTS, rnnkit.SearchConfig(), rnnkit.fit_forecaster]
    return [rnnkit.SequenceDataConfig(), *CLASSIFY_DEFAULTS, rnnkit.fit_classifier]


#: fit-function keywords these functions set themselves
_OWN = {"data_config", "model_config", "head_config", "train_config", "data", "test", "quiet", "callbacks",
        "search"}


def _names(target) -> set[str]:
    if dataclasses.is_dataclass(target):
        return {f.name for f in dataclasses.fields(target)}
    return set(inspect.signature(target).parameters) - _OWN


def accepts(job: str, key: str) -> bool:
    """Whether ``job`` (``"forecast"`` or ``"classify"``) has a setting called ``key``."""
    return any(key in _names(t) for t in _targets(job))


def job_options(job: str, options: dict) -> dict:
    """The options that apply to ``job``: the unprefixed keys it knows and the keys prefixed with its
    name (``classify.pool``). A key that no job (or not the job of its prefix) knows raises ValueError."""
    out = {}
    for key, value in options.items():
        prefix, dot, bare = key.rpartition(".")
        jobs = (prefix,) if dot else JOBS
        if dot and prefix not in JOBS:
            raise ValueError(f"--rnnkit-option {key}: the prefix must be one of {', '.join(JOBS)}")
        if not any(accepts(j, bare) for j in jobs):
            raise ValueError(f"--rnnkit-option {key}: rnnkit's {' or '.join(jobs)} job has no setting {bare!r}; "
                             "use a field of the job's configs or a keyword of its fit function")
        if job in jobs and accepts(job, bare):
            out[bare] = value
    return out


def _configure(job: str, options: dict, **fixed) -> tuple[list, dict]:
    """Split ``fixed`` (the benchmark's own settings, e.g. the horizon) and ``options`` over the job's
    configs: -> ([config, ...], fit keywords)."""
    settings = {**fixed, **job_options(job, options)}
    configs = []
    *defaults, fit = _targets(job)
    for cfg in defaults:
        mine = {k: v for k, v in settings.items() if k in _names(cfg)}
        configs.append(cfg.replace(**mine) if mine else cfg)
    used = set().union(*(_names(c) for c in defaults))
    kwargs = {k: v for k, v in settings.items() if k not in used and k in _names(fit)}
    return configs, kwargs


def _forecast_table(y_train: pd.Series, horizon: int, m: int, options: dict) -> pd.DataFrame:
    timed = isinstance(y_train.index, pd.DatetimeIndex)
    frame = pd.DataFrame({"time": y_train.index, "y": y_train.to_numpy()} if timed else {"y": y_train.to_numpy()})
    data = series_from_frame(frame, target="y", time_col="time" if timed else None, source=str(y_train.name))
    (dc, mc, tc, search), kwargs = _configure("forecast", options, horizon=horizon, seasonal_period=m, test_frac=0.0)
    run = rnnkit.fit_forecaster(dc, mc, tc, data=data, quiet=True, search=search, **kwargs)
    return run.forecast(data, horizon=horizon)


def fit_rnnkit_forecast(y_train: pd.Series, horizon: int, m: int, options: dict) -> np.ndarray:
    """Fit rnnkit on the whole training part ``y_train`` (DatetimeIndex or RangeIndex) with its defaults
    plus ``options``, and return its ``horizon`` forecasts after the end. A refusal raises
    :class:`rnnkit.RnnkitError` (the benchmark records it as a failure)."""
    return _forecast_table(y_train, horizon, m, options)["y"].to_numpy(dtype=np.float64)


def fit_rnnkit_quantiles(y_train: pd.Series, horizon: int, m: int, levels,
                         options: dict) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`fit_rnnkit_forecast` with a quantile head at ``levels``: ``(point (H,), quantiles (H, Q))``."""
    table = _forecast_table(y_train, horizon, m, {**options, "quantiles": list(levels)})
    columns = [f"y_q{float(q)!r}" for q in levels]  # rnnkit's forecast table: <target>_q<level>
    return table["y"].to_numpy(dtype=np.float64), table[columns].to_numpy(dtype=np.float64)


def fit_rnnkit_global(train_parts: list[pd.Series], horizon: int, m: int, options: dict) -> dict[str, np.ndarray]:
    """Fit one global model (rnnkit's defaults plus ``options``) on every series' training part at
    once, as a long table with an id column, and return each series' ``horizon`` forecasts by name."""
    frame = pd.concat([pd.DataFrame({"id": str(y.name), "y": y.to_numpy()}) for y in train_parts], ignore_index=True)
    (dc, mc, tc, search), kwargs = _configure("forecast", options, horizon=horizon, seasonal_period=m, test_frac=0.0,
                                              id_col="id")
    run = rnnkit.fit_forecaster(dc, mc, tc, data=frame, quiet=True, search=search, **kwargs)
    fc = run.forecast(frame, horizon=horizon)
    return {k: g["y"].to_numpy(dtype=np.float64) for k, g in fc.groupby("id", sort=False)}


def _sequences(name: str, X: list, y: list | None) -> rnnkit.SequenceData:
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in X)).hexdigest()
    return rnnkit.SequenceData(tuple(np.asarray(x, dtype=np.float64) for x in X), None if y is None else tuple(map(str, y)),
                               tuple(str(i) for i in range(len(X))), name, digest)


def fit_rnnkit_classifier(name: str, X_train: list, y_train: list, X_test: list, options: dict) -> dict:
    """Fit rnnkit's classifier on the official training set (it holds out its own validation part)
    with its defaults plus ``options``. Returns ``{"test_pred": labels predicted for X_test,
    "fit_accuracy": accuracy on the training rows it was fitted on}``."""
    train = _sequences(f"{name}_TRAIN", X_train, y_train)
    test = _sequences(f"{name}_TEST", X_test, None)  # no labels: rnnkit only predicts them
    (dc, mc, hc, tc), kwargs = _configure("classify", options)
    run = rnnkit.fit_classifier(dc, mc, hc, tc, data=train, quiet=True, **kwargs)
    return {"test_pred": run.predict(test), "fit_accuracy": run.metrics["train"]["accuracy"]}
