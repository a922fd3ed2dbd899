"""Data-parallel training (TrainConfig.distributed, training/distributed.py): 2 ranks with batch b
train as one process with batch 2b.

Two processes are started as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in
the environment, the gloo backend on 127.0.0.1), each training the same seeded LSTM on its part of
every global batch with plain SGD in float64; one process trains the same model with twice the
batch size. The mean gradient over a global batch is the share-weighted sum of the ranks' mean
gradients, so the two agree to float64 rounding (1e-10), the last, uneven batch included (50
examples in global batches of 16: the last has 2, all on rank 0), and both ranks end with
identical parameters and histories."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit import TrainConfig
from rnnkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

SETUP = textwrap.dedent('''
    import torch
    from torch import nn
    import rnnkit
    from rnnkit import TrainConfig
    from rnnkit.training.loop import fit

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnnkit.LSTM(2, 5, batch_first=True)
            self.head = nn.Linear(5, 1)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    def data():
        g = torch.Generator().manual_seed(1)
        x = torch.randn(62, 7, 2, generator=g, dtype=torch.float64)
        y = x[:, -3:, :1].sum(1) + 0.1 * torch.randn(62, 1, generator=g, dtype=torch.float64)
        return (x[:50], y[:50]), (x[50:], y[50:])

    def train(batch_size, distributed):
        torch.manual_seed(0)
        model = Net().double()
        (tr, va) = data()
        config = TrainConfig(epochs=4, batch_size=batch_size, lr=0.05, optimizer="sgd", patience=0, seed=3,
                             engine="torch", distributed=distributed)
        loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()
        history = fit(model, loss, tr, va, config, quiet=True)
        return model, history
''')

WORKER = SETUP + textwrap.dedent('''
    import json, sys
    model, history = train(8, True)
    out = sys.argv[1]
    torch.save({k: v for k, v in model.state_dict().items()}, out + ".pt")
    json.dump([{k: r[k] for k in ("epoch", "steps", "train_loss", "val_loss")} for r in history.rows]
              + [{"engine": history.engine, "reason": history.engine_reason}], open(out + ".json", "w"))
    torch.distributed.destroy_process_group()
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(tmp_path: Path, world: int = 2) -> list[Path]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    procs, outs = [], []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        outs.append(tmp_path / f"rank{rank}")
        procs.append(subprocess.Popen([sys.executable, str(script), str(outs[-1])], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode != 0:
            errors.append(err[-2000:])
    if errors and any("gloo" in e.lower() and ("connect" in e.lower() or "address" in e.lower()) for e in errors):
        pytest.skip(f"the gloo backend could not connect on 127.0.0.1 here: {errors[0][-300:]}")
    assert not errors, errors
    return outs


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_ranks(tmp_path_factory.mktemp("ddp"))


def test_two_ranks_of_batch_b_train_as_one_process_of_batch_2b(ranks):
    namespace: dict = {}
    exec(SETUP, namespace)  # the same model, data and settings, in this process
    model, history = namespace["train"](16, False)
    reference = model.state_dict()
    for out in ranks:
        state = torch.load(str(out) + ".pt")
        for name, value in reference.items():
            torch.testing.assert_close(state[name], value, rtol=0, atol=1e-10, msg=name)
        rows = json.loads(Path(str(out) + ".json").read_text())
        *epochs, engine = rows
        assert [r["steps"] for r in epochs] == [r["steps"] for r in history.rows] == [4, 8, 12, 16]
        for mine, one in zip(epochs, history.rows):
            assert mine["train_loss"] == pytest.approx(one["train_loss"], rel=1e-10, abs=1e-12)
            assert mine["val_loss"] == pytest.approx(one["val_loss"], rel=1e-10, abs=1e-12)
        assert engine["engine"] == "torch"


def test_both_ranks_end_with_the_same_parameters(ranks):
    a, b = (torch.load(str(out) + ".pt") for out in ranks)
    for name in a:
        assert torch.equal(a[name], b[name]), name  # the same all-reduced gradient, the same step


def test_without_a_process_group_distributed_is_refused(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    from rnnkit.training.loop import fit
    model = torch.nn.Linear(2, 1)
    x = torch.randn(8, 2)
    with pytest.raises(ConfigError, match="torchrun"):
        fit(model, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), (x, x[:, :1]), None,
            TrainConfig(epochs=1, distributed=True, engine="torch"), quiet=True)


def test_distributed_stateful_training_is_refused():
    with pytest.raises(ConfigError, match="stateful"):
        from rnnkit.training.loop import fit
        x = torch.randn(2, 8, 1)
        fit(torch.nn.Linear(1, 1), lambda m, b: (m(b[0]).sum(), None), (x, x), None,
            TrainConfig(epochs=1, distributed=True, stateful=True), quiet=True)


@pytest.mark.slow
def test_torchrun_fit_writes_one_run_that_reloads(tmp_path):
    """`torchrun --nproc_per_node=2 -m rnnkit fit ... --distributed`: rank 0 writes the run (the torch
    loop trained it, and says why), the other rank writes nothing, and the run reloads and forecasts."""
    import rnnkit
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "rnnkit", "fit",
                           "builtin:elnino", "--horizon", "6", "--epochs", "2", "--distributed", "--quiet",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("run directory:") == 1  # rank 0 alone reports
    run = rnnkit.load_run(out)
    assert run.train_config.distributed and run.history.engine == "torch"
    assert "distributed" in run.meta["trainer"]["reason"]
    assert np.isfinite(run.forecast()["temperature"].to_numpy()).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no second directory, no leftovers


def test_ensembles_and_auto_are_refused_with_distributed():
    from rnnkit import DataConfig, SearchConfig, fit_forecaster
    for search in (SearchConfig(ensemble=2), SearchConfig(auto=True)):
        with pytest.raises(ConfigError, match="--distributed"):
            fit_forecaster(DataConfig(source="builtin:elnino", horizon=6), None,
                           TrainConfig(epochs=1, distributed=True), quiet=True, search=search)


def test_the_other_jobs_refuse_distributed():
    from rnnkit import ClassifierConfig, SequenceDataConfig, fit_classifier
    with pytest.raises(ConfigError, match="distributed"):
        fit_classifier(SequenceDataConfig(source="builtin:trace"), None, ClassifierConfig(),
                       TrainConfig(epochs=1, distributed=True), quiet=True)


def test_a_distributed_run_backtests_with_refits_in_one_process(monkeypatch):
    """The refits of backtest --refit (and of --intervals' calibration) train side by side in one
    process, so a run trained with --distributed refits without a process group."""
    import rnnkit.training.distributed as distributed
    from rnnkit import DataConfig, fit_forecaster
    with monkeypatch.context() as m:  # a one-rank group stands in for torchrun while it trains
        m.setattr(distributed, "process_group", lambda device=None: (0, 1))
        run = fit_forecaster(DataConfig(source="builtin:elnino", horizon=6), None,
                             TrainConfig(epochs=2, distributed=True), quiet=True)
    assert run.train_config.distributed
    scores = run.backtest(folds=2, refit=True)
    assert len(scores["folds"]) == 2 and np.isfinite(scores["overall"]["model"]["overall"]["mase"])


@pytest.mark.parametrize("grid, train", [({"hidden_size": [4, 8]}, TrainConfig(distributed=True)),
                                         ({"distributed": [True, False]}, None)])
def test_a_sweep_refuses_distributed(grid, train, tmp_path):
    from rnnkit import DataConfig, sweep
    with pytest.raises(ConfigError, match="--distributed"):
        sweep(DataConfig(source="builtin:elnino", horizon=6), grid, tmp_path / "s", train_config=train, quiet=True)
    assert not (tmp_path / "s").exists()
