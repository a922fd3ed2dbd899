"""Shared pytest fixtures for rnnkit's tests.

``device`` runs a test on the CPU and, where one is present, on CUDA (the CUDA case is marked
``cuda`` and skipped without a GPU, so the suite passes on CPU-only machines).
"""

from __future__ import annotations

import pytest
import torch

CUDA = pytest.param(
    "cuda",
    marks=[pytest.mark.cuda,
           pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")],
)


@pytest.fixture(params=["cpu", CUDA])
def device(request) -> torch.device:
    """A torch device: ``cpu`` always, ``cuda`` only where available."""
    return torch.device(request.param)


@pytest.fixture
def single_thread():
    """Run a test on one intra-op thread, then restore the previous setting.

    The recurrent tests use tiny tensors. On a loaded 2-core machine torch's multithreaded LSTM
    kernel (oneDNN/OpenMP) spends ~50x longer spinning between threads than computing; one thread
    keeps those tests fast without changing what they compute.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
