"""The rolling naive gate (``SearchConfig.gate_origins``): does this pipeline beat its own naive
forecast out of sample, at several origins? If not, the run forecasts the naive forecast.

Each member's own gate (:func:`~.fitting.train_members`) compares it with the naive forecast on
the validation windows: one horizon of rows on a short series, a single draw. The rolling gate adds
``K`` more: the whole pipeline (the run's resolved settings, an ensemble of its size) is refitted
on the rows before each of the origins ``end - k * horizon`` (k = K..1, ``end`` the end of the
fitted rows; :func:`~.rolling.refit_forecasts`, the backtest's refits, side by side on every
core), each forecasts the ``horizon`` rows after its origin, and the naive forecast the run falls
back to forecasts the same rows (the run's model with every head's correction zeroed,
:func:`~.fitting.fall_back`, so the same skip, differencing and target transform). The scores are
the pipeline's mean absolute error in the data's units relative to the naive forecast's, averaged
over the target columns (:func:`relative_mae`); when it is not below 1, every member of the run
falls back.

The refits train without a gate of their own (their settings carry no ``gate_origins``). The
record lands in the run's ``meta["gate"]``: the origins, the relative error and whether it fell back, or
why the gate was skipped (a series too short for the refits, or no naive forecast to fall back to:
neither a skip nor differencing).
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np

from ...errors import DataError
from .fitting import fall_back
from .negbin import has_count_naive
from .predict import predict_windows
from .rolling import check_refit_rows, refit_forecasts, refit_settings

__all__ = ["gate_origins", "fall_back_all", "naive_model", "relative_mae", "rolling_gate"]


def gate_origins(end: int, horizon: int, k: int) -> np.ndarray:
    """The ``k`` origins ``end - k*horizon, ..., end - horizon`` (increasing): their forecasts'
    targets tile the last ``k`` horizons of the fitted rows."""
    return end - horizon * np.arange(k, 0, -1)


def fall_back_all(model) -> None:
    """Every member of ``model`` (a forecaster or an ensemble) forecasts its naive forecast exactly."""
    for member in getattr(model, "members", [model]):
        fall_back(member)


def naive_model(model):
    """A copy of ``model`` (a forecaster or an ensemble) forecasting its naive forecast exactly."""
    naive = copy.deepcopy(model)
    fall_back_all(naive)
    return naive


def relative_mae(actual: np.ndarray, pred: np.ndarray, naive: np.ndarray) -> float:
    """The model's mean absolute error over ``(K, H, C)`` relative to the naive forecast's, per target
    column, averaged over the columns (below 1: the model is better). A column the naive forecast
    gets exactly counts 1 where the model does too, and infinity otherwise."""
    ratios = []
    for c in range(actual.shape[-1]):
        e_model = float(np.mean(np.abs(actual[..., c] - pred[..., c])))
        e_naive = float(np.mean(np.abs(actual[..., c] - naive[..., c])))
        ratios.append(e_model / e_naive if e_naive > 0 else (1.0 if e_model == 0 else math.inf))
    return float(np.mean(ratios))


def rolling_gate(fit: Callable, run, data, k: int, quiet: bool = True) -> dict:
    """Run the gate on the fitted ``run`` (see the module docstring); falls its members back in place
    when the pipeline does not beat the naive forecast. Returns the record for ``meta["gate"]``."""
    dc, meta = run.data_config, run.meta
    if not run.norm.has_naive and not has_count_naive(run.model):
        return {"origins": [], "skipped": "no naive forecast to fall back to (skip none, no differencing)"}
    H, C = dc.horizon, len(run.targets)
    origins = gate_origins(int(meta["test_start"]), H, k)
    settings = refit_settings(run)
    try:
        check_refit_rows(settings[0], data, int(origins[0]), dc)
        if origins[0] < dc.lookback:
            raise DataError("too few rows before the first origin")
    except DataError as e:
        return {"origins": [], "skipped": f"the series is too short for {k} refits ({' '.join(str(e).split())[:160]})"}
    preds, _ = refit_forecasts(fit, run, data, origins, H, settings=settings, quiet=quiet, desc="naive gate")
    values = data.values
    contexts = values[origins[:, None] - dc.lookback + np.arange(dc.lookback)]  # (K, L, F)
    naive = predict_windows(naive_model(run.model), run.scaler, contexts, H, C, norm=run.norm,
                            transform=run.transform, known=run.known(data, origins, horizon=H))
    actual = values[origins[:, None] + np.arange(H)][..., :C]  # (K, H, C)
    relative = relative_mae(actual, preds, naive)
    fell_back = not relative < 1.0  # NaN too: nothing shows the pipeline does better
    if fell_back:  # meta's naive_members stays the count the validation windows chose
        fall_back_all(run.model)
    return {"origins": [int(o) for o in origins], "relative_mae": relative, "fell_back": fell_back}
