"""The forecasting pipeline around the network, in torch operations, so that it can be traced.

Each module mirrors the NumPy code it is named after, operation for operation and in float64 as
that code computes: :class:`Transform` is :class:`~rnnkit.data.boxcox.TargetTransform`,
:class:`Scaling` is :class:`~rnnkit.data.scaler.Scaler`, :class:`Norm` is
:class:`~rnnkit.tasks.forecast.normalise.WindowNorm` (per-window normalisation, the naive skip,
differencing, the future covariates' linear effect), :class:`KnownRows` scales the future covariates
into the known inputs (:func:`rnnkit.tasks.forecast.fitting.series_known_rows`), :func:`model_input` is
:func:`rnnkit.tasks.forecast.known.model_input`, and :func:`predict_scaled` is
:func:`rnnkit.tasks.forecast.predict.predict_scaled`. ``tests/tasks/export`` checks each against the
original in float64.

Indexing reads from the end of a window (``x[:, -1]``, ``x[:, -m:]``), so that a graph whose time
axis is dynamic reads any context length the way rnnkit would. What NumPy refuses with an error (a
non-positive value under a log transform) becomes NaN in a graph.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...data.boxcox import TargetTransform
from ...data.scaler import Scaler
from ...errors import ConfigError
from ..forecast.normalise import WindowNorm

__all__ = ["Transform", "Scaling", "Norm", "KnownRows", "model_input", "predict_scaled"]

F64 = torch.float64


class Transform(nn.Module):
    """:class:`~rnnkit.data.boxcox.TargetTransform` (none, log, Box-Cox) on the first ``n_targets``
    columns: :meth:`forward` on contexts ``(B, L, F)``, :meth:`inverse` on forecasts ``(B, H, C)``."""

    def __init__(self, transform: TargetTransform | None, n_targets: int) -> None:
        super().__init__()
        t = transform or TargetTransform()
        self.name, self.lam, self.n_targets = t.name, float(t.lam), n_targets

    def forward(self, x: Tensor) -> Tensor:
        if self.name == "none":
            return x
        y, rest = x[..., :self.n_targets], x[..., self.n_targets:]
        z = torch.log(y) if self.lam == 0 else (torch.pow(y, self.lam) - 1.0) / self.lam
        return torch.cat([z, rest], -1)

    def inverse(self, z: Tensor) -> Tensor:
        if self.name == "none":
            return z
        if self.lam == 0:
            return torch.exp(z)
        return torch.pow(torch.clamp(self.lam * z + 1.0, min=0.0), 1.0 / self.lam)  # 0 where no inverse exists


class Scaling(nn.Module):
    """A fitted :class:`~rnnkit.data.scaler.Scaler`: ``(x - offset) / scale`` over all columns, and its
    inverse on the first ``n_targets``. With ``scaler=None`` (a panel: one scaler per series) each row
    of the batch brings its own, the graph's inputs ``shift`` and ``scale`` ``(B, F)`` (offset and
    scale of the series the row belongs to), passed to :meth:`forward` and :meth:`inverse`."""

    def __init__(self, scaler: Scaler | None, n_targets: int) -> None:
        super().__init__()
        if scaler is not None:
            self.register_buffer("offset", torch.tensor(scaler.offset, dtype=F64))  # (F,)
            self.register_buffer("scale", torch.tensor(scaler.scale, dtype=F64))  # (F,)
        else:
            self.offset = self.scale = None
        self.n_targets = n_targets

    def params(self, x: Tensor, shift: Tensor | None, scale: Tensor | None) -> tuple[Tensor, Tensor]:
        """The offset and scale to apply to ``x (B, ..., F)``: the fitted ones ``(F,)``, or each row's
        ``(B, F)`` as ``(B, 1, ..., F)``."""
        if self.offset is not None:
            return self.offset, self.scale
        if shift is None or scale is None:
            raise ConfigError("this scaling is per series: pass each row's shift and scale")
        for _ in range(x.dim() - 2):  # (B, F) -> (B, 1, ..., F)
            shift, scale = shift.unsqueeze(1), scale.unsqueeze(1)
        return shift, scale

    def forward(self, x: Tensor, shift: Tensor | None = None, scale: Tensor | None = None) -> Tensor:
        offset, s = self.params(x, shift, scale)
        return (x - offset) / s

    def inverse(self, y: Tensor, shift: Tensor | None = None, scale: Tensor | None = None) -> Tensor:
        C = self.n_targets
        offset, s = self.params(y, shift, scale)
        return y * s[..., :C] + offset[..., :C]


class Norm(nn.Module):
    """:class:`~rnnkit.tasks.forecast.normalise.WindowNorm` on windows ``X (B, L, F)`` (scaled units),
    with its linear covariate effect (:meth:`remove_effect`, :meth:`add_effect`;
    :mod:`rnnkit.tasks.forecast.linear`)."""

    def __init__(self, norm: WindowNorm) -> None:
        super().__init__()
        self.normalise, self.skip, self.m = norm.normalise, norm.skip, norm.m
        self.C, self.d, self.active = norm.n_targets, norm.difference, norm.active
        self.register_buffer("floor", torch.tensor(norm.floor, dtype=F64))  # (C,)
        self.has_effect, self.effect_col = bool(norm.effect), norm.effect_col
        beta = torch.tensor(norm.effect, dtype=F64) if norm.effect else torch.zeros(0, 0, dtype=F64)
        self.register_buffer("beta", beta)  # (K, C) slopes, scaled units

    def remove_effect(self, X: Tensor) -> Tensor:
        """Scaled rows ``X (B, T, F)`` with the targets less the future covariates' linear effect."""
        if not self.has_effect:
            return X
        K, C = self.beta.shape
        y = X[..., :C] - X[..., self.effect_col:self.effect_col + K] @ self.beta  # (B, T, K) @ (K, C)
        return torch.cat([y, X[..., C:]], -1)

    def add_effect(self, y: Tensor, covariates: Tensor) -> Tensor:
        """Scaled forecasts ``(B, H, C)`` (levels ``(B, H, C, Q)``) plus the linear effect of the
        horizon's scaled future covariates ``(B, >= H, >= K)``."""
        if not self.has_effect:
            return y
        shift = covariates[:, :y.shape[1], :self.beta.shape[0]] @ self.beta  # (B, H, C)
        return y + (shift.unsqueeze(-1) if y.dim() == 4 else shift)

    def series(self, X: Tensor) -> Tensor:
        y = X[..., :self.C]  # (B, L, C)
        return y[:, self.d:] - y[:, :-self.d] if self.d else y

    def stats(self, X: Tensor) -> tuple[Tensor, Tensor]:
        y = self.series(X)
        if self.normalise == "none":
            return torch.zeros_like(y[:, :1]), torch.ones_like(y[:, :1])
        level = y.mean(dim=1, keepdim=True)  # (B, 1, C)
        std = ((y - level) * (y - level)).mean(dim=1, keepdim=True).sqrt()  # numpy's std (ddof=0)
        return level, torch.maximum(std, self.floor)

    def base(self, X: Tensor, horizon: int) -> Tensor:
        y = X[..., :self.C]  # (B, L, C)
        if self.d:
            return torch.zeros_like(y[:, :1]).expand(-1, horizon, -1)
        if self.skip == "none":
            return self.stats(X)[0].expand(-1, horizon, -1)
        if self.skip == "seasonal":
            steps = torch.arange(horizon) % self.m  # y[t+h] = y[t+h-m]: the last season, repeated
            return y[:, -self.m:][:, steps]
        last = y[:, -1:].expand(-1, horizon, -1)  # (B, 1, C) -> (B, H, C)
        if self.skip == "drift":  # the line through the window's first and last values (L > 1)
            steps_between = torch.ones_like(y[:, 1:]).sum(dim=1, keepdim=True)  # L - 1, from the graph's L
            slope = (y[:, -1:] - y[:, :1]) / steps_between  # (B, 1, C)
            return last + slope * torch.arange(1, horizon + 1, dtype=F64)[None, :, None]
        return last

    def inputs(self, X: Tensor) -> Tensor:
        level, scale = self.stats(X)
        z = (self.series(X) - level) / scale  # (B, L - d, C)
        if self.d:
            z = torch.cat([torch.zeros_like(X[:, :self.d, :self.C]), z], 1)  # no difference for the first d steps
        return torch.cat([z, X[..., self.C:]], -1)

    def decode(self, X: Tensor, out: Tensor) -> Tensor:
        """Forecasts ``(B, H, C)`` in scaled units from the network's outputs after windows ``X``;
        quantile forecasts ``(B, H, C, Q)`` level by level, as ``WindowNorm.decode`` decodes them."""
        if out.dim() == 4:
            return torch.stack([self.decode(X, out[..., k]) for k in range(out.shape[-1])], -1)
        _, scale = self.stats(X)
        if not self.d:
            return self.base(X, out.shape[1]) + scale * out
        full = [X[:, i, :self.C] for i in range(-self.d, 0)]  # the window's last d values, each (B, C)
        step = scale * out  # (B, H, C)
        for h in range(out.shape[1]):
            full.append(full[-self.d] + step[:, h])
        return torch.stack(full[self.d:], 1)  # H x (B, C) -> (B, H, C)


class KnownRows(nn.Module):
    """The known inputs of contexts, in the network's units, as
    :func:`~rnnkit.tasks.forecast.fitting.series_known_rows` lays them out: the future covariates
    (columns ``[first, first + K)`` of the run's columns) scaled with the run's scaler, of the
    context's rows (read from the context) and of the forecast's rows (``future``); then ``calendar``
    of those rows as they are (``n_calendar`` columns, :func:`rnnkit.data.calendar.calendar_features`
    of their time stamps), then a panel series' ``static`` features on every row. With ``scaler=None``
    (a panel) each row's future covariates are scaled with its own series' ``shift`` and ``scale``
    ``(B, F)``, their columns. ``rows``: the forecast's rows, the length of static features alone."""

    def __init__(self, scaler: Scaler | None, first: int, k: int, n_calendar: int = 0, n_static: int = 0,
                 rows: int = 0) -> None:
        super().__init__()
        self.first, self.k, self.n_calendar, self.n_static, self.rows = first, k, n_calendar, n_static, rows
        if scaler is not None and k:
            self.register_buffer("offset", torch.tensor(scaler.offset[first:first + k], dtype=F64))  # (K,)
            self.register_buffer("scale", torch.tensor(scaler.scale[first:first + k], dtype=F64))  # (K,)
        else:
            self.offset = self.scale = None
        self.per_series = scaler is None

    def forward(self, contexts: Tensor, future: Tensor | None, shift: Tensor | None = None,
                scale: Tensor | None = None, calendar: Tensor | None = None, static: Tensor | None = None) -> Tensor:
        """Raw ``contexts (B, L, F)``, ``future (B, H, K)``, ``calendar (B, L + H, n_calendar)`` and
        ``static (B, n_static)`` -> ``(B, L + H, K + n_calendar + n_static)``."""
        parts = []
        if self.k:
            cols = slice(self.first, self.first + self.k)
            rows = torch.cat([contexts[..., cols], future], 1)  # (B, L + H, K)
            if not self.per_series:
                parts.append((rows - self.offset) / self.scale)
            elif shift is None or scale is None:
                raise ConfigError("these known inputs are scaled per series: pass each row's shift and scale")
            else:
                parts.append((rows - shift[:, None, cols]) / scale[:, None, cols])
        if self.n_calendar:
            parts.append(calendar)
        if self.n_static:  # the same on every row, the context's and the forecast's
            rows = parts[0].shape[1] if parts else contexts.shape[1] + self.rows
            parts.append(static[:, None, :].expand(-1, rows, -1))
        return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def model_input(x: Tensor, known: Tensor, n_values: int, recursive: bool) -> Tensor:
    """:func:`rnnkit.tasks.forecast.known.model_input`: the network's input from windows ``x (B, L, F)``
    and their known inputs ``known (B, L + H, K)``; direct ``(B, L + H, n_values + K + 1)`` (zeros over
    the horizon, the future flag), recursive ``(B, L, n_values + K)`` (each step the next row's)."""
    L = x.shape[1]
    values = x[..., :n_values]
    if recursive:
        return torch.cat([values, known[:, 1:L + 1]], 2)
    H = known.shape[1] - L
    zeros = torch.zeros_like(known[:, :H, :1]).expand(-1, -1, n_values)  # (B, H, V): the future is unknown
    flag = torch.cat([torch.zeros_like(known[:, :L, :1]), torch.ones_like(known[:, L:, :1])], 1)  # (B, L + H, 1)
    return torch.cat([torch.cat([values, zeros], 1), known, flag], 2)


def predict_scaled(model: nn.Module, x: Tensor, horizon: int, norm: Norm, dtype: torch.dtype,
                   known: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
    """:func:`rnnkit.tasks.forecast.predict.predict_scaled`: forecasts ``(B, horizon, C)`` (a quantile
    model's levels: ``(B, horizon, C, Q)``) in scaled units (float64) after scaled windows ``x (B, L,
    F)`` (float64) and, for a run with known inputs, their ``known (B, L + H', K)`` (float64: a direct
    model's trained horizon's, a recursive one's ``horizon`` rows'); ``noise``: a recursive normal
    head's draws (:func:`~rnnkit.tasks.forecast.paths.sample_paths`)."""
    draws = {} if noise is None else {"noise": noise}
    if known is not None:  # over the horizon (direct) or at each step (recursive)
        x_in = norm.inputs(x) if norm.active else x
        L, K = x.shape[1], known.shape[2]
        if model.recursive:
            ctx = model_input(x_in, known, model.input_size - K, recursive=True).to(dtype)  # (B, L, V + K)
            out = model.predict(ctx, horizon, known[:, L + 1:L + horizon].to(dtype), **draws).to(F64)
        else:
            n_values = model.input_size - K - 1  # the future flag
            out = model(model_input(x_in, known, n_values, recursive=False).to(dtype)).to(F64)[:, :horizon]
        return norm.decode(x, out) if norm.active else out
    if not norm.active:
        return model.predict(x.to(dtype), horizon, **draws).to(F64)
    if model.recursive:  # generates in the window's normalised units, mapped back at the end
        return norm.decode(x, model.predict(norm.inputs(x).to(dtype), horizon, **draws).to(F64))
    if horizon > model.horizon and model.input_size != model.n_targets:
        raise ConfigError(f"this model was trained for horizon {model.horizon} with covariates; it cannot "
                          f"forecast {horizon} steps (future covariates are unknown)")
    pieces, window, got = [], x, 0
    while got < horizon:  # beyond the trained horizon: feed the forecasts back, one block at a time
        y = norm.decode(window, model(norm.inputs(window).to(dtype)).to(F64))  # (B, H, C)
        pieces.append(y)
        got += y.shape[1]
        if got < horizon:
            window = torch.cat([window, y], 1)[:, y.shape[1]:]  # (B, L + H, F) -> the last L rows
    return torch.cat(pieces, 1)[:, :horizon]
