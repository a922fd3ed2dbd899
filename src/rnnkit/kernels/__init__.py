"""Fast paths. A kernel is a choice of how to compute, never a second model: each takes the same
parameters and returns the same numbers as ``rnnkit.nn.cells`` (tests check outputs, states and every
gradient in float64 and float32).

- ``fused``: native whole-sequence forward/BPTT kernels for every cell whose CellSpec has a
  NativeSpec (Elman, Jordan, LSTM, GRU); ``stream``: their streaming step; ``trainer``: a
  whole-epoch fused trainer (whether it runs; ``epoch``: its task and its native epochs). None of
  them names a cell: they read its NativeSpec (the C side likewise reads its line of
  ``csrc/cells.h``).
- ``dispatch``: which backend runs (``backend="auto"``), and torch's own kernels as a backend.
- ``_native``: builds (once, cached), loads and describes the C library.
- ``transforms``: when the native kernels must not run (tracing, compiling, functorch, dispatch
  modes) and the differentiable backward that recomputes in torch operations.
"""

from ._native import NativeUnavailable, available, build, cache_dir

__all__ = ["available", "build", "cache_dir", "NativeUnavailable"]
