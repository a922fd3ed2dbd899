"""The linear effect of future covariates: a regression with recurrent errors.

A small recurrent network trained on a few hundred windows learns a contemporaneous linear effect
(consumption moving with this quarter's income, sales with this week's price) poorly: on sktime's
Uschange, with income, production, savings and unemployment known over the horizon, rnnkit's
network reached a mean MASE of 0.54, a linear regression on the same covariates 0.20
(docs/known_inputs.md). Classical forecasting has the answer, the regression with ARIMA errors:
fit the linear effect first and let the time-series model forecast what it leaves. rnnkit does the
same with the network in the place of ARIMA:

* **Fit** (``DataConfig.linear_covariates="auto"``, the default when there are future covariates):
  ordinary least squares, with an intercept, of each target on the future covariates of the same
  row, on the training rows only, in the run's scaled units. The effect is kept for a target only
  where the covariates explain it beyond chance: the F test of all slopes being zero must reject at
  :data:`P_VALUE` (a covariate without effect then leaves the run exactly as it was without this).
* **Use**: the targets' scaled values less the effect ``x_t @ beta`` are what the windows, the
  naive skip and the network see; a forecast is the network's forecast of that remainder plus the
  effect of the horizon's own covariates (``x_{t+h} @ beta``), added before the scaler is inverted.
  The covariates remain known inputs of the network too, so what is not linear it can still learn.

The intercept is not removed (the remainder keeps the series' level). The slopes ``beta (K, C)``
live in the run's :class:`~.normalise.WindowNorm` (``effect``), are saved in ``meta`` and read back
with the run. Quantile levels shift by the same amount, so their order is kept.
"""

from __future__ import annotations

import numpy as np
import torch

from .normalise import WindowNorm

__all__ = ["LINEAR", "P_VALUE", "fit_effect", "f_test_pvalue", "removed_effect"]

#: DataConfig.linear_covariates' choices
LINEAR = ("auto", "none")
#: the F test's level: the covariates' linear effect on a target is used only below this p-value
P_VALUE = 0.01


def f_test_pvalue(f: float, d1: int, d2: int) -> float:
    """``P(F > f)`` for Fisher's F with ``(d1, d2)`` degrees of freedom:
    ``I_{d2 / (d2 + d1 f)}(d2 / 2, d1 / 2)``, the regularised incomplete beta function."""
    from .distribution import betainc  # noqa: PLC0415  (torch special functions, float64)
    if not np.isfinite(f):
        return 0.0
    if f <= 0:
        return 1.0
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
    return float(betainc(t(d2 / 2), t(d1 / 2), t(d2 / (d2 + d1 * f)))[0])


def fit_effect(targets: np.ndarray, covariates: np.ndarray, p_value: float = P_VALUE,
               groups: np.ndarray | None = None) -> np.ndarray | None:
    """The slopes ``(K, C)`` of each target column of ``targets (N, C)`` on ``covariates (N, K)`` (least
    squares with an intercept), a target's column zero where its F test does not reject at ``p_value``;
    None when no target keeps an effect (or too few rows to test: N <= K + 2).

    With ``groups`` (``(N,)``, the series of each row: a panel), one intercept per group and slopes
    shared by all, the fixed-effects (within) estimator: targets and covariates less their group's
    means, then least squares through the origin; the F test has ``N - groups - K`` residual degrees
    of freedom."""
    y = np.asarray(targets, dtype=np.float64)
    x = np.asarray(covariates, dtype=np.float64)
    N, K = x.shape
    if groups is None:
        if N <= K + 2 or K == 0:
            return None
        design = np.column_stack([np.ones(N), x])
        n_fixed = 1
    else:
        codes = np.unique(groups, return_inverse=True)[1].reshape(-1)
        n_fixed = int(codes.max()) + 1 if N else 0
        if N <= K + n_fixed + 1 or K == 0:
            return None
        y, design = _within(y, codes, n_fixed), _within(x, codes, n_fixed)
    coef = np.linalg.lstsq(design, y, rcond=None)[0]  # (n_fixed == 1: 1 + K, else K, C)
    rss1 = ((y - design @ coef) ** 2).sum(axis=0)
    rss0 = ((y - y.mean(axis=0)) ** 2).sum(axis=0)  # the demeaned targets' mean is 0
    rank = np.linalg.matrix_rank(design)
    d1 = rank - 1 if groups is None else rank
    d2 = N - rank if groups is None else N - n_fixed - rank
    beta = (coef[1:] if groups is None else coef).copy()
    for c in range(y.shape[1]):
        if d1 < 1 or rss0[c] <= 0:
            beta[:, c] = 0.0
            continue
        f = np.inf if rss1[c] <= 0 else ((rss0[c] - rss1[c]) / d1) / (rss1[c] / d2)
        if f_test_pvalue(f, d1, d2) >= p_value:
            beta[:, c] = 0.0
    return beta if np.any(beta != 0) else None


def _within(a: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """``a (N, K)`` less the mean of its rows' group (``codes``: 0..n-1)."""
    sums = np.zeros((n, a.shape[1]))
    np.add.at(sums, codes, a)
    return a - (sums / np.bincount(codes, minlength=n)[:, None])[codes]


def removed_effect(scaled: np.ndarray, n_targets: int, first: int, k: int, train_end: int,
                   fit: bool = True) -> tuple[tuple[tuple[float, ...], ...], np.ndarray]:
    """A run's scaled rows ``(N, F)`` whose future covariates are columns ``[first, first + k)``:
    ``(effect, rows)``, the effect's slopes (:func:`fit_effect` on the first ``train_end`` rows; empty
    when none is kept, or without ``fit``) and the rows with the targets less it."""
    beta = fit_effect(scaled[:train_end, :n_targets], scaled[:train_end, first:first + k]) if fit and k else None
    if beta is None:
        return (), scaled
    effect = tuple(tuple(float(v) for v in row) for row in beta)
    norm = WindowNorm("none", "none", 1, n_targets, (1.0,) * n_targets, 0, effect, first)
    return effect, norm.remove_effect(scaled)
