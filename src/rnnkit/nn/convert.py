"""Moving models between rnnkit and torch.nn, and a Keras-style ``summary`` table."""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from ..errors import ConfigError
from .cells import RecurrentCell, cell_specs, spec_of
from .dropin import DROP_INS
from .layers import Recurrent

__all__ = ["to_torch", "from_torch", "summary"]


def _same_device_dtype(module: nn.Module) -> dict:
    p = next(module.parameters())
    return {"device": p.device, "dtype": p.dtype}


def _twin_spec(module: nn.Module, kind: str):
    """The CellSpec whose torch.nn twin (``kind``: ``"torch_layer"`` or ``"torch_cell"``) ``module`` is."""
    return next((s for s in cell_specs() if getattr(s, kind) is not None and isinstance(module, getattr(s, kind))),
                None)


def _no_twin(cell: RecurrentCell, has_twin: bool) -> ConfigError:
    return ConfigError(f"{type(cell).__name__} has no torch.nn counterpart"
                       + (f" with these settings ({cell!r})" if has_twin else "") + "; it runs only in rnnkit")


def to_torch(module: nn.Module) -> nn.Module:
    """Return the ``torch.nn`` twin of an rnnkit layer or cell, with an identical ``state_dict``.

    Supports :class:`RNN`/:class:`LSTM`/:class:`GRU` (and a :class:`Recurrent` of those cells) and
    :class:`ElmanCell`/:class:`LSTMCell`/:class:`GRUCell` (LSTM cells without projection): every
    cell whose :class:`~rnnkit.nn.cells.CellSpec` names a torch.nn twin, with settings that twin has
    (:meth:`~rnnkit.nn.cells.RecurrentCell.torch_kwargs`). Jordan networks, minGRU and peephole
    LSTMs have no torch.nn counterpart and raise :class:`ConfigError`. Parametrizations
    (``weight_norm``, ``spectral_norm``, ``register_parametrization``) and pruning masks are carried
    over, so the twin computes the same function and keeps training the same way.
    """
    kw = _same_device_dtype(module)
    if isinstance(module, Recurrent):
        cell, layer = module.cells[0], True
        args = (module.input_size, module.hidden_size)
        common = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                      dropout=module.dropout, bidirectional=module.bidirectional, **kw)
    elif isinstance(module, RecurrentCell):
        cell, layer = module, False
        args, common = (module.input_size, module.hidden_size, module.bias), kw
    else:
        raise ConfigError(f"to_torch expects an rnnkit layer or cell, got {type(module).__name__}")
    spec = spec_of(type(cell))  # the twins are declared in the cell's CellSpec
    twin_type = None if spec is None else spec.torch_layer if layer else spec.torch_cell
    settings = cell.torch_kwargs(layer) if twin_type is not None else None
    if settings is None:
        raise _no_twin(cell, twin_type is not None)
    twin = twin_type(*args, **settings, **common)
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
    (parametrizations and pruning masks included, as :func:`to_torch`): the drop-in layer
    (:mod:`rnnkit.nn.dropin`) or the cell whose CellSpec names ``module``'s class as its twin."""
    kw = _same_device_dtype(module)
    layer = isinstance(module, nn.RNNBase)
    spec = _twin_spec(module, "torch_layer" if layer else "torch_cell")
    if spec is None:
        raise ConfigError(f"from_torch expects a torch.nn RNN/LSTM/GRU or cell, got {type(module).__name__}")
    settings = spec.cell.kwargs_from_torch(module)
    if layer:
        common = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                      dropout=float(module.dropout), bidirectional=module.bidirectional,
                      backend=backend, **kw)
        drop_in = DROP_INS.get(spec.name)
        if drop_in is not None:
            twin = drop_in(module.input_size, module.hidden_size, **settings, **common)
        else:
            twin = Recurrent(spec.name, module.input_size, module.hidden_size, **settings, **common)
    else:
        twin = spec.cell(module.input_size, module.hidden_size, module.bias, **settings, **kw)
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
