"""The three jobs have the same shape: ``fit_X(configs..., callbacks=, quiet=) -> XRun``,
``XRun.save(out, force=False)``, and ``rnnkit.load_run(out)`` giving back the same predictions.

Each job trains a tiny model for a few epochs; saving and loading run the same code twice on the
same machine, so the reloaded predictions must equal the original's exactly (bit for bit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import rnnkit
from rnnkit import (ClassifierConfig, DataConfig, ModelConfig, RunError, SequenceDataConfig, TextConfig,
                    TrainConfig, fit_char_lm, fit_classifier, fit_forecaster)

MODEL = ModelConfig(cell="gru", hidden_size=4)
TEXT = "hello world, hello there. " * 20


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


def _fit_forecast(callbacks):
    return fit_forecaster(DataConfig(source="builtin:sine", lookback=5, horizon=2), MODEL,
                          TrainConfig(epochs=3, batch_size=8, patience=0), callbacks=callbacks, quiet=True)


def _fit_classify(callbacks):
    return fit_classifier(SequenceDataConfig(source="builtin:ItalyPowerDemand_TRAIN"), MODEL, ClassifierConfig(),
                          TrainConfig(epochs=3, batch_size=16, patience=0), callbacks=callbacks, quiet=True)


def _fit_text(callbacks):
    return fit_char_lm(TextConfig(seq_len=8, steps=12), MODEL, TrainConfig(batch_size=4, patience=0), text=TEXT,
                       callbacks=callbacks, quiet=True)


def _predictions(run):
    """What each kind of run predicts, as arrays compared exactly after a reload."""
    if isinstance(run, rnnkit.ForecastRun):
        return [run.forecast().to_numpy()]
    if isinstance(run, rnnkit.ClassifierRun):
        return [run.predict_proba(run.load_data("builtin:ItalyPowerDemand_TRAIN"))]
    return [np.array(run.bits_per_char(TEXT[:200])), np.array(list(run.generate(length=50, seed=3)))]


JOBS = {"forecast": _fit_forecast, "classify": _fit_classify, "text": _fit_text}


@pytest.fixture(scope="module", params=list(JOBS))
def fitted(request):
    rows = []
    run = JOBS[request.param](callbacks=[rows.append])
    return request.param, run, rows


def test_fit_calls_each_callback_once_per_epoch(fitted):
    kind, run, rows = fitted
    epochs = run.meta["epochs"] if kind == "text" else 3  # text: whole passes from steps, recorded in meta
    assert len(rows) == epochs == len(run.history.rows)
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))


def test_save_then_load_run_predicts_the_same_bit_for_bit(fitted, tmp_path):
    kind, run, _ = fitted
    out = run.save(tmp_path / "run")  # forecast: data=None reads the training data again
    loaded = rnnkit.load_run(out)
    assert type(loaded) is type(run)
    for a, b in zip(_predictions(run), _predictions(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    if kind == "forecast":  # forecast.csv was made from the training data read back
        written = pd.read_csv(out / "forecast.csv", index_col=0)
        np.testing.assert_array_equal(written.to_numpy(), run.forecast().to_numpy())


def test_save_refuses_an_existing_directory_without_force(fitted, tmp_path):
    _, run, _ = fitted
    out = run.save(tmp_path / "run")
    before = (out / "config.json").read_bytes()
    with pytest.raises(RunError, match="exists"):
        run.save(out)
    assert (out / "config.json").read_bytes() == before
    old = out.stat().st_ino  # the new run is written beside the old one and swapped in: a new directory
    run.save(out, force=True)
    assert out.stat().st_ino != old and (out / "config.json").read_bytes() == before
