"""``--auto``: a small search over lookback, width, learning rate and the naive skip, paid for by
the fused trainer's speed, within a time budget.

The search is coordinate descent from the defaults: for each setting in turn (lookback, then
hidden size, then learning rate, then the naive forecast the head corrects) it trains one forecaster per alternative,
with the best values found so far for the others, and keeps an alternative only if it lowers the
validation error by at least :data:`MARGIN`. Every candidate is scored on the same validation windows (the split is fixed by
the first candidate), in the data's original units, as the mean absolute error divided by the
mean absolute one-step change of the training rows (MASE's scale, so that several targets weigh
alike). Candidates stop when the budget, less the estimated cost of the final ensemble, is spent;
what was tried and what was chosen is returned for the run's record (the final ensemble is then
refitted on the training and validation rows, :mod:`.refit`; the candidates are compared before
any refit, on validation rows none of them trained on). With fewer than
:data:`MIN_CHOICE_WINDOWS` validation windows (a short series, whose validation is one or a few
horizons) nothing is compared: on the quality benchmark such comparisons chose worse settings
about as often as better ones, so ``--auto`` then keeps the defaults and only adds the ensemble.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ...config import ModelConfig, TrainConfig
from ...data.series import SeriesData
from ...data.split import Split
from ...errors import DataError
from .config import DataConfig
from .fitting import Prepared, prepare, train_members
from .normalise import difference_lag
from .predict import predict_windows, windows_for

__all__ = ["auto_search", "choose_normalisation", "validation_error", "AUTO_ENSEMBLE"]

#: an alternative replaces the current best only if it lowers the validation error by this
#: fraction: on a few validation windows smaller gains are mostly noise, and chasing them overfits
MARGIN = 0.1

#: validation windows below which normalise="auto" does not measure, and takes per-window normalisation
MIN_CHOICE_WINDOWS = 20
#: how much lower the plain network's validation error must be for normalise="auto" to take it
CHOICE_MARGIN = 0.05

#: members of the ensemble ``--auto`` trains with the settings it chose (``--ensemble`` may ask more)
AUTO_ENSEMBLE = 5


def _alternatives(dc: DataConfig, mc: ModelConfig, tc: TrainConfig, m: int, H: int, lookback: int):
    """The settings tried, in order: (name, [changes to (data, model, train) configs])."""
    looks = sorted({max(1, v) for v in ((m, 3 * m) if m > 1 else (max(H, 4), 4 * max(H, 2)))} - {lookback})
    looks = [v for v in looks if v > difference_lag(dc.difference, m)]  # a differenced window needs more than d
    return [
        ("lookback", [({"lookback": v}, {}, {}) for v in looks]),
        ("hidden_size", [({}, {"hidden_size": v}, {}) for v in (16, 64) if v != mc.hidden_size]),
        ("lr", [({}, {}, {"lr": v}) for v in (3e-3, 3e-4) if v != tc.lr]),
        # a recursive or a differenced model has no skip
        ("skip", [({"skip": "last"}, {}, {})] if m > 1 and mc.strategy == "direct" and dc.difference == "none"
         else []),
    ]


def validation_error(prep: Prepared, model) -> float:
    """Scale-free validation error of ``model`` on ``prep``'s validation windows, original units."""
    dc, split = prep.data_config, prep.split
    raw, C = prep.data.values, len(dc.targets)
    X, Y, starts = windows_for(raw, C, dc.lookback, dc.horizon, 1, split.train_end, split.val_end)
    pred = predict_windows(model, prep.scaler, X, dc.horizon, C, norm=prep.norm, transform=prep.transform,
                           known=prep.known(starts))
    scale = np.abs(np.diff(raw[:split.train_end, :C], axis=0)).mean(axis=0)  # (C,)
    scale = np.where(scale > 0, scale, 1.0)
    return float((np.abs(pred - Y).mean(axis=(0, 1)) / scale).mean())


def auto_search(dc: DataConfig, mc: ModelConfig, tc: TrainConfig, data: SeriesData | None, dtype,
                budget: float, final_members: int, say: Callable[[str], None] = lambda s: None,
                admissible: Callable[[Prepared], None] | None = None,
                ) -> tuple[Prepared, ModelConfig, TrainConfig, list[dict]]:
    """The best settings found within ``budget`` seconds (keeping time for ``final_members``
    members of the final ensemble): ``(prepared data, model config, train config, record)``.
    ``admissible(prepared)`` raises DataError for a candidate the run cannot use (one whose lookback
    leaves the conformal calibration's refits too few rows), which is then not tried."""
    start = time.perf_counter()
    prep, models, _, _, errors = choose_normalisation(dc, mc, tc, data, dtype)
    base = {"lookback": prep.data_config.lookback, "hidden_size": mc.hidden_size, "lr": tc.lr,
            "normalise": prep.data_config.normalise, "skip": prep.data_config.skip}
    if prep.val is None:  # a series too short to hold out validation rows, or --val-frac 0
        say("auto: no validation rows to compare settings on; keeping the defaults, trained as an ensemble")
        return prep, mc, prep.train_config, [{**base, "val_error": None, "seconds": 0.0, "chosen": True}]
    data, split = prep.data, prep.split

    def score(prep_c: Prepared, mc_c: ModelConfig, tc_c: TrainConfig) -> tuple[float, float]:
        t0 = time.perf_counter()
        models, _, _ = train_members(prep_c, mc_c, tc_c, 1, quiet=True)
        return validation_error(prep_c, models[0]), time.perf_counter() - t0

    best_err = validation_error(prep, models[0])
    cost = (time.perf_counter() - start) / (2 if errors else 1)
    record = [{**base, "val_error": best_err, "seconds": cost, "chosen": True}]
    say(f"auto: defaults {base}: validation error {best_err:.4g}")
    best = (prep, mc, prep.train_config)
    if len(prep.val[0]) < MIN_CHOICE_WINDOWS:
        say(f"auto: {len(prep.val[0])} validation window(s) are too few to compare settings (at least "
            f"{MIN_CHOICE_WINDOWS}); keeping the defaults, trained as an ensemble")
        return (*best, record)
    m, H = prep.data_config.seasonal_period, prep.data_config.horizon
    final_cost = cost * final_members / 2  # members train two at a time (or more, with more cores)
    if prep.data_config.refit != "none":  # then each is trained again on the validation rows too (.refit)
        final_cost *= 2
    fixed = {"val_frac": None, "test_frac": None, "val_start": None, "test_start": None}
    for name, options in _alternatives(dc, mc, tc, m, H, prep.data_config.lookback):
        for d_ch, m_ch, t_ch in options:
            if time.perf_counter() - start + cost + final_cost > budget:
                say("auto: time budget reached")
                return (*best, record)
            bp, bm, bt = best
            dc_c = bp.data_config.replace(**fixed, **d_ch)
            if "lookback" in d_ch and bp.data_config.skip == "seasonal" and d_ch["lookback"] < m:
                dc_c = dc_c.replace(skip="last")  # the last season no longer fits in the window
            mc_c, tc_c = bm.replace(**m_ch), bt.replace(**t_ch)
            try:
                prep_c = prepare(dc_c, mc_c, tc_c, data, dtype, split=split)
                if admissible is not None:
                    admissible(prep_c)
            except DataError:  # e.g. a lookback the series is too short for
                continue
            err, secs = score(prep_c, mc_c, tc_c)
            cost = max(cost, secs)
            changes = {**d_ch, **m_ch, **t_ch}
            better = err < (1.0 - MARGIN) * best_err
            record.append({**changes, "val_error": err, "seconds": secs, "chosen": better})
            say(f"auto: {changes}: validation error {err:.4g}{'  (better)' if better else ''}")
            if better:
                best_err, best = err, (prep_c, mc_c, tc_c)
    return (*best, record)


def choose_normalisation(dc: DataConfig, mc: ModelConfig, tc: TrainConfig, data: SeriesData | None, dtype,
                         quiet: bool = True, callbacks=(), split: Split | None = None):
    """``normalise="auto"``: train one forecaster per normalisation and keep the one with the lower
    validation error (see :func:`validation_error`), as the first member of the run.

    Per-window normalisation with the naive skip is what lets a network follow a trend or a level
    it never saw; on a stationary series, whose level itself says where it is heading (a
    mean-reverting one), the plain globally scaled network can do better. Which holds is measured
    on the validation windows rather than guessed, where they are enough to measure it: with fewer
    than :data:`MIN_CHOICE_WINDOWS` validation windows (short series, where the choice of the
    plain network was measured to be noise that hurt), without validation rows, or for stateful
    training, ``"auto"`` resolves as :func:`~rnnkit.tasks.forecast.fitting.resolve_norm` says. The
    plain network must be better by :data:`CHOICE_MARGIN`.

    ``split`` fixes the rows of each part (see :func:`~rnnkit.tasks.forecast.fitting.prepare`).
    Returns ``(prepared data, [model], [history], [fell back], {normalise: validation error})``.
    """
    if dc.normalise == "auto" and mc.distribution == "negbin":  # counts: the head scales itself (.negbin)
        dc = dc.replace(normalise="none")
    window = prepare(dc.replace(normalise="window") if dc.normalise == "auto" and not tc.stateful else dc,
                     mc, tc, data, dtype, split=split)
    trained = train_members(window, mc, window.train_config, 1, quiet=quiet, callbacks=callbacks)
    if dc.normalise != "auto" or tc.stateful or window.val is None or len(window.val[0]) < MIN_CHOICE_WINDOWS:
        return window, *trained, {}
    plain = prepare(dc.replace(normalise="none", skip="none" if dc.skip == "auto" else dc.skip), mc, tc,
                    window.data, dtype, split=window.split)
    # only the callbacks that ask for every training (a sweep's stop check): the others follow the first
    other = train_members(plain, mc, plain.train_config, 1, quiet=True,
                          callbacks=[cb for cb in callbacks if getattr(cb, "every_training", False)])
    errors = {"window": validation_error(window, trained[0][0]), "none": validation_error(plain, other[0][0])}
    if errors["none"] < (1.0 - CHOICE_MARGIN) * errors["window"]:
        return plain, *other, errors
    return window, *trained, errors
