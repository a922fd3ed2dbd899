"""rnnkit's recurrent cells, one file each (the equations in each cell's docstring), and the
contract they share (:mod:`rnnkit.nn.cells.base`)."""

from .base import RecurrentCell, State, check_bool, check_size
from .elman import ElmanCell
from .gru import GRUCell
from .jordan import JordanCell
from .lstm import LSTMCell

__all__ = ["RecurrentCell", "State", "ElmanCell", "JordanCell", "LSTMCell", "GRUCell", "check_size", "check_bool"]
