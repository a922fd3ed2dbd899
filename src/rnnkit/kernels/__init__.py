"""Fast paths. A kernel is a choice of how to compute, never a second model: each takes the same
parameters and returns the same numbers as ``rnnkit.nn.cells`` (tests check outputs, states and every
gradient in float64 and float32).

- ``fused``: native whole-sequence forward/BPTT kernels for all four cells, a streaming step,
  and a whole-epoch fused trainer (``rnnkit.kernels.trainer``).
- ``_native``: builds (once, cached), loads and describes the C library.
- ``transforms``: when the native kernels must not run (tracing, compiling, functorch, dispatch
  modes) and the differentiable backward that recomputes in torch operations.
"""

from ._native import NativeUnavailable, available, build, cache_dir

__all__ = ["available", "build", "cache_dir", "NativeUnavailable"]
