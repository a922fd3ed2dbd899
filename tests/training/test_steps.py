"""The step budget (``TrainConfig.steps``): exactly N optimiser steps, mid-epoch if need be, with
``epochs`` as a cap; schedules sized by the epochs that run; early stopping; history; the command
line's rule (``--epochs`` without ``--steps`` turns a default budget off); refusals.

The fused trainer's side (the same numbers as the torch loop) is in tests/kernels/test_fused_settings.py.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from rnnkit import ConfigError, TrainConfig, fit
from rnnkit.cli import main
from rnnkit.cli_parse import Parser, config_arg, config_values
from rnnkit.training.loop import planned_epochs, steps_per_epoch

F64 = torch.float64


@pytest.fixture
def optimiser_steps():
    """The number of optimiser steps taken while the test runs (torch's global step hook)."""
    count = [0]
    handle = register_optimizer_step_post_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    yield count
    handle.remove()


def _data(n: int = 10):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g, dtype=F64)
    return x, x.sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g, dtype=F64)


def _mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return nn.Linear(3, 1).double()


def test_steps_stop_mid_epoch_after_exactly_n_steps(optimiser_steps):
    # 10 examples in batches of 3: 4 steps per epoch; 10 steps = 2 whole epochs and 2 batches of a third
    x, y = _data()
    config = TrainConfig(epochs=50, steps=10, batch_size=3, lr=0.05, optimizer="sgd", patience=0, seed=4)
    model = _model()
    h = fit(model, _mse, (x, y), None, config, quiet=True)
    assert optimiser_steps[0] == 10
    assert [r["epoch"] for r in h.rows] == [1, 2, 3] and [r["steps"] for r in h.rows] == [4, 8, 10]
    # the same training by hand: each epoch's order drawn from the seeded generator, 10 batches in all
    ref = _model()
    opt = torch.optim.SGD(ref.parameters(), lr=0.05)
    gen, losses, taken = torch.Generator().manual_seed(4), [], 0
    while taken < 10:
        order, total, seen = torch.randperm(10, generator=gen), 0.0, 0
        for i in range(0, 10, 3):
            if taken == 10:
                break
            idx = order[i:i + 3]
            opt.zero_grad()
            loss = _mse(ref, (x[idx], y[idx]))
            loss.backward()
            opt.step()
            total, seen, taken = total + float(loss.detach()) * idx.numel(), seen + idx.numel(), taken + 1
        losses.append(total / seen)  # the last epoch's mean is over the 6 examples it trained on
    assert [r["train_loss"] for r in h.rows] == pytest.approx(losses, rel=1e-12)
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_epoch_cap_wins_when_smaller(optimiser_steps):
    x, y = _data()
    h = fit(_model(), _mse, (x, y), None, TrainConfig(epochs=2, steps=1000, batch_size=3, patience=0), quiet=True)
    assert optimiser_steps[0] == 8 and len(h.rows) == 2 and h.rows[-1]["steps"] == 8


def test_a_budget_of_whole_epochs_and_no_budget(optimiser_steps):
    x, y = _data()
    h = fit(_model(), _mse, (x, y), None, TrainConfig(epochs=9, steps=8, batch_size=3, patience=0), quiet=True)
    assert optimiser_steps[0] == 8 and [r["steps"] for r in h.rows] == [4, 8]
    h = fit(_model(), _mse, (x, y), None, TrainConfig(epochs=3, batch_size=3, patience=0), quiet=True)
    assert optimiser_steps[0] == 8 + 12 and [r["steps"] for r in h.rows] == [4, 8, 12]


def test_stateful_steps_count_chunks(optimiser_steps):
    # streams (2, 10, 1) in chunks of 3 steps: 4 chunks (optimiser steps) per epoch; 6 = 1 epoch + 2 chunks
    class Stream(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(1, 2, batch_first=True).double()

        def forward(self, x, state):
            return self.rnn(x, state)

    def loss_fn(model, batch):
        x, y, state = batch
        out, state = model(x, state)
        return ((out[..., :1] - y) ** 2).mean(), state
    x = torch.randn(2, 10, 1, dtype=F64)
    config = TrainConfig(epochs=20, steps=6, stateful=True, tbptt=3, shuffle=False, patience=0)
    torch.manual_seed(0)
    h = fit(Stream(), loss_fn, (x, x), None, config, quiet=True)
    assert optimiser_steps[0] == 6 and [r["steps"] for r in h.rows] == [4, 6]
    assert steps_per_epoch((x, x), config) == 4 and planned_epochs(config, 4) == 2


@pytest.mark.parametrize("schedule, lrs", [
    # 4 steps per epoch, 10 steps: 3 epochs run, so cosine anneals over 3 epochs (lr recorded at
    # each epoch's start: (1 + cos(pi e / 3)) / 2) and the step schedule divides by 10 every epoch (3 // 3)
    ("cosine", [1.0, 0.75, 0.25]),
    ("step", [1.0, 0.1, 0.01]),
])
def test_schedules_are_sized_by_the_epochs_that_run(schedule, lrs):
    x, y = _data()
    h = fit(_model(), _mse, (x, y), None,
            TrainConfig(epochs=100, steps=10, batch_size=3, lr=1.0, optimizer="sgd", schedule=schedule, patience=0),
            quiet=True)
    assert [r["lr"] for r in h.rows] == pytest.approx(lrs, rel=1e-12)


def test_early_stopping_and_restore_best_with_a_budget():
    # checks every 2 epochs and at the last epoch that runs (the budget's partial third one);
    # validation scripted to be best at epoch 2: its weights come back
    x, y = _data()
    vals = iter([0.5, 0.9])
    seen = []

    def loss_fn(model, batch):
        return _mse(model, batch) if model.training else torch.tensor(next(vals))
    model = _model()
    h = fit(model, loss_fn, (x, y), (x, y),
            TrainConfig(epochs=100, steps=10, batch_size=3, check_every=2, patience=5, lr=0.1), quiet=True,
            callbacks=[lambda row: seen.append([p.detach().clone() for p in model.parameters()])])
    assert [r["epoch"] for r in h.rows if not math.isnan(r["val_loss"])] == [2, 3]
    assert h.best_epoch == 2 and not h.stopped_early
    for a, b in zip(model.parameters(), seen[1]):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(seen[2], seen[1]))


def test_patience_still_counts_epochs_within_a_budget():
    x, y = _data()
    h = fit(_model(), lambda m, b: _mse(m, b) if m.training else torch.tensor(1.0), (x, y), (x, y),
            TrainConfig(epochs=100, steps=400, batch_size=3, patience=3), quiet=True)
    assert h.stopped_early and len(h.rows) == 4 and h.rows[-1]["steps"] == 16


@pytest.mark.parametrize("bad", [0, -5, True, False, 2.5, "10", float("nan")])
def test_nonsense_budgets_are_refused(bad):
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        TrainConfig(steps=bad)


@pytest.mark.parametrize("value, needle", [("0", "steps must be an integer >= 1"), ("-3", "steps must be"),
                                           ("ten", "--steps: invalid int value")])
def test_the_command_line_refuses_nonsense_budgets(capsys, tmp_path, value, needle):
    out = tmp_path / "run"
    code = main(["fit", "builtin:sine", "--lookback", "5", "--horizon", "1", "--out", str(out), "--quiet",
                 "--steps", value])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rnnkit: error: ") and err.count("\n") == 1 and needle in err, err
    assert not out.exists()


def _parse(defaults: TrainConfig, argv: list[str]) -> TrainConfig:
    p = Parser(prog="job")
    for name in ("epochs", "steps", "lr"):
        config_arg(p, defaults, name)
    return TrainConfig(**config_values(p.parse_args(argv), TrainConfig))


@pytest.mark.parametrize("argv, epochs, steps", [
    ([], 1000, 500),                                 # the job's defaults: a budget of steps, epochs a cap
    (["--epochs", "50"], 50, None),                  # asked for 50 epochs: gets 50 epochs, the budget is off
    (["--epochs", "50", "--steps", "20"], 50, 20),   # both given: both hold
    (["--steps", "20"], 1000, 20),
    (["--lr", "0.1"], 1000, 500),                    # another option changes nothing of the budget
])
def test_epochs_without_steps_turns_a_default_budget_off(argv, epochs, steps):
    tc = _parse(TrainConfig(epochs=1000, steps=500), argv)
    assert (tc.epochs, tc.steps) == (epochs, steps)


def test_the_budget_reaches_the_run_directory(tmp_path):
    # rnnkit fit with --steps: 38 windows of builtin:sine's training rows in batches of 8 = 5 steps per epoch
    out = tmp_path / "run"
    assert main(["fit", "builtin:sine", "--lookback", "5", "--horizon", "1", "--hidden", "4", "--quiet",
                 "--steps", "12", "--epochs", "40", "--patience", "0", "--batch-size", "8", "--out", str(out)]) == 0
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == ["epoch", "steps", "train_loss", "val_loss", "lr"]
    per = history["steps"].iloc[0]
    assert history["steps"].iloc[-1] == 12 and len(history) == -(-12 // per)
    import json
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == 12
    from rnnkit import load_run
    assert load_run(out).history.rows[-1]["steps"] == 12
