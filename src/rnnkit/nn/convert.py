"""Moving models between rnnkit and torch.nn, and a Keras-style ``summary`` table."""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from ..errors import ConfigError
from .cells import ElmanCell, GRUCell, LSTMCell, RecurrentCell, spec_of
from .layers import GRU, LSTM, RNN, Recurrent

__all__ = ["to_torch", "from_torch", "summary"]


def _same_device_dtype(module: nn.Module) -> dict:
    p = next(module.parameters())
    return {"device": p.device, "dtype": p.dtype}


def to_torch(module: nn.Module) -> nn.Module:
    """Return the ``torch.nn`` twin of an rnnkit layer or cell, with an identical ``state_dict``.

    Supports :class:`RNN`/:class:`LSTM`/:class:`GRU` (and a :class:`Recurrent` of those cells) and
    :class:`ElmanCell`/:class:`LSTMCell`/:class:`GRUCell` (LSTM cells without projection).
    Jordan networks have no torch.nn counterpart and raise :class:`ConfigError`. Parametrizations
    (``weight_norm``, ``spectral_norm``, ``register_parametrization``) and pruning masks are carried
    over, so the twin computes the same function and keeps training the same way.
    """
    kw = _same_device_dtype(module)
    if isinstance(module, Recurrent):
        common = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                      dropout=module.dropout, bidirectional=module.bidirectional, **kw)
        args = (module.input_size, module.hidden_size)
        if module.cell_kwargs.get("peephole"):
            raise ConfigError("torch.nn has no peephole LSTM; this layer runs only in rnnkit")
        spec = spec_of(module.cell_type)  # the twin is declared in the cell's CellSpec
        if spec is None or spec.torch_layer is None:
            raise ConfigError(f"{module.cell_type.__name__} has no torch.nn counterpart")
        # the cell's other settings are torch's arguments too (nonlinearity, proj_size)
        extra = {k: v for k, v in module.cell_kwargs.items() if k != "peephole"}
        twin = spec.torch_layer(*args, **extra, **common)
    elif isinstance(module, RecurrentCell):
        args = (module.input_size, module.hidden_size, module.bias)
        if isinstance(module, LSTMCell) and module.peephole:
            raise ConfigError("torch.nn has no peephole LSTM cell; this cell runs only in rnnkit")
        if isinstance(module, LSTMCell) and not module.proj_size:
            twin = nn.LSTMCell(*args, **kw)
        elif isinstance(module, GRUCell):
            twin = nn.GRUCell(*args, **kw)
        elif isinstance(module, ElmanCell):
            twin = nn.RNNCell(*args, nonlinearity=module.nonlinearity, **kw)
        else:
            raise ConfigError(f"{type(module).__name__} has no torch.nn counterpart")
    else:
        raise ConfigError(f"to_torch expects an rnnkit layer or cell, got {type(module).__name__}")
    _copy_reparametrizations(module, twin)
    twin.load_state_dict(module.state_dict())
    twin.train(module.training)
    return twin


def _copy_reparametrizations(module: nn.Module, twin: nn.Module) -> None:
    """Give ``twin`` the parametrizations and pruning masks of ``module`` (their tensors then come
    with ``load_state_dict``), so both have the same ``state_dict`` keys and compute the same."""
    if parametrize.is_parametrized(module):
        for name, plist in module.parametrizations.items():
            for p in plist:
                parametrize.register_parametrization(twin, name, copy.deepcopy(p), unsafe=True)
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, prune.BasePruningMethod):
            name = hook._tensor_name
            prune.custom_from_mask(twin, name, getattr(module, name + "_mask"))


def from_torch(module: nn.Module, backend: str = "auto") -> nn.Module:
    """Return the rnnkit twin of a ``torch.nn`` RNN/LSTM/GRU or RNNCell/LSTMCell/GRUCell
    (parametrizations and pruning masks included, as :func:`to_torch`)."""
    kw = _same_device_dtype(module)
    if isinstance(module, nn.RNNBase):
        common = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                      dropout=float(module.dropout), bidirectional=module.bidirectional,
                      backend=backend, **kw)
        args = (module.input_size, module.hidden_size)
        if isinstance(module, nn.LSTM):
            twin = LSTM(*args, proj_size=module.proj_size, **common)
        elif isinstance(module, nn.GRU):
            twin = GRU(*args, **common)
        elif isinstance(module, nn.RNN):
            twin = RNN(*args, nonlinearity=module.nonlinearity, **common)
        else:
            raise ConfigError(f"unsupported torch module {type(module).__name__}")
    elif isinstance(module, nn.RNNCellBase):
        args = (module.input_size, module.hidden_size, module.bias)
        if isinstance(module, nn.LSTMCell):
            twin = LSTMCell(*args, **kw)
        elif isinstance(module, nn.GRUCell):
            twin = GRUCell(*args, **kw)
        else:
            twin = ElmanCell(*args, nonlinearity=module.nonlinearity, **kw)
    else:
        raise ConfigError(f"from_torch expects a torch.nn RNN/LSTM/GRU or cell, got {type(module).__name__}")
    _copy_reparametrizations(module, twin)
    twin.load_state_dict(module.state_dict())
    twin.train(module.training)
    return twin


def _shape_of(out) -> str:
    if isinstance(out, torch.Tensor):
        return str(tuple(out.shape))
    if isinstance(out, (tuple, list)) and out:
        return _shape_of(out[0])
    return "?"


def summary(model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype | None = None,
            print_fn=print) -> str:
    """Print (and return) a Keras-style table: layer, output shape, parameters, totals.

    ``input_shape`` includes the batch dimension, e.g. ``(1, 25, 100)``. The model is run once on
    zeros without gradients to record each layer's output shape; its mode is restored afterwards.
    """
    p = next(model.parameters(), None)
    dtype = dtype or (p.dtype if p is not None else torch.get_default_dtype())
    device = p.device if p is not None else "cpu"
    rows: list[tuple[str, str, int]] = []
    hooks = []
    for name, mod in model.named_modules():
        if name == "" and list(model.children()):
            continue
        if not list(mod.children()):  # leaves; a Recurrent layer is one (its cells are not submodules)
            n_params = sum(q.numel() for q in mod.parameters())

            def hook(m, inp, out, name=name, n_params=n_params):
                rows.append((f"{name or 'model'} ({type(m).__name__})", _shape_of(out), n_params))
            hooks.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(*input_shape, dtype=dtype, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    total = sum(q.numel() for q in model.parameters())
    trainable = sum(q.numel() for q in model.parameters() if q.requires_grad)
    w1 = max([len("Layer (type)")] + [len(r[0]) for r in rows]) + 2
    w2 = max([len("Output shape")] + [len(r[1]) for r in rows]) + 2
    line = "-" * (w1 + w2 + 12)
    out = [line, f"{'Layer (type)':<{w1}}{'Output shape':<{w2}}{'Param #':>10}", "=" * len(line)]
    out += [f"{a:<{w1}}{b:<{w2}}{c:>10,}" for a, b, c in rows]
    out += ["=" * len(line), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}", line]
    text = "\n".join(out)
    if print_fn is not None:
        print_fn(text)
    return text
