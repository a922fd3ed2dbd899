"""The classical contenders a user would pick instead of rnnkit, each one call per series.

Forecasting: ``f(y_train: np.ndarray, horizon, m) -> np.ndarray`` of ``horizon`` forecasts; the two
naive methods are closed forms (:mod:`quality.scores`), the automatic ones statsforecast's
``AutoETS``, ``AutoTheta`` and ``AutoARIMA`` with ``season_length=m`` and their default settings.
Classification: 1-nearest-neighbour with tslearn's ``KNeighborsTimeSeriesClassifier``, DTW with
the full warping window, and Euclidean distance.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import scores

__all__ = ["FORECASTERS", "CLASSIFIERS", "warm_up"]


def _statsforecast(model: str) -> Callable[[np.ndarray, int, int], np.ndarray]:
    def forecast(y: np.ndarray, horizon: int, m: int) -> np.ndarray:
        import statsforecast.models as models
        fitted = getattr(models, model)(season_length=m)
        return np.asarray(fitted.forecast(y=np.asarray(y, dtype=np.float64), h=horizon)["mean"], dtype=np.float64)
    forecast.__name__ = model
    return forecast


#: name -> forecaster, in report order; "seasonal naive" is the reference of relative MASE
FORECASTERS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "seasonal naive": lambda y, h, m: scores.seasonal_naive(y, h, m),
    "naive drift": lambda y, h, m: scores.naive_drift(y, h),
    "AutoETS": _statsforecast("AutoETS"),
    "AutoTheta": _statsforecast("AutoTheta"),
    "AutoARIMA": _statsforecast("AutoARIMA"),
}


def _dataset(X: list) -> np.ndarray:
    """A list of (T_i, F) arrays -> tslearn's (N, T_max, F), shorter series padded with NaN (which
    tslearn's DTW reads as the end of the series)."""
    from tslearn.utils import to_time_series_dataset
    return to_time_series_dataset(X)


def _equal_length(X: list, length: int) -> np.ndarray:
    """Resample every series linearly to ``length`` steps (Euclidean distance needs one length)."""
    out = np.empty((len(X), length, X[0].shape[1]))
    for i, x in enumerate(X):
        old = np.linspace(0.0, 1.0, len(x))
        new = np.linspace(0.0, 1.0, length)
        out[i] = np.stack([np.interp(new, old, x[:, f]) for f in range(x.shape[1])], 1)
    return out


def one_nn_dtw(X_train: list, y_train: list, X_test: list) -> list:
    from tslearn.neighbors import KNeighborsTimeSeriesClassifier
    clf = KNeighborsTimeSeriesClassifier(n_neighbors=1, metric="dtw", n_jobs=-1)
    return list(clf.fit(_dataset(X_train), np.asarray(y_train)).predict(_dataset(X_test)))


def one_nn_euclidean(X_train: list, y_train: list, X_test: list) -> list:
    from tslearn.neighbors import KNeighborsTimeSeriesClassifier
    length = max(len(x) for x in X_train)
    equal = len({len(x) for x in X_train + X_test}) == 1
    prep = (lambda X: np.stack(X)) if equal else (lambda X: _equal_length(X, length))  # noqa: E731
    clf = KNeighborsTimeSeriesClassifier(n_neighbors=1, metric="euclidean", n_jobs=-1)
    return list(clf.fit(prep(X_train), np.asarray(y_train)).predict(prep(X_test)))


#: name -> classifier(X_train, y_train, X_test) -> predicted test labels
CLASSIFIERS: dict[str, Callable[[list, list, list], list]] = {
    "1-NN DTW": one_nn_dtw,
    "1-NN Euclidean": one_nn_euclidean,
}


def warm_up() -> None:
    """Run every contender once on a small series, so that no timing includes numba's compilation
    or a first import (statsforecast and tslearn compile on first use, then cache)."""
    rng = np.random.default_rng(0)
    y = 10 + np.sin(np.arange(48) * 2 * np.pi / 12) + rng.normal(0, 0.1, 48)
    for f in FORECASTERS.values():
        for m in (1, 12):
            try:
                f(y, 6, m)
            except Exception:  # noqa: BLE001  (a contender that fails is recorded per series later)
                pass
    X = [rng.normal(size=(20, 1)) for _ in range(4)]
    for c in CLASSIFIERS.values():
        try:
            c(X, ["a", "b", "a", "b"], X[:2])
        except Exception:  # noqa: BLE001
            pass
