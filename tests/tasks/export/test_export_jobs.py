"""``rnnkit export`` of the other jobs: a sequence classifier (raw series and lengths -> class
probabilities, equal to ``ClassifierRun.predict_proba``) and a character model (ids and states ->
next-character logits and states, equal to ``CharLM.forward``/``CharLM.step``), run in onnxruntime.

Tolerance: float32 networks, as in test_export_onnx (a few float32 ulps per step): probabilities and
logits must agree to 1e-5 relative to their largest value."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import (ClassifierConfig, ConfigError, ModelConfig, SequenceDataConfig, TextConfig, TrainConfig,
                    fit_char_lm, fit_classifier)

ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install 'rnnkit[deploy]')")
onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx (pip install 'rnnkit[deploy]')")

from export_cases import props, rel_diff, session  # noqa: E402
from rnnkit.tasks.classify.data import pad_series  # noqa: E402

TOL = 1e-5
TEXT = "hello world, hello there. the cat sat on the mat. " * 8


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


@pytest.mark.parametrize("cell, pool, znorm, ensemble", [
    ("gru", "last", False, 1), ("lstm", "mean", True, 2), ("elman", "attention", False, 1), ("jordan", "last", False, 1)])
def test_classifier_round_trip(tmp_path, cell, pool, znorm, ensemble):
    # JapaneseVowels: 12 features, series of 7 to 26 steps
    run = fit_classifier(SequenceDataConfig(source="builtin:JapaneseVowels_TRAIN", znorm=znorm),
                         ModelConfig(cell=cell, hidden_size=5), ClassifierConfig(pool=pool, ensemble=ensemble),
                         TrainConfig(epochs=1, batch_size=32), quiet=True)
    path = rnnkit.export_onnx(run, tmp_path / "c.onnx")
    meta = props(path)
    assert json.loads(meta["classes"]) == list(run.classes) and meta["kind"] == "classify"
    data = run.load_data("builtin:JapaneseVowels_TRAIN")
    seqs, ref = list(data.sequences), run.predict_proba(data)
    short = np.array([k for k, s in enumerate(seqs) if len(s) <= 15])[:20]  # a batch of shorter series
    X, lengths = pad_series([seqs[k] for k in short])  # padded to their own longest
    if meta["time_axis"] == "fixed":  # unrolled (Jordan): to the training data's longest, the traced length
        assert cell == "jordan" and meta["max_length"] == "26"
        X = np.pad(X, ((0, 0), (0, 26 - X.shape[1]), (0, 0)))
    got = session(path).run(None, {"x": X, "lengths": lengths})[0]
    assert X.shape[1] <= 26 and rel_diff(got, ref[short]) < TOL
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=0, atol=1e-6)


def test_string_classifier_round_trip(tmp_path):
    run = fit_classifier(SequenceDataConfig(source="builtin:surnames"), ModelConfig(cell="gru", hidden_size=5),
                         ClassifierConfig(ensemble=1), TrainConfig(epochs=1, batch_size=64), quiet=True)
    path = rnnkit.export_onnx(run, tmp_path / "c.onnx")
    data = run.load_data("builtin:surnames")
    X, lengths = run.inputs(data)
    rows = np.arange(0, len(X), max(1, len(X) // 25))
    got = session(path).run(None, {"x": X[rows].numpy(), "lengths": lengths[rows].numpy()})[0]
    assert rel_diff(got, run.predict_proba(data)[rows]) < TOL
    assert json.loads(props(path)["vocab"]) == list(run.vocab.chars)


@pytest.mark.parametrize("cell, embedding", [("lstm", 0), ("gru", 6), ("elman", 0), ("jordan", 6)])
def test_char_model_round_trip(tmp_path, cell, embedding):
    run = fit_char_lm(TextConfig(seq_len=8, steps=4, embedding_dim=embedding),
                      ModelConfig(cell=cell, hidden_size=6, num_layers=2), TrainConfig(batch_size=4, patience=0),
                      text=TEXT, quiet=True)
    model = run.model.eval()
    ids = torch.as_tensor(run.vocab.encode(TEXT[:64]), dtype=torch.long).reshape(4, 16)
    ids[1, 3] = -1  # a character outside the vocabulary: a zero input in rnnkit and in the graph
    seq, step = session(rnnkit.export_onnx(run, tmp_path / "s.onnx")), \
        session(rnnkit.export_onnx(run, tmp_path / "t.onnx", step=True))
    k = len(seq.get_inputs()) - 1
    zeros = [np.zeros(i.shape[:1] + [4] + i.shape[2:], np.float32) for i in seq.get_inputs()[1:]]
    dynamic = props(tmp_path / "s.onnx")["time_axis"] == "dynamic"
    with torch.no_grad():
        for chunks in ([ids[:, :8], ids[:, 8:]], [ids[:, 8:16]]) if dynamic else ([ids[:, :8], ids[:, 8:]],):
            state, flat = None, zeros  # a state carried over chunks, through rnnkit and through the graph
            for chunk in chunks:
                logits, state = model(chunk, state)
                got = seq.run(None, {"ids": chunk.numpy(), **{f"state_in_{i}": s for i, s in enumerate(flat)}})
                flat = got[1:]
                states = (state,) if isinstance(state, torch.Tensor) else state
                assert rel_diff(got[0], logits) < TOL and all(rel_diff(g, s) < TOL for g, s in zip(flat, states))
        state, flat = model.init_state(4), zeros
        for t in range(6):  # the step graph against CharLM.step
            logits, state = model.step(ids[:, t], state)
            got = step.run(None, {"ids": ids[:, t].numpy(), **{f"state_in_{i}": s for i, s in enumerate(flat)}})
            flat = got[1:]
            assert got[0].shape == (4, len(run.vocab)) and rel_diff(got[0], logits) < TOL
    assert k == len(flat) and json.loads(props(tmp_path / "t.onnx")["vocab"]) == list(run.vocab.chars)


def test_what_other_jobs_refuse(tmp_path):
    run = fit_classifier(SequenceDataConfig(source="builtin:ItalyPowerDemand_TRAIN"),
                         ModelConfig(cell="gru", hidden_size=4), ClassifierConfig(ensemble=1), TrainConfig(epochs=1),
                         quiet=True)
    with pytest.raises(ConfigError, match="no step graph"):
        rnnkit.export_onnx(run, tmp_path / "c.onnx", step=True)
    with pytest.raises(ConfigError, match="horizon"):
        rnnkit.export_onnx(run, tmp_path / "c.onnx", horizon=3)
    assert not (tmp_path / "c.onnx").exists()


def test_cli_exports_a_char_model(tmp_path, capsys):
    from cli_cases import text_fit
    from rnnkit.cli import main
    run = tmp_path / "text"
    assert main(text_fit(str(run))) == 0
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "t.onnx")]) == 0
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "s.onnx"), "--step"]) == 0
    said = capsys.readouterr().out
    assert "the sequence graph, ids (batch, time) int64" in said and "the step graph, ids (batch) int64" in said
