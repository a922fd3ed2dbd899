"""torch.nn's recurrent layers mirrored: :class:`RNN`, :class:`LSTM` and :class:`GRU` take the
same arguments and defaults, return the same shapes and share ``state_dict``s with
``torch.nn.RNN/LSTM/GRU`` key for key, plus ``lengths=``, ``backend=`` and (LSTM) peepholes;
:class:`Jordan` has the same interface for the Jordan cell, which torch.nn lacks. Each is a
:class:`~rnnkit.nn.layers.Recurrent` of one cell, nothing more.

They are not subclasses of ``torch.nn.RNNBase`` (so ``isinstance(m, nn.LSTM)`` is False),
deliberately: torch's tools that act on RNNs look classes up by *exact* type
(``torch.ao.quantization``'s mappings, Opacus' per-sample-gradient layers), so a subclass would
not be handled by them either, while inheriting RNNBase's private bookkeeping (``_flat_weights``
kept in sync in ``__setattr__``, ``_apply``, cuDNN weight flattening) and claiming torch's
semantics for layers that add ``lengths=``, backends, peepholes and Jordan cells. Instead the
layers carry the surface user code reads (see :class:`~rnnkit.nn.layers.Recurrent`), warn when
``torch.ao.quantization`` would leave them unquantized, refuse ``torch.jit.script`` clearly, and
:func:`rnnkit.to_torch` gives the ``torch.nn`` twin (identical ``state_dict``) for tools that need
torch's own class.
"""

from __future__ import annotations

from ..errors import ConfigError
from .layers import Recurrent

__all__ = ["RNN", "LSTM", "GRU", "Jordan", "DROP_INS"]


def _refuse_unsupported(kind: str, kwargs: dict) -> None:
    """torch.nn.RNN/GRU answer ``proj_size=`` with a ValueError; any other unknown keyword is a TypeError."""
    if "proj_size" in kwargs:
        raise ConfigError(f"proj_size argument is only supported for LSTM, not {kind}")
    if kwargs:
        raise TypeError(f"{kind}.__init__() got an unexpected keyword argument {next(iter(kwargs))!r}")


class RNN(Recurrent):
    """Elman RNN, a drop-in replacement for ``torch.nn.RNN`` (same arguments, defaults, shapes and
    ``state_dict``), plus ``lengths=`` and ``backend=``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, backend: str = "auto", init: str = "torch",
                 device=None, dtype=None, **unsupported) -> None:
        _refuse_unsupported("RNN", unsupported)
        super().__init__("elman", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend, init, device, dtype, nonlinearity=nonlinearity)
        self.nonlinearity = nonlinearity


class LSTM(Recurrent):
    """LSTM, a drop-in replacement for ``torch.nn.LSTM`` (same arguments, defaults, shapes and
    ``state_dict``, ``proj_size`` included), plus ``lengths=``, ``backend=`` and ``peephole=``
    (peephole connections, see :class:`~rnnkit.nn.cells.LSTMCell`; no torch.nn twin)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, backend: str = "auto", init: str = "torch", device=None, dtype=None,
                 peephole: bool = False) -> None:
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend, init, device, dtype, proj_size=proj_size,
                         **({"peephole": True} if peephole else {}))
        self.proj_size = proj_size


class GRU(Recurrent):
    """GRU, a drop-in replacement for ``torch.nn.GRU`` (same arguments, defaults, shapes and
    ``state_dict``), plus ``lengths=`` and ``backend=``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 backend: str = "auto", init: str = "torch", device=None, dtype=None, **unsupported) -> None:
        _refuse_unsupported("GRU", unsupported)
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend, init, device, dtype)


class Jordan(Recurrent):
    """Jordan network layer (state = previous output), with the same interface as :class:`RNN`.

    ``output_size`` (default ``hidden_size``) is the width of ``y_t``, which is both the layer's
    output and its recurrent state; ``output_activation`` is applied to it. torch.nn has no twin.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 output_size: int | None = None, nonlinearity: str = "tanh",
                 output_activation: str = "identity", backend: str = "auto", init: str = "torch",
                 device=None, dtype=None) -> None:
        super().__init__("jordan", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend, init, device, dtype, output_size=output_size,
                         nonlinearity=nonlinearity, output_activation=output_activation)


#: the drop-in layer of each cell that has one, by cell name (:func:`rnnkit.from_torch` builds these)
DROP_INS: dict[str, type[Recurrent]] = {"elman": RNN, "lstm": LSTM, "gru": GRU, "jordan": Jordan}
