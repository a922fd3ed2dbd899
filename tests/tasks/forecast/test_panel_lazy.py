"""A panel's lazily indexed windows (:mod:`rnnkit.tasks.forecast.panel_windows`) against the windows
prepare_panel materialised before it indexed them lazily (that code is kept below as the reference:
each series' windows made at once, encoded, pooled), for plain panels and panels with past and
future covariates, statics, calendar features, recursive models, strides, differencing and no
normalisation; and training on them against training on the materialised tensors, on both engines,
with proportional and balanced sampling, in chunks that split epochs between batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit.tasks.forecast.fitting import forecast_fused_task, forecast_loss, new_member
from rnnkit.tasks.forecast.future import with_future_columns
from rnnkit.tasks.forecast.known import model_input
from rnnkit.tasks.forecast.panel import prepare_panel, series_known_windows, static_values
from rnnkit.tasks.forecast.panel_run import load_panel
from rnnkit.tasks.forecast.predict import windows_for
from rnnkit.training.loop import fit
from test_panel import PANEL, sines

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=6)
TC = rnnkit.TrainConfig(epochs=4, lr=0.01, batch_size=16, patience=0)
DC = rnnkit.DataConfig(id_col="shop", time_col="date", targets=("sales",), lookback=12, horizon=4)
RICH = DC.replace(covariates=("temp",), future_covariates=("promo",), static_covariates=("region",), calendar="sincos")


def rich_table() -> pd.DataFrame:
    """:func:`sines` with a past covariate (temp), a future one (promo) and a static one (region)."""
    table = sines(**PANEL)
    rng = np.random.default_rng(1)
    table["temp"] = rng.normal(20, 5, len(table))
    table["promo"] = (np.arange(len(table)) % 5 == 0).astype(float)
    table["region"] = table["shop"].map({"s0": "N", "s1": "S", "s2": "N", "s3": "E", "s4": "S"})
    return table


CASES = {  # name: (DataConfig, ModelConfig)
    "plain": (DC, SMALL),
    "covariates, statics, calendar": (RICH, SMALL),
    "recursive, calendar": (DC.replace(calendar="onehot", static_covariates=("region",)),
                            SMALL.replace(strategy="recursive")),
    "stride 3, differenced": (DC.replace(stride=3, difference="first"), SMALL),
    "no normalisation": (DC.replace(normalise="none", skip="none", static_covariates=("region",)), SMALL),
}


def prepared(name: str, dtype=torch.float32):
    dc, mc = CASES[name]
    panel = load_panel(dc, rich_table())
    return prepare_panel(dc, mc, TC, panel, dtype=dtype), panel


def materialised(prep, panel, part: str):
    """The windows of ``part`` as prepare_panel pooled them before they were indexed lazily: each
    series' windows at once (windows_for, series_known_windows), encoded, cast, concatenated."""
    dc = prep.data_config
    C, L, H = len(dc.targets), dc.lookback, dc.horizon
    np_dtype = torch.empty(0, dtype=prep.dtype).numpy().dtype
    xs, ys = [], []
    for k, s in enumerate(panel.series):
        s = with_future_columns(s, dc.future_covariates)
        scaler, (train_end, val_end) = prep.scalers[k], prep.splits[k]
        z = scaler.transform(s.values)
        lo, hi, stride = (0, train_end, dc.stride) if part == "train" else (train_end, val_end, 1)
        if not (hi - max(lo - L, 0) >= L + H and hi > lo):
            continue
        X, Y, starts = windows_for(z, C, L, H, stride, lo, hi)
        row = prep.statics.features(static_values(panel, k), s.source, panel.ids[k])
        known = series_known_windows(s, dc, scaler, row, starts, H) if prep.known_width else None
        X, Y = prep.norm.encode(X, Y) if prep.norm.active else (X, Y)
        xs.append(model_input(X, known, prep.n_values, prep.recursive).astype(np_dtype, copy=False))
        ys.append(np.asarray(Y).astype(np_dtype, copy=False))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


# ---------------------------------------------------------------- the windows


@pytest.mark.parametrize("name", list(CASES))
def test_gathered_windows_equal_the_materialised_windows_exactly(name):
    prep, panel = prepared(name)
    x, y = materialised(prep, panel, "train")
    assert len(prep.train) == len(x) and sum(prep.train.sizes) == len(x)
    # the same float64 arithmetic window by window, then the same cast: equal, not close
    for got, want in zip(prep.train.materialise(), (x, y)):
        assert got.dtype == want.dtype and torch.equal(got, want)
    idx = torch.randint(len(x), (97,), generator=torch.Generator().manual_seed(0))  # any order, repeats
    for got, want in zip(prep.train.take(idx), (x[idx], y[idx])):
        assert torch.equal(got, want)
    for got, want in zip(prep.val, materialised(prep, panel, "val")):
        assert torch.equal(got, want)


def test_windows_lie_series_by_series_and_out_of_range_indices_are_refused():
    prep, panel = prepared("stride 3, differenced")
    L, H = prep.data_config.lookback, prep.data_config.horizon
    by_hand = tuple(len(range(0, e - L - H + 1, 3)) for e, _ in prep.splits if e >= L + H)
    assert prep.train.sizes == by_hand and len(prep.train) == sum(by_hand)
    rows = prep.train.target_rows(np.arange(len(prep.train)))
    first = np.cumsum((0,) + by_hand[:-1])
    offsets = np.cumsum([0] + [len(s) for s in panel.series])
    np.testing.assert_array_equal(rows[first], offsets[:len(by_hand)] + L)  # each series' first target row
    with pytest.raises(IndexError, match="window indices"):
        prep.train.take(torch.tensor([len(prep.train)]))


# ---------------------------------------------------------------- training on them


def _train(prep, train, engine: str, sampling: str, mc):
    config = prep.train_config.replace(engine=engine)
    model = new_member(prep, mc, config.seed)
    groups = prep.train.sizes if sampling == "balanced" else None
    history = fit(model, forecast_loss(model, config), train, prep.val, config, quiet=True,
                  fused=forecast_fused_task(model, config, train, prep.val), groups=groups)
    assert history.engine == engine
    return history, model


@pytest.mark.parametrize("name", ["plain", "covariates, statics, calendar", "recursive, calendar"])
@pytest.mark.parametrize("sampling", ["proportional", "balanced"])
@pytest.mark.parametrize("engine", ["fused", "torch"])
def test_lazy_and_materialised_training_train_the_same_model(name, sampling, engine):
    prep, panel = prepared(name, torch.float64)
    prep.train.chunk = 40  # batches of 16 in chunks of 32 windows: many chunks an epoch, the last one short
    tensors = materialised(prep, panel, "train")
    mc = CASES[name][1]
    (h_lazy, m_lazy), (h_full, m_full) = (_train(prep, t, engine, sampling, mc) for t in (prep.train, tensors))
    # every batch holds the same windows in the same order, and each optimiser step runs the same code
    # on them (the fused trainer: one native call per chunk, carrying its optimiser state): equal weights
    for a, b in zip(m_lazy.parameters(), m_full.parameters()):
        assert torch.equal(a, b)
    assert h_lazy.val_loss == h_full.val_loss and h_lazy.best_epoch == h_full.best_epoch
    if engine == "torch":  # the same per-batch sum in the same order
        assert h_lazy.train_loss == h_full.train_loss
    else:  # the epoch's mean is summed from the chunks' float64 means: a few float64 ulps
        np.testing.assert_allclose(h_lazy.train_loss, h_full.train_loss, rtol=1e-14, atol=0)


def test_a_rich_balanced_panel_fits_end_to_end_on_its_lazy_windows(tmp_path):
    dc = RICH.replace(future_covariates=(), sampling="balanced")  # forecasting past the data needs no future file
    run = rnnkit.fit_forecaster(dc, SMALL, TC, data=rich_table(), quiet=True)
    prep, _ = prepared("covariates, statics, calendar")
    assert run.meta["train_windows"] == len(prep.train) and run.history.engine == "fused"
    assert len(run.history.rows) == TC.epochs and run.history.train_loss[-1] < run.history.train_loss[0]
    again = rnnkit.load_run(run.save(tmp_path / "run", data=rich_table()))
    pd.testing.assert_frame_equal(again.forecast(rich_table()), run.forecast(rich_table()))
