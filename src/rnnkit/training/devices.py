"""Where training runs (``TrainConfig.device``): the CPU, a CUDA GPU or Apple's MPS.

:func:`rnnkit.training.loop.fit` moves the model and its tensors to the device once, before the
first epoch (the batches are then cut on the device: no copy per batch), trains there, and gives
the model back where it was passed (the CPU for every rnnkit job), so that everything after
training - saving the run, forecasting, scoring - reads it as it always does.

The names: ``None`` (the default) trains where the model's parameters are; ``"cpu"``;
``"cuda"`` (the current CUDA device) or ``"cuda:N"``; ``"mps"``; ``"auto"``, a CUDA GPU when
torch sees one, else the CPU. Asking for a device this machine lacks is a one-line
:class:`~rnnkit.errors.ConfigError`, never a silent fall-back to the CPU.

On a GPU the torch loop runs (torch's cuDNN kernels for LSTM, GRU and tanh/ReLU Elman layers; the
reference loop for the cells torch lacks): rnnkit's fused trainer is native CPU code. Small models
(rnnkit's usual hidden sizes of 16-128) train faster in the fused trainer on one CPU core than on a
GPU, whose per-step launch cost dominates at such sizes; a GPU pays off for wide layers and large
batches. That is why the default stays on the CPU and ``"auto"`` is asked for, not assumed.

Under ``torchrun`` with ``distributed=True`` a CUDA device means the rank's own GPU,
``cuda:LOCAL_RANK``, and the process group uses nccl (:mod:`.distributed`).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import Tensor, nn

from ..config import DEVICES_HELP, check_device_name
from ..errors import ConfigError

__all__ = ["DEVICES_HELP", "check_device_name", "resolve", "model_device", "move"]

def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for a model with neither)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def resolve(name: str | None, model: nn.Module, distributed: bool = False) -> torch.device:
    """The ``torch.device`` training runs on for the setting ``name`` (see the module docstring)."""
    check_device_name(name)
    if name is None:
        return model_device(model)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device='mps' was asked for, but this torch sees no Apple GPU (torch.backends.mps."
                              "is_available() is False); use --device cpu or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} was asked for, but this torch sees no CUDA GPU (torch.cuda.is_available() "
                          f"is False: no GPU, no driver, or a CPU-only torch build); use --device cpu or auto")
    count = torch.cuda.device_count()
    if distributed and name == "cuda":  # each rank its own GPU, as torchrun numbers them
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    index = int(name.split(":")[1]) if ":" in name else torch.cuda.current_device()
    if index >= count:
        raise ConfigError(f"device={name!r}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
                          f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    return torch.device("cuda", index)


def move(tensors: Sequence[Tensor | None] | None, device: torch.device):
    """``tensors`` (a sequence, possibly holding None) on ``device``, as a tuple; None stays None."""
    if tensors is None:
        return None
    return tuple(t if t is None else t.to(device) for t in tensors)
