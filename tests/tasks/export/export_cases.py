"""Runs the export tests compare graphs against: tiny forecasters with random weights, their contexts."""

from __future__ import annotations

import numpy as np
import torch

from rnnkit import DataConfig, ModelConfig, SearchConfig, TrainConfig, fit_forecaster


def session(path):
    """An onnxruntime session of the file at ``path``, one intra-op thread, the CPU provider."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def props(path) -> dict:
    """The file's metadata_props as a dict."""
    import onnx
    return {e.key: e.value for e in onnx.load(str(path)).metadata_props}


def make_run(dtype=torch.float64, ensemble=1, lookbacks=(), source="builtin:elnino", seed=0, **settings):
    """A run trained for one epoch, then given random weights: a zero-initialised head (or one that fell
    back to the naive forecast) would hide the network from the comparison."""
    model = {k: settings.pop(k) for k in list(settings) if k in ModelConfig.__dataclass_fields__}
    data = DataConfig(source=source, lookback=None if lookbacks else settings.pop("lookback", 24),
                      horizon=settings.pop("horizon", 6), **settings)
    run = fit_forecaster(data, ModelConfig(**{"hidden_size": 4, **model}), TrainConfig(epochs=1), quiet=True,
                         evaluate=False, dtype=dtype, search=SearchConfig(ensemble=ensemble,
                                                                          ensemble_lookbacks=lookbacks))
    scramble(run.model, seed)
    return run


def scramble(model, seed: int = 0) -> None:
    """Random weights (0.3 x standard normal, from ``seed``), in place: a zero-initialised head (or one
    that fell back to the naive forecast) would hide the network, and its inputs, from a comparison."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def contexts(run, length=None, every=9):
    """Raw context windows of the run's data, ``(W, L, F)``."""
    values = run.load_data().values
    L = length or run.data_config.lookback
    return np.stack([values[i:i + L] for i in range(0, len(values) - L, every)])


def rel_diff(a, b) -> float:
    """``max |a - b|`` relative to ``max |b|`` (arrays or tensors)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def stepped(graph_session, model, x):
    """A step graph and ``model.step`` side by side over ``x (B, T, F)``, from zero states, each
    graph's ``state_out_k`` fed back as ``state_in_k``: per step, ``(the graph's outputs, model.step's
    y, its state tensors)``."""
    from rnnkit.tasks.export.graphs import flat_states
    state = model.init_state(x.shape[0])
    flat, out = [t.numpy() for t in flat_states(state)], []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)
        got = graph_session.run(None, {"x_t": x[:, t].numpy(), **{f"state_in_{i}": a for i, a in enumerate(flat)}})
        flat = got[1:]
        out.append((got, y, flat_states(state)))
    return out
