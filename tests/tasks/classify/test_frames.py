"""Framing (``ClassifierConfig.frame``): the encoder reads k steps at a time. Checked against a hand
reshape, against a step-by-step model fed the frames, for padding invariance, in both training
engines, through a saved run, and for the choice of k from the data; plus the refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.errors import ConfigError, RunError
from rnnkit.tasks.classify.config import MAX_FRAMES, ClassifierConfig, SequenceDataConfig, frame_for
from rnnkit.tasks.classify.data import SequenceData
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.classify.run import load_classifier_run
from rnnkit.tasks.classify.workflow import fit_classifier

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


def bumps(n_per_class: int = 12, lengths=(70, 90), seed: int = 0) -> SequenceData:
    """Two features of noise with one bump early (class "early") or late ("late")."""
    rs = np.random.RandomState(seed)
    seqs, labels = [], []
    for _ in range(n_per_class):
        for label in ("early", "late"):
            T = rs.randint(lengths[0], lengths[1] + 1)
            x = 0.3 * rs.randn(T, 2)
            at = rs.randint(5, 15) if label == "early" else rs.randint(T - 20, T - 10)
            x[at:at + 5, 0] += 2.0
            seqs.append(x)
            labels.append(label)
    return SequenceData(tuple(seqs), tuple(labels), tuple(map(str, range(len(seqs)))), "<bumps>", "0")


def test_frames_are_the_steps_k_at_a_time():
    x = torch.randn(2, 7, 2, dtype=F64)
    lengths = torch.tensor([7, 4])
    x[1, 4:] = 1e3  # garbage in the padding
    model = SequenceClassifier(2, 3, ModelConfig(hidden_size=4), frame=3).double()
    xf, lf = model.framed(x, lengths)
    # by hand: 7 steps -> 3 frames of 3 steps x 2 features, zeros past each length
    want = np.zeros((2, 9, 2))
    want[0, :7], want[1, :4] = x[0].numpy(), x[1, :4].numpy()
    np.testing.assert_array_equal(xf.numpy(), want.reshape(2, 3, 6))
    assert lf.tolist() == [3, 2] and model.rnn.input_size == 6 and model.input_size == 2
    same, none = model.framed(x[:1], None)
    assert same.shape == (1, 3, 6) and none is None
    assert SequenceClassifier(2, 3, frame=1).framed(x, lengths)[0] is x


def test_a_framed_model_is_a_step_model_fed_the_frames():
    torch.manual_seed(0)
    framed = SequenceClassifier(2, 3, ModelConfig(cell="gru", hidden_size=5), pool="attention", frame=4).double()
    plain = SequenceClassifier(8, 3, ModelConfig(cell="gru", hidden_size=5), pool="attention").double()
    plain.load_state_dict(framed.state_dict())
    x, lengths = torch.randn(3, 10, 2, dtype=F64), torch.tensor([10, 5, 8])
    xf, lf = framed.framed(x, lengths)
    torch.testing.assert_close(framed(x, lengths), plain(xf, lf), rtol=0, atol=0)
    torch.testing.assert_close(framed.attention_weights(x, lengths), plain.attention_weights(xf, lf), rtol=0, atol=0)


@pytest.mark.parametrize("pool", ["last", "mean", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_framed_logits(pool, bidirectional):
    torch.manual_seed(0)
    mc = ModelConfig(cell="gru", hidden_size=5, num_layers=2, bidirectional=bidirectional)
    model = SequenceClassifier(3, 4, mc, pool=pool, frame=3).double().eval()
    x = torch.randn(3, 11, 3, dtype=F64)
    lengths = torch.tensor([11, 4, 7])
    x[1, 4:] = 1e3 * torch.randn(7, 3, dtype=F64)
    x[2, 7:] = 7.0
    batched = model(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(batched[i:i + 1], model(x[i:i + 1, :n]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("longest, frame", [(1, 1), (MAX_FRAMES, 1), (MAX_FRAMES + 1, 2), (2000, 50), (275, 7)])
def test_the_frame_is_the_fewest_steps_that_fit_the_longest_series(longest, frame):
    assert frame_for(None, longest) == frame
    assert math.ceil(longest / frame) <= MAX_FRAMES and (frame == 1 or math.ceil(longest / (frame - 1)) > MAX_FRAMES)
    assert frame_for(3, longest) == 3


@pytest.mark.parametrize("lengths", [(90, 90), (60, 90)])
def test_framed_training_is_the_same_in_both_engines(lengths):
    """Equal and variable lengths (90 steps -> frame 3 with MAX_FRAMES 40): the fused trainer reads
    the model's frames; its history equals the torch loop's in float64."""
    data = bumps(lengths=lengths)
    runs = [fit_classifier(SequenceDataConfig(), ModelConfig(cell="gru", hidden_size=6),
                           train_config=TrainConfig(epochs=3, steps=5, batch_size=8, engine=e, patience=0), data=data,
                           quiet=True, dtype=F64) for e in ("torch", "auto")]
    assert [r.history.engine for r in runs] == ["torch", "fused"]
    assert runs[1].head_config.frame == frame_for(None, 90) == 3
    for key in ("train_loss", "val_loss"):
        assert [r[key] for r in runs[0].history.rows] == pytest.approx([r[key] for r in runs[1].history.rows],
                                                                         abs=1e-10, rel=0)


def test_a_framed_run_saves_its_frame_and_reloads_bit_for_bit(tmp_path):
    run = fit_classifier(SequenceDataConfig(val_frac=0.25), ModelConfig(cell="gru", hidden_size=8), None,
                         TrainConfig(steps=150, epochs=1000, lr=0.01, patience=0), data=bumps(), quiet=True)
    assert run.head_config.frame == 3 and run.history.rows[-1]["steps"] == 150
    assert run.metrics["validation"]["accuracy"] == 1.0  # the bump's place is learnt through the frames
    out = run.save(tmp_path / "run", plots=False)
    assert json.loads((out / "config.json").read_text())["head"]["frame"] == 3
    fresh = bumps(4, seed=5, lengths=(50, 120))  # longer series than in training: more frames
    np.testing.assert_array_equal(load_classifier_run(out).predict_proba(fresh), run.predict_proba(fresh))
    config = json.loads((out / "config.json").read_text())
    config["head"]["frame"] = None
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="frame"):
        load_classifier_run(out)


def test_strings_are_read_character_by_character():
    texts = SequenceData(tuple("ab" * n for n in range(1, 41)), tuple(["x", "y"] * 20), tuple(map(str, range(40))),
                         "<s>", "0")
    run = fit_classifier(SequenceDataConfig(), ModelConfig(hidden_size=4), None, TrainConfig(epochs=1), data=texts,
                         quiet=True)
    assert run.head_config.frame == 1
    with pytest.raises(ConfigError, match="frame applies to numeric series"):
        fit_classifier(SequenceDataConfig(), ModelConfig(hidden_size=4), ClassifierConfig(frame=2),
                       TrainConfig(epochs=1), data=texts, quiet=True)
    with pytest.raises(ConfigError, match="frame must be"):
        SequenceClassifier(0, 2, vocab_size=5, frame=2)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_nonsense_frames_are_refused(bad):
    with pytest.raises(ConfigError, match="frame must be an integer >= 1"):
        ClassifierConfig(frame=bad)


def test_the_command_line_takes_a_frame(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["classify", "fit", "builtin:ItalyPowerDemand_TRAIN", "--frame", "4", "--epochs", "1", "--hidden",
                 "4", "--quiet", "--out", str(out)]) == 0
    assert "frames of 4 steps" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["head"]["frame"] == 4
    assert main(["classify", "fit", "builtin:ItalyPowerDemand_TRAIN", "--frame", "0", "--quiet",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and "frame must be" in err and err.count("\n") == 1


def test_the_defaults_fit_long_series_in_the_fused_trainer():
    """The job's defaults (CLASSIFY_DEFAULTS: GRU, frames, 2000 steps at lr 0.01, clipped): 24
    series of up to 200 steps train in the native trainer, in frames of 5 steps, for exactly the
    budget (one step per epoch here), and fit the training data. A budget of 100 epochs would
    have been 100 steps."""
    from rnnkit.tasks.classify.config import CLASSIFY_DEFAULTS
    run = fit_classifier(SequenceDataConfig(val_frac=0.25), data=bumps(lengths=(150, 200)), quiet=True)
    assert run.train_config.steps == CLASSIFY_DEFAULTS[2].steps == 2000
    assert run.history.engine == "fused" and run.history.engine_reason is None
    assert run.head_config.frame == 5 and run.history.rows[-1]["steps"] == 2000 and len(run.history.rows) == 2000
    assert run.metrics["train"]["accuracy"] == 1.0 and run.metrics["validation"]["accuracy"] == 1.0
