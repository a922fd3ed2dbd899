"""Split-conformal intervals for a global model, calibrated across the series of its panel.

The calibration errors come from one more global model fitted without the last fitted horizon of
every series, which then forecasts that horizon: one out-of-sample window per series, the
series' own future (:func:`~.panel_backtest.calibrate_global`; a panel needs one refit where one series
needs K, :mod:`.conformal`). A panel of fewer series than its levels need (or than
``SearchConfig.calibration_windows``, an opt-in floor) takes more origins, one horizon apart,
each one more global fit (:func:`calibration_origins`). Series differ in scale, so each error
is divided by its series' scale, the mean absolute seasonal difference of its training rows
(MASE's denominator, Hyndman and Koehler 2006; lag 1 where the series is too short for its
season), and the half-widths (:func:`~.conformal.half_widths`, the finite-sample conformal
quantile per horizon step, then non-decreasing over the steps: :func:`~.conformal.step_envelope`)
are in those units; a forecast's interval is ``point +- half-width x
its series' scale``. The guarantee is marginal over series exchangeable
with the calibration series: with K windows, a level a needs ``K >= a / (100 - a)`` of them
(:func:`~.levels.min_windows`: 4 for 80 %, 19 for 95 %).
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError, DataError
from .conformal import half_widths, step_envelope
from .levels import check_interval_levels, level_name, min_windows
from .probabilistic import interval_scores

__all__ = ["series_scale", "calibrate_panel", "calibration_origins", "PanelIntervals", "check_panel_intervals",
           "MAX_ORIGINS"]

#: calibration origins (global fits) a small panel may take to reach its windows
MAX_ORIGINS = 20


def calibration_origins(ends, lookback: int, horizon: int, levels, windows: int | None = None
                        ) -> list[list[tuple[int, int]]]:
    """The calibration fits of a panel whose series' fitted rows end at ``ends``: fit k (from 0) holds
    out the horizon at origin ``end - (k + 1) horizon`` of every series that keeps a context there
    (``origin >= lookback``), as ``[(series index, origin), ...]``. Fits are taken until they hold
    ``min_windows(levels)`` windows, as few as bound every level (:func:`~.levels.min_windows`: 4 for
    80 %, 19 for 95 %), or, with ``windows`` (``SearchConfig.calibration_windows``, an opt-in floor),
    until they hold ``max(min_windows(levels), windows)``; at most :data:`MAX_ORIGINS`, and only while
    some series is long enough to train on at the origin (``origin >= lookback + horizon``). A panel
    that cannot reach ``windows`` takes all it has, provided they bound every level; one that cannot
    bound its levels is refused (DataError) before anything is fitted. (A floor of 100 was measured
    and not made the default: on the small dev panels it took coverage further from nominal,
    docs/panels.md.)"""
    levels = check_interval_levels(levels)
    need = min_windows(levels)
    goal = need if windows is None else max(need, int(windows))
    plan, held = [], 0
    for k in range(MAX_ORIGINS):
        at = [int(e) - (k + 1) * horizon for e in ends]
        if max(at, default=-1) < lookback + horizon:  # no series would leave a training window
            break
        plan.append([(j, o) for j, o in enumerate(at) if o >= lookback])
        held += len(plan[-1])
        if held >= goal:
            break
    if held >= need:
        return plan
    if not plan:
        raise DataError("intervals: no series has lookback + 2 x horizon rows before its test part (a training "
                        "window, then the held-out horizon), so no calibration window can be held out; pass a shorter "
                        "--lookback or --horizon")
    raise DataError(f"intervals at {', '.join(level_name(a) for a in levels)} % need at least {need} held-out "
                    f"horizons; this panel's series hold {held} (one per series at each of {len(plan)} origin(s) "
                    "before their test part): lower the levels, shorten --lookback, or add series")


def series_scale(values: np.ndarray, m: int) -> np.ndarray:
    """``(C,)`` mean absolute lag-m difference of training rows ``values (N, C)`` (lag 1 when
    ``N <= m``); a flat series (scale 0) gets 1 so its intervals are its errors' own size."""
    v = np.asarray(values, dtype=np.float64)
    lag = m if len(v) > m else 1
    if len(v) <= lag:
        return np.ones(v.shape[1])
    scale = np.abs(v[lag:] - v[:-lag]).mean(axis=0)
    return np.where(scale > 0, scale, 1.0)


def check_panel_intervals(search) -> None:
    """Refuse the one-series calibration settings a panel does not use (``calibration_windows`` it
    does: an opt-in floor on the windows its origins are taken until, :func:`calibration_origins`)."""
    if search.intervals and (search.calibration_spacing is not None or search.calibration_refit != "each"):
        raise ConfigError("--calibration-spacing/--calibration-refit: a panel's intervals are calibrated on one "
                          "held-out horizon of every series at origins one horizon apart, one global fit each, as "
                          "many as the levels (or --calibration-windows) need, one for a panel of enough series; "
                          "drop them")


class PanelIntervals:
    """Half-widths ``(A, H, C)`` in units of each series' scale, for ``levels`` (percent)."""

    def __init__(self, levels, widths: np.ndarray, windows: int) -> None:
        self.levels = check_interval_levels(levels)
        self.widths = np.asarray(widths, dtype=np.float64)
        self.windows = int(windows)

    def bands(self, point: np.ndarray, scales: np.ndarray) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """``[(level, lo, hi)]`` around forecasts ``(S, H', C)`` of series with ``scales (S, C)``;
        steps past the calibrated horizon are NaN."""
        p = np.asarray(point, dtype=np.float64)
        H = self.widths.shape[1]
        out = []
        for a, w in zip(self.levels, self.widths):
            half = np.full(p.shape, np.nan)
            n = min(H, p.shape[1])
            half[:, :n] = w[None, :n] * np.asarray(scales)[:, None, :]
            out.append((a, p - half, p + half))
        return out

    def columns(self, point: np.ndarray, scales: np.ndarray, targets) -> dict[str, np.ndarray]:
        """``{"<target>_lo_<a>": (S, H'), "<target>_hi_<a>": ...}`` for a long forecast table."""
        out = {}
        for a, lo, hi in self.bands(point, scales):
            for c, t in enumerate(targets):
                out[f"{t}_lo_{level_name(a)}"] = lo[..., c]
                out[f"{t}_hi_{level_name(a)}"] = hi[..., c]
        return out

    def scores(self, actual: np.ndarray, point: np.ndarray, scales: np.ndarray) -> dict[str, dict]:
        """Coverage and mean width (original units) of each level over ``actual (S, H, C)``."""
        return {level_name(a): interval_scores(actual, lo, hi) for a, lo, hi in self.bands(point, scales)}

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "windows": self.windows,
                "half_widths": {level_name(a): w.tolist() for a, w in zip(self.levels, self.widths)}}

    @classmethod
    def from_dict(cls, d: dict, horizon: int, n_targets: int) -> "PanelIntervals":
        try:
            levels = check_interval_levels(d["levels"])
            widths = np.array([d["half_widths"][level_name(a)] for a in levels], dtype=np.float64)
            windows = int(d["windows"])
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise ConfigError(f"the intervals' calibration is unusable ({e})") from None
        if widths.shape != (len(levels), horizon, n_targets) or not np.isfinite(widths).all() or (widths < 0).any():
            raise ConfigError(f"the intervals' half-widths have shape {widths.shape} (finite, non-negative: "
                              f"{bool(np.isfinite(widths).all() and (widths >= 0).all())}); the run forecasts "
                              f"{horizon} step(s) of {n_targets} target(s)")
        if windows < min_windows(levels):
            raise ConfigError(f"{windows} calibration windows cannot give intervals at {list(levels)} %")
        return cls(levels, widths, windows)


def calibrate_panel(levels, actual: np.ndarray, point: np.ndarray, scales: np.ndarray) -> PanelIntervals:
    """Intervals from out-of-sample forecasts ``point`` of ``actual`` ``(K, H, C)``, K windows (one
    per series and origin), each divided by its series' ``scales (K, C)``."""
    levels = check_interval_levels(levels)
    K = len(actual)
    need = min_windows(levels)
    if K < need:
        raise DataError(f"intervals at {', '.join(level_name(a) for a in levels)} % need at least {need} held-out "
                        f"horizons; got {K} (lower the levels, shorten --lookback, or add series)")
    errors = np.abs(np.asarray(actual) - np.asarray(point)) / np.asarray(scales)[:, None, :]
    return PanelIntervals(levels, step_envelope(half_widths(errors, levels)), K)
