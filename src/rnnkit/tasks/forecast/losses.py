"""A forecaster's training loss, for both engines: :func:`forecast_loss`, the function
:func:`rnnkit.training.loop.fit` calls in the torch loop (MSE or MAE, a quantile head's pinball loss,
a distribution head's negative log-likelihood; one step ahead, many-to-many or stateful), and
:func:`forecast_fused_task`, the same loss described for the fused trainer
(:class:`~rnnkit.kernels.trainer.FusedTask`). :mod:`.fitting` trains with them (and re-exports them:
their home was there), as does :mod:`.refit`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...config import TrainConfig
from ...kernels.trainer import FusedTask
from ...training.examples import LazyExamples
from .config import refuse_unsupported
from .distribution import nll_loss
from .model import Forecaster, head_loss
from .quantiles import pinball_loss

__all__ = ["forecast_loss", "forecast_fused_task"]


def forecast_loss(model: Forecaster, train_config: TrainConfig):
    """The loss function :func:`rnnkit.training.loop.fit` calls for a forecaster and these settings
    (``loss=None`` is MSE, or the mean pinball loss over the levels of a quantile head; a loss
    forecasting cannot use is refused, never replaced)."""
    refuse_unsupported(model.config, train_config)
    if model.distribution != "none":  # the negative log-likelihood of the targets (Gaussian or Student-t)
        return nll_loss(model, train_config)
    if model.levels:  # direct only (ModelConfig refuses recursive quantile models)
        levels = torch.tensor(model.levels, dtype=next(model.parameters()).dtype)
        return lambda m, batch: pinball_loss(m(batch[0]), batch[1], levels.to(batch[1].device))  # no-op on the CPU
    crit = F.l1_loss if train_config.loss == "mae" else F.mse_loss
    C, warm = model.n_targets, train_config.warmup
    if train_config.stateful:
        def stateful_loss(m, batch):
            x, y, state = batch  # (B, T, F), (B, T, C)
            pred, state = m(x, state, return_state=True)
            return crit(pred[:, warm:], y[:, warm:]), state
        return stateful_loss
    if not model.recursive:
        return lambda m, batch: crit(m(batch[0]), batch[1])
    if train_config.many_to_many:
        def many_to_many(m, batch):
            x, y = batch
            target = torch.cat([x[:, 1:, :C], y[:, :1]], 1)  # the next value at every step
            return crit(m(x)[:, warm:], target[:, warm:])
        return many_to_many
    return lambda m, batch: crit(m(batch[0])[:, -1:], batch[1][:, :1])


def forecast_fused_task(model: Forecaster, train_config: TrainConfig, train, val):
    """The same loss as :func:`forecast_loss`, described for the fused trainer (which says what it
    cannot run, e.g. stateful training with a warm-up). ``train`` may be lazily held windows
    (:class:`~rnnkit.training.examples.LazyExamples`, a panel's): the task then gathers each chunk's
    targets in the head's layout as the chunk trains."""
    if train_config.stateful:  # streams (B, N, F) -> the next value (B, N, C) at every step
        return FusedTask(head_mode="all", loss=train_config.loss or "mse", x=train[0], y=train[1], stateful=True,
                         x_val=None if val is None else val[0], y_val=None if val is None else val[1],
                         warmup=train_config.warmup)
    C = model.n_targets

    def targets(x, y):
        if not model.recursive:
            return "last", y.reshape(y.shape[0], -1)  # (N, H, C) -> (N, H*C), the head's layout
        if train_config.many_to_many:
            return "all", torch.cat([x[:, 1:, :C], y[:, :1]], 1)  # the next value at every step
        return "last", y[:, 0]
    lazy = {}
    if isinstance(train, LazyExamples):  # the first examples stand for the shapes; the rest are gathered
        windows = train

        def gather(idx):
            x, y = windows.take(idx)
            return x, targets(x, y)[1]
        lazy = {"gather": gather, "n": len(windows), "chunk": windows.chunk}
        train = windows.take(torch.arange(min(len(windows), 64)))
    mode, y = targets(*train)
    yv = None if val is None else targets(*val)[1]
    # a quantile head's task is the pinball loss, which the fused trainer declines (the run records why)
    loss = head_loss(model.config) or train_config.loss or "mse"
    return FusedTask(head_mode=mode, loss=loss, x=train[0], y=y,
                     x_val=None if val is None else val[0], y_val=yv,
                     warmup=train_config.warmup if mode == "all" else 0, **lazy)
