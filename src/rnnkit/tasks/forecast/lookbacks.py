"""Ensembles over several lookbacks (``SearchConfig.ensemble_lookbacks``): member k reads the k-th
lookback, cyclically, and is trained on windows of that length.

Each lookback is prepared on its own (:func:`~rnnkit.tasks.forecast.fitting.prepare`) on the same
split rows, the ones the longest lookback needs, with the first member's normalisation; a skip or
transform left to "auto" is chosen on each lookback's own windows, so each member keeps the
transform, scaler and normalisation of its windows (a :class:`~.fitting.MemberView`). The run's
lookback is the longest; a forecast gives each member the last rows it reads and takes the median
(:func:`~rnnkit.tasks.forecast.predict.predict_windows`). A run stores each lookback's view in
meta's ``lookback_members`` (:func:`view_record`), which the loader reads back checked
(:func:`lookback_views`).
"""

from __future__ import annotations

from ...config import ModelConfig, TrainConfig
from ...data.boxcox import TargetTransform
from ...data.scaler import Scaler
from ...data.series import SeriesData
from ...errors import ConfigError
from ...training.runschema import conforms
from .config import DataConfig, SearchConfig
from .fitting import MemberView, Prepared, prepare, resolve_norm
from .normalise import SKIPS, WindowNorm, difference_lag

__all__ = ["lookbacks_split", "member_preps", "view_of", "view_record", "lookback_views"]


def lookbacks_split(dc: DataConfig, mc: ModelConfig, tc: TrainConfig, data: SeriesData | None, dtype,
                    lookbacks: tuple[int, ...]):
    """For an ensemble over ``lookbacks``: ``(the first member's data config, the data, the split)``.
    The split is the one the longest lookback needs (refused here, before any training, when the
    series is too short for it), so that every member is validated and tested on the same rows."""
    if dc.lookback is not None:
        raise ConfigError("--lookback and --ensemble-lookbacks both set the lookback; give the lookbacks in "
                          "--ensemble-lookbacks only")
    if mc.distribution == "negbin":  # each member's own naive forecast would need a record of its own
        raise ConfigError("--ensemble-lookbacks with --distribution negbin: not yet (each lookback may choose its own "
                          "naive forecast, which a negbin run does not record per member); use --ensemble N")
    if tc.stateful:
        raise ConfigError("stateful training runs over whole streams, not windows of a lookback; use "
                          "--ensemble-lookbacks without --stateful")
    longest = prepare(dc.replace(lookback=max(lookbacks)), mc, tc, data, dtype)
    for L in lookbacks:  # e.g. a seasonal skip with a lookback shorter than the season
        resolve_norm(dc, mc, tc, L, longest.data_config.seasonal_period)
    return dc.replace(lookback=lookbacks[0]), longest.data, longest.split


def member_preps(first: Prepared, dc: DataConfig, mc: ModelConfig, looks: tuple[int, ...]) -> list[Prepared]:
    """Each member's data in an ensemble whose member k reads ``looks[k]`` (the first one's is
    ``first``): its own windows, on the same split rows, with the first member's normalisation (a
    skip left to "auto" is chosen on each lookback's own windows, as for the first)."""
    plain = dc.normalise == "auto" and first.data_config.normalise == "none"  # the first chose the plain network
    dc = dc.replace(normalise=first.data_config.normalise, skip="none" if plain and dc.skip == "auto" else dc.skip)
    by = {first.data_config.lookback: first}
    for L in looks:
        if L not in by:
            by[L] = prepare(dc.replace(lookback=L), mc, first.train_config, first.data, first.dtype, split=first.split)
    return [by[L] for L in looks]


def view_of(prep: Prepared) -> MemberView:
    """The view of the member trained on ``prep``."""
    return MemberView(prep.data_config.lookback, prep.transform, prep.scaler, prep.norm)


def view_record(prep: Prepared) -> dict:
    """What a run stores of the view of ``prep``'s lookback (an entry of meta's ``lookback_members``)."""
    v = view_of(prep)
    return {"lookback": v.lookback, "skip": v.norm.skip, "norm_floor": list(v.norm.floor),
            "transform": v.transform.name, "transform_lambda": v.transform.lam, "scaler": v.scaler.to_dict(),
            "covariate_effect": [list(r) for r in v.norm.effect]}


def lookback_views(check, sc: SearchConfig, meta: dict, dc: DataConfig, n_cols: int) -> dict[int, MemberView]:
    """Each lookback's view in an ensemble over several lookbacks (meta's ``lookback_members``), checked."""
    looks, records = sc.ensemble_lookbacks, meta.get("lookback_members")
    keys = {"lookback", "skip", "norm_floor", "transform", "transform_lambda", "scaler"}
    check.agree(isinstance(records, list) and len(records) == len(looks) and dc.lookback == max(looks)
                and all(isinstance(r, dict) and keys <= set(r) <= keys | {"covariate_effect"} for r in records),
                "config.json",
                f"meta.lookback_members must describe each of the {len(looks)} lookbacks of "
                f"search.ensemble_lookbacks {list(looks)} (keys {', '.join(sorted(keys))}), and the data section's "
                "lookback be the longest")
    views, m, C = {}, dc.seasonal_period, len(dc.targets)
    for L, r in zip(looks, records):
        where = f"meta.lookback_members' lookback {L}"
        check.agree(r["lookback"] == L and r["skip"] in SKIPS and (r["skip"] != "seasonal" or 1 < m <= L)
                    and conforms(r["norm_floor"], "list[num]") and len(r["norm_floor"]) == C
                    and conforms(r["transform_lambda"], "num"), "config.json",
                    f"{where} is not one a run makes (lookback {r['lookback']!r}, skip {r['skip']!r}, "
                    f"norm_floor {r['norm_floor']!r}, transform_lambda {r['transform_lambda']!r})")
        try:
            transform = TargetTransform(r["transform"], float(r["transform_lambda"]))
            scaler = Scaler.from_dict(r["scaler"])
        except ConfigError as e:
            check.fail("config.json", f"{where}: {e}")
        check.agree(len(scaler.offset) == n_cols, "config.json",
                    f"{where}: its scaler scales {len(scaler.offset)} column(s), the model reads {n_cols}")
        effect, Kf = r.get("covariate_effect", []), len(dc.future_covariates)
        check.agree(conforms(effect, "list[list[num]]") and (not effect or len(effect) == Kf and all(
                    len(row) == C for row in effect)), "config.json",
                    f"{where}: covariate_effect {effect!r} is not {Kf} row(s) of {C} slope(s), or empty")
        norm = WindowNorm(dc.normalise, r["skip"], m, C, tuple(r["norm_floor"]), difference_lag(dc.difference, m),
                          tuple(tuple(float(v) for v in row) for row in effect), n_cols - Kf if effect else 0)
        views[L] = MemberView(L, transform, scaler, norm)
    return views
