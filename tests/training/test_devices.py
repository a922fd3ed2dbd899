"""TrainConfig.device (rnnkit/training/devices.py): where training runs.

On every machine: the names are checked, a device the machine lacks is refused in one line (the
command line exits 2 and writes nothing), the CPU named trains as the default does (also in
tests/kernels/test_fused_settings.py, bit for bit), and under torchrun a CUDA device picks nccl and
the rank's own GPU. The tests marked ``cuda`` train every job on a GPU and compare with the CPU;
they are skipped without one.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import rnnkit
import rnnkit.training.distributed as distributed
from rnnkit import DataConfig, ModelConfig, TrainConfig
from rnnkit.errors import ConfigError
from rnnkit.training import devices
from rnnkit.training.loop import fit

HAS_CUDA = torch.cuda.is_available()
needs_cuda = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")]


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:-1", "CPU", "", 0, "cuda:0 "])
def test_a_name_outside_the_list_is_refused(name):
    with pytest.raises(ConfigError, match="device must be one of auto, cpu, cuda, cuda:N or mps"):
        TrainConfig(device=name)


@pytest.mark.parametrize("name", [None, "auto", "cpu", "cuda", "cuda:3", "mps"])
def test_every_listed_name_is_a_setting_on_any_machine(name):
    # whether the machine has it is checked when training starts: a run's settings load anywhere
    assert TrainConfig.from_dict(TrainConfig(device=name).to_dict()).device == name


def test_none_is_where_the_model_is_and_auto_is_a_gpu_when_present():
    model = nn.Linear(2, 1)
    assert devices.resolve(None, model) == torch.device("cpu")
    assert devices.resolve("cpu", model) == torch.device("cpu")
    assert devices.resolve("auto", model).type == ("cuda" if HAS_CUDA else "cpu")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_a_missing_gpu_is_refused_not_replaced_by_the_cpu(name):
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    model = nn.Linear(2, 1)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        fit(model, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), (x, y), None,
            TrainConfig(epochs=2, device=name), quiet=True)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # untouched


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
def test_the_command_line_refuses_a_missing_gpu_in_one_line(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "rnnkit", "fit", "builtin:nile", "--device", "cuda", "--out", str(out),
                        "--quiet", "--epochs", "2"], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "no CUDA GPU" in p.stderr
    assert not out.exists()


def test_the_history_and_the_run_record_the_device():
    run = rnnkit.fit_forecaster(DataConfig(source="builtin:nile", lookback=6, horizon=2),
                                ModelConfig(cell="gru", hidden_size=4), TrainConfig(epochs=2, device="cpu"),
                                quiet=True)
    assert run.history.device == "cpu" and run.meta["trainer"]["device"] == "cpu"


def test_under_torchrun_a_gpu_means_nccl_and_the_ranks_own_device(monkeypatch):
    """The process group's backend follows the device (no GPU needed: the calls are recorded)."""
    import torch.distributed as dist
    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, init_method: calls.append(backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(str(d)))
    for k, v in {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(k, v)
    assert distributed.process_group(torch.device("cuda", 1)) == (1, 2)
    assert distributed.process_group(torch.device("cpu")) == (1, 2)
    assert calls == ["cuda:1", "nccl", "gloo"]


def test_a_gpu_under_torchrun_is_the_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setenv("LOCAL_RANK", "3")
    model = nn.Linear(2, 1)
    assert devices.resolve("cuda", model, distributed=True) == torch.device("cuda", 3)
    assert devices.resolve("cuda", model) == torch.device("cuda", 0)
    assert devices.resolve("cuda:2", model, distributed=True) == torch.device("cuda", 2)  # named: kept
    with pytest.raises(ConfigError, match="has 4 CUDA GPUs"):
        devices.resolve("cuda:4", model)


# --- on a GPU -------------------------------------------------------------------------------------

def _forecast_run(device: str, engine: str):
    return rnnkit.fit_forecaster(DataConfig(source="builtin:nile", lookback=6, horizon=2),
                                 ModelConfig(cell="gru", hidden_size=8),
                                 TrainConfig(epochs=4, device=device, engine=engine, patience=0),
                                 quiet=True, dtype=torch.float64)


@pytest.mark.parametrize("cuda", [pytest.param(None, marks=needs_cuda)])
def test_a_forecaster_trained_on_a_gpu_matches_the_cpus_torch_loop(cuda):
    gpu, cpu = _forecast_run("cuda", "auto"), _forecast_run("cpu", "torch")
    assert gpu.history.engine == "torch" and "CPU" in gpu.history.engine_reason
    assert gpu.history.device.startswith("cuda") and gpu.meta["trainer"]["device"].startswith("cuda")
    for a, b in zip(gpu.model.parameters(), cpu.model.parameters()):
        assert a.device.type == "cpu"  # given back where it was built
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)  # float64: kernels' summation order only


@pytest.mark.parametrize("cuda", [pytest.param(None, marks=needs_cuda)])
def test_engine_fused_on_a_gpu_is_refused(cuda):
    with pytest.raises(ConfigError, match="engine='fused' runs on the CPU"):
        _forecast_run("cuda", "fused")


@pytest.mark.parametrize("cuda", [pytest.param(None, marks=needs_cuda)])
def test_classifier_and_char_model_train_on_a_gpu(cuda):
    from rnnkit.tasks.classify.config import SequenceDataConfig
    from rnnkit.tasks.classify.workflow import fit_classifier
    from rnnkit.tasks.text.config import TextConfig
    from rnnkit.tasks.text.workflow import fit_char_lm
    tc = TrainConfig(epochs=2, device="cuda")
    c = fit_classifier(SequenceDataConfig(source="builtin:ItalyPowerDemand_TRAIN"), ModelConfig(hidden_size=8), train_config=tc,
                       quiet=True)
    t = fit_char_lm(TextConfig(source="builtin:zen", seq_len=16, steps=20), ModelConfig(hidden_size=16),
                    TrainConfig(batch_size=4, device="cuda"), quiet=True)
    for run in (c, t):
        assert run.history.device.startswith("cuda")
        assert all(p.device.type == "cpu" for p in run.model.parameters())
