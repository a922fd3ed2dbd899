"""Keras-style weight initialisation for rnnkit's cells and layers.

torch.nn initialises every recurrent weight and bias uniformly in ``[-1/sqrt(H), 1/sqrt(H)]``
(rnnkit's default, ``init="torch"``). Keras uses Glorot-uniform input weights, orthogonal
recurrent weights and zero biases with a forget-gate bias of 1; ``init="keras"`` or
:func:`keras_init_` gives rnnkit's cells the same start.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = ["keras_init_", "keras_init_weights"]


def keras_init_(module: nn.Module) -> nn.Module:
    """Re-initialise a cell or a recurrent layer in place the way Keras does, and return it.

    Input weights: Glorot (Xavier) uniform per gate block; recurrent weights: orthogonal per gate
    block; biases: zero, except the LSTM forget-gate bias, which sums to 1 over ``b_ih + b_hh``
    (Keras' ``unit_forget_bias``). This often trains small models faster than torch's default
    uniform initialisation (the hidden-state tutorial's SimpleRNN reaches a lower validation loss in
    the same budget). Accepts a :class:`~rnnkit.nn.cells.RecurrentCell` or anything with ``cells_and_weights()``
    (every :class:`rnnkit.nn.layers.Recurrent`).
    """
    pairs = module.cells_and_weights() if hasattr(module, "cells_and_weights") else [(module, module.weights())]
    for cell, weights in pairs:
        cell.init_weights_(weights, "keras")  # the cell looks up its gate blocks in its CellSpec
    return module


def keras_init_weights(cell: nn.Module, weights: Sequence[Tensor | None], blocks: int,
                       forget_bias: bool) -> None:
    """Keras-style init of one cell's ``weights`` (see :func:`keras_init_`): ``blocks`` gate blocks
    stacked in ``weight_ih``/``weight_hh`` and, with ``forget_bias``, a forget gate in the second
    block, both from the cell's :class:`~rnnkit.nn.cells.CellSpec` (which the caller, the cell,
    looks up: this module imports no cell, since the cells import it)."""
    with torch.no_grad():
        for name, p in zip(cell.weight_names, weights):
            if p is None:
                continue
            if p.dim() == 1:  # biases and element-wise weights (peepholes: a plain LSTM at first) start at 0
                p.zero_()
                if forget_bias and name.startswith("bias"):
                    p[cell.hidden_size:2 * cell.hidden_size] = 0.5  # b_if + b_hf = 1
                continue
            rows = p.shape[0] // blocks if name in ("weight_ih", "weight_hh") else p.shape[0]
            for k in range(p.shape[0] // rows):
                block = p[k * rows:(k + 1) * rows]
                if name in ("weight_hh", "weight_yh"):
                    nn.init.orthogonal_(block)
                else:
                    nn.init.xavier_uniform_(block)
