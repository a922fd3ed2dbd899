"""Running a trained forecaster over many windows: evaluation mode, no gradients, a pass at a time.

A recurrent layer keeps every step's state for the windows of one pass, so scoring a panel's
validation windows (one a series) in a single pass would hold series x lookback x hidden numbers at
once; :func:`outputs` runs :data:`OUTPUT_BATCH` windows a pass instead. A model that forecasts by
sampled paths (:func:`sampled`) runs in one call: it chunks its windows itself, on one seeded stream.
This module imports no other part of rnnkit, so that the model's modules can use it.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["OUTPUT_BATCH", "evaluating", "outputs", "sampled"]

#: windows per forward pass where a whole set of windows is scored: a pass holds windows x lookback x
#: hidden activations (at lookback 96, hidden 32, about 13 MB for 1,024 windows), so a larger one made
#: the panel bench's peak follow the lookback (10,000 series at lookback 96: +4 KB a series at 4,096)
OUTPUT_BATCH = 1024


@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """``model`` in evaluation mode without gradients, its mode restored afterwards."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def sampled(model) -> bool:
    """Whether ``model`` (a forecaster or an ensemble) forecasts by sampled paths: a recursive model
    with a distribution head."""
    config = getattr(model, "config", None)
    return bool(getattr(model, "recursive", False)) and getattr(config, "distribution", "none") != "none"


def outputs(model: torch.nn.Module, x: torch.Tensor, batch_size: int = OUTPUT_BATCH) -> torch.Tensor:
    """``model(x)`` under :func:`evaluating`, ``batch_size`` windows a pass (a sampled model: one call)."""
    with evaluating(model):
        if sampled(model) or len(x) <= batch_size:
            return model(x)
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
