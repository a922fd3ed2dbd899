"""A forecasting run directory: loading it back, checked file by file. It is written by
:meth:`~rnnkit.tasks.forecast.workflow.ForecastRun.save` (this module imports the run class, so the
class cannot import this module back); :func:`save_run` and :func:`save_forecast_run` are thin calls
of it. The files every kind of run has are written and checked by :mod:`rnnkit.training.runs`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ...config import MAX_ENSEMBLE, ModelConfig, TrainConfig
from ...data.boxcox import TargetTransform
from ...errors import ConfigError, RnnkitError
from ...training.rundir import consistent_read
from ...training.runs import load_weights, open_run
from .config import DataConfig, SearchConfig
from .conformal import Calibration, min_windows
from .fitting import ForecastEnsemble
from .known import known_names, known_width
from .lookbacks import lookback_views
from .model import head_width
from .model import Forecaster
from .negbin import set_count_naive
from .normalise import WindowNorm, difference_lag
from .panel_run import PanelRun, write_panel_run
from .rundir import write_forecast_run
from .workflow import ForecastRun

__all__ = ["save_run", "save_forecast_run", "load_forecast_run"]


def save_run(run, out: str | os.PathLike, force: bool = False, extra: Callable[[Path], None] | None = None,
             kind: str = "forecast", plots: bool = False) -> Path:
    """Write a :class:`~rnnkit.tasks.forecast.workflow.ForecastRun`'s run files to ``out``, without
    forecast.csv and its plot (:func:`~rnnkit.tasks.forecast.rundir.write_forecast_run`); a panel's
    run (:class:`~rnnkit.tasks.forecast.panel_run.PanelRun`) is written as its own kind."""
    if isinstance(run, PanelRun):
        return write_panel_run(run, out, force)
    return write_forecast_run(run, out, force=force, extra=extra, kind=kind, plots=plots)


@consistent_read
def load_forecast_run(path: str | os.PathLike):
    """Load a forecasting run directory (see :func:`load_run`)."""
    with open_run(path, "forecast", {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
                                     "search": SearchConfig}) as run:
        check, (mc, dc, tc, sc), meta, shapes = run
        members = meta["ensemble"]
        check.agree(1 <= members <= MAX_ENSEMBLE and 0 <= meta["naive_members"] <= members, "config.json",
                    f"meta's ensemble of {members} member(s), {meta['naive_members']} naive, is impossible")
        n_values, n_out = len(dc.targets) + len(dc.covariates), len(dc.targets)
        n_cols = n_values + len(dc.future_covariates)  # the columns the scaler scales
        recursive = mc.strategy == "recursive"
        try:  # the known inputs (future covariates, calendar features, a direct model's flag) after the values
            n_known = known_width(meta["freq"], dc.calendar, len(dc.future_covariates), recursive)
            names = known_names(meta["freq"], dc.calendar, dc.future_covariates)
        except (RnnkitError, ValueError) as e:  # pandas: ValueError for a frequency it does not know
            check.fail("config.json", f"its calendar {dc.calendar!r} at frequency {meta['freq']!r} is unusable ({e})")
        n_in = n_values + n_known
        check.agree(meta["known_inputs"] == names, "config.json", f"meta.known_inputs {meta['known_inputs']} are "
                    f"not the data section's future covariates and calendar features {names}")
        check.agree(n_out >= 1 and (shapes["input_size"], shapes["n_targets"], shapes["horizon"]) ==
                    (n_in, n_out, dc.horizon), "config.json",
                    f"shapes {shapes} do not match the data section ({n_out} target(s), {n_in} input(s), "
                    f"horizon {dc.horizon})")
        rows = meta["train_rows"], meta["val_rows"], meta["test_start"], meta["n_rows"]
        check.agree(0 < rows[0] and 0 <= rows[1] and rows[0] + rows[1] == rows[2] <= rows[3], "config.json",
                    f"meta's split (train_rows {rows[0]}, val_rows {rows[1]}, test_start {rows[2]}, n_rows "
                    f"{rows[3]}) is impossible")
        refit, best = meta["refit_epochs"], meta["member_best_epochs"]
        check.agree(len(refit) == len(best) == members and all(e >= 0 for e in refit + best)
                    and sum(e > 0 for e in refit) <= members - meta["naive_members"]
                    and (dc.refit != "none" and rows[1] > 0 or not any(refit)), "config.json",
                    f"meta's refit_epochs {refit} (member_best_epochs {best}) are not what {members} member(s), "
                    f"{meta['naive_members']} naive, with refit {dc.refit!r} and {rows[1]} validation rows make "
                    "(a member is refitted only where validation chose its epochs and it did not fall back)")
        weights = meta["naive_weights"]
        check.agree(len(weights) == members and all(0 <= w <= 1 for w in weights)
                    and (sc.combine != "none" or all(w == 1 for w in weights)), "config.json",
                    f"meta's naive_weights {weights} are not {members} weight(s) in [0, 1] (all 1 with combine "
                    f"'none'; combine is {sc.combine!r})")
        scaler = check.scaler(n_cols)
        def build():  # member k was trained from seed + k, which seeds its sampled paths (a recursive distribution head)
            def one(k: int) -> Forecaster:
                member = Forecaster(n_in, n_out, dc.horizon, mc, n_known=n_known, seed=tc.seed + k)
                set_count_naive(member, dc.skip, dc.seasonal_period or 1)  # a negbin head's own naive forecast
                return member
            return one(0) if members == 1 else ForecastEnsemble([one(k) for k in range(members)])
        model = load_weights(check, build, meta, mc, {"input_size": n_in, "horizon x targets x quantiles":
                                                      dc.horizon * n_out * head_width(mc)})
        history, metrics = check.reports()
        check.agree("auto" not in (dc.normalise, dc.skip, dc.transform) and dc.seasonal_period is not None
                    and len(meta["norm_floor"]) == n_out, "config.json",
                    "the data section's normalise/skip/transform/seasonal_period or meta.norm_floor do not describe "
                    "a trained run (a run stores the choices 'auto' made)")
        effect = meta["covariate_effect"]  # (K, C) slopes, or [] (.linear)
        Kf = len(dc.future_covariates)
        check.agree((not effect or (len(effect) == Kf and all(
                    len(r) == n_out for r in effect) and dc.linear_covariates != "none")), "config.json",
                    f"meta's covariate_effect {effect!r} is not {Kf} row(s) of {n_out} slope(s) (or empty; empty "
                    "with linear_covariates 'none')")
        norm = WindowNorm(dc.normalise, "none" if mc.distribution == "negbin" else dc.skip, dc.seasonal_period, n_out, tuple(meta["norm_floor"]),
                          difference_lag(dc.difference, dc.seasonal_period),
                          tuple(tuple(float(v) for v in r) for r in effect), n_cols - Kf if effect else 0)
        if sc.ensemble_lookbacks and members > 1:
            views = lookback_views(check, sc, meta, dc, n_cols)
            model = ForecastEnsemble(list(model.members), [views[L] for L in sc.member_lookbacks(members)])
        try:
            transform = TargetTransform(dc.transform, float(meta["transform_lambda"]))
        except ConfigError as e:
            check.fail("config.json", str(e))
        calibration = _calibration(check, sc, dc, meta)
    return ForecastRun(model, scaler, dc, mc, tc, history, metrics, meta, norm, transform, sc, calibration)


def _calibration(check, sc: SearchConfig, dc: DataConfig, meta: dict) -> Calibration | None:
    """intervals.json (the conformal calibration), checked against the search section: present
    exactly when it asks for intervals."""
    if not sc.intervals:
        check.agree(not os.path.lexists(check.d / "intervals.json"), "intervals.json",
                    "is there, but config.json's search section asks for no intervals")
        return None
    windows = sc.calibration_windows or min_windows(sc.intervals)
    try:
        return Calibration.from_dict(check.json("intervals.json"), sc.intervals, windows, sc.calibration_refit,
                                     dc.horizon, len(dc.targets), meta["test_start"], sc.calibration_spacing)
    except ValueError as e:
        check.fail("intervals.json", str(e))


def save_forecast_run(run, data, out: str | os.PathLike, force: bool = False, future=None) -> Path:
    """``run.save(out, force, data=data, future=future)``: see
    :meth:`~rnnkit.tasks.forecast.workflow.ForecastRun.save`."""
    return run.save(out, force=force, data=data, future=future)
