"""The training loop: determinism, early stopping rules, clipping, optimisers, divergence."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from rnnkit import ConfigError, TrainConfig, TrainingError, fit
from rnnkit.training.loop import make_optimizer


class Scalar(nn.Module):
    def __init__(self, value: float = 3.0) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor([value], dtype=torch.float64))


def scripted(val_losses):
    """Train loss p^2; validation loss read from ``val_losses`` in order (one per check)."""
    it = iter(val_losses)

    def loss_fn(model, batch):
        if model.training:
            return (model.p ** 2).sum() * batch[0].shape[0] / batch[0].shape[0]
        return torch.tensor(next(it))
    return loss_fn


DATA = (torch.zeros(4, 1),)


def test_same_seed_same_history():
    def run(seed):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=gen, dtype=torch.float64)
        y = x.sum(1, keepdim=True)
        loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()  # noqa: E731
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
        h = fit(model, loss, (x, y), (x[:16], y[:16]), TrainConfig(epochs=15, batch_size=8, seed=seed, lr=0.01), quiet=True)
        return [(r["train_loss"], r["val_loss"]) for r in h.rows]
    assert run(5) == run(5)
    assert run(5) != run(6)


def test_patience_counts_checks_without_relative_improvement():
    # checks: 1.0, 0.995 (fell 0.5% < 1%: no), 0.5 (yes), 0.499 (no), 0.498 (no) -> stop after 2 bad checks
    model = Scalar()
    cfg = TrainConfig(epochs=100, patience=2, min_delta=0.01, lr=0.01, optimizer="sgd")
    h = fit(model, scripted([1.0, 0.995, 0.5, 0.499, 0.498, 0.1]), DATA, DATA, cfg, quiet=True)
    assert h.stopped_early and len(h.rows) == 5 and h.best_epoch == 3


def test_renom_rule_check_every_200_epochs_one_percent():
    # ReNom: every 200 epochs, stop when the loss fell less than 1 % since the last check.
    model = Scalar()
    cfg = TrainConfig(epochs=2000, check_every=200, patience=1, min_delta=0.01, lr=1e-4, optimizer="sgd")
    h = fit(model, scripted([1.0, 0.5, 0.499]), DATA, DATA, cfg, quiet=True)
    assert len(h.rows) == 600 and h.stopped_early and h.best_epoch == 400
    checked = [r["epoch"] for r in h.rows if not math.isnan(r["val_loss"])]
    assert checked == [200, 400, 600]


def test_restore_best_weights():
    model = Scalar(3.0)
    cfg = TrainConfig(epochs=10, patience=0, lr=0.1, optimizer="sgd", restore_best=True)
    seen = []
    # validation gets worse after epoch 2; the weights after epoch 2 must come back
    fit(model, scripted([1.0, 0.5] + [0.9] * 8), DATA, DATA, cfg, quiet=True,
        callbacks=[lambda row: seen.append(float(model.p.detach()))])
    assert float(model.p.detach()) == seen[1]
    assert seen[-1] != seen[1]


def test_patience_zero_runs_all_epochs():
    h = fit(Scalar(), scripted([1.0] * 7), DATA, DATA, TrainConfig(epochs=7, patience=0, lr=0.01), quiet=True)
    assert len(h.rows) == 7 and not h.stopped_early


def test_clip_value_bounds_every_gradient():
    model = Scalar(1000.0)
    loss = lambda m, b: (m.p ** 2).sum()  # noqa: E731  gradient 2000
    fit(model, loss, DATA, None, TrainConfig(epochs=1, batch_size=4, lr=1.0, optimizer="sgd", clip_value=5.0,
                                            patience=0), quiet=True)
    assert float(model.p.detach()) == pytest.approx(995.0)


def test_clip_norm():
    model = Scalar(1000.0)
    loss = lambda m, b: (m.p ** 2).sum()  # noqa: E731
    fit(model, loss, DATA, None, TrainConfig(epochs=1, batch_size=4, lr=1.0, optimizer="sgd", clip_norm=0.5,
                                            patience=0), quiet=True)
    assert float(model.p.detach()) == pytest.approx(999.5)


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("sgd", torch.optim.SGD),
                                       ("adagrad", torch.optim.Adagrad), ("rmsprop", torch.optim.RMSprop)])
def test_optimizers(name, cls):
    opt = make_optimizer(Scalar().parameters(), TrainConfig(optimizer=name, lr=0.05, weight_decay=0.1,
                                                            momentum=0.9 if name in ("sgd", "rmsprop") else 0))
    assert isinstance(opt, cls)
    assert opt.defaults["lr"] == 0.05 and opt.defaults["weight_decay"] == 0.1
    if name in ("sgd", "rmsprop"):
        assert opt.defaults["momentum"] == 0.9


def test_divergence_raises():
    loss = lambda m, b: (m.p ** 2).sum() * torch.tensor(float("nan"))  # noqa: E731
    with pytest.raises(TrainingError, match="diverged at epoch 1"):
        fit(Scalar(), loss, DATA, None, TrainConfig(epochs=3), quiet=True)


def test_schedule_changes_lr():
    h = fit(Scalar(), lambda m, b: (m.p ** 2).sum(), DATA, None,
            TrainConfig(epochs=9, lr=1.0, schedule="step", patience=0, optimizer="sgd"), quiet=True)
    assert [r["lr"] for r in h.rows][::3] == pytest.approx([1.0, 0.1, 0.01])


def test_a_fixed_number_of_epochs_is_the_start_of_the_planned_run():
    # fit(..., epochs=k) (a refit for the epochs early stopping chose) trains exactly the first k of
    # the epochs config plans: same batches, same learning rates (a cosine schedule sized by the
    # planned 10 epochs, not by k), no early stopping; the same code twice, so equal bit for bit
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = x.sum(1, keepdim=True)
    loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    cfg = TrainConfig(epochs=10, batch_size=8, lr=0.05, schedule="cosine", patience=1, min_delta=0.99)

    def model():
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    full, at3 = model(), {}
    record = lambda row: at3.update(copy.deepcopy(full.state_dict())) if row["epoch"] == 3 else None  # noqa: E731
    h_full = fit(full, loss, (x, y), None, cfg.replace(patience=0), quiet=True, callbacks=[record])
    part = model()
    h = fit(part, loss, (x, y), None, cfg, quiet=True, epochs=3)  # patience 1 with min_delta 0.99 would stop at 2
    assert len(h.rows) == 3 and not h.stopped_early
    assert [r["lr"] for r in h.rows] == [r["lr"] for r in h_full.rows[:3]] and h.rows[2]["lr"] < cfg.lr
    assert [r["train_loss"] for r in h.rows] == [r["train_loss"] for r in h_full.rows[:3]]
    assert all(torch.equal(v, at3[k]) for k, v in part.state_dict().items())
    assert len(fit(model(), loss, (x, y), None, cfg, quiet=True, epochs=50).rows) == 10  # at most the planned
    with pytest.raises(ConfigError, match="fixed number of epochs"):
        fit(model(), loss, (x, y), None, cfg, quiet=True, epochs=0)
