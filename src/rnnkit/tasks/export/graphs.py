"""What an exported forecaster computes, as torch modules: the whole forecast after raw context
windows (:class:`ForecastGraph`) and the network's streaming step (:class:`StepGraph`).

:class:`ForecastGraph` is :meth:`ForecastRun.predict_contexts
<rnnkit.tasks.forecast.workflow.ForecastRun.predict_contexts>` (that is,
:func:`~rnnkit.tasks.forecast.predict.predict_windows`): the target transform, the scaler, the
per-window normalisation and naive skip, the network (a traceable copy, :func:`~.traceable.traceable`),
the decode and the way back, float64 around the network as the NumPy code computes. A run of one
series with future covariates also reads their raw values over the forecast's rows (``future``):
scaled into the network's known inputs (:class:`~.pipeline.KnownRows`, :func:`~.pipeline.model_input`),
with the linear covariate effect removed from the context's targets and added over the horizon;
calendar features (functions of time stamps) are refused, as are a panel's known inputs. An ensemble
forecasts the median of its members as rnnkit does: in the network's units inside the ensemble
(``ForecastEnsemble``), or, over several lookbacks, in the data's units after each member's own
pipeline.

A quantile or distribution head (``model.levels``) forecasts its Q levels, ``(B, horizon, C, Q)``,
as ``predict_contexts(..., all_levels=True)`` does: each level goes back through the same increasing
maps, and an ensemble takes each level's median, so the levels keep the order the head gives them
(:mod:`rnnkit.tasks.forecast.quantiles`). The distribution head's ``Phi^-1(q)`` enters the trace as
constants (:func:`~rnnkit.tasks.forecast.distribution.normal_levels`). A recursive normal head's
sampled paths read their standard normal draws as the last input ``noise`` (an ensemble's: every
member's, on axis 1; :func:`sampled_head`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..forecast.fitting import ForecastEnsemble
from ..forecast.known import calendar_width
from ..forecast.normalise import WindowNorm
from ..forecast.quantiles import quantile_horizon_message
from ..forecast.predict import check_known_horizon
from .pipeline import KnownRows, Norm, Scaling, Transform, predict_scaled
from .traceable import should_unroll, traceable

__all__ = ["ForecastGraph", "StepGraph", "median", "quantile_median", "exportable", "known_inputs_reason",
           "head_reason", "sampled_head", "flat_states", "structure", "nest"]


def median(outs: list[Tensor]) -> Tensor:
    """The median over ``outs`` (each the same shape), the middle one or the mean of the two middle
    ones, as ``np.median(np.stack(outs), axis=0)``."""
    if len(outs) == 1:
        return outs[0]
    n = len(outs)
    s = torch.sort(torch.stack(outs), dim=0).values  # (N, ...)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def quantile_median(outs: list[Tensor]) -> Tensor:
    """``torch.quantile(torch.stack(outs), 0.5, dim=0)`` (``ForecastEnsemble``'s median) in operations
    ONNX has (torch.quantile has no ONNX form): the middle one, or the two middle ones interpolated as
    ``torch.lerp`` does at weight 0.5."""
    n = len(outs)
    s = torch.sort(torch.stack(outs), dim=0).values  # (N, ...)
    if n % 2:
        return s[n // 2]
    below, above = s[n // 2 - 1], s[n // 2]
    return above - (above - below) * 0.5


class _Ensemble(ForecastEnsemble):
    """A :class:`~rnnkit.tasks.forecast.fitting.ForecastEnsemble` whose median a trace can export."""

    _median = staticmethod(quantile_median)


def exportable(model: nn.Module, unroll: bool | None = None) -> nn.Module:
    """A traceable copy of a forecaster or ensemble (:func:`~.traceable.traceable`; ``unroll=None``:
    :func:`~.traceable.should_unroll`), an ensemble's median written in ONNX's operations."""
    twin = traceable(model, should_unroll(model) if unroll is None else unroll)
    if isinstance(twin, ForecastEnsemble):
        twin = _Ensemble(list(twin.members), twin.views).eval()
    return twin


def head_reason(model: nn.Module) -> str | None:
    """Why a forecaster's head cannot be exported (a negbin head, a recursive distribution head), or None.
    A direct Student-t head's quantiles are traced from a table (:func:`~..forecast.distribution.tabulated_t_quantiles`)."""
    config = getattr(model, "config", None)  # an ensemble's members share their first member's config
    if sampled_head(model):
        if config.distribution == "normal":  # the graph reads the paths' standard normal draws as its input ``noise``
            return None                      # (an ensemble's: every member's, :func:`sampled_head`)
        return (f"this run's recursive distribution head forecasts by sampled paths (--samples Monte-Carlo draws fed "
                f"back step by step), and a {config.distribution} head's draws depend on what the network predicts "
                f"at each step, which a graph's input of draws cannot give; export covers point, quantile, direct "
                f"normal and Student-t heads, and recursive normal heads (their draws an input)")
    if getattr(config, "distribution", "none") == "negbin":
        return ("this run has a negative-binomial head (--distribution negbin), whose exact discrete quantiles are "
                "a search over the counts that the graph does not compute; export covers point, quantile, normal "
                "and Student-t heads")
    return None


def sampled_head(model: nn.Module) -> bool:
    """Whether ``model`` forecasts by sampled paths: a recursive normal head, whose graph reads the
    paths' standard normal draws as the input ``noise (B, samples, horizon, C)``; an ensemble's, every
    member's, ``(B, members, samples, horizon, C)``."""
    config = getattr(model, "config", None)
    return getattr(config, "strategy", "direct") == "recursive" and getattr(config, "distribution", "none") != "none"


def known_inputs_reason(run, future: bool = False) -> str | None:
    """Why ``run`` cannot be exported (it reads known inputs, or has a head :func:`head_reason` refuses),
    or None. With ``future`` (the forecast graph), every known input is exportable: the graph reads
    the future covariates' values as its input ``future``, the calendar features of the context's and
    the forecast's rows as ``calendar`` and a panel series' encoded static features (and id one-hot)
    as ``static``; a panel run that does not keep its series' static values (an older run) is not."""
    reason = head_reason(run.model)
    if reason:
        return reason
    dc = run.data_config
    if future:
        if dc.static_covariates and getattr(run, "static_values", None) is None:
            return ("this run does not keep each series' static covariate values (written by an older rnnkit), which "
                    "the exported series table holds; refit it to export")
        return None
    flags = [flag for flag, on in (("--future-covariates", dc.future_covariates), ("--calendar", dc.calendar != "none"),
                                   ("--static-covariates", dc.static_covariates), ("--id-embedding", dc.id_embedding))
             if on]
    if flags:
        named = ", ".join(flags)
        return (f"this run reads known inputs ({named}), which a graph of the context windows alone cannot compute; "
                f"export covers runs without future covariates, calendar features, static covariates and an id "
                f"embedding (refit without {named} to export)")
    return None


class _Member(nn.Module):
    """One pipeline: a (traceable) model behind its transform, scaler and normalisation, reading the
    last ``lookback`` rows of a context (all of them for ``lookback=None``) and of its known inputs."""

    def __init__(self, model: nn.Module, transform, scaler, norm: WindowNorm | None, n_targets: int,
                 horizon: int, lookback: int | None) -> None:
        super().__init__()
        self.model, self.horizon, self.lookback = model, horizon, lookback
        self.transform = Transform(transform, n_targets)
        self.scaling = Scaling(scaler, n_targets)
        self.norm = Norm(norm if norm is not None else WindowNorm("none", "none", 1, n_targets, (1.0,) * n_targets))
        self.dtype = next(model.parameters()).dtype

    def forward(self, contexts: Tensor, shift: Tensor | None = None, scale: Tensor | None = None,
                known: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """``known (B, L + H', K)``: the context's known inputs (:class:`~.pipeline.KnownRows`), if any;
        ``noise (B, S, H, C)``: a recursive normal head's draws (:func:`sampled_head`)."""
        raw = contexts if self.lookback is None else contexts[:, -self.lookback:]
        scaled = self.scaling(self.transform(raw), shift, scale)
        if known is not None:  # the rows of this member's context and the forecast's: (B, lookback + H', K)
            L = raw.shape[1]
            ahead = known.shape[1] - contexts.shape[1]
            known = known[:, -(L + ahead):]
            scaled = self.norm.remove_effect(scaled)  # the targets less the linear effect (none: as they are)
        y = predict_scaled(self.model, scaled, self.horizon, self.norm, self.dtype, known, noise)  # (B, H, C[, Q])
        if known is not None:
            y = self.norm.add_effect(y, known[:, raw.shape[1]:])  # the horizon's own covariates' effect
        if y.dim() == 4:  # the scaler works on the targets' axis, the last: (B, H, C, Q) -> (B, H, Q, C) and back
            return self.back(y.transpose(2, 3), shift, scale).transpose(2, 3)
        return self.back(y, shift, scale)

    def back(self, y: Tensor, shift: Tensor | None = None, scale: Tensor | None = None) -> Tensor:
        """Scaled forecasts ``(..., C)`` in the data's units."""
        return self.transform.inverse(self.scaling.inverse(y, shift, scale))


class ForecastGraph(nn.Module):
    """``forward(contexts (B, L, F) float64) -> forecasts (B, horizon, C) float64``, in the data's
    units, equal to ``run.predict_contexts(contexts, horizon)``; a quantile or distribution head's
    levels ``(B, horizon, C, Q)``, equal to ``run.predict_contexts(contexts, horizon, all_levels=True)``;
    ``unroll`` as :func:`exportable`.

    A panel run (:class:`~rnnkit.tasks.forecast.panel_run.PanelRun`: one global model, one scaler per
    series) has no scaler of its own: ``forward(contexts, shift, scale)`` reads each row's, ``(B, F)``,
    and equals ``run.predict_contexts(contexts, ids, horizon)`` for the series ``ids`` of those scalers.

    A run of one series with future covariates reads their raw values over the forecast's rows,
    ``forward(contexts, future)`` with ``future (B, H', K)`` (:attr:`future_rows` rows: a direct model's
    trained horizon, a recursive one's ``horizon``; the K columns in the run's order of
    ``--future-covariates``); the context's rows bring their own (its columns include them). It equals
    ``run.predict_contexts(contexts, horizon, known)`` with ``known`` those values scaled as rnnkit
    scales them: the linear covariate effect removed from the context's targets and added back over
    the horizon, the known inputs laid out for a direct or a recursive network."""

    def __init__(self, run, horizon: int | None = None, unroll: bool | None = None) -> None:
        super().__init__()
        dc = run.data_config
        reason = known_inputs_reason(run, future=True)
        if reason:
            raise ConfigError(reason)
        self.horizon = horizon or dc.horizon
        if run.levels and self.horizon > run.model.horizon:
            raise ConfigError(quantile_horizon_message(run.model.horizon, self.horizon))
        #: the forecast's rows of the known inputs: ``future`` holds them (a run with future covariates),
        #: and ``calendar`` the context's and them (calendar features); 0: the run has neither input
        self.future_rows = 0
        self.known = None
        #: the calendar features per row (0: none, and the graph has no ``calendar`` input)
        self.n_calendar = calendar_width(run.meta.get("freq"), dc.calendar)
        #: a panel series' static features (0: none, and the graph has no ``static`` input)
        self.n_static = run.statics.width if hasattr(run, "statics") else 0
        if dc.future_covariates or self.n_calendar or self.n_static:
            if not run.recursive:
                check_known_horizon(run.model.horizon, self.horizon)
            self.future_rows = self.horizon if run.recursive else run.model.horizon
            first = len(dc.targets) + len(dc.covariates)
            self.known = KnownRows(getattr(run, "scaler", None), first, len(dc.future_covariates),  # panel: None
                                   self.n_calendar, self.n_static, self.future_rows)
        C = len(run.targets)
        #: a recursive normal head's paths per forecast: the graph's last input is their draws (0: none)
        first = run.model.members[0] if isinstance(run.model, ForecastEnsemble) else run.model
        self.samples = first.samples if sampled_head(run.model) else 0
        #: the members whose draws ``noise`` holds on its axis 1 (0: one model's, no such axis)
        self.noise_members = len(run.model.members) if self.samples and isinstance(run.model, ForecastEnsemble) else 0
        model = exportable(run.model, unroll)
        views = getattr(run.model, "views", None)
        #: one pipeline per member (an ensemble over lookbacks), each reading its member's draws
        self.per_member = bool(views)
        if views:  # each member through its own view, the median in the data's units
            self.members = nn.ModuleList(_Member(m, v.transform, v.scaler, v.norm, C, self.horizon, v.lookback)
                                         for m, v in zip(model.members, views))
        else:
            scaler = getattr(run, "scaler", None)  # a panel run has one per series: the graph's shift and scale
            self.members = nn.ModuleList([_Member(model, run.transform, scaler, run.norm, C, self.horizon, None)])

    def forward(self, contexts: Tensor, *inputs: Tensor) -> Tensor:
        """``inputs``: a panel run's ``shift`` and ``scale`` ``(B, F)`` (each row's scaler), then for a run
        with future covariates ``future (B, H', K)`` (raw values of the forecast's rows), then for a run
        with calendar features ``calendar (B, L + H', Kc)`` (those of the context's and forecast's rows), then
        for a panel run with static features ``static (B, Ks)`` (each row's series')."""
        inputs = list(inputs)
        noise = inputs.pop() if self.samples else None
        static = inputs.pop() if self.n_static else None
        calendar = inputs.pop() if self.n_calendar else None
        future = inputs.pop() if self.known is not None and self.known.k else None
        shift, scale = inputs if inputs else (None, None)
        if self.known is not None:
            known = self.known(contexts, future, shift, scale, calendar, static)  # (B, L + H', K), network units
            if calendar is not None and known.shape[1] != contexts.shape[1] + self.future_rows:
                raise ConfigError(f"calendar must hold the context's rows and the {self.future_rows} forecast rows")
            return median([m(contexts, shift, scale, known=known, noise=self._noise(noise, k))
                           for k, m in enumerate(self.members)])
        return median([m(contexts, shift, scale, noise=self._noise(noise, k)) for k, m in enumerate(self.members)])

    def _noise(self, noise: Tensor | None, k: int) -> Tensor | None:
        """Pipeline k's draws: an ensemble over lookbacks has a pipeline per member (member k's draws);
        one pipeline (one model, or an ensemble that splits them itself) takes them all."""
        return noise[:, k] if noise is not None and self.per_member else noise


def flat_states(state) -> list[Tensor]:
    """A model's state (a tensor, a tuple of them, or an ensemble's tuple of those) as a flat list."""
    if isinstance(state, Tensor):
        return [state]
    return [t for s in state for t in flat_states(s)]


def structure(state) -> Any:
    """The shape of a state's nesting: None for a tensor, a tuple of those for a tuple."""
    return None if isinstance(state, Tensor) else tuple(structure(s) for s in state)


def nest(flat: list[Tensor], like) -> Any:
    """``flat`` (from :func:`flat_states`) in the nesting ``like`` (:func:`structure`); returns
    ``(state, the tensors left over)``."""
    if like is None:
        return flat[0], flat[1:]
    out = []
    for s in like:
        part, flat = nest(flat, s)
        out.append(part)
    return tuple(out), flat


class StepGraph(nn.Module):
    """The model's own streaming step, ``model.step(x_t, state)``, with the state as explicit
    tensors: ``forward(x_t (B, F), *state_in) -> (y, *state_out)`` in the network's units and dtype
    (direct models: the ``(B, horizon, C)`` forecast after this step, a quantile or distribution
    head's levels ``(B, horizon, C, Q)``; recursive: the ``(B, C)`` prediction of the next value);
    ``unroll`` as :func:`exportable`."""

    def __init__(self, model: nn.Module, unroll: bool | None = None) -> None:
        super().__init__()
        if head_reason(model):
            raise ConfigError(head_reason(model))
        if sampled_head(model):
            raise ConfigError("a recursive distribution head forecasts by sampled paths, not by one step's output: "
                              "it has no streaming step graph; export its forecast graph (without --step)")
        if getattr(model, "views", None):
            raise ConfigError("this ensemble's members read different lookbacks through their own scalers, so "
                              "they share no streaming input; export its forecast graph (without --step)")
        if model.config.bidirectional:
            raise ConfigError("a bidirectional network reads the whole window, forwards and backwards: it has no "
                              "streaming step; export its forecast graph (without --step)")
        self.model = exportable(model, unroll)
        self.like = structure(model.init_state(1))

    def forward(self, x_t: Tensor, *state_in: Tensor):
        state, _ = nest(list(state_in), self.like)
        y, state = self.model.step(x_t, state)
        return (y, *flat_states(state))
