"""Split-conformal prediction intervals for any point forecaster: residuals in, half-widths out.

The calibration scores are the absolute errors ``|e| = |y - f|`` of forecasts made out of sample,
``(K, H, C)``: K calibration windows, H horizon steps, C target columns. For each step h and
column c separately, the half-width of the central interval at level a (in percent) is the
``r``-th smallest of the K scores with

    r = ceil((K + 1) a / 100)

(the finite-sample split-conformal quantile: Vovk, Gammerman and Shafer, 2005; Angelopoulos and
Bates, "A gentle introduction to conformal prediction", 2021, section 1). When the K calibration
errors and a new one are exchangeable, ``[f - q, f + q]`` covers the new value with probability
at least a/100 (and at most ``a/100 + 1/(K + 1)`` without ties). The level is finite only when
``r <= K``, that is ``K >= a / (100 - a)``: 4 windows for 80 %, 19 for 95 %, 99 for 99 %
(:func:`min_windows`).

Across the horizon the half-widths are then made non-decreasing (:func:`step_envelope`: step h's is
at least every earlier step's). Each step keeps its guarantee, since its interval only widens; what
goes are the dips that K noisy per-step quantiles show where the errors do not shrink with the
step, and that cost coverage (measured on `make quality`'s series and the dev panels: 80 % coverage
0.783 -> 0.812 over 568 single-series points, 0.725 -> 0.772 on the mixed panel; docs/intervals.md).
A run directory written before keeps its per-step widths (``intervals.json`` without ``steps``).

Nothing here knows how the errors were made, so a panel model can pool or split its series'
errors and call :func:`half_widths` the same way. For the single-series forecaster,
:func:`calibrate_run` makes them from rolling origins at the end of the fitted rows, each
forecast by the pipeline refitted on the rows before it (:func:`~.rolling.refit_forecasts`, the
backtest's refits); a :class:`Calibration` holds the result, adds the ``<target>_lo_<a>`` and
``<target>_hi_<a>`` columns to forecasts, scores coverage and width, and is stored in the run
directory's ``intervals.json`` (residuals included when small), checked on load.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ...errors import ConfigError, DataError, RnnkitWarning
from .levels import REFIT, check_interval_levels, conformal_rank, level_name, min_windows
from .probabilistic import interval_scores
from .config import DataConfig
from .data import resolve_split, seasonal_period
from .rolling import check_refit_rows, refit_config, refit_forecasts, refit_settings

__all__ = ["REFIT", "MAX_STORED", "default_spacing", "check_interval_levels", "level_name", "conformal_rank", "min_windows",
           "half_widths", "step_envelope", "calibration_origins", "Calibration", "check_calibration_rows", "calibrate_run"]

#: the most calibration errors (K x H x C numbers) intervals.json keeps; more are summarised by the half-widths
MAX_STORED = 100_000


def half_widths(residuals, levels) -> np.ndarray:
    """The half-widths ``(A, H, C)`` of the central intervals at ``levels`` (A of them, percent)
    from absolute calibration errors ``(K, H, C)`` (any trailing shape): per step and column,
    the :func:`conformal_rank`-th smallest of the K."""
    levels = check_interval_levels(levels)
    r = np.asarray(residuals, dtype=np.float64)
    if r.ndim < 1 or len(r) == 0:
        raise DataError("conformal calibration needs at least one calibration error")
    if not np.isfinite(r).all() or (r < 0).any():
        raise DataError("calibration errors must be finite absolute errors (non-negative); the forecasts they come "
                        "from are unusable")
    K = len(r)
    ranks = [conformal_rank(K, a) for a in levels]
    if max(ranks) > K:
        raise ConfigError(f"{K} calibration window(s) cannot bound a {level_name(levels[-1])} % interval (its "
                          f"conformal quantile would be error {max(ranks)} of {K}, sorted); use at least {min_windows(levels)} windows")
    ordered = np.sort(r, axis=0)  # (K, ...) per step and column
    return np.stack([ordered[k - 1] for k in ranks])  # (A, ...)


#: how a calibration's half-widths run across the horizon: ``envelope`` (non-decreasing,
#: :func:`step_envelope`; written since 2026-12-07) or ``per-step`` (each step's own quantile: run
#: directories written before, whose intervals.json has no ``steps``)
STEPS = ("envelope", "per-step")


def step_envelope(widths) -> np.ndarray:
    """Half-widths ``(A, H, ...)`` made non-decreasing over the H steps: each step's is the largest
    of its own and every earlier step's (the running maximum along axis 1)."""
    return np.maximum.accumulate(np.asarray(widths, dtype=np.float64), axis=1)


def default_spacing(end: int, horizon: int, windows: int) -> int:
    """Steps between calibration origins unless set: the horizon (consecutive forecasts share no
    target row), or less, down to 1, so that the K origins lie in the second half of the ``end``
    fitted rows (the earliest refit then has at least half of them to learn from).

    Origins one step apart fit the shortest series, but their K forecasts then cover only K + H - 1
    rows: one unusual stretch (El Nino's 1997-98 event at the end of ``builtin:elnino``'s fitted
    rows) makes every one of them unusual, and the intervals with them (measured there, horizon
    12, seed 0: the 80 % intervals covered 100 % of the test rows with origins one step apart, 92.6 %
    with origins 12 steps apart, 2.3 times narrower). Wider spacing samples more of the series."""
    if windows < 2:
        return 1
    return int(max(1, min(horizon, (end // 2 - horizon) // (windows - 1))))


def calibration_origins(end: int, horizon: int, windows: int, spacing: int) -> np.ndarray:
    """The rows ``(K,)``, increasing, at which the K calibration forecasts start: the last one
    ``end - horizon`` (its horizon ends with the fitted rows), each ``spacing`` steps after the one before."""
    return end - horizon - spacing * np.arange(windows)[::-1]


@dataclass(frozen=True)
class Calibration:
    """Conformal half-widths ``(A, H, C)`` at ``levels`` (percent, increasing) for each of the H
    steps and C targets, from the errors of ``windows`` forecasts made at ``origins`` (``refit``:
    see :data:`REFIT`); ``residuals`` ``(K, H, C)`` where small enough to keep (else None)."""

    levels: tuple[float, ...]
    windows: int
    spacing: int
    refit: str
    origins: tuple[int, ...]
    widths: np.ndarray
    residuals: np.ndarray | None = None
    steps: str = "envelope"

    @classmethod
    def from_residuals(cls, residuals, levels, origins, spacing: int, refit: str = "each") -> "Calibration":
        r = np.asarray(residuals, dtype=np.float64)
        levels = check_interval_levels(levels)
        return cls(levels, len(r), int(spacing), refit, tuple(int(o) for o in origins),
                   step_envelope(half_widths(r, levels)), r if r.size <= MAX_STORED else None)

    @property
    def horizon(self) -> int:
        return self.widths.shape[1]

    def bands(self, point) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """``[(level, lo, hi)]`` around point forecasts ``(W, H', C)``; steps past the calibrated
        horizon (``H' > H``) have no interval: NaN."""
        p = np.asarray(point, dtype=np.float64)
        steps = p.shape[-2]
        w = np.full((len(self.levels), steps, self.widths.shape[2]), np.nan)
        n = min(steps, self.horizon)
        w[:, :n] = self.widths[:, :n]
        return [(a, p - w[i], p + w[i]) for i, a in enumerate(self.levels)]

    def add_columns(self, frame: pd.DataFrame, point: np.ndarray, targets) -> pd.DataFrame:
        """``frame`` (a forecast table, one row per step) with ``<target>_lo_<a>`` and
        ``<target>_hi_<a>`` columns after the point forecasts ``(H', C)``; warns when it forecasts
        further than the calibrated horizon (those rows' intervals are empty)."""
        steps = len(point)
        if steps > self.horizon:
            warnings.warn(f"the intervals were calibrated for {self.horizon} step(s); steps {self.horizon + 1}-{steps} "
                          "of this forecast have none (empty interval columns): refit with a longer --horizon for "
                          "intervals that far", RnnkitWarning, stacklevel=3)
        out = frame.copy()
        for level, lo, hi in self.bands(np.asarray(point)[None]):
            for c, t in enumerate(targets):
                out[f"{t}_lo_{level_name(level)}"] = lo[0, :, c]
                out[f"{t}_hi_{level_name(level)}"] = hi[0, :, c]
        return out

    def scores(self, actual, point) -> dict[str, dict]:
        """Coverage and mean width of each level's intervals around ``point`` ``(W, H, C)`` on
        ``actual``, overall and per step: ``{"80": {"coverage", "width", "per_step": [...]}}``."""
        y = np.asarray(actual, dtype=np.float64)
        out = {}
        for level, lo, hi in self.bands(point):
            scores = interval_scores(y, lo, hi)
            scores["per_step"] = [interval_scores(y[:, h], lo[:, h], hi[:, h]) for h in range(min(y.shape[1],
                                                                                                   self.horizon))]
            out[level_name(level)] = scores
        return out

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "windows": self.windows, "spacing": self.spacing, "refit": self.refit,
                "origins": list(self.origins),
                "half_widths": {level_name(a): w.tolist() for a, w in zip(self.levels, self.widths)},
                "residuals": None if self.residuals is None else self.residuals.tolist(),
                **({"steps": self.steps} if self.steps != "per-step" else {})}

    @classmethod
    def from_dict(cls, d, levels, windows: int, refit: str, horizon: int, n_targets: int, end: int,
                  spacing: int | None = None) -> "Calibration":
        """The calibration intervals.json holds, checked against the run's settings (its ``levels``,
        ``windows``, ``refit``, ``spacing`` (None: the default's), ``horizon``, ``n_targets`` and the
        ``end`` of its fitted rows); ValueError naming the first problem."""
        keys = {"levels", "windows", "spacing", "refit", "origins", "half_widths", "residuals"}
        if not isinstance(d, dict) or set(d) - {"steps"} != keys:
            raise ValueError(f"must be an object with the keys {', '.join(sorted(keys))} (and steps)")
        steps = d.get("steps", "per-step")  # written before the envelope: each step's own quantile
        if steps not in STEPS:
            raise ValueError(f"its steps {steps!r} is not one of {', '.join(STEPS)}")
        if d["levels"] != list(levels) or d["windows"] != windows or d["refit"] != refit:
            raise ValueError(f"describes levels {d['levels']}, {d['windows']} window(s), refit {d['refit']!r}; "
                             f"config.json's search section asks for {list(levels)}, {windows}, {refit!r}")
        spacing = default_spacing(end, horizon, windows) if spacing is None else spacing
        if d["spacing"] != spacing:
            raise ValueError(f"its spacing {d['spacing']!r} is not the run's ({spacing})")
        origins = calibration_origins(end, horizon, windows, d["spacing"])
        if d["origins"] != origins.tolist():
            raise ValueError(f"its origins are not the {windows} rows, {d['spacing']} apart, whose horizons end with "
                             f"the {end} fitted rows")
        shape = (horizon, n_targets)
        half = d["half_widths"]
        if not isinstance(half, dict) or list(half) != [level_name(a) for a in levels]:
            raise ValueError("its half_widths must have one entry per level, in order")
        widths = np.stack([_array(half[k], shape, f"half_widths[{k!r}]") for k in half])
        if (np.diff(widths, axis=0) < 0).any():
            raise ValueError("a higher level has a narrower interval than a lower one")
        residuals = d["residuals"]
        if residuals is not None:
            residuals = _array(residuals, (windows,) + shape, "residuals")
            expected = half_widths(residuals, levels)
            if not np.array_equal(step_envelope(expected) if steps == "envelope" else expected, widths):
                raise ValueError("its half_widths are not the conformal quantiles of its residuals")
        elif steps == "envelope" and (np.diff(widths, axis=1) < 0).any():
            raise ValueError("its half_widths narrow from one step to the next")
        return cls(tuple(levels), windows, d["spacing"], refit, tuple(d["origins"]), widths, residuals, steps)


def _array(value, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not an array of numbers") from None
    if a.shape != shape or not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{what} must be {' x '.join(map(str, shape))} finite non-negative numbers")
    return a


def _plan(search, dc: DataConfig, data, end: int, dc_refit: DataConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """``(origins, refit ends, spacing)`` of the calibration ``search`` asks for, on a series
    whose ``end`` fitted rows ``dc`` (resolved) was fitted on; a series too short for it is one
    DataError."""
    K, H = search.calibration_windows or min_windows(search.intervals), dc.horizon
    spacing = search.calibration_spacing or default_spacing(end, H, K)
    origins = calibration_origins(end, H, K, spacing)
    ends = origins if search.calibration_refit == "each" else origins[:1]
    try:
        if ends[0] < 1:
            raise DataError("no rows are left before it")
        check_refit_rows(dc_refit, data, int(ends[0]), dc)
    except DataError as e:
        raise DataError(f"--intervals: the first of {K} calibration origins ({spacing} step(s) apart, the last {H} "
                        f"fitted rows after the last) leaves {int(origins[0])} rows to refit on, too few ({e}); use "
                        f"fewer --calibration-windows (at least {min_windows(search.intervals)} for levels "
                        f"{','.join(map(level_name, search.intervals))}), a smaller --calibration-spacing, lower "
                        "levels, or a longer series") from None
    return origins, ends, spacing


def check_calibration_rows(data_config: DataConfig, data, search, split=None) -> None:
    """Refuse (DataError) a series too short for the calibration ``search`` asks for, with the
    lookback and split ``data_config`` resolves to on ``data`` (the longest of an ensemble's
    lookbacks), or ``split`` where given: before any training, and for each of ``--auto``'s
    candidates (:func:`~.search.auto_search`'s ``admissible``)."""
    m = seasonal_period(data_config, data.freq)
    looks = search.ensemble_lookbacks
    L, default = resolve_split(data_config.replace(lookback=max(looks)) if looks else data_config, data, m)
    split = split or default
    dc = data_config.replace(lookback=L, seasonal_period=m)
    views = [{"skip": dc.skip, "transform": dc.transform}] * len(looks)
    meta = {"val_rows": split.val_end - split.train_end, "test_start": split.val_end, "ensemble": search.ensemble,
            "lookback_members": views}
    _plan(search, dc, data, split.val_end, refit_config(dc, search, meta)[0])


def calibrate_run(fit: Callable, run, data, quiet: bool = True) -> Calibration:
    """The conformal calibration of ``run`` (a forecasting run whose ``search`` asks for
    intervals) on ``data``, the series it was fitted on: the absolute errors of H-step forecasts
    from K origins at the end of the fitted rows (training + validation; spaced by
    :func:`default_spacing` unless ``search.calibration_spacing`` says), each made
    by the pipeline refitted with ``fit`` (:func:`~rnnkit.tasks.forecast.workflow.fit_forecaster`)
    on the rows before its origin, with the run's settings (:func:`~.rolling.refit_settings`).
    The K refits train side by side; a series too short for them is refused before any (DataError)."""
    s, dc = run.search, run.data_config
    dc_refit, search = refit_settings(run)
    origins, ends, spacing = _plan(s, dc, data, int(run.meta["test_start"]), dc_refit)
    H, C = dc.horizon, len(dc.targets)
    preds = refit_forecasts(fit, run, data, origins, H, ends=ends, settings=(dc_refit, search), quiet=quiet,
                            desc=f"calibrating intervals ({len(ends)} refit{'s' if len(ends) > 1 else ''})")[0]
    actual = data.values[origins[:, None] + np.arange(H)][..., :C]  # (K, H, C)
    return Calibration.from_residuals(np.abs(actual - preds), s.intervals, origins, spacing, s.calibration_refit)
