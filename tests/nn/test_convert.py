"""rnnkit.nn.convert: to_torch/from_torch round trips and the summary table."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import rnnkit
from rnnkit import ConfigError, from_torch, summary, to_torch

pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN"),
              pytest.mark.usefixtures("single_thread")]

F64 = torch.float64
LAYER_OPTS = dict(num_layers=2, bidirectional=True, batch_first=True, dtype=F64)
LAYERS = {  # id -> (rnnkit layer factory, torch.nn class)
    "rnn_relu": (lambda **kw: rnnkit.RNN(3, 5, nonlinearity="relu", **kw), nn.RNN),
    "lstm": (lambda **kw: rnnkit.LSTM(3, 5, **kw), nn.LSTM),
    "lstm_proj": (lambda **kw: rnnkit.LSTM(3, 5, proj_size=2, **kw), nn.LSTM),
    "gru": (lambda **kw: rnnkit.GRU(3, 5, **kw), nn.GRU),
    "recurrent_gru": (lambda **kw: rnnkit.Recurrent("gru", 3, 5, **kw), nn.GRU),
}
CELLS = {
    "elman_tanh": (lambda **kw: rnnkit.ElmanCell(3, 5, **kw), nn.RNNCell),
    "elman_relu": (lambda **kw: rnnkit.ElmanCell(3, 5, nonlinearity="relu", **kw), nn.RNNCell),
    "lstm": (lambda **kw: rnnkit.LSTMCell(3, 5, **kw), nn.LSTMCell),
    "gru": (lambda **kw: rnnkit.GRUCell(3, 5, bias=False, **kw), nn.GRUCell),
}


def assert_same_state_dict(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def _outputs(module, x):
    out = module(x)
    return [t for t in (out if isinstance(out, tuple) else (out,))
            for t in (t if isinstance(t, tuple) else (t,))]


@pytest.mark.parametrize("backend", ["torch", "reference"])
@pytest.mark.parametrize("kind", LAYERS)
def test_layer_round_trip(kind, backend):
    make, torch_cls = LAYERS[kind]
    torch.manual_seed(0)
    ours = make(backend=backend, **LAYER_OPTS).eval()
    twin = to_torch(ours)
    assert type(twin) is torch_cls and not twin.training
    assert (twin.num_layers, twin.bidirectional, twin.batch_first) == (2, True, True)
    assert_same_state_dict(ours, twin)
    back = from_torch(twin, backend=backend)
    assert type(back) is type(ours) or kind == "recurrent_gru"
    assert_same_state_dict(back, ours)
    x = torch.randn(4, 6, 3, dtype=F64)
    for a, b, c in zip(_outputs(ours, x), _outputs(twin, x), _outputs(back, x)):
        if backend == "torch":  # the very same kernel on the very same weights
            assert torch.equal(a, b) and torch.equal(c, b)
        else:
            assert_close(a, b, atol=1e-10, rtol=0)
            assert torch.equal(a, c)


@pytest.mark.parametrize("kind", CELLS)
def test_cell_round_trip(kind):
    make, torch_cls = CELLS[kind]
    torch.manual_seed(0)
    ours = make(dtype=F64)
    twin = to_torch(ours)
    assert type(twin) is torch_cls
    assert_same_state_dict(ours, twin)
    back = from_torch(twin)
    assert type(back) is type(ours)
    assert_same_state_dict(back, ours)
    x = torch.randn(4, 3, dtype=F64)
    y, state = ours(x)
    ref = twin(x)
    ref = ref if isinstance(ref, tuple) else (ref,)
    for a, b in zip(state, ref):
        assert_close(a, b, atol=1e-10, rtol=0)
    assert torch.equal(back(x)[0], y)


def test_from_torch_keeps_config_and_mode():
    twin = nn.RNN(2, 4, num_layers=3, nonlinearity="relu", dropout=0.25, dtype=F64).train()
    ours = from_torch(twin, backend="reference")
    assert (ours.num_layers, ours.nonlinearity, ours.dropout, ours.training) == (3, "relu", 0.25, True)
    assert ours.backend == "reference"
    assert_same_state_dict(ours, twin)


def test_no_torch_counterpart_raises_config_error():
    with pytest.raises(ConfigError, match="JordanCell"):
        to_torch(rnnkit.Jordan(3, 4))
    with pytest.raises(ConfigError, match="JordanCell"):
        to_torch(rnnkit.JordanCell(3, 4))
    with pytest.raises(ConfigError, match="LSTMCell"):
        to_torch(rnnkit.LSTMCell(3, 4, proj_size=2))  # torch.nn.LSTMCell has no projection
    with pytest.raises(ConfigError, match="Linear"):
        from_torch(nn.Linear(3, 4))
    with pytest.raises(ConfigError, match="Linear"):
        to_torch(nn.Linear(3, 4))


# --- summary ----------------------------------------------------------------------------------------
def expected_params(gates, input_size, hidden_size, num_layers, bidirectional):
    """torch's two-bias layout: gates * (H*I + H*H + 2H) per layer and direction."""
    D = 2 if bidirectional else 1
    total, layer_in = 0, input_size
    for _ in range(num_layers):
        total += D * gates * (hidden_size * layer_in + hidden_size * hidden_size + 2 * hidden_size)
        layer_in = D * hidden_size
    return total


def _row(text, name):
    rows = [line for line in text.splitlines() if line.startswith(name)]
    assert len(rows) == 1, f"no single row for {name!r} in\n{text}"
    return rows[0]


SUMMARY_LAYERS = {  # id -> (factory, gates, class name)
    "lstm": (lambda: rnnkit.LSTM(3, 5, num_layers=2, batch_first=True), 4, "LSTM"),
    "gru_bidirectional": (lambda: rnnkit.GRU(3, 5, num_layers=3, batch_first=True, bidirectional=True), 3, "GRU"),
    "rnn_bidirectional": (lambda: rnnkit.RNN(3, 40, num_layers=2, batch_first=True, bidirectional=True), 1, "RNN"),
}


@pytest.mark.parametrize("kind", SUMMARY_LAYERS)
def test_summary_of_a_layer(kind):
    make, gates, name = SUMMARY_LAYERS[kind]
    layer = make()
    total = expected_params(gates, 3, layer.hidden_size, layer.num_layers, layer.bidirectional)
    text = summary(layer, (2, 7, 3), print_fn=None)
    out_shape = str((2, 7, layer.num_directions * layer.hidden_size))
    row = _row(text, f"model ({name})")
    assert out_shape in row and row.endswith(f"{total:,}")
    assert f"Total params: {total:,}" in text


class _Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = rnnkit.LSTM(4, 8, num_layers=2, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])  # (B, T, H) -> (B, 2)


def test_summary_of_a_model_lists_each_layer_and_restores_mode():
    model = _Forecaster().train()
    printed = []
    text = summary(model, (5, 10, 4), print_fn=printed.append)
    assert printed == [text] and model.training
    rnn_params = expected_params(4, 4, 8, 2, False)
    assert rnn_params == 4 * (8 * 4 + 8 * 8 + 16) + 4 * (8 * 8 + 8 * 8 + 16)
    head_params = 8 * 2 + 2
    rnn_row, head_row = _row(text, "rnn (LSTM)"), _row(text, "head (Linear)")
    assert "(5, 10, 8)" in rnn_row and rnn_row.endswith(f"{rnn_params:,}")
    assert "(5, 2)" in head_row and head_row.endswith(f"{head_params:,}")
    assert f"Total params: {rnn_params + head_params:,}" in text
    assert f"Trainable params: {rnn_params + head_params:,}" in text
