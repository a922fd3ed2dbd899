"""Learning-rate schedules, stepped once per epoch: torch's schedulers for the torch loop, and the
same rates without a torch optimiser for the fused trainer.

The fused trainer (:mod:`rnnkit.kernels.trainer`) updates the weights natively, so it needs only
each epoch's learning rate. Building a torch optimiser just to read that rate costs every process
the import of ``torch._dynamo`` (about 2 s: torch wraps ``Optimizer.add_param_group`` in
``torch._disable_dynamo``, which imports it on first call). :func:`create` gives the rates instead
from :class:`Schedule` objects that repeat the arithmetic of torch's ``CosineAnnealingLR``,
``StepLR`` and ``ReduceLROnPlateau`` (at the defaults rnnkit uses) operation for operation, in
Python floats as torch does, so the rates are the same numbers
(tests/training/test_schedules.py compares them with torch's on a real optimiser).

Both come from :func:`settings`, the one place the schedules are sized.
"""

from __future__ import annotations

import math

__all__ = ["Schedule", "Cosine", "Step", "Plateau", "settings", "create", "torch_scheduler"]


def settings(config, epochs: int) -> dict:
    """Keyword arguments of the schedule ``config.schedule`` names, sized by the ``epochs`` that
    will run (torch's argument names; empty for ``"none"``)."""
    if config.schedule == "cosine":
        return {"T_max": epochs}
    if config.schedule == "step":
        return {"step_size": max(1, epochs // 3), "gamma": 0.1}
    if config.schedule == "plateau":
        return {"factor": 0.5, "patience": max(1, config.patience // 2)}
    return {}


class Schedule:
    """A constant rate (``schedule="none"``); the subclasses change :attr:`lr` in :meth:`step`.

    :attr:`lr` is the rate of the coming epoch; call :meth:`step` after each epoch, with the
    validation loss where :attr:`takes_metric` (then only on the epochs that checked it).
    """

    takes_metric = False

    def __init__(self, lr: float) -> None:
        self.lr = lr  # as given, like torch's param_groups[0]["lr"] (an int stays an int)

    def step(self, metric: float | None = None) -> None:
        pass


class Cosine(Schedule):
    """``CosineAnnealingLR(T_max, eta_min)``: torch's recursive form, not the closed one,
    because torch steps it so and the two differ in the last bits:

    lr_e = (1 + cos(pi e / T)) / (1 + cos(pi (e - 1) / T)) (lr_{e-1} - eta_min) + eta_min,

    except where ``(e - 1 - T) % 2T == 0`` (the rate rises again from its minimum, past ``T_max``):
    lr_e = lr_{e-1} + (base - eta_min)(1 - cos(pi / T)) / 2.
    """

    def __init__(self, lr: float, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(lr)
        self.base, self.T_max, self.eta_min, self.epoch = lr, T_max, eta_min, 0

    def step(self, metric: float | None = None) -> None:
        self.epoch += 1
        e, T, low = self.epoch, self.T_max, self.eta_min
        if (e - 1 - T) % (2 * T) == 0:
            self.lr = self.lr + (self.base - low) * (1 - math.cos(math.pi / T)) / 2
        else:
            self.lr = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (self.lr - low) + low


class Step(Schedule):
    """``StepLR(step_size, gamma)``: the rate times ``gamma`` every ``step_size`` epochs."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(lr)
        self.step_size, self.gamma, self.epoch = step_size, gamma, 0

    def step(self, metric: float | None = None) -> None:
        self.epoch += 1
        if self.epoch % self.step_size == 0:
            self.lr = self.lr * self.gamma


class Plateau(Schedule):
    """``ReduceLROnPlateau(factor, patience)`` at torch's other defaults (mode ``"min"``,
    threshold 1e-4 relative, cooldown 0, min_lr 0, eps 1e-8): the rate times ``factor`` after
    more than ``patience`` steps in a row whose metric was not below ``best * (1 - 1e-4)``."""

    takes_metric = True

    def __init__(self, lr: float, factor: float, patience: int, threshold: float = 1e-4,
                 min_lr: float = 0.0, eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.factor, self.patience, self.threshold, self.min_lr, self.eps = factor, patience, threshold, min_lr, eps
        self.best, self.bad = math.inf, 0

    def step(self, metric: float | None = None) -> None:
        current = float(metric)
        if current < self.best * (1.0 - self.threshold):
            self.best, self.bad = current, 0
        else:
            self.bad += 1
        if self.bad > self.patience:
            old = float(self.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.lr = new
            self.bad = 0


_KINDS = {"none": Schedule, "cosine": Cosine, "step": Step, "plateau": Plateau}


def create(config, epochs: int) -> Schedule:
    """The :class:`Schedule` ``config`` names, starting at ``config.lr``, sized by ``epochs``."""
    return _KINDS[config.schedule](config.lr, **settings(config, epochs))


def torch_scheduler(opt, config, epochs: int):
    """torch's scheduler for ``config`` on the optimiser ``opt`` (None for ``"none"``), sized by
    ``epochs``: the torch loop's; :func:`create` gives the same rates without an optimiser."""
    from torch.optim import lr_scheduler
    kinds = {"cosine": lr_scheduler.CosineAnnealingLR, "step": lr_scheduler.StepLR,
             "plateau": lr_scheduler.ReduceLROnPlateau}
    if config.schedule not in kinds:
        return None
    return kinds[config.schedule](opt, **settings(config, epochs))
