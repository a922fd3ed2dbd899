"""rnnkit: recurrent neural networks for sequences (Elman, Jordan, LSTM, GRU) on PyTorch."""

from .cells import ElmanCell, GRUCell, JordanCell, LSTMCell, RecurrentCell, keras_init_
from .convert import from_torch, summary, to_torch
from .errors import ConfigError, DataError, RnnkitError, RunError, ShapeError, TrainingError
from .layers import GRU, LSTM, RNN, Jordan, Recurrent

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "RecurrentCell", "ElmanCell", "JordanCell", "LSTMCell", "GRUCell", "keras_init_",
    "Recurrent", "RNN", "LSTM", "GRU", "Jordan", "to_torch", "from_torch", "summary",
    "RnnkitError", "DataError", "ConfigError", "ShapeError", "RunError", "TrainingError",
]
