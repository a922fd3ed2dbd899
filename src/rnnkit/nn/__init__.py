"""The math: cells (one time step), the generic time loop (layers), initialisation and conversion
to and from torch.nn. Imports nothing of rnnkit above it except :mod:`rnnkit.errors` (and the
layer's choice of kernel, :mod:`rnnkit.kernels`; see tests/test_architecture.py)."""
