"""Fixtures of the kernel tests under torch's program transforms (test_tracing.py, test_functorch.py)."""

from __future__ import annotations

import pytest

from rnnkit.kernels import dispatch


@pytest.fixture
def fresh_warnings(monkeypatch):
    """The one-time fallback warnings as in a fresh process."""
    monkeypatch.setattr(dispatch, "_WARNED", set())


@pytest.fixture
def fresh_dynamo():
    """Each compile test starts from dynamo's empty cache (it keeps compiled frames per code
    object, and too many recompiles of ``Recurrent.forward`` would end in eager fallbacks)."""
    import torch._dynamo
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
