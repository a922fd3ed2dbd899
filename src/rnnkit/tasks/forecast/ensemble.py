"""Ensembles of forecasters: members of one design from consecutive seeds (trained by
:func:`~rnnkit.tasks.forecast.fitting.train_members`), combined by the median
(:class:`ForecastEnsemble`); over several lookbacks each member reads its context through its own
pipeline (:class:`MemberView`, see :mod:`rnnkit.tasks.forecast.lookbacks`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ...data.boxcox import TargetTransform
from ...data.scaler import Scaler
from ...errors import ConfigError
from .model import Forecaster
from .normalise import WindowNorm

__all__ = ["MemberView", "ForecastEnsemble"]


@dataclass(frozen=True)
class MemberView:
    """How a member of an ensemble over several lookbacks reads a context: its last ``lookback``
    rows, through the target transform, scaler and per-window normalisation of its own training
    windows (see :mod:`rnnkit.tasks.forecast.lookbacks`)."""

    lookback: int
    transform: TargetTransform
    scaler: Scaler
    norm: WindowNorm


class ForecastEnsemble(nn.Module):
    """Forecasters of one design (different seeds) whose forecasts are combined by the median.

    It has a :class:`Forecaster`'s interface (``forward``, ``predict``, ``step``): each member
    forecasts and the median across members is returned. The per-window normalisation decodes
    with a positive scale, so the median of the decoded forecasts is the decoded median.

    With ``views`` (a :class:`MemberView` each) member k reads the last ``views[k].lookback`` steps
    of a context of the longest (``forward``/``predict`` slice so) through its own pipeline, as
    :func:`~rnnkit.tasks.forecast.predict.predict_windows` does before the median.
    """

    def __init__(self, members: Sequence[Forecaster], views: Sequence[MemberView] | None = None) -> None:
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        if views is not None and len(views) != len(members):
            raise ConfigError(f"an ensemble of {len(members)} members needs a view for each; got {len(views)}")
        self.members = nn.ModuleList(members)
        self.views = tuple(views) if views is not None else None
        first = members[0]
        self.config, self.input_size, self.n_targets, self.horizon = (first.config, first.input_size,
                                                                      first.n_targets, first.horizon)
        self.levels, self.centre = first.levels, first.centre

    @property
    def lookbacks(self) -> tuple[int, ...] | None:
        """Each member's lookback, for an ensemble over several lookbacks (else None)."""
        return None if self.views is None else tuple(v.lookback for v in self.views)

    def _inputs(self, x: Tensor) -> list[Tensor]:
        """Each member's input: all of ``x``, or with lookbacks its last steps (known inputs, which
        follow the context, included)."""
        if self.views is None:
            return [x] * len(self.members)
        longest = max(self.lookbacks)
        return [x[:, longest - L:] for L in self.lookbacks]  # (B, T, F) -> (B, T - longest + L, F)

    @property
    def recursive(self) -> bool:
        return self.members[0].recursive

    @staticmethod
    def _median(outs: list[Tensor]) -> Tensor:
        # quantile forecasts: the median of each level keeps their order (if every member's level q is
        # at most its level q', so is each order statistic, and so the mean of the middle two)
        return torch.quantile(torch.stack(outs), 0.5, dim=0)  # (N, ...) -> (...): the middle, or the mean of two

    def forward(self, x: Tensor) -> Tensor:
        return self._median([m(x_k) for m, x_k in zip(self.members, self._inputs(x))])

    @property
    def n_known(self) -> int:
        return self.members[0].n_known

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int | None = None, known: Tensor | None = None,
                noise: Tensor | None = None) -> Tensor:
        """The median of the members' forecasts; ``noise``: a recursive normal head's draws for every
        member, ``(B, members, samples, horizon, C)`` (member k's are ``noise[:, k]``, as
        :func:`~rnnkit.tasks.forecast.paths.normal_draws` gives them); None: each member draws its own."""
        draws = [None] * len(self.members) if noise is None else noise.unbind(1)
        return self._median([m.predict(c, horizon, known, d)
                             for m, c, d in zip(self.members, self._inputs(context), draws)])

    def init_state(self, batch: int = 1):
        return tuple(m.init_state(batch) for m in self.members)

    @torch.no_grad()
    def step(self, x_t: Tensor, state=None):
        states = state if state is not None else (None,) * len(self.members)
        outs = [m.step(x_t, s) for m, s in zip(self.members, states)]
        return self._median([y for y, _ in outs]), tuple(s for _, s in outs)
