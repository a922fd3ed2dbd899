"""Panel sampling and the learned series embedding: balanced epochs (each series equally likely,
drawn from the seed; the same losses on the fused and the torch loop), the id one-hot in the pooled
windows by hand, the embedding read out of the first layer and changed by training, the mean
embedding of a new series (with a warning), reload bit for bit, and the refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil
from copy import deepcopy as copy_module
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from cli_cases import one_line_error
from rnnkit.cli import main
from rnnkit.config import TrainConfig
from rnnkit.data.panel import panel_from_frame
from rnnkit.errors import ConfigError, DataError, RunError, RnnkitWarning
from rnnkit.tasks.forecast import statics as statics_module
from rnnkit.tasks.forecast.fitting import forecast_fused_task, forecast_loss, new_member
from rnnkit.tasks.forecast.panel import prepare_panel
from rnnkit.tasks.forecast.statics import StaticEncoder, id_embeddings
from rnnkit.training.loop import epoch_order, fit
from test_panel import PANEL, sines

SMALL = rnnkit.ModelConfig(cell="gru", hidden_size=6)
TC = rnnkit.TrainConfig(epochs=6, lr=0.01, batch_size=16)
DC = rnnkit.DataConfig(id_col="shop", time_col="date", targets=("sales",), lookback=12, horizon=4)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return sines(**PANEL)  # s0..s4 of 60, 48, 40, 30, 14 rows, 8 held out each; s4 too short to train on


@pytest.fixture(scope="module")
def embedded(table):
    return rnnkit.fit_forecaster(DC.replace(id_embedding=True, sampling="balanced"), SMALL, TC, data=table, quiet=True)


def _panel(table):
    return panel_from_frame(table, "shop", "sales", "date")


# ---------------------------------------------------------------- balanced epochs


def test_balanced_order_weighs_every_group_alike():
    sizes = torch.tensor([1, 9, 30])
    n, epochs = 40, 300
    gen = torch.Generator().manual_seed(3)
    draws = torch.cat([epoch_order(n, TrainConfig(), gen, sizes) for _ in range(epochs)])
    assert draws.numel() == n * epochs and int(draws.min()) >= 0 and int(draws.max()) < n
    group = torch.bucketize(draws, torch.tensor([1, 10]), right=True)  # 0: index 0, 1: 1..9, 2: 10..39
    share = torch.bincount(group, minlength=3).double() / draws.numel()
    # each group 1/3; the binomial standard deviation of a share over 12000 draws is 0.0043: 5 of them
    np.testing.assert_allclose(share.numpy(), [1 / 3] * 3, atol=5 * (2 / 9 / draws.numel()) ** 0.5)
    within = torch.bincount(draws[group == 2] - 10, minlength=30).double() / int((group == 2).sum())
    assert float(within.min()) > 0  # every window of the long series is drawn, about uniformly
    np.testing.assert_allclose(within.numpy(), 1 / 30, atol=5 * (1 / 30 / 4000) ** 0.5)
    again = torch.Generator().manual_seed(3)
    assert torch.equal(epoch_order(n, TrainConfig(), again, sizes), draws[:n])  # the seed alone decides
    gen = torch.Generator().manual_seed(3)  # without groups: today's permutation, from the same generator
    assert torch.equal(epoch_order(n, TrainConfig(), gen), torch.randperm(n, generator=torch.Generator().manual_seed(3)))


def test_groups_are_the_training_windows_of_each_series(table):
    prep = prepare_panel(DC.replace(sampling="balanced"), SMALL, TC, _panel(table), dtype=torch.float64)
    L, H = 12, 4
    by_hand = tuple(e - L - H + 1 for e, _ in prep.splits if e >= L + H)  # stride 1
    assert prep.groups == by_hand == (37, 25, 17, 7) and sum(by_hand) == len(prep.train)
    assert prepare_panel(DC, SMALL, TC, _panel(table)).groups is None  # proportional: each window once


def test_balanced_epochs_fused_and_torch_loop_agree(table):
    prep = prepare_panel(DC.replace(sampling="balanced"), SMALL, TC, _panel(table), dtype=torch.float64)
    runs = {}
    for engine in ("fused", "torch"):
        config = TC.replace(engine=engine)
        model = new_member(prep, SMALL, config.seed)
        history = fit(model, forecast_loss(model, config), prep.train, prep.val, config, quiet=True,
                      fused=forecast_fused_task(model, config, prep.train, prep.val), groups=prep.groups)
        assert history.engine == engine
        runs[engine] = (history, model)
    (hf, mf), (ht, mt) = runs["fused"], runs["torch"]
    # one float64 computation in two orders of summation: a few ulps per step, far below 1e-10
    np.testing.assert_allclose(hf.train_loss, ht.train_loss, rtol=0, atol=1e-10)
    np.testing.assert_allclose(hf.val_loss, ht.val_loss, rtol=0, atol=1e-10)
    for a, b in zip(mf.parameters(), mt.parameters()):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    plain = new_member(prep, SMALL, TC.seed)
    h_plain = fit(plain, forecast_loss(plain, TC), prep.train, prep.val, TC, quiet=True,
                  fused=forecast_fused_task(plain, TC, prep.train, prep.val))
    assert h_plain.train_loss != hf.train_loss  # the balanced epochs are other windows


@pytest.mark.filterwarnings("ignore::rnnkit.errors.RnnkitWarning")  # s4 (no training window) in forecast.csv
def test_balanced_run_records_its_sampling_and_reloads_bit_for_bit(embedded, table, tmp_path):
    out = embedded.save(tmp_path / "run", data=table)
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["sampling"] == "balanced" and config["data"]["id_embedding"] is True
    loaded = rnnkit.load_run(out)
    pd.testing.assert_frame_equal(loaded.forecast(table), embedded.forecast(table))
    np.testing.assert_array_equal(id_embeddings(loaded.model, loaded.statics), id_embeddings(embedded.model, embedded.statics))
    assert loaded.statics.ids == ("s0", "s1", "s2", "s3")


# ---------------------------------------------------------------- the id embedding


def test_id_one_hot_in_the_pooled_windows_by_hand(table):
    prep = prepare_panel(DC.replace(id_embedding=True), SMALL, TC, _panel(table), dtype=torch.float64)
    assert prep.statics.ids == ("s0", "s1", "s2", "s3") and prep.known_width == 4 + 1  # 4 ids + the future flag
    X = prep.train.materialise()[0].numpy()  # (W, L + H, value + 4 ids + flag)
    first = 0
    for k, n in enumerate((37, 25, 17, 7)):
        np.testing.assert_array_equal(X[first:first + n, :, 1:5], np.broadcast_to(np.eye(4)[k], (n, 16, 4)))
        first += n
    enc = prep.statics
    np.testing.assert_array_equal(enc.features({}, sid="s9"), [0.25] * 4)  # new: the mean of the four
    assert StaticEncoder.from_dict(json.loads(json.dumps(enc.to_dict()))) == enc
    with pytest.raises(ConfigError, match="distinct ids"):
        StaticEncoder.from_dict({**enc.to_dict(), "ids": ["s0", "s0"]})


def test_the_embedding_is_the_first_layers_id_columns_and_training_changes_it(embedded, table):
    prep = prepare_panel(embedded.data_config, SMALL, TC, _panel(table), dtype=torch.float32)
    start = new_member(prep, SMALL, TC.seed)  # the initial weights of the seed (rnnkit.training.members)
    before, after = id_embeddings(start, prep.statics), id_embeddings(embedded.model, embedded.statics)
    G = 3 * SMALL.hidden_size  # GRU: r, z, n gates
    assert before.shape == after.shape == (4, G)
    w = embedded.model.rnn.weight_ih_l0.detach().double().numpy()
    np.testing.assert_array_equal(after, w[:, 1:5].T)  # value column 0, ids 1..4, then the future flag
    moved = np.abs(after - before).max(axis=1)
    assert (moved > 1e-3).all(), moved  # every series' vector was trained
    with pytest.raises(ConfigError, match="no id embedding"):
        id_embeddings(embedded.model, StaticEncoder())


def test_a_new_series_gets_the_mean_embedding_with_a_warning(embedded, table):
    copy = table[table.shop == "s1"].assign(shop="new")
    with pytest.warns(RnnkitWarning, match=r"series 'new' had no training window.*mean embedding of the 4"):
        new = embedded.forecast(copy)
    same = embedded.forecast(table[table.shop == "s1"])
    assert not np.allclose(new.sales, same.sales)  # s1's own vector is not the mean
    # make every series' vector equal: then the mean is that vector and the new series forecasts as s1
    model = copy_module(embedded.model)
    with torch.no_grad():
        model.rnn.weight_ih_l0[:, 1:5] = model.rnn.weight_ih_l0[:, 2:3]  # s1's vector for all four
    flat = dataclasses.replace(embedded, model=model)
    with pytest.warns(RnnkitWarning):
        a = flat.forecast(copy).sales.to_numpy()
    b = flat.forecast(table[table.shop == "s1"]).sales.to_numpy()
    # 4 x (v / 4) against v in float32: a few ulps of the gate pre-activations, scaled up to sales units
    np.testing.assert_allclose(a, b, rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RnnkitWarning)
        embedded.forecast(table[table.shop != "s4"])  # the training series: no warning


@pytest.mark.filterwarnings("ignore::rnnkit.errors.RnnkitWarning")  # s4 (no training window) in forecast.csv
def test_a_damaged_id_vocabulary_is_refused(embedded, table, tmp_path):
    out = embedded.save(tmp_path / "run", data=table)
    for edit in (lambda s: s["statics"].update(ids=["s0", "s1", "s2"]), lambda s: s["statics"].update(ids=[])):
        bad = shutil.copytree(out, tmp_path / f"bad{len(list(tmp_path.iterdir()))}")
        doc = json.loads((bad / "scalers.json").read_text())
        edit(doc)
        (bad / "scalers.json").write_text(json.dumps(doc))
        with pytest.raises(RunError, match="scalers.json"):
            rnnkit.load_run(bad)


def test_too_many_series_for_an_embedding_are_refused(table, monkeypatch):
    monkeypatch.setattr(statics_module, "MAX_EMBEDDED_IDS", 3)
    with pytest.raises(DataError, match=r"--id-embedding: the panel trains on 4 series, more than the 3"):
        prepare_panel(DC.replace(id_embedding=True), SMALL, TC, _panel(table))


def test_refusals_without_a_panel():
    for kw, flag in ((dict(sampling="balanced"), "--sampling balanced"), (dict(id_embedding=True), "--id-embedding")):
        with pytest.raises(ConfigError, match=f"{flag} is for panels"):
            rnnkit.DataConfig(source="builtin:sine", **kw)
    with pytest.raises(ConfigError, match="sampling"):
        rnnkit.DataConfig(id_col="id", sampling="uniform")
    x = torch.zeros(5, 3, 1)
    with pytest.raises(rnnkit.RnnkitError, match="groups must be positive sizes summing to the 5"):
        fit(torch.nn.Linear(1, 1), lambda m, b: m(b[0]).mean(), (x,), None, TrainConfig(epochs=1), groups=[2, 2])


def test_command_line_round_trip_and_refusals(tmp_path, capsys):
    data = tmp_path / "panel.csv"
    sines(**PANEL).to_csv(data, index=False)
    args = ["fit", str(data), "--id-col", "shop", "--time-col", "date", "--target", "sales", "--lookback", "12",
            "--horizon", "4", "--epochs", "3", "--hidden", "4", "--quiet", "--batch-size", "16"]
    assert main([*args, "--sampling", "balanced", "--id-embedding", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "balanced sampling, a learned id embedding of 4 series" in out and "fused native" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["sampling"] == "balanced" and config["data"]["id_embedding"] is True
    assert main(["forecast", "--run", str(tmp_path / "run"), "--ids", "s0,s1"]) == 0
    one = ["fit", "builtin:sine", "--epochs", "1", "--quiet", "--out", str(tmp_path / "x")]
    assert "--sampling balanced is for panels" in one_line_error(capsys, [*one, "--sampling", "balanced"])
    assert "--id-embedding is for panels" in one_line_error(capsys, [*one, "--id-embedding"])
    assert not (tmp_path / "x").exists()
