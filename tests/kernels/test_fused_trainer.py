"""The fused trainer (whole epochs in one native call) against the generic torch loop: every
optimiser, head, loss and dtype, stateful truncated BPTT, engine="auto"'s choice, and the models and
data it must leave to the torch loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit import TrainConfig
from rnnkit.kernels import _native
from rnnkit.kernels.trainer import FusedTask
from rnnkit.training.loop import fit
from kernel_models import F64, F32, CELLS, Net, data

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.skipif(not _native.available(), reason="native kernels unavailable")]


def twin_runs(kind, config, mode, loss, dtype, layers=2, classes=None, class_weights=None):
    """Train the same seeded model with the generic loop and the fused trainer."""
    P = classes or 3
    x, y = data(dtype=dtype, classes=classes, P=P)
    xv, yv = x[:7], y[:7]
    results = []
    for engine in ("torch", "fused"):
        torch.manual_seed(0)
        model = Net(kind, 2, 4, P, layers, dtype)
        if loss == "ce":
            task_y, task_yv = y, yv
            w = class_weights

            def loss_fn(m, b):
                return F.cross_entropy(m(b[0])[:, -1], b[1], weight=w)
        elif mode == "last":
            task_y, task_yv = y[:, -1], yv[:, -1]
            crit = F.mse_loss if loss == "mse" else F.l1_loss

            def loss_fn(m, b):
                return crit(m(b[0])[:, -1], b[1][:, -1])
        else:
            task_y, task_yv = y, yv
            crit = F.mse_loss if loss == "mse" else F.l1_loss

            def loss_fn(m, b):
                return crit(m(b[0])[:, 2:], b[1][:, 2:])
        task = FusedTask(mode, loss, x, task_y, xv, task_yv, warmup=2 if mode == "all" else 0,
                         class_weights=class_weights)
        h = fit(model, loss_fn, (x, y), (xv, yv), config.replace(engine=engine), quiet=True, fused=task)
        results.append((h, [p.detach().clone() for p in model.parameters()]))
    return results


OPTIMIZERS = [("adam", {}), ("sgd", {"momentum": 0.9}), ("sgd", {}), ("adagrad", {}), ("rmsprop", {}),
              ("rmsprop", {"momentum": 0.5})]


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("opt, extra", OPTIMIZERS)
def test_fused_trainer_equals_generic_loop_float64(kind, opt, extra):
    config = TrainConfig(epochs=4, batch_size=5, lr=0.01, optimizer=opt, weight_decay=0.01, patience=0,
                         clip_norm=1.0, **extra)
    (h1, p1), (h2, p2) = twin_runs(kind, config, "all", "mse", F64)
    assert h1.train_loss == pytest.approx(h2.train_loss, abs=1e-10, rel=0)
    assert h1.val_loss == pytest.approx(h2.val_loss, abs=1e-10, rel=0)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru", "jordan", "elman"])
@pytest.mark.parametrize("mode, loss", [("last", "mse"), ("last", "mae"), ("all", "mae")])
def test_fused_trainer_heads_and_losses(kind, mode, loss):
    config = TrainConfig(epochs=3, batch_size=4, lr=0.01, patience=0, clip_value=0.5)
    (h1, p1), (h2, p2) = twin_runs(kind, config, mode, loss, F64, layers=1)
    assert h1.train_loss == pytest.approx(h2.train_loss, abs=1e-10, rel=0)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("weights", [None, torch.tensor([1.0, 3.0, 0.5], dtype=F64)])
def test_fused_trainer_cross_entropy(weights):
    config = TrainConfig(epochs=3, batch_size=6, lr=0.02, patience=0)
    (h1, p1), (h2, p2) = twin_runs("gru", config, "last", "ce", F64, classes=3, class_weights=weights)
    assert h1.train_loss == pytest.approx(h2.train_loss, abs=1e-10, rel=0)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru", "jordan"])
def test_fused_trainer_float32(kind):
    config = TrainConfig(epochs=3, batch_size=5, lr=0.01, patience=0)
    (h1, p1), (h2, p2) = twin_runs(kind, config, "all", "mse", F32)
    assert h1.train_loss == pytest.approx(h2.train_loss, abs=1e-5, rel=0)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_fused_trainer_releases_parameters():
    """During training the parameters are views of one flat buffer; afterwards each owns its memory."""
    model = Net("gru", 2, 4, 3, 1, F64)
    x, y = data()
    fit(model, lambda m, b: F.mse_loss(m(b[0]), b[1]), (x, y), None, TrainConfig(epochs=1, engine="fused"),
        quiet=True, fused=FusedTask("all", "mse", x, y))
    assert all(p._base is None for p in model.parameters())
    ptrs = [p.data_ptr() for p in model.parameters()]
    assert len(set(ptrs)) == len(ptrs)


def test_engine_fused_insists_with_a_reason():
    model = Net("gru", 2, 4, 3, 1, F64)
    model.rnn = rnnkit.Recurrent("gru", 2, 4, bidirectional=True, batch_first=True, dtype=F64)
    x, y = data()
    task = FusedTask("all", "mse", x, y)
    with pytest.raises(rnnkit.ConfigError, match="unidirectional"):
        fit(model, lambda m, b: F.mse_loss(m(b[0]), b[1]), (x, y), None,
            TrainConfig(epochs=1, engine="fused"), quiet=True, fused=task)


def test_forecaster_uses_fused_trainer_and_matches_torch_loop():
    dc = rnnkit.DataConfig(source="builtin:sine", lookback=5, horizon=2, val_frac=0.2, test_frac=0.2)
    runs = [rnnkit.fit_forecaster(dc, rnnkit.ModelConfig(cell="lstm", hidden_size=8),
                                  TrainConfig(epochs=5, batch_size=5, engine=e, patience=0), quiet=True,
                                  dtype=F64) for e in ("torch", "fused")]
    assert runs[0].history.train_loss == pytest.approx(runs[1].history.train_loss, abs=1e-10, rel=0)


@pytest.mark.parametrize("hidden, batch, expected", [(8, 5, "fused"), (256, 64, "torch")])
def test_auto_engine_uses_the_fused_trainer_only_where_it_pays_off(hidden, batch, expected):
    """Large models train faster in torch's loop (BLAS/oneDNN products): auto must not pick the
    native trainer there, while engine='fused' still insists."""
    x, y = torch.randn(batch, 20, 1), torch.randn(batch, 20, 1)
    task = FusedTask("all", "mse", x, y)
    engines = []
    for engine in ("auto", "fused"):
        h = fit(Net("lstm", 1, hidden, 1, 1, torch.float32), lambda m, b: F.mse_loss(m(b[0]), b[1]), (x, y), None,
                TrainConfig(epochs=1, batch_size=batch, engine=engine, patience=0), quiet=True, fused=task)
        engines.append(h.engine)
    assert engines == [expected, "fused"]


def test_auto_limits_cover_every_cell():
    from rnnkit.kernels import trainer
    for kind in ("lstm", "gru", "elman", "jordan"):
        model = Net(kind, 1, 16, 1, 1, F64)
        small = FusedTask("last", "mse", torch.zeros(5, 5, 1), torch.zeros(5, 1))
        assert trainer.pays_off(model, small, TrainConfig(batch_size=5))
        big = FusedTask("last", "mse", torch.zeros(2048, 400, 1), torch.zeros(2048, 1))
        assert not trainer.pays_off(model, big, TrainConfig(batch_size=2048))


def test_fused_trainer_refuses_lengths_it_cannot_honour():
    from rnnkit.kernels import trainer
    model = Net("gru", 2, 4, 3, 1, F64)
    x, y = data()
    ok = FusedTask("last", "mse", x, y[:, -1], lengths=torch.full((23,), 6))
    assert trainer.unsupported_reason(model, ok, TrainConfig()) is None
    for bad in (FusedTask("all", "mse", x, y, lengths=torch.full((23,), 6)),  # per-step heads
                FusedTask("last", "mse", x, y[:, -1], lengths=torch.full((23,), 7)),  # past the end
                FusedTask("last", "mse", x, y[:, -1], lengths=torch.zeros(23, dtype=torch.int64)),
                FusedTask("last", "mse", x, y[:, -1], lengths=torch.full((5,), 6))):  # wrong count
        assert trainer.unsupported_reason(model, bad, TrainConfig()) is not None


@pytest.mark.parametrize("kind, layers", [("lstm", 2), ("gru", 1), ("elman", 3), ("jordan", 1), ("jordan", 2)])
def test_fused_trainer_stateful_equals_generic_loop(kind, layers):
    """Stateful truncated BPTT: 3 streams of 23 steps in chunks of 5 (the last one 3 long), the
    state carried across chunks and reset every epoch; the loss history equals the torch loop's."""
    from rnnkit.tasks.forecast.workflow import forecast_fused_task, forecast_loss
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 23, 1, generator=g, dtype=F64)
    y = torch.sin(torch.cumsum(x, 1))
    config = TrainConfig(epochs=4, batch_size=3, stateful=True, tbptt=5, shuffle=False, patience=0,
                         optimizer="adam", lr=0.01, clip_norm=0.5)
    histories = []
    for engine in ("torch", "fused"):
        torch.manual_seed(0)
        extra = {"output_size": 3} if kind == "jordan" and layers == 2 else {}  # state width != hidden
        model = rnnkit.Forecaster(1, 1, config=rnnkit.ModelConfig(cell=kind, hidden_size=6, num_layers=layers,
                                                                    strategy="recursive", **extra)).to(F64)
        c = config.replace(engine=engine)
        h = fit(model, forecast_loss(model, c), (x, y), None, c, quiet=True,
                fused=forecast_fused_task(model, c, (x, y), None))
        assert h.engine == engine
        histories.append(h.train_loss)
    assert histories[0] == pytest.approx(histories[1], abs=1e-10, rel=0)


def test_fused_trainer_ignores_nan_padding_like_the_torch_loop():
    g = torch.Generator().manual_seed(9)
    x, lengths = torch.randn(12, 7, 2, generator=g, dtype=F64), torch.randint(2, 8, (12,), generator=g)
    x[torch.arange(7).unsqueeze(0) >= lengths.unsqueeze(1)] = float("nan")
    y = torch.randint(0, 3, (12,), generator=g)
    runs = []
    for engine in ("torch", "fused"):
        torch.manual_seed(0)
        model = rnnkit.SequenceClassifier(2, 3, rnnkit.ModelConfig(cell="gru", hidden_size=4)).to(F64)
        from rnnkit.tasks.classify.workflow import classification_loss
        h = fit(model, classification_loss(), (x, lengths, y), None,
                TrainConfig(epochs=3, batch_size=5, engine=engine, patience=0), quiet=True,
                fused=FusedTask("last", "ce", x, y, lengths=lengths))
        runs.append(h.train_loss)
    assert all(map(math.isfinite, runs[1]))
    assert runs[0] == pytest.approx(runs[1], abs=1e-10, rel=0)


def test_fused_trainer_refuses_data_that_do_not_fit_the_model():
    from rnnkit.kernels import trainer
    model = Net("gru", 2, 4, 3, 1, F64)
    x, y = data()
    assert trainer.unsupported_reason(model, FusedTask("all", "mse", x[..., :1], y), TrainConfig())
    assert trainer.unsupported_reason(model, FusedTask("all", "mse", x, y[..., :2]), TrainConfig())
    labels = torch.tensor([0, 1, 3] * 7 + [0, 1])
    assert "labels" in trainer.unsupported_reason(model, FusedTask("last", "ce", x, labels), TrainConfig())


def test_stateful_warmup_is_refused_with_its_reason():
    from rnnkit.tasks.forecast.workflow import forecast_fused_task, forecast_loss
    x = torch.randn(2, 12, 1)
    model = rnnkit.Forecaster(1, 1, config=rnnkit.ModelConfig(hidden_size=4, strategy="recursive"))
    c = TrainConfig(epochs=1, batch_size=2, stateful=True, tbptt=4, warmup=1, shuffle=False, engine="fused")
    with pytest.raises(rnnkit.ConfigError, match="warm-up"):
        fit(model, forecast_loss(model, c), (x, x), None, c, quiet=True,
            fused=forecast_fused_task(model, c, (x, x), None))


@pytest.mark.parametrize("decorate", ["prune", "weight_norm", "hook"])
def test_fused_trainer_leaves_decorated_models_to_the_torch_loop(decorate):
    """The native loop reads the raw parameters and calls no module: a pruned, parametrized or
    hooked model would train as if undecorated (pruning keeps the parameter count, so nothing
    else notices). auto must take the torch loop, and give exactly its result."""
    from torch.nn.utils import parametrizations, prune
    from rnnkit.kernels import trainer

    def build():
        torch.manual_seed(0)
        model = Net("gru", 2, 4, 3, 1, F64)
        if decorate == "prune":
            prune.l1_unstructured(model.rnn, "weight_hh_l0", amount=0.5)
        elif decorate == "weight_norm":
            parametrizations.weight_norm(model.head, "weight")
        else:
            model.head.register_forward_hook(lambda m, i, o: o * 0.5)
        return model
    x, y = data()
    task = FusedTask("all", "mse", x, y)
    assert "bypass" in trainer.unsupported_reason(build(), task, TrainConfig())
    loss = lambda m, b: F.mse_loss(m(b[0]), b[1])  # noqa: E731
    auto, loop = build(), build()
    h_auto = fit(auto, loss, (x, y), None, TrainConfig(epochs=3), quiet=True, fused=task)
    h_loop = fit(loop, loss, (x, y), None, TrainConfig(epochs=3, engine="torch"), quiet=True)
    assert h_auto.engine == "torch"
    assert [r["train_loss"] for r in h_auto.rows] == [r["train_loss"] for r in h_loop.rows]  # same code twice
    with pytest.raises(rnnkit.RnnkitError, match="bypass"):
        fit(build(), loss, (x, y), None, TrainConfig(epochs=1, engine="fused"), quiet=True, fused=task)
