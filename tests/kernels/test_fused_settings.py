"""The fused trainer honours every TrainConfig setting it declares and refuses every other one.

Each TrainConfig field is set to a non-default value in turn (the table below must name every
field, so a new one cannot slip through) on a small forecaster the fused trainer supports, trained
through the forecasting job's own loss and FusedTask (the translation of ``loss``, ``warmup``,
``many_to_many`` and ``stateful`` the job really uses). Either the fused trainer runs and its
history and weights equal the torch loop's, or ``engine="auto"`` falls back to the torch loop and
says why while ``engine="fused"`` refuses.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import rnnkit
import rnnkit.training.distributed
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.kernels import trainer
from rnnkit.tasks.forecast.model import Forecaster
from rnnkit.tasks.forecast.workflow import forecast_fused_task, forecast_loss
from rnnkit.training.loop import fit

F64 = torch.float64
#: float64, same math in two code paths that sum in different orders (the native products and
#: torch's BLAS): a few epochs of a tiny model stay within 1e-10 of each other (rounding is ~1e-16
#: per operation; training amplifies it by a few orders of magnitude at most).
TOL = 1e-10
BASE = TrainConfig(epochs=6, batch_size=8, lr=0.01)

# field -> (TrainConfig changes, ModelConfig changes, expected): "fused" runs natively and must
# match the torch loop; anything else is a refusal whose reason must name the field.
# Values are the job's valid combinations (warm-up needs a loss over every step, and so on).
SETTINGS = {
    "epochs": ({"epochs": 3}, {}, "fused"),
    # 50 windows in batches of 8: 7 steps per epoch; 16 steps = 2 epochs and 2 batches of a third
    "steps": ({"steps": 16}, {}, "fused"),
    "batch_size": ({"batch_size": 5}, {}, "fused"),
    "lr": ({"lr": 0.03}, {}, "fused"),
    "optimizer": ({"optimizer": "rmsprop"}, {}, "fused"),
    "momentum": ({"optimizer": "sgd", "momentum": 0.9}, {}, "fused"),
    "weight_decay": ({"weight_decay": 0.05}, {}, "fused"),
    "clip_norm": ({"clip_norm": 0.05}, {}, "fused"),
    "clip_value": ({"clip_value": 0.01}, {}, "fused"),
    "schedule": ({"schedule": "cosine"}, {}, "fused"),
    "loss": ({"loss": "mae"}, {}, "fused"),
    "patience": ({"patience": 1, "epochs": 12, "lr": 0.2}, {}, "fused"),
    "min_delta": ({"min_delta": 0.2, "patience": 2, "epochs": 12}, {}, "fused"),
    "check_every": ({"check_every": 2}, {}, "fused"),
    "restore_best": ({"restore_best": False, "lr": 0.2}, {}, "fused"),
    "shuffle": ({"shuffle": False}, {}, "fused"),
    "warmup": ({"warmup": 2, "many_to_many": True}, {"strategy": "recursive"}, "fused"),
    "many_to_many": ({"many_to_many": True}, {"strategy": "recursive"}, "fused"),
    "stateful": ({"stateful": True, "batch_size": 3}, {"strategy": "recursive"}, "fused"),
    "tbptt": ({"stateful": True, "batch_size": 3, "tbptt": 4}, {"strategy": "recursive"}, "fused"),
    "seed": ({"seed": 7}, {}, "fused"),
    "engine": ({"engine": "fused"}, {}, "fused"),
    # where training runs: the CPU named, which must train exactly as the default (where the model is)
    "device": ({"device": "cpu"}, {}, "fused"),
    # data-parallel training runs the torch loop (one process per rank; here a group of one, see the test)
    "distributed": ({"distributed": True}, {}, "distributed"),
}
#: the other values of the fields with choices, each checked the same way: (field, changes)
MORE = [("optimizer", {"optimizer": "sgd"}), ("optimizer", {"optimizer": "adagrad"}),
        ("momentum", {"optimizer": "rmsprop", "momentum": 0.5}), ("schedule", {"schedule": "step"}),
        # the plateau schedule halves the rate after 2 checks without improvement (patience // 2)
        ("schedule", {"schedule": "plateau", "patience": 4, "check_every": 2, "epochs": 30, "lr": 0.2}),
        # a budget with a schedule sized by it, early stopping that restores the best weights, a
        # budget of whole epochs, and stateful chunks (26 steps in chunks of 4: 7 per epoch); the
        # epoch cap winning trains as without the budget, counted in the test below
        ("steps", {"steps": 30, "epochs": 40, "schedule": "cosine"}),
        ("steps", {"steps": 60, "epochs": 40, "patience": 2, "check_every": 2, "lr": 0.2}),
        ("steps", {"steps": 14}), ("steps", {"steps": 10, "stateful": True, "batch_size": 3, "tbptt": 4})]


def test_every_field_is_in_the_table():
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert sorted(SETTINGS) == sorted(names), "add the new TrainConfig field to SETTINGS (and to trainer.HONOURED)"
    for name, (changes, _, _) in SETTINGS.items():
        assert getattr(BASE.replace(**changes), name) != getattr(TrainConfig(), name), name


def test_declared_list_names_only_train_config_fields():
    assert set(trainer.HONOURED) <= {f.name for f in dataclasses.fields(TrainConfig)}


def _data(config: TrainConfig, model: Forecaster):
    """Windows (or, stateful, streams) of a noisy sine, scaled like the job's."""
    g = torch.Generator().manual_seed(3)
    t = torch.arange(80, dtype=F64)
    series = (torch.sin(t * 0.3) + 0.1 * torch.randn(80, generator=g, dtype=F64)).unsqueeze(-1)  # (80, 1)
    if config.stateful:  # (79, 1) -> 3 streams (3, 26, 1) of input and next value
        x, y = series[:-1][:78].reshape(3, 26, 1), series[1:][:78].reshape(3, 26, 1)
        return (x, y), None
    T, H = 6, model.horizon
    starts = range(0, 80 - T - H + 1)
    x = torch.stack([series[s:s + T] for s in starts])  # (N, T, 1)
    y = torch.stack([series[s + T:s + T + H] for s in starts])  # (N, H, 1)
    return (x[:50], y[:50]), (x[50:], y[50:])


def _train(config: TrainConfig, model_changes: dict):
    torch.manual_seed(config.seed)
    mc = ModelConfig(cell="gru", hidden_size=5, **model_changes)
    model = Forecaster(1, 1, 1 if mc.strategy == "recursive" else 2, mc).to(F64)
    train, val = _data(config, model)
    history = fit(model, forecast_loss(model, config), train, val, config, quiet=True,
                  fused=forecast_fused_task(model, config, train, val))
    return history, [p.detach().clone() for p in model.parameters()]


def _rows(history):
    return [(r["train_loss"], r["val_loss"], r["lr"]) for r in history.rows]


def assert_same_training(changes: dict, model_changes: dict, field: str):
    """Assert that the torch loop and the fused trainer train alike with ``changes``, which set
    ``field``; returns both histories (torch loop, fused)."""
    config = BASE.replace(**changes)
    (h_torch, p_torch) = _train(config.replace(engine="torch"), model_changes)
    if field != "engine":  # the setting must change the torch loop's training here, else agreeing
        # with it would prove nothing (NaN != NaN: the val_loss column is compared as text)
        default = config.replace(**{field: getattr(TrainConfig(), field)}, engine="torch")
        h_base, p_base = _train(default, model_changes)
        changed = repr(_rows(h_torch)) != repr(_rows(h_base)) or any(
            not torch.equal(a, b) for a, b in zip(p_torch, p_base))
        if field == "device":  # the same code on the same device: nothing may change
            assert not changed, f"{changes} changed the training"
        else:
            assert changed, f"{changes} changes nothing here"
    (h_fused, p_fused) = _train(config.replace(engine="fused"), model_changes)
    (h_auto, _) = _train(config.replace(engine="auto"), model_changes)
    assert (h_torch.engine, h_fused.engine, h_auto.engine) == ("torch", "fused", "fused")
    assert h_fused.engine_reason is None and h_auto.engine_reason is None
    assert "engine='torch'" in h_torch.engine_reason
    assert len(h_fused.rows) == len(h_torch.rows)
    for key in ("train_loss", "val_loss"):
        a, b = [r[key] for r in h_torch.rows], [r[key] for r in h_fused.rows]
        assert a == pytest.approx(b, abs=TOL, rel=0, nan_ok=True), key
    # the rates exactly: torch's scheduler on the torch loop, training.schedules (the same float
    # operations, no torch optimiser) on the fused one, fed the same checks' decisions
    assert [r["lr"] for r in h_fused.rows] == [r["lr"] for r in h_torch.rows]
    assert (h_fused.best_epoch, h_fused.stopped_early) == (h_torch.best_epoch, h_torch.stopped_early)
    for a, b in zip(p_torch, p_fused):  # restore_best: the same epoch's weights come back
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)
    return h_torch, h_fused


@pytest.mark.parametrize("field", sorted(SETTINGS))
def test_each_setting_is_honoured_or_refused(field, monkeypatch):
    changes, model_changes, expected = SETTINGS[field]
    if changes.get("distributed"):  # a process group of one rank, without starting one in this process
        monkeypatch.setattr(rnnkit.training.distributed, "process_group", lambda device=None: (0, 1))
    if expected == "fused":
        assert_same_training(changes, model_changes, field)
        return
    config = BASE.replace(**changes)
    with pytest.raises(rnnkit.ConfigError, match=expected):
        _train(config.replace(engine="fused"), model_changes)
    history, _ = _train(config.replace(engine="auto"), model_changes)
    assert history.engine == "torch" and expected in history.engine_reason


def _model_changes(changes: dict) -> dict:
    return {"strategy": "recursive"} if changes.get("stateful") else {}


@pytest.mark.parametrize("field, changes", MORE, ids=[repr(c) for _, c in MORE])
def test_every_declared_choice_is_honoured(field, changes):
    h_torch, h_fused = assert_same_training(changes, _model_changes(changes), field)
    assert h_fused.engine == "fused" and h_torch.engine == "torch"  # the choice ran natively, not in torch's loop


@pytest.mark.parametrize("changes, steps", [
    ({"steps": 16}, 16), ({"steps": 1000, "epochs": 2}, 14), ({"epochs": 2}, 14),
    ({"steps": 10, "stateful": True, "batch_size": 3, "tbptt": 4}, 10),
])
def test_the_fused_trainer_takes_exactly_the_budgeted_steps(monkeypatch, changes, steps):
    """Counted where the native optimiser counts them: its step counter (Adam's t), read when
    the trainer gives the parameters back at the end of training."""
    counts = []
    release = trainer.FusedTrainer.release
    monkeypatch.setattr(trainer.FusedTrainer, "release", lambda self: (counts.append(int(self.step)), release(self)))
    config = BASE.replace(engine="fused", patience=0, **changes)
    history, _ = _train(config, _model_changes(changes))
    assert history.engine == "fused" and counts == [steps] and history.rows[-1]["steps"] == steps


def test_a_setting_outside_the_declared_list_is_refused(monkeypatch):
    """The refusal itself: drop a field from the declaration, as if it were a new field the fused
    trainer knows nothing of, and set it; auto falls back with the reason, fused refuses."""
    honoured = dict(trainer.HONOURED)
    del honoured["clip_value"]
    monkeypatch.setattr(trainer, "HONOURED", honoured)
    config = BASE.replace(clip_value=0.01)
    with pytest.raises(rnnkit.ConfigError, match="clip_value=0.01"):
        _train(config.replace(engine="fused"), {})
    history, _ = _train(config.replace(engine="auto"), {})
    assert history.engine == "torch" and "clip_value=0.01" in history.engine_reason
    at_default, _ = _train(BASE, {})  # an undeclared field at its default changes nothing: still fused
    assert at_default.engine == "fused"


def test_a_value_outside_the_declared_choices_is_refused(monkeypatch):
    honoured = dict(trainer.HONOURED)
    honoured["schedule"] = ("none", "cosine", "step")
    monkeypatch.setattr(trainer, "HONOURED", honoured)
    config = BASE.replace(schedule="plateau")
    with pytest.raises(rnnkit.ConfigError, match="schedule='plateau'"):
        _train(config.replace(engine="fused"), {})
    history, _ = _train(config.replace(engine="auto"), {})
    assert history.engine == "torch" and "schedule='plateau'" in history.engine_reason


def test_auto_records_why_it_fell_back():
    """Every fall-back says why: an unsupported model, or one too large to pay off."""
    config = BASE.replace(engine="auto")
    history, _ = _train(config, {"bidirectional": True})
    assert history.engine == "torch" and "unidirectional" in history.engine_reason
    x, y = torch.randn(64, 20, 1), torch.randn(64, 1, 1)  # an LSTM(256) on batches of 64: torch is faster
    history = fit(Forecaster(1, 1, 1, ModelConfig(cell="lstm", hidden_size=256)),
                  lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), (x, y), None,
                  config.replace(batch_size=64, epochs=1), quiet=True,
                  fused=trainer.FusedTask("last", "mse", x, y[:, 0]))  # (N, 1, 1) -> (N, 1): the head's layout
    assert history.engine == "torch" and "pay off" in history.engine_reason


@pytest.mark.parametrize("schedule", ["cosine", "step", "plateau"])
def test_a_schedule_on_the_fused_trainer_warns_of_nothing(schedule):
    """No torch optimiser steps while the native epochs train, so torch's warning about stepping a
    scheduler before its optimizer must not appear (the rates come from training.schedules)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history, _ = _train(BASE.replace(schedule=schedule, engine="fused"), {})
    assert history.engine == "fused"


@pytest.mark.parametrize("changes, task_changes, words", [
    ({"loss": "mae"}, {"loss": "mse"}, "loss='mae'"),
    ({"many_to_many": True}, {"head_mode": "last"}, "many_to_many"),
    ({"warmup": 2, "many_to_many": True}, {"warmup": 1}, "warmup=2"),
])
def test_settings_the_task_disagrees_with_are_refused(changes, task_changes, words):
    """The loss settings reach the fused trainer through the job's FusedTask: a task that says
    otherwise would train another loss than the torch loop's, so it is refused, never run."""
    config = BASE.replace(**changes)
    task = dataclasses.replace(trainer.FusedTask("all", "mse", torch.zeros(4, 6, 1), torch.zeros(4, 6, 1),
                                                 warmup=config.warmup), **task_changes)
    if task.head_mode == "last":
        task = dataclasses.replace(task, y=torch.zeros(4, 1))
    model = Forecaster(1, 1, 1, ModelConfig(cell="gru", hidden_size=5, strategy="recursive")).to(F64)
    assert words in trainer.unsupported_reason(model, task, config)
    with pytest.raises(rnnkit.ConfigError, match=words.replace("(", r"\(")):
        trainer.create(model, task, config, insist=True)
    assert trainer.create(model, task, config) == (None, trainer.unsupported_reason(model, task, config))
