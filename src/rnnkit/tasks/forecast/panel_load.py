"""Loading a panel run directory (kind ``"panel"``, written by
:func:`~rnnkit.tasks.forecast.panel_rundir.write_panel_run`), checked file by file: config.json's
sections and meta, scalers.json (one scaler per series id and the static covariates' encoding),
the weights, and the intervals' calibration when the run has one."""

from __future__ import annotations

import os

from ...config import MAX_ENSEMBLE, ModelConfig, TrainConfig
from ...data.scaler import Scaler
from ...errors import ConfigError, RnnkitError
from ...training.rundir import consistent_read
from ...training.runs import load_weights, open_run
from .config import DataConfig, SearchConfig
from .fitting import ForecastEnsemble
from .model import Forecaster, head_width
from .negbin import set_count_naive
from .normalise import PER_SERIES, WindowNorm, difference_lag
from .panel import panel_known_width
from .panel_intervals import PanelIntervals
from .panel_run import PanelRun
from .panel_rundir import SCALERS_FILE
from .statics import StaticEncoder

__all__ = ["load_panel_run"]


@consistent_read
def load_panel_run(path: str | os.PathLike) -> PanelRun:
    """Load a panel run directory (see :func:`rnnkit.load_run`)."""
    with open_run(path, "panel", {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
                                  "search": SearchConfig},
                  required=("config.json", "weights.safetensors", SCALERS_FILE)) as run:
        check, (mc, dc, tc, sc), meta, shapes = run
        members, C = meta["ensemble"], len(dc.targets)
        check.agree(1 <= members <= MAX_ENSEMBLE and 0 <= meta["naive_members"] <= members, "config.json",
                    f"meta's ensemble of {members} member(s), {meta['naive_members']} naive, is impossible")
        ids = meta["ids"]
        check.agree(len(ids) == len(set(ids)) == len(meta["splits"]) == len(meta["n_rows"]) and all(
            len(s) == 2 and 0 <= s[0] <= s[1] <= n for s, n in zip(meta["splits"], meta["n_rows"])), "config.json",
            "meta's ids, splits and n_rows do not describe one split per series")
        stored = check.json(SCALERS_FILE)
        check.agree(isinstance(stored, dict) and stored.get("ids") == ids and isinstance(stored.get("scalers"), list)
                    and len(stored["scalers"]) == len(ids) and isinstance(stored.get("statics"), dict), SCALERS_FILE,
                    "does not hold one scaler per series id and the static covariates' encoding")
        try:
            statics = StaticEncoder.from_dict(stored["statics"])
        except ConfigError as e:
            check.fail(SCALERS_FILE, str(e))
        check.agree(statics.columns == dc.static_covariates, SCALERS_FILE,
                    f"encodes the static covariates {list(statics.columns)}, the run has {list(dc.static_covariates)}")
        static_values = stored.get("static_values")  # each series' values (runs before it was kept: none)
        check.agree(static_values is None or (
            isinstance(static_values, dict) and tuple(static_values) == dc.static_covariates
            and all(isinstance(v, list) and len(v) == len(ids) and all(isinstance(x, str) for x in v)
                    for v in static_values.values())), SCALERS_FILE,
            "static_values does not hold one value of each static covariate per series id")
        if static_values is not None:
            static_values = {c: tuple(v) for c, v in static_values.items()}
        window = (dc.lookback or 0) + dc.horizon
        trained = tuple(sid for sid, (e, _) in zip(ids, meta["splits"]) if e >= window) if dc.id_embedding else ()
        check.agree(statics.ids == trained, SCALERS_FILE, f"holds an id vocabulary of {len(statics.ids)} series; the "
                    f"run's id embedding needs its {len(trained)} training series")
        recursive = mc.strategy == "recursive"
        try:
            n_known = panel_known_width(dc, meta["freq"], statics, recursive)
        except (RnnkitError, ValueError) as e:
            check.fail("config.json", f"its calendar {dc.calendar!r} at frequency {meta['freq']!r} is unusable ({e})")
        n_values = C + len(dc.covariates)
        n_in = n_values + n_known
        check.agree(C >= 1 and dc.id_col is not None and (shapes["input_size"], shapes["n_targets"], shapes["horizon"])
                    == (n_in, C, dc.horizon), "config.json", f"shapes {shapes} do not match the data section "
                    f"({C} target(s), {n_in} input(s), horizon {dc.horizon})")
        check.agree("auto" not in (dc.normalise, dc.skip) and dc.lookback is not None and len(meta["norm_floor"]) == C,
                    "config.json", "the data section or meta.norm_floor do not describe a trained run")
        seasons = meta.get("seasons")  # each series' own (series of different frequencies): seasonal_period None
        check.agree((dc.seasonal_period is None) == (seasons is not None) and (seasons is None or (
            meta["freq"] is None and isinstance(seasons, list) and len(seasons) == len(ids)
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= dc.lookback for v in seasons)
            and dc.difference != "seasonal" and mc.distribution != "negbin")), "config.json",
            "the data section's seasonal_period and meta.seasons (a season per series, each 1 to the lookback) "
            "disagree")
        try:
            scalers = {sid: Scaler.from_dict(d) for sid, d in zip(ids, stored["scalers"])}
        except ConfigError as e:
            check.fail(SCALERS_FILE, str(e))
        n_cols = n_values + len(dc.future_covariates)
        check.agree(all(len(s.offset) == n_cols for s in scalers.values()), SCALERS_FILE,
                    f"a scaler does not scale the {n_cols} column(s) the model reads")

        def build():  # member k was trained from seed + k, which seeds its sampled paths (a recursive distribution head)
            def one(k: int) -> Forecaster:
                member = Forecaster(n_in, C, dc.horizon, mc, n_known=n_known, seed=tc.seed + k)
                set_count_naive(member, dc.skip, dc.seasonal_period or 1)  # a negbin head's own naive forecast
                return member
            return one(0) if members == 1 else ForecastEnsemble([one(k) for k in range(members)])
        model = load_weights(check, build, meta, mc, {"input_size": n_in, "horizon x targets x quantiles":
                                                      dc.horizon * C * head_width(mc)})
        history, metrics = check.reports()
        effect, Kf = meta["covariate_effect"], len(dc.future_covariates)  # (Kf, C) slopes, or [] (.linear)
        check.agree(not effect or (len(effect) == Kf and all(len(r) == C for r in effect)
                                   and dc.linear_covariates != "none"), "config.json",
                    f"meta's covariate_effect {effect!r} is not {Kf} row(s) of {C} slope(s) (or empty; empty "
                    "with linear_covariates 'none')")
        counts = mc.distribution == "negbin"  # its windows are not normalised: the head corrects its naive forecast
        check.agree(not counts or (dc.normalise, dc.difference, dc.transform) == ("none", "none", "none"),
                    "config.json", "a negbin run's data section normalises, differences or transforms its counts")
        check.agree(not counts or all((s.offset[:C] == 0).all() and (s.scale[:C] == 1).all() for s in scalers.values()),
                    SCALERS_FILE, "scales the targets of a negbin run, whose counts reach the model as they are "
                    "(offset 0, scale 1)")
        m = PER_SERIES if seasons is not None else dc.seasonal_period
        norm = WindowNorm(dc.normalise, "none" if counts else dc.skip, m, C, tuple(meta["norm_floor"]),
                          difference_lag(dc.difference, m),
                          tuple(tuple(float(v) for v in r) for r in effect), n_values if effect else 0)
        intervals = None
        check.agree(bool(sc.intervals) == ("intervals" in meta), "config.json",
                    "the search section's intervals and meta.intervals disagree")
        if sc.intervals:
            try:
                intervals = PanelIntervals.from_dict(meta["intervals"], dc.horizon, C)
            except ConfigError as e:
                check.fail("config.json", f"meta.intervals: {e}")
            check.agree(intervals.levels == tuple(sc.intervals), "config.json",
                        f"meta.intervals has levels {list(intervals.levels)}, the search section {list(sc.intervals)}")
    return PanelRun(model, scalers, dc, mc, tc, history, metrics, meta, norm, sc, statics, intervals,
                    static_values)
