"""Level- and scale-free forecasting: per-window normalisation and the naive-forecast skip.

A forecaster that predicts absolute values must extrapolate every level it has not seen in
training (every trended series) and, untrained or weak, is worse than "repeat the last value".
Two changes to what the network sees and predicts remove both failures:

* **Per-window (instance) normalisation** (RevIN, Kim et al., ICLR 2022, without its learned
  affine: the first recurrent layer's input weights and the head already are affine maps of the
  same quantities). Each context window's target columns are shifted by their own mean and divided
  by their own standard deviation; the forecast is mapped back with the same two numbers. The
  network then sees shapes, never levels. Covariates keep the run's global scaling.
* **The naive skip.** The head predicts the *correction* to a naive forecast, in units of the
  window's scale: ``y = naive + scale * head(h)``, where naive repeats the last value, the last
  season (``y[t+h] = y[t+h-m]``) or extends the window's drift (the line through its first and
  last values, as the naive-with-drift forecast). With a zero-initialised head the untrained model *is* the naive
  forecast, so training can only move it where the data says so.

* **Differencing** (``difference``, optional): the network reads the window's differences
  ``y[t] - y[t-d]`` (``d = 1``, or the season ``m``) and predicts the horizon's, which decode sums
  back exactly from the window's last values (a forecast difference of zero is the naive or
  seasonal-naive forecast). Normalisation then uses the differences' mean and spread; there is no
  skip (the differences are already corrections to the naive forecast).

All three are data transforms around an unchanged network (a recurrent layer and a linear head), so
the fused trainer and the native kernels train it exactly as before: the windows are encoded once
(:meth:`WindowNorm.encode`) and forecasts decoded (:meth:`WindowNorm.decode`).

Everything here works in the run's *scaled* units (after :class:`~rnnkit.data.scaler.Scaler`), on
arrays ``X (W, L, F)`` whose first ``n_targets`` columns are the targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["WindowNorm", "NORMALISE", "SKIPS", "DIFFERENCES", "PER_SERIES", "difference_lag", "choose_skip",
           "skip_errors", "pick_skip"]

NORMALISE = ("window", "none")
SKIPS = ("none", "last", "drift", "seasonal")
DIFFERENCES = ("none", "first", "seasonal")
#: :attr:`WindowNorm.m` of a panel whose series have seasons of their own (each window's is passed)
PER_SERIES = 0


def difference_lag(difference: str, m: int) -> int:
    """The lag d of ``difference`` (``"none"``: 0, ``"first"``: 1, ``"seasonal"``: the season m)."""
    return {"none": 0, "first": 1}.get(difference, m)

#: a window's scale is at least this fraction of the training rows' own standard deviation, so a
#: flat window does not turn its rounding noise into unit-size inputs
SCALE_FLOOR = 1e-3


@dataclass(frozen=True)
class WindowNorm:
    """How context windows are normalised and what the head predicts the correction to.

    Args:
        normalise: ``"window"`` (each window by its own mean and standard deviation) or ``"none"``.
        skip: ``"seasonal"`` (the last season, needs lookback >= m), ``"last"`` (the last value),
            ``"drift"`` (the last value plus the window's mean step per step ahead) or ``"none"`` (the
            head predicts the normalised value itself).
        m: the season length used by ``skip="seasonal"`` (:data:`PER_SERIES`: each window's own,
            passed to :meth:`base`, :meth:`encode` and :meth:`decode`).
        n_targets: the number of target columns (the first columns of every window).
        floor: ``(C,)`` smallest scale per target, in scaled units (of the differences, when differencing).
        difference: the lag d of the differences the network reads and predicts (0: none; then
            ``skip`` must be ``"none"``, and the lookback longer than d).
        effect: ``(K, C)`` slopes of the targets on the K future covariates (:mod:`.linear`; empty:
            none): the windows hold the targets less this linear effect, the forecasts get it back.
        effect_col: the column of the first future covariate in the value columns.
    """

    normalise: str
    skip: str
    m: int
    n_targets: int
    floor: tuple[float, ...]
    difference: int = 0
    effect: tuple[tuple[float, ...], ...] = ()
    effect_col: int = 0

    @classmethod
    def fit(cls, normalise: str, skip: str, m: int, train_targets: np.ndarray, difference: int = 0) -> "WindowNorm":
        """The normalisation for a run whose scaled training target rows are ``(N, C)``."""
        y = np.asarray(train_targets, dtype=np.float64)
        d = int(difference)
        std = (y[d:] - y[:-d] if d else y).std(axis=0)
        floor = np.where(std > 0, SCALE_FLOOR * std, SCALE_FLOOR)
        return cls(normalise, skip, int(m), train_targets.shape[1], tuple(float(f) for f in floor), d)

    def remove_effect(self, values: np.ndarray) -> np.ndarray:
        """Scaled rows ``(..., F)`` with the targets less the covariates' linear effect (a copy; as is
        without an effect)."""
        if not self.effect:
            return values
        beta = np.asarray(self.effect, dtype=np.float64)  # (K, C)
        out = np.array(values, dtype=np.float64, copy=True)
        out[..., :self.n_targets] -= out[..., self.effect_col:self.effect_col + len(beta)] @ beta
        return out

    def add_effect(self, y: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
        """Scaled forecasts ``(W, H, C)`` (or quantiles ``(W, H, C, Q)``) plus the linear effect of the
        horizon's scaled future covariates ``(W, >= H, K)``."""
        if not self.effect:
            return y
        beta = np.asarray(self.effect, dtype=np.float64)
        shift = np.asarray(covariates, dtype=np.float64)[:, :y.shape[1], :len(beta)] @ beta  # (W, H, C)
        return y + (shift[..., None] if y.ndim == 4 else shift)

    @property
    def active(self) -> bool:
        """Whether this changes anything (``"none"``/``"none"`` without differencing is the identity)."""
        return self.normalise != "none" or self.has_naive

    @property
    def has_naive(self) -> bool:
        """Whether the head corrects a naive forecast (a skip, or differencing: a zero output is the
        naive or seasonal-naive forecast), which the fallback and the gate compare it with."""
        return self.skip != "none" or self.difference > 0

    def _series(self, X: np.ndarray) -> np.ndarray:
        """What the network reads of the targets: the window's values, or their ``L - d`` differences."""
        y = X[..., :self.n_targets]  # (W, L, C)
        d = self.difference
        return y[:, d:] - y[:, :-d] if d else y

    def stats(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each window's target level and scale, ``(W, 1, C)`` each (0 and 1 without normalising), of its
        values or, when differencing, of its differences."""
        y = self._series(X)
        if self.normalise == "none":
            return np.zeros_like(y[:, :1]), np.ones_like(y[:, :1])
        level = y.mean(axis=1, keepdims=True)  # (W, 1, C)
        scale = np.maximum(y.std(axis=1, keepdims=True), np.asarray(self.floor))
        return level, scale

    def base(self, X: np.ndarray, horizon: int, seasons: np.ndarray | None = None) -> np.ndarray:
        """The forecast the head corrects, ``(W, horizon, C)`` in scaled units: the naive forecast,
        or the window's level when there is no skip (zero differences, when differencing).
        ``seasons (W,)``: each window's own season for the seasonal skip (a panel whose series have
        different frequencies, :data:`PER_SERIES`; 1 repeats the last value), else :attr:`m`."""
        y = X[..., :self.n_targets]  # (W, L, C)
        if self.difference:
            return np.zeros((y.shape[0], horizon, y.shape[2]))
        if self.skip == "none":
            return np.repeat(self.stats(X)[0], horizon, axis=1)
        if self.skip == "seasonal":
            if seasons is not None:
                ms = np.asarray(seasons, dtype=np.int64)[:, None]  # (W, 1)
                if len(ms) != len(y) or (ms < 1).any() or (ms > y.shape[1]).any():
                    raise ValueError(f"seasons must be {len(y)} season(s) in [1, {y.shape[1]}] (the lookback)")
                steps = y.shape[1] - ms + np.arange(horizon) % ms  # (W, H): each window's own last season
                return np.take_along_axis(y, steps[..., None], axis=1)
            if self.m == PER_SERIES:
                raise ValueError("this normalisation's seasonal skip takes each window's season: pass seasons")
            m = self.m
            steps = y.shape[1] - m + np.arange(horizon) % m  # y[t+h] = y[t+h-m], repeated each season
            return y[:, steps]
        last = np.repeat(y[:, -1:], horizon, axis=1)  # (W, H, C)
        if self.skip == "drift" and y.shape[1] > 1:  # the line through the window's first and last values
            slope = (y[:, -1:] - y[:, :1]) / (y.shape[1] - 1)  # (W, 1, C)
            return last + slope * np.arange(1, horizon + 1)[None, :, None]
        return last

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """``X`` with its target columns normalised per window (a copy; covariates unchanged).
        A differenced window keeps its length: its first d steps, which have no difference, read 0."""
        level, scale = self.stats(X)
        out = np.array(X, dtype=np.float64, copy=True)
        d, C = self.difference, self.n_targets
        out[:, d:, :C] = (self._series(X) - level) / scale
        out[:, :d, :C] = 0.0
        return out

    def encode(self, X: np.ndarray, Y: np.ndarray, seasons: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Training pairs in the network's units: normalised inputs and the head's targets
        ``(Y - base) / scale`` for windows ``X (W, L, F)``, ``Y (W, H, C)`` (with differencing, the
        horizon's differences ``Y[h] - Y[h-d]``, reaching back into the window, over the scale);
        ``seasons``: as for :meth:`base`."""
        _, scale = self.stats(X)
        d = self.difference
        if d:
            full = np.concatenate([np.asarray(X[..., :self.n_targets], dtype=np.float64), Y], axis=1)
            L = X.shape[1]
            return self.inputs(X), (full[:, L:] - full[:, L - d:L - d + Y.shape[1]]) / scale
        return self.inputs(X), (Y - self.base(X, Y.shape[1], seasons)) / scale

    def decode(self, X: np.ndarray, out: np.ndarray, seasons: np.ndarray | None = None) -> np.ndarray:
        """Forecasts in scaled units from the network's outputs ``(W, H, C)`` after windows ``X``
        (with differencing, each step is the value d steps before it plus its forecast difference).
        Quantile forecasts ``(W, H, C, Q)`` are decoded level by level: an increasing map of each
        (a positive scale), so their order is kept. ``seasons``: as for :meth:`base`."""
        if np.ndim(out) == 4:
            return np.stack([self.decode(X, out[..., k], seasons) for k in range(out.shape[-1])], axis=-1)
        _, scale = self.stats(X)
        d = self.difference
        if not d:
            return self.base(X, out.shape[1], seasons) + scale * out
        full = list(np.moveaxis(np.asarray(X[..., :self.n_targets], dtype=np.float64), 1, 0))  # L x (W, C)
        step = scale[:, 0] * np.asarray(out, dtype=np.float64).transpose(1, 0, 2)  # H x (W, C)
        for delta in step:
            full.append(full[-d] + delta)
        return np.stack(full[X.shape[1]:], axis=1)


def skip_errors(candidates: tuple[str, ...], m: int, X: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    """The summed absolute error of each naive forecast of ``candidates`` on the windows ``X (W, L, F)``,
    ``Y (W, H, C)`` (scaled units); summed, so that the windows may come in parts (a panel's series)."""
    C = Y.shape[2]
    return {s: float(np.abs(WindowNorm("none", s, m, C, (1.0,) * C).base(X, Y.shape[1]) - Y).sum())
            for s in candidates}


def pick_skip(candidates: tuple[str, ...], errors: dict[str, float]) -> str:
    """The candidate of least error; ties: the earlier, simpler one."""
    return min(candidates, key=lambda s: (errors[s], candidates.index(s)))


def choose_skip(candidates: tuple[str, ...], m: int, X: np.ndarray, Y: np.ndarray) -> str:
    """The naive forecast, of ``candidates``, with the lowest mean absolute error on the training
    windows ``X (W, L, F)``, ``Y (W, H, C)`` (scaled units): ``skip="auto"``'s choice. No network is
    trained for it, and every training window counts, so the choice is cheap and not noisy."""
    return pick_skip(candidates, skip_errors(candidates, m, X, Y))
