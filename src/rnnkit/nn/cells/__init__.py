"""rnnkit's recurrent cells, one file each (the equations in each cell's docstring), and the
contract they share (:mod:`rnnkit.nn.cells.base`). Each cell file registers its
:class:`CellSpec` when imported; the import order below is the registry's order (the order
``--cell`` lists its choices in)."""

from .base import (CellSpec, NativeSpec, RecurrentCell, State, cell_names, cell_spec, cell_specs, check_bool,
                   check_size, register_cell, spec_of)
from .lstm import LSTMCell
from .gru import GRUCell
from .elman import ElmanCell
from .jordan import JordanCell
from .mingru import MinGRUCell

__all__ = ["RecurrentCell", "State", "ElmanCell", "JordanCell", "LSTMCell", "GRUCell", "MinGRUCell", "check_size",
           "check_bool", "CellSpec", "NativeSpec", "register_cell", "cell_spec", "cell_specs", "cell_names", "spec_of"]
