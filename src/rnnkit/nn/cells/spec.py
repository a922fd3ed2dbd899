"""What a cell declares about itself: its :class:`CellSpec` (name, gate blocks, torch.nn twins,
the ``ModelConfig`` fields it takes) and, where the native kernels have its math, a
:class:`NativeSpec`. Each cell file ends with ``register_cell(CellSpec(...))``
(:mod:`rnnkit.nn.cells.base` keeps the registry); the rest of rnnkit reads these instead of
switching on cell types."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Optional, Sequence

__all__ = ["CellSpec", "NativeSpec", "NATIVE_SLOTS"]

#: the kernels' order of a layer's weights (csrc/layer_impl.h): input, recurrent, biases, output layer
NATIVE_SLOTS = ("w_ih", "w_hh", "b_ih", "b_hh", "w_hy", "b_y")


@dataclass(frozen=True)
class NativeSpec:
    """How rnnkit's native kernels (``rnnkit/kernels/csrc``) run a cell: its line of their cell
    table (``csrc/cells.h``: code, gate blocks, traits) seen from Python, and the sizes up to which
    ``backend="auto"`` and ``engine="auto"`` choose them. A test checks it against the C table.

    Args:
        code: the cell's code in the table (the number the kernels dispatch on).
        weights: the cell's weight names in the kernels' order (:data:`NATIVE_SLOTS`: input weights,
            recurrent weights, input bias, recurrent bias, output-layer weights and bias), None
            where the cell has no such weight.
        trainer_limits: ``(batch x hidden, million multiply-adds of one batch's forward pass)`` up
            to which ``engine="auto"`` picks the fused trainer over the torch loop (measured by
            ``make bench``'s engine suite; see :func:`rnnkit.kernels.trainer.pays_off`).
        layer_max_bh: batch x hidden up to which ``backend="auto"`` picks the fused layer kernels
            over torch's own (measured by ``make bench``'s grid); None: always, where torch has no
            kernel for the cell (the alternative is the Python loop).
        cell_state: the state is ``(h, c)``, ``c`` of width ``hidden_size`` (``RK_CELL_STATE``).
        hidden_apart: the recurrent part ``W_hh s + b_hh`` enters the step on its own instead of
            summed into the gates, so ``b_hh`` is not folded into the input part
            (``RK_HIDDEN_APART``: the GRU's reset gate multiplies it).
        unsupported: the cell's settings the kernels lack: a cell with any of these attributes set
            (true, non-zero) runs the torch or reference backend (the LSTM's ``proj_size``,
            ``peephole``).

    An output layer (``RK_OUTPUT_LAYER``, Jordan) is a cell whose ``weights`` name a ``w_hy``.
    """

    code: int
    weights: tuple[Optional[str], ...]
    trainer_limits: tuple[int, float]
    layer_max_bh: Optional[int] = None
    cell_state: bool = False
    hidden_apart: bool = False
    unsupported: tuple[str, ...] = ()

    @property
    def output_layer(self) -> bool:
        return self.weights[4] is not None

    @property
    def folds_biases(self) -> bool:
        """Whether both biases join the input part (cells with a ``b_hh`` not kept apart)."""
        return self.weights[3] is not None and not self.hidden_apart

    @property
    def traits(self) -> int:
        """The traits as csrc/cells.h's bits: RK_CELL_STATE 1, RK_HIDDEN_APART 2, RK_OUTPUT_LAYER 4."""
        return int(self.cell_state) | 2 * int(self.hidden_apart) | 4 * int(self.output_layer)

    def bind(self, cell_type: type) -> None:
        """Resolve :attr:`weights` against ``cell_type.weight_names`` for :meth:`arrange`
        (:func:`~rnnkit.nn.cells.register_cell` calls this; the names were checked there)."""
        names = list(cell_type.weight_names)
        index = [len(names) if n is None else names.index(n) for n in self.weights]
        object.__setattr__(self, "_take", operator.itemgetter(*index))  # frozen: set once, here

    def arrange(self, weights: Sequence) -> tuple:
        """One layer's ``weights`` (in the cell's ``weight_names`` order) in the kernels' order
        (:data:`NATIVE_SLOTS`), None for a slot the cell lacks. On every native call: one
        ``itemgetter``, no Python loop."""
        return self._take((*weights, None))


@dataclass(frozen=True)
class CellSpec:
    """What rnnkit needs to know about one cell class, declared once at the end of its file.

    Args:
        name: the cell's name in ``Recurrent(name, ...)``, ``ModelConfig(cell=name)`` and
            ``rnnkit fit --cell name`` (lower case).
        cell: the :class:`RecurrentCell` subclass.
        gate_blocks: gate blocks stacked in ``weight_ih``/``weight_hh`` (LSTM 4, GRU 3, Elman and
            Jordan 1); Keras-style init initialises each block on its own.
        torch_layer: the ``torch.nn`` layer with the same parameters (``nn.GRU``), or None.
        torch_cell: the ``torch.nn`` cell with the same parameters (``nn.GRUCell``), or None.
        native: how the native kernels run the cell (:class:`NativeSpec`), or None: the fused
            backend and trainer then refuse (or, on ``"auto"``, skip) it.
        keras_forget_bias: Keras-style init sets a forget-gate bias of 1 (the LSTM's
            ``unit_forget_bias``).
        config_kwargs: the :class:`rnnkit.ModelConfig` fields passed to the cell as keyword
            arguments; every other cell-specific field must keep its default for this cell.
        aliases: other names :func:`cell_spec` accepts (``"rnn"`` for Elman); not offered as choices.
    """

    name: str
    cell: type
    gate_blocks: int = 1
    torch_layer: Optional[type] = None
    torch_cell: Optional[type] = None
    native: Optional[NativeSpec] = None
    keras_forget_bias: bool = False
    config_kwargs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
