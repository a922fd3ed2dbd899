"""The refit on the training and validation rows (DataConfig.refit, tasks/forecast/refit.py): it is
a fit by hand on those windows for the epochs early stopping chose, from the first training's
initial weights; it never reads a test row, reloads bit for bit, leaves naive-fallback members and
runs without validation alone, and ``refit="none"`` is the first training exactly."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit import DataConfig, ModelConfig, SearchConfig, TrainConfig, fit_forecaster, load_run
from rnnkit.cli import main
from rnnkit.data.scaler import Scaler
from rnnkit.data.series import series_from_frame
from rnnkit.tasks.forecast.fitting import (forecast_fused_task, forecast_loss, naive_weight, prepare, scale_correction,
                                          train_members)
from rnnkit.tasks.forecast.model import Forecaster
from rnnkit.tasks.forecast.predict import windows_for
from rnnkit.tasks.forecast.refit import refit_epochs, refit_members
from rnnkit.tasks.forecast.run import save_run
from rnnkit.training.loop import History, fit

from cli_cases import one_line_error

t = np.arange(160)  # 16 validation rows of a horizon of 4 (13 windows), 32 test rows
SERIES = 50 + 0.3 * t + 8 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(size=160)
DC = DataConfig(horizon=4, transform="none")
MC = ModelConfig(hidden_size=5)
TC = TrainConfig(epochs=40, patience=5, lr=0.01)


def _data(values=SERIES):
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=len(values), freq="MS").strftime("%Y-%m-%d"),
                          "y": values})
    return series_from_frame(frame, time_col="date")


@pytest.fixture(scope="module")
def run():
    return fit_forecaster(DC, MC, TC, data=_data(), quiet=True)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_refit_is_a_fit_by_hand_on_the_training_and_validation_windows(run):
    meta, dc, data = run.meta, run.data_config, _data()
    best = meta["member_best_epochs"][0]
    assert run.history.engine == "fused" and 1 <= best < len(run.history.rows)  # early stopping chose it
    assert meta["refit_epochs"] == [best] and meta["naive_members"] == 0
    train_end, val_end = meta["train_rows"], meta["test_start"]
    # by hand: the transform and scaler of the training rows only, the windows whose targets end by the
    # last validation row (the training and validation windows and those straddling the boundary)
    values = data.values.copy()
    values[:, :1] = run.transform.forward(values[:, :1])
    assert run.scaler.to_dict() == Scaler(dc.scaler).fit(values[:train_end]).to_dict()
    X, Y, starts = windows_for(run.scaler.transform(values), 1, dc.lookback, dc.horizon, 1, 0, val_end)
    assert len(X) == val_end - dc.lookback - dc.horizon + 1 and starts[-1] + dc.horizon == val_end
    X, Y = run.norm.encode(X, Y)
    rows = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)
    torch.manual_seed(TC.seed)  # the first training's initial weights: its seed's, head at zero (the naive forecast)
    model = Forecaster(1, 1, dc.horizon, MC)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    tc = TC.replace(epochs=best, patience=0, loss="mse", engine="fused")  # the first training's engine
    history = fit(model, forecast_loss(model, tc), rows, None, tc, quiet=True,
                  fused=forecast_fused_task(model, tc, rows, None))
    assert len(history.rows) == best
    # then combined with the naive forecast by the first training's validation errors (SearchConfig.combine)
    prep = prepare(DC, MC, TC, data)
    (first,), _, _ = train_members(prep, MC, prep.train_config, 1, quiet=True)
    weight = naive_weight(first, prep, "mse")
    assert 0.5 < weight < 1 and meta["naive_weights"] == [weight]
    scale_correction(model, weight)
    # the same code (fused trainer, same batches and seed) runs on the same numbers: the same weights
    assert _same_weights(model, run.model)


def test_refit_none_is_the_first_training_exactly(run):
    data = _data()
    first = fit_forecaster(DC.replace(refit="none"), MC, TC, data=data, quiet=True)
    assert first.meta["refit_epochs"] == [0]
    # what the workflow did before the refit: prepare and train the member, nothing more
    prep = prepare(DC, MC, TC, data)
    (model,), (history,), _ = train_members(prep, MC, prep.train_config, 1, quiet=True)
    scale_correction(model, naive_weight(model, prep, "mse"))  # and its combination with the naive forecast
    assert _same_weights(model, first.model)
    curve = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h.rows]  # noqa: E731
    assert curve(first.history) == curve(history) == curve(run.history)  # the refit run keeps the first curve
    assert not np.array_equal(first.forecast(data)["y"], run.forecast(data)["y"])


def test_the_refit_never_reads_a_test_row(run):
    poisoned = SERIES.copy()
    poisoned[-1] = 1e9  # a test row: neither the scaler, the chosen epochs nor the refit may see it
    again = fit_forecaster(DC, MC, TC, data=_data(poisoned), quiet=True)
    assert again.meta["refit_epochs"] == run.meta["refit_epochs"]
    assert _same_weights(again.model, run.model)


def test_a_refitted_run_reloads_and_forecasts_bit_for_bit(run, tmp_path):
    data = _data()
    back = load_run(save_run(run, tmp_path / "r"))  # the run files, without the plots
    assert back.data_config.refit == "auto" and back.meta["refit_epochs"] == run.meta["refit_epochs"]
    np.testing.assert_array_equal(back.forecast(data)["y"].to_numpy(), run.forecast(data)["y"].to_numpy())
    assert back.evaluate(data) == run.evaluate(data)
    assert back.history.rows[-1]["val_loss"] == run.history.rows[-1]["val_loss"]  # the first training's curve


def test_each_member_refits_for_its_own_best_epoch():
    data = _data()
    tc = TC.replace(lr=0.003)  # the members' best epochs differ here (at lr 0.01 all three are 9)
    ens = fit_forecaster(DC, MC, tc, data=data, quiet=True, search=SearchConfig(ensemble=3))
    best, refit = ens.meta["member_best_epochs"], ens.meta["refit_epochs"]
    assert ens.meta["naive_members"] == 0 and refit == best and len(set(best)) > 1
    for k in (1, 2):  # member k is the forecaster one fit of seed k refits (members refit side by side)
        one = fit_forecaster(DC, MC, tc.replace(seed=k), data=data, quiet=True)
        assert one.meta["refit_epochs"] == [best[k]] and _same_weights(one.model, ens.model.members[k])


def test_naive_fallback_members_are_not_refitted():
    # refit_members on members of which the first fell back: it keeps that member as it is (the
    # naive forecast, exactly), refits the other, on the first training's engine
    data = _data()
    prep = prepare(DC, MC, TC, data)
    models, histories, _ = train_members(prep, MC, prep.train_config, 2, quiet=True)
    fallback = [True, False]
    out, epochs, refits = refit_members([prep] * 2, models, histories, fallback, MC, prep.train_config)
    assert epochs == [0, histories[1].best_epoch] and out[0] is models[0] and out[1] is not models[1]
    assert len(refits) == 1 and refits[0].engine == histories[1].engine == "fused"
    assert len(refits[0].rows) == histories[1].best_epoch and np.isnan(refits[0].rows[-1]["val_loss"])
    # the epoch a first training kept: its best with restore_best, else its last; none without validation
    h = History(rows=[{}] * 9, best_epoch=4)
    assert refit_epochs(prep, h, TC, False) == 4 and refit_epochs(prep, h, TC.replace(restore_best=False), False) == 9
    assert refit_epochs(prep, h, TC, True) == 0
    assert refit_epochs(dataclasses.replace(prep, val=None), h, TC, False) == 0


def test_a_random_walk_falls_back_and_is_not_refitted():
    # the last value is the best forecast of a random walk: after validation says so, the members
    # forecast it exactly, and nothing is refitted: the run is the one without the refit (here both
    # members' best validation loss, after epoch 1, is 3 % above the naive forecast's)
    walk = 100 + np.cumsum(np.random.default_rng(8).normal(size=120))
    data = _data(walk)
    dc, mc, tc = DataConfig(horizon=3, transform="none"), ModelConfig(hidden_size=4), TrainConfig(epochs=20, lr=0.01)
    run = fit_forecaster(dc, mc, tc, data=data, quiet=True, search=SearchConfig(ensemble=2))
    assert run.data_config.skip == "last" and run.meta["naive_members"] == 2 and run.meta["refit_epochs"] == [0, 0]
    np.testing.assert_array_equal(run.forecast(data)["y"].to_numpy(), np.full(3, walk[-1]))
    none = fit_forecaster(dc.replace(refit="none"), mc, tc, data=data, quiet=True, search=SearchConfig(ensemble=2))
    assert all(_same_weights(a, b) for a, b in zip(run.model.members, none.model.members))


def test_no_validation_rows_no_refit():
    data = _data()
    run = fit_forecaster(DC.replace(val_frac=0.0), MC, TC.replace(epochs=5), data=data, quiet=True)
    none = fit_forecaster(DC.replace(val_frac=0.0, refit="none"), MC, TC.replace(epochs=5), data=data, quiet=True)
    assert run.meta["val_rows"] == 0 and run.meta["refit_epochs"] == [0] and _same_weights(run.model, none.model)


@pytest.mark.parametrize("head", [{"quantiles": (0.1, 0.5, 0.9)}, {"distribution": "normal"}])
def test_quantile_and_distribution_heads_are_not_refitted(head):
    # their levels are the spread of the errors they trained on; a refit with no rows left to check
    # it fits them to in-sample errors (under-covering intervals: refit.py), so auto keeps the first training
    data, mc, tc = _data(), MC.replace(**head), TC.replace(epochs=8)
    run = fit_forecaster(DC, mc, tc, data=data, quiet=True)
    none = fit_forecaster(DC.replace(refit="none"), mc, tc, data=data, quiet=True)
    assert run.meta["member_best_epochs"][0] >= 1 and run.meta["refit_epochs"] == [0]
    assert _same_weights(run.model, none.model)
    prep = prepare(DC, MC, TC, data)
    h = History(rows=[{}] * 9, best_epoch=4)
    assert refit_epochs(prep, h, TC, False, levels=True) == 0 and refit_epochs(prep, h, TC, False) == 4


def test_auto_refits_its_final_ensemble():
    # a short series: --auto compares nothing (too few validation windows) and trains its ensemble of
    # 5, each member then refitted for its own best epoch
    data = _data(SERIES[:80])
    run = fit_forecaster(DC, MC, TC.replace(epochs=15), data=data, quiet=True, search=SearchConfig(auto=True))
    best, refit = run.meta["member_best_epochs"], run.meta["refit_epochs"]
    assert run.meta["ensemble"] == 5 and run.meta["naive_members"] == sum(e == 0 for e in refit)
    assert all(r in (0, b) for r, b in zip(refit, best)) and any(refit)


def test_cli_refit_round_trip(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    _data().frame.to_csv(csv)
    base = ["fit", str(csv), "--time-col", "date", "--horizon", "4", "--hidden", "4", "--epochs", "8", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["data"]["refit"] == "auto" and config["meta"]["refit_epochs"] == config["meta"]["member_best_epochs"]
    assert f"refitted 1 of 1 member(s) on the training and validation rows for {config['meta']['refit_epochs'][0]}" \
        " epochs" in out
    assert main([*base, "--refit", "none", "--out", str(tmp_path / "n")]) == 0
    assert "refitted" not in capsys.readouterr().out
    config = json.loads((tmp_path / "n" / "config.json").read_text())
    assert config["data"]["refit"] == "none" and config["meta"]["refit_epochs"] == [0]
    assert load_run(tmp_path / "n").data_config.refit == "none"
    err = one_line_error(capsys, [*base, "--refit", "yes", "--out", str(tmp_path / "x")])
    assert "--refit" in err and not (tmp_path / "x").exists()
