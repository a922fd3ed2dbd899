"""Checks made before training starts, so a model too large for the machine fails in one clear line.

* :func:`check_training_memory`: a rough estimate of what training a model needs (parameters,
  gradients, optimiser state, saved activations), refused above the machine's physical memory:
  ``--hidden 1000000000`` should not reach the allocator.

Elsewhere: each job refuses the settings it does not use in its ``tasks/X/config.py``
(``refuse_unsupported``); sizes handed to the native kernels are checked by
:func:`rnnkit.kernels.limits.check_c_int`; data files by :mod:`rnnkit.data.sources`.
"""

from __future__ import annotations

import math

from ..config import ModelConfig
from ..data.sources import gib, physical_memory
from ..errors import ConfigError
from ..nn.cells import cell_spec

__all__ = ["check_training_memory", "training_bytes"]


# --- memory ---------------------------------------------------------------------------------------

def _recurrent_params(model: ModelConfig, input_size: int) -> tuple[int, int]:
    """(parameters, output width) of the recurrent stack ``model`` describes on ``input_size`` inputs,
    counted from the cell's own parameter shapes (:meth:`~rnnkit.nn.cells.RecurrentCell.without_parameters`:
    nothing is allocated, so ``hidden_size=10**9`` is counted, not built)."""
    spec, kwargs = cell_spec(model.cell), model.cell_kwargs()
    D = 2 if model.bidirectional else 1
    total, width, cells = 0, input_size, {}
    for _ in range(model.num_layers):
        cell = cells.get(width)
        if cell is None:
            cell = cells[width] = spec.cell.without_parameters(width, model.hidden_size, **kwargs)
        total += D * sum(math.prod(shape) for shape in cell.parameter_shapes().values())
        width = D * cell.output_size
    return total, width


def training_bytes(model: ModelConfig, input_size: int, outputs: int, batch: int, steps: int,
                   embedding: tuple[int, int] | None = None, itemsize: int = 4) -> tuple[int, int]:
    """A rough ``(parameter bytes, activation bytes)`` of training this model: every parameter with
    its gradient, two optimiser moments and a copy of the best weights (x5), and per batch the
    saved gates and states of every step of every layer, forward and backward (x2).

    ``embedding`` is ``(vocab, width)`` of an input embedding; ``steps`` the sequence length.
    """
    vocab, dim = embedding or (0, 0)
    params, width = _recurrent_params(model, dim or input_size)
    params += width * outputs + outputs + vocab * dim
    H, G = model.hidden_size, cell_spec(model.cell).gate_blocks * model.hidden_size
    per_step = (G + 3 * H) * model.num_layers * (2 if model.bidirectional else 1) + input_size + outputs
    return 5 * params * itemsize, 2 * batch * steps * per_step * itemsize


def check_training_memory(model: ModelConfig, input_size: int, outputs: int, batch: int, steps: int,
                          embedding: tuple[int, int] | None = None, itemsize: int = 4,
                          batch_flag: str = "batch_size") -> None:
    """Refuse (:class:`ConfigError`) a model whose :func:`training_bytes` exceed physical memory,
    naming the settings that make it large and the estimate."""
    ram = physical_memory()
    if ram is None:
        return
    p, a = training_bytes(model, input_size, outputs, batch, steps, embedding, itemsize)
    if p + a <= ram:
        return
    sizes = f"hidden_size={model.hidden_size}, num_layers={model.num_layers}"
    if embedding and embedding[1]:
        sizes += f", embedding_dim={embedding[1]}"
    if p >= a:
        cause = f"its parameters alone need about {gib(p)} ({sizes})"
        fix = "use a smaller hidden size, fewer layers" + (" or a narrower embedding" if embedding else "")
    else:
        cause = (f"a batch of {batch} sequences of {steps} steps needs about {gib(a)} of activations "
                 f"({sizes}, {batch_flag}={batch})")
        fix = f"use a smaller model, a smaller {batch_flag} or shorter sequences"
    raise ConfigError(f"training this model needs about {gib(p + a)}, more than this machine's "
                      f"{gib(ram)} of memory: {cause}; {fix}")
