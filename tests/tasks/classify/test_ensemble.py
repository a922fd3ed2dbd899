"""Classifier ensembles (issue 15, item 4): members from consecutive seeds, trained side by side,
predicting the mean of their class probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.config import MAX_ENSEMBLE, ModelConfig, TrainConfig
from rnnkit.errors import ConfigError, RunError
from rnnkit.tasks.classify.config import ClassifierConfig, SequenceDataConfig
from rnnkit.tasks.classify.data import SequenceData
from rnnkit.tasks.classify.model import ClassifierEnsemble, SequenceClassifier
from rnnkit.tasks.classify.run import load_classifier_run
from rnnkit.tasks.classify.workflow import fit_classifier

from cli_cases import classify_fit, one_line_error

MODEL = ModelConfig(cell="gru", hidden_size=6)
TRAIN = TrainConfig(epochs=4, batch_size=8, lr=0.01, patience=0, seed=3)


def waves(n_per_class: int = 8, seed: int = 0) -> SequenceData:
    """Noisy sines and squares of 12-20 steps (variable lengths: the masked paths run too)."""
    rs = np.random.RandomState(seed)
    seqs, labels = [], []
    for _ in range(n_per_class):
        for label in ("sine", "square"):
            T, phase = rs.randint(12, 21), rs.uniform(0, 1)
            u = (np.arange(T) / 6.0 + phase) % 1.0
            x = np.sin(2 * np.pi * u) if label == "sine" else np.where(u < 0.5, 1.0, -1.0)
            seqs.append((x + 0.3 * rs.randn(T))[:, None])
            labels.append(label)
    return SequenceData(tuple(seqs), tuple(labels), tuple(map(str, range(len(seqs)))), "<waves>", "0")


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread each (see conftest); the members still train in threads."""


def _fit(head=ClassifierConfig(), train=TRAIN, data=None, **kw):
    return fit_classifier(SequenceDataConfig(), MODEL, head, train, data=data or waves(), quiet=True, **kw)


def _rows(history) -> list[dict]:
    """The history without its wall-clock seconds (which differ from run to run)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.rows]


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def ens_run():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before the per-test single_thread fixture
    yield fit_classifier(SequenceDataConfig(), MODEL, ClassifierConfig(ensemble=3), TRAIN, data=waves(), quiet=True,
                         dtype=torch.float64)
    torch.set_num_threads(before)


# --- an ensemble of one, and the members ---------------------------------------------------------

@pytest.mark.parametrize("pool", ["last", "mean"])  # the fused trainer and the torch loop
def test_an_ensemble_of_one_is_the_plain_fit(pool):
    plain = _fit(ClassifierConfig(pool=pool))
    one = _fit(ClassifierConfig(pool=pool), ensemble=1)
    assert isinstance(one.model, SequenceClassifier) and one.head_config.ensemble == 1
    assert _same_weights(plain.model, one.model)
    assert _rows(one.history) == _rows(plain.history)
    data = waves(4, seed=5)
    np.testing.assert_array_equal(one.predict_proba(data), plain.predict_proba(data))
    assert one.meta["ensemble"] == 1 and len(one.meta["member_best_epochs"]) == 1


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_members_trained_side_by_side_are_the_plain_fits_of_their_seeds(pool):
    # without a validation split every seed sees the same data, so member k must be exactly the
    # plain fit from seed + k: training in threads changed nothing
    head, data = ClassifierConfig(pool=pool), waves()
    ens = fit_classifier(SequenceDataConfig(val_frac=0.0), MODEL, head, TRAIN, data=data, quiet=True, ensemble=3)
    assert isinstance(ens.model, ClassifierEnsemble) and len(ens.model.members) == 3
    for k, member in enumerate(ens.model.members):
        alone = fit_classifier(SequenceDataConfig(val_frac=0.0), MODEL, head, TRAIN.replace(seed=TRAIN.seed + k),
                               data=data, quiet=True)
        assert _same_weights(member, alone.model), k
    assert not _same_weights(ens.model.members[0], ens.model.members[1])  # different seeds, different members
    assert ens.meta["member_val_accuracy"] is None  # no validation split


def test_members_share_one_validation_split(ens_run):
    # member 0 is the plain fit of the run's seed; the others differ only by their seed
    plain = _fit(train=TRAIN, dtype=torch.float64)
    assert _same_weights(ens_run.model.members[0], plain.model)
    assert ens_run.meta["val_index"] == plain.meta["val_index"]
    assert ens_run.history.rows[0]["train_loss"] == plain.history.rows[0]["train_loss"]  # the first member's
    assert ens_run.meta["ensemble"] == 3 and len(ens_run.meta["member_best_epochs"]) == 3
    accs = ens_run.meta["member_val_accuracy"]
    assert len(accs) == 3 and accs[0] == plain.metrics["validation"]["accuracy"]


# --- the soft vote -------------------------------------------------------------------------------

def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_ensemble_probabilities_are_the_mean_of_the_members(ens_run):
    data = waves(6, seed=7)
    X, lengths = ens_run.inputs(data)
    with torch.no_grad():  # each member's logits alone, in float64, and the softmax in closed form
        each = np.stack([_softmax(m(X, lengths).numpy()) for m in ens_run.model.members])  # (3, N, K)
    assert each.dtype == np.float64 and not np.allclose(each[0], each[1])
    p = ens_run.predict_proba(data)
    np.testing.assert_allclose(p, each.mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    assert ens_run.predict(data) == [ens_run.classes[k] for k in each.mean(0).argmax(1)]
    with torch.no_grad():  # forward is the log of the mean: its softmax gives the mean back
        np.testing.assert_allclose(_softmax(ens_run.model(X, lengths).numpy()), each.mean(0), rtol=1e-12)


def test_ensemble_training_is_deterministic(ens_run):
    again = fit_classifier(SequenceDataConfig(), MODEL, ClassifierConfig(ensemble=3), TRAIN, data=waves(), quiet=True,
                           dtype=torch.float64)
    assert _same_weights(again.model, ens_run.model)
    assert again.meta["member_best_epochs"] == ens_run.meta["member_best_epochs"]


# --- the run directory ---------------------------------------------------------------------------

def test_ensemble_run_reloads_bit_for_bit(ens_run, tmp_path):
    out = ens_run.save(tmp_path / "run", plots=False)
    config = json.loads((out / "config.json").read_text())
    assert config["head"]["ensemble"] == 3 and config["meta"]["ensemble"] == 3
    back = rnnkit.load_run(out)
    assert isinstance(back.model, ClassifierEnsemble) and len(back.model.members) == 3
    data = waves(5, seed=9)
    np.testing.assert_array_equal(back.predict_proba(data), ens_run.predict_proba(data))
    assert back.evaluate(data) == ens_run.evaluate(data)
    assert back.meta["member_val_accuracy"] == ens_run.meta["member_val_accuracy"]

    def damaged(edit, needle):
        bad = json.loads((out / "config.json").read_text())
        edit(bad)
        (tmp_path / "bad").mkdir(exist_ok=True)
        for f in out.iterdir():
            (tmp_path / "bad" / f.name).write_bytes(f.read_bytes())
        (tmp_path / "bad" / "config.json").write_text(json.dumps(bad))
        with pytest.raises(RunError, match=needle):
            load_classifier_run(tmp_path / "bad")
    damaged(lambda c: c["meta"].update(ensemble=2), "contradict")
    damaged(lambda c: (c["head"].update(ensemble=2), c["meta"].update(ensemble=2, member_best_epochs=[1, 1],
                                                                      member_val_accuracy=None)),
            "has extra tensor")
    damaged(lambda c: c["head"].update(ensemble=0), "ensemble must be an integer >= 1")
    damaged(lambda c: c["meta"].pop("member_best_epochs"), "lacks 'member_best_epochs'")


# --- bad ensemble sizes --------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, MAX_ENSEMBLE + 1, True, 2.0, "3"])
def test_bad_ensemble_sizes_are_refused(bad):
    with pytest.raises(ConfigError, match="ensemble"):
        ClassifierConfig(ensemble=bad)
    with pytest.raises(ConfigError, match="ensemble"):
        fit_classifier(SequenceDataConfig(source="no/such/file.csv"), MODEL, None, TRAIN, ensemble=bad)  # before reading


@pytest.mark.parametrize("value, needle", [("0", "ensemble must be an integer >= 1"),
                                           ("-2", "ensemble must be an integer >= 1"),
                                           (str(MAX_ENSEMBLE + 1), f"at most {MAX_ENSEMBLE}"),
                                           ("two", "invalid int value")])
def test_the_command_line_refuses_bad_ensemble_sizes(capsys, tmp_path, value, needle):
    out = tmp_path / "run"
    assert needle in one_line_error(capsys, classify_fit(out, "--ensemble", value)) and not out.exists()


def test_the_command_line_trains_an_ensemble(capsys, tmp_path):
    out = tmp_path / "run"
    assert main([str(a) for a in classify_fit(out, "--ensemble", "2", "--seed", "4")]) == 0
    said = capsys.readouterr().out
    assert "an ensemble of 2 (seeds 4..5, predicting the mean of their probabilities)" in said
    assert "validation accuracies" in said
    assert json.loads((out / "config.json").read_text())["head"]["ensemble"] == 2
    assert isinstance(load_classifier_run(out).model, ClassifierEnsemble)
