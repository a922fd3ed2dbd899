"""The fused trainer's learning rates (training.schedules) against torch's schedulers on a real
optimiser, and the fused path's promise: no torch optimiser, so no torch._dynamo import."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from rnnkit import TrainConfig
from rnnkit.kernels import _native
from rnnkit.training import schedules
from cli_cases import ENV


def torch_rates(config: TrainConfig, epochs: int, steps: int, metrics=None) -> list:
    """The rate of each of ``steps`` epochs as the torch loop sets it: the optimiser steps, then
    its scheduler (with the epoch's metric for the plateau schedule)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    sched = schedules.torch_scheduler(opt, config, epochs)
    rates = []
    for k in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: changes nothing, but keeps torch's step-order check content
        if sched is not None and metrics is not None:
            sched.step(metrics[k])
        elif sched is not None:
            sched.step()
    return rates


def our_rates(config: TrainConfig, epochs: int, steps: int, metrics=None) -> list:
    sched = schedules.create(config, epochs)
    rates = []
    for k in range(steps):
        rates.append(sched.lr)
        if metrics is not None:
            sched.step(metrics[k])
        else:
            sched.step()
    return rates


EPOCHS = [1, 2, 3, 4, 7, 10, 31, 200]
LRS = [1e-3, 0.01, 0.3, 1.0, 7]  # an int stays an int in torch's param group, and here


# Exact equality throughout: training.schedules does the same Python float operations in the same
# order as torch's schedulers (the recursive cosine form included), so the rates are the same
# numbers on any machine, not merely close.

@pytest.mark.parametrize("kind", ["none", "cosine", "step"])
@pytest.mark.parametrize("epochs", EPOCHS)
@pytest.mark.parametrize("lr", LRS)
def test_epoch_schedules_give_torchs_rates(kind, epochs, lr):
    config = TrainConfig(lr=lr, schedule=kind)
    # past the epochs they are sized by too (fit never gets there): the cosine rises again
    steps = 3 * epochs + 2
    ours, theirs = our_rates(config, epochs, steps), torch_rates(config, epochs, steps)
    assert ours == theirs
    assert [type(r) for r in ours] == [type(r) for r in theirs]
    if kind == "cosine" and epochs > 1:
        assert ours[epochs] == 0.0 and ours[2 * epochs] == pytest.approx(lr, rel=1e-12)


def test_the_cosine_is_torchs_recursive_form_not_the_closed_one():
    """The closed form differs from torch's in the last bits somewhere: the recursion is what runs."""
    config, epochs = TrainConfig(lr=0.01, schedule="cosine"), 31
    closed = [0.01 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]
    ours = our_rates(config, epochs, epochs)
    assert ours == torch_rates(config, epochs, epochs) and ours != closed
    assert ours == pytest.approx(closed, rel=1e-12, abs=0)


def plateau_losses() -> list[float]:
    """Improvements, stalls, rises, and improvements below torch's relative threshold (1e-4)."""
    v = [1.0, 0.8, 0.8, 0.81, 0.79]
    v += [0.79 * (1 - 5e-5), 0.79 * (1 - 9.9e-5)]          # below the threshold: not better
    v += [0.79 * (1 - 1e-4), 0.79 * (1 - 1e-4) * (1 - 2e-4)]  # at it (float rounding decides) and above
    v += [0.5] * 6 + [0.4999999, 0.49999, 0.4]           # a stall, tiny gains, a real one
    v += [0.4 * (1 + 1e-6 * k) for k in range(40)]       # a long stall: the rate halves to eps's floor
    v += [0.1, 0.1 * (1 - 1e-5), 0.05, 0.05, 0.2, 0.049, 0.049]
    return v


@pytest.mark.parametrize("patience", [0, 1, 2, 3, 4, 7, 20])
@pytest.mark.parametrize("lr", [1e-3, 0.2, 1.0])
def test_plateau_gives_torchs_rates(patience, lr):
    losses = plateau_losses()
    config = TrainConfig(lr=lr, schedule="plateau", patience=patience)
    ours = our_rates(config, 10, len(losses), losses)
    assert ours == torch_rates(config, 10, len(losses), losses)
    assert len(set(ours)) > 2  # the rate did fall, more than once


def test_plateau_stops_halving_at_eps():
    """torch leaves the rate alone once a cut would change it by no more than eps (1e-8)."""
    losses = [1.0] * 200
    config = TrainConfig(lr=1e-3, schedule="plateau", patience=2)
    ours = our_rates(config, 10, len(losses), losses)
    assert ours == torch_rates(config, 10, len(losses), losses)
    # a cut halves the rate only while that changes it by more than 1e-8: it ends in (1e-8, 2e-8]
    assert ours[-1] == ours[-50] and 1e-8 < ours[-1] <= 2e-8


def test_the_schedules_are_sized_once_for_both():
    """torch's scheduler and the rnnkit one read the same sizes (training.schedules.settings)."""
    config = TrainConfig(lr=0.1, schedule="step", patience=9)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    step = schedules.torch_scheduler(opt, config, 10)
    assert (step.step_size, step.gamma) == (3, 0.1) and schedules.create(config, 10).step_size == 3
    plateau = schedules.torch_scheduler(opt, config.replace(schedule="plateau"), 10)
    assert (plateau.factor, plateau.patience) == (0.5, 4)
    assert schedules.torch_scheduler(opt, config.replace(schedule="none"), 10) is None


FUSED_FIT = """
import sys, torch
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.tasks.forecast.model import Forecaster
from rnnkit.tasks.forecast.workflow import forecast_fused_task, forecast_loss
from rnnkit.training.loop import fit
x, y = torch.randn(40, 6, 1, dtype=torch.float64), torch.randn(40, 1, 1, dtype=torch.float64)
for schedule in ("none", "cosine", "step", "plateau"):
    config = TrainConfig(epochs=3, batch_size=8, schedule=schedule, engine="fused")
    model = Forecaster(1, 1, 1, ModelConfig(cell="gru", hidden_size=4)).double()
    h = fit(model, forecast_loss(model, config), (x, y), (x[:8], y[:8]), config, quiet=True,
            fused=forecast_fused_task(model, config, (x, y), (x[:8], y[:8])))
    assert h.engine == "fused", h.engine_reason
print("torch._dynamo" in sys.modules)
"""


@pytest.mark.skipif(not _native.available(), reason="native kernels unavailable")
def test_a_fused_fit_never_imports_torch_dynamo():
    """The fused path builds no torch optimiser: torch's optimisers import torch._dynamo (about
    2 s) on construction, which every rnnkit fit and sweep worker would otherwise pay."""
    proc = subprocess.run([sys.executable, "-c", FUSED_FIT], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", "a fused fit imported torch._dynamo"
