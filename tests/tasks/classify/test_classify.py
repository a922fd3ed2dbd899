"""Sequence classification: readers and their bad-input cases, splits, the model's masking,
learning on synthetic data with a known answer, metrics against hand-computed values, reloads."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.tasks.classify.workflow import balanced_class_weights, fit_classifier
from rnnkit.tasks.classify.run import load_classifier_run, save_classifier_run
from rnnkit.tasks.classify.config import ClassifierConfig, SequenceDataConfig
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.errors import ConfigError, DataError, RunError, ShapeError
from rnnkit.tasks.classify.metrics import balanced_accuracy, classification_report, confusion_matrix, macro_f1
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.classify.data import SequenceData, read_sequences, sort_labels, stratified_split, znormalise


def waveforms(n_per_class: int = 40, seed: int = 0) -> SequenceData:
    """Sine, square and sawtooth waves with noise, random phase, period 8-12 and length 20-40."""
    rs = np.random.RandomState(seed)
    seqs, labels = [], []
    for _ in range(n_per_class):
        for label in ("sine", "square", "sawtooth"):
            T, period, phase = rs.randint(20, 41), rs.uniform(8, 12), rs.uniform(0, 1)
            u = (np.arange(T) / period + phase) % 1.0  # position within the cycle, in [0, 1)
            x = {"sine": np.sin(2 * np.pi * u), "square": np.where(u < 0.5, 1.0, -1.0),
                 "sawtooth": 2 * u - 1}[label]
            seqs.append((x + 0.15 * rs.randn(T))[:, None])
            labels.append(label)
    return SequenceData(tuple(seqs), tuple(labels), tuple(map(str, range(len(seqs)))), "<waves>", "0")


def strings(n_per_class: int = 60, seed: int = 0) -> SequenceData:
    """Strings of 3-10 characters from two overlapping distributions over 'abcdefgh'."""
    rs = np.random.RandomState(seed)
    p = {"low": np.array([4, 4, 4, 4, 1, 1, 1, 1.0]), "high": np.array([1, 1, 1, 1, 4, 4, 4, 4.0])}
    texts, labels = [], []
    for _ in range(n_per_class):
        for label, w in p.items():
            texts.append("".join(rs.choice(list("abcdefgh"), size=rs.randint(3, 11), p=w / w.sum())))
            labels.append(label)
    return SequenceData(tuple(texts), tuple(labels), tuple(map(str, range(len(texts)))), "<strings>", "0")


FAST = TrainConfig(epochs=25, batch_size=16, lr=0.01, patience=0, seed=0)


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


@pytest.fixture(scope="module")
def wave_run():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before the per-test single_thread fixture
    yield fit_classifier(SequenceDataConfig(val_frac=0.25), ModelConfig(cell="gru", hidden_size=16),
                         ClassifierConfig(pool="mean"), FAST, data=waveforms(), quiet=True)
    torch.set_num_threads(before)


# --- metrics --------------------------------------------------------------------------------

def test_classification_metrics_match_hand_computation():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 1, 0, 1, 1, 1]
    assert confusion_matrix(y_true, y_pred).tolist() == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    # recalls 2/3, 1, 0 -> 5/9; precisions 1, 2/4, 0; F1s 0.8, 2/3, 0 -> 22/45
    assert balanced_accuracy(y_true, y_pred) == pytest.approx(5 / 9, abs=1e-15)
    assert macro_f1(y_true, y_pred) == pytest.approx((0.8 + 2 / 3) / 3, abs=1e-15)
    rep = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert rep["accuracy"] == pytest.approx(4 / 6) and rep["n"] == 6
    assert rep["per_class"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 2}
    assert rep["per_class"]["c"]["f1"] == 0.0  # 0/0 counts as 0
    # a class that never occurs is left out of balanced accuracy and macro F1
    assert balanced_accuracy([0, 1], [0, 1], n_classes=3) == 1.0 and macro_f1([0, 1], [0, 1], n_classes=3) == 1.0


# --- readers --------------------------------------------------------------------------------

def test_builtin_ucr_files_read_as_published():
    ipd = read_sequences("builtin:ItalyPowerDemand_TRAIN")
    assert len(ipd) == 67 and ipd.n_features == 1 and set(ipd.lengths) == {24} and sort_labels(ipd.labels) == ("1", "2")
    assert ipd.sequences[0][:2, 0].tolist() == [-0.71051757, -1.1833204]
    jv = read_sequences("builtin:JapaneseVowels_TRAIN")  # gzip-compressed, multivariate, variable length
    assert len(jv) == 270 and jv.n_features == 12 and jv.lengths.min() == 7 and jv.lengths.max() == 26
    assert [jv.labels.count(str(k)) for k in range(1, 10)] == [30] * 9


def _write(tmp_path, name, text, gz=False):
    p = tmp_path / name
    p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return p


TS_HEADER = "# comment\n@problemName toy\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n"


def test_ts_multivariate_variable_length(tmp_path):
    p = _write(tmp_path, "toy.ts.gz", TS_HEADER + "1,2,3:4,5,6:a\n7,8:9,10:b\n", gz=True)
    d = read_sequences(p)
    assert d.labels == ("a", "b") and d.declared_classes == ("a", "b")
    np.testing.assert_array_equal(d.sequences[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(d.sequences[1], [[7, 9], [8, 10]])


@pytest.mark.parametrize("body, needle", [
    (TS_HEADER + "1,2,3:4,5:a\n", "different lengths"),          # ragged dimensions
    (TS_HEADER + "1,?,3:4,5,6:a\n", "missing value"),             # NaN in a series
    (TS_HEADER + "1,2:3,4:c\n", "not one of the classes"),
    (TS_HEADER + "1,2:3,4:a\n1,2:b\n", "dimension(s), but earlier"),
    (TS_HEADER + "1,x:3,4:a\n", "'x' is not a number"),
    ("@problemName toy\n1,2:a\n", "'@' header"),
    ("@problemName toy\n@classLabel true a\n", "no '@data'"),
    ("@timeStamps true\n@data\n(0,1):a\n", "timeStamps"),
])
def test_ts_bad_input(tmp_path, body, needle):
    with pytest.raises(DataError, match="toy.ts") as e:
        read_sequences(_write(tmp_path, "toy.ts", body))
    assert needle in str(e.value)


def test_ucr_tsv_trailing_nan_is_padding(tmp_path):
    d = read_sequences(_write(tmp_path, "x.tsv", "1\t0.5\t1.5\t2.5\n2\t3\t4\tNaN\n"))
    assert d.labels == ("1", "2") and d.lengths.tolist() == [3, 2]
    with pytest.raises(DataError, match="series 1 has a missing value .NaN. at step 2"):
        read_sequences(_write(tmp_path, "y.tsv", "1\t0.5\tNaN\t2.5\n"))


def test_csv_wide_long_and_text(tmp_path):
    wide = read_sequences(_write(tmp_path, "w.csv", "t1,t2,t3,cls\n1,2,3,x\n4,5,,y\n"), label_col="cls")
    assert wide.labels == ("x", "y") and wide.lengths.tolist() == [3, 2]
    long = read_sequences(_write(tmp_path, "l.csv", "id,label,f1,f2\ns1,a,1,2\ns1,a,3,4\ns2,b,5,6\n"), id_col="id")
    assert long.ids == ("s1", "s2") and long.n_features == 2
    np.testing.assert_array_equal(long.sequences[0], [[1, 2], [3, 4]])
    text = read_sequences(_write(tmp_path, "t.csv", "text,label\nhello,en\nhallo,de\n"))
    assert text.is_text and text.sequences == ("hello", "hallo")


@pytest.mark.parametrize("name, body, kwargs, needle", [
    ("a.csv", "t1,t2,label\n1,2,x\n", {"label_col": "klass"}, "its columns are: t1, t2, label"),
    ("b.csv", "t1,t2\n1,2\n", {}, "--label-col (its columns are: t1, t2)"),
    ("c.csv", "t1,t2,label\n1,abc,x\n", {}, "data row 1: 'abc' is not a number"),
    ("d.csv", "t1,t2,t3,label\n1,,3,x\n", {}, "missing value (NaN) at step 2"),
    ("e.csv", "id,label,v\n1,a,1\n1,b,2\n", {"id_col": "id"}, "more than one label"),
    ("f.csv", "text,label\nabc,x\n ,y\n", {}, "data row 2: the text"),
    ("g.csv", "t1,label\n", {}, "no data rows"),
    ("h.csv", "", {}, "is empty"),
    ("i.xyz", "1,2\n", {}, "unsupported file type"),
])
def test_bad_files(tmp_path, name, body, kwargs, needle):
    with pytest.raises(DataError) as e:
        read_sequences(_write(tmp_path, name, body), **kwargs)
    assert needle in str(e.value)


def test_non_utf8_missing_file_and_npz(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes("text,label\nna\xefve,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text .byte 0xef"):
        read_sequences(p)
    with pytest.raises(DataError, match="does not exist.*builtin:ItalyPowerDemand_TRAIN"):
        read_sequences(tmp_path / "nope.csv")
    X = np.arange(12.0).reshape(2, 3, 2)
    np.savez(tmp_path / "d.npz", X=X, y=np.array([1, 2]), lengths=np.array([3, 1]))
    d = read_sequences(tmp_path / "d.npz")
    assert d.labels == ("1", "2") and d.lengths.tolist() == [3, 1] and d.n_features == 2
    np.savez(tmp_path / "bad.npz", series=X)
    with pytest.raises(DataError, match="no array 'X'"):
        read_sequences(tmp_path / "bad.npz")


# --- split and normalisation ------------------------------------------------------------------

def test_stratified_split_is_seeded_and_proportional():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 1
    tr, va = stratified_split(labels, 0.2, seed=3)
    y = np.array(labels)
    assert (y[va] == "a").sum() == 10 and (y[va] == "b").sum() == 2 and (y[va] == "c").sum() == 0
    assert set(y[tr]) == {"a", "b", "c"} and len(set(tr) | set(va)) == 61
    assert [a.tolist() for a in stratified_split(labels, 0.2, 3)] == [tr.tolist(), va.tolist()]
    assert stratified_split(labels, 0.2, 4)[1].tolist() != va.tolist()


def test_znormalise_per_series_and_feature():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    z = znormalise([x])[0]
    np.testing.assert_allclose(z[:, 0], [-1.224744871391589, 0, 1.224744871391589], atol=1e-15)
    np.testing.assert_array_equal(z[:, 1], 0.0)  # a constant feature is only centred


# --- the model: padding never changes a sequence's logits ---------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "elman", "jordan"])
@pytest.mark.parametrize("pool", ["last", "mean", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_logits(cell, pool, bidirectional):
    torch.manual_seed(0)
    mc = ModelConfig(cell=cell, hidden_size=5, num_layers=2, bidirectional=bidirectional)
    model = SequenceClassifier(3, 4, mc, pool=pool).double().eval()
    x = torch.randn(3, 9, 3, dtype=torch.float64)
    lengths = torch.tensor([9, 4, 6])
    x[1, 4:] = 1e3 * torch.randn(5, 3, dtype=torch.float64)  # garbage in the padding
    x[2, 6:] = 7.0
    batched = model(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model(x[i:i + 1, :n])
        torch.testing.assert_close(batched[i:i + 1], alone, rtol=0, atol=1e-12)


def test_padding_does_not_change_logits_of_strings():
    torch.manual_seed(0)
    model = SequenceClassifier(0, 3, ModelConfig(cell="lstm", hidden_size=6, bidirectional=True),
                               pool="attention", vocab_size=10, embedding_dim=4).double().eval()
    x = torch.randint(0, 10, (2, 8))
    alone = model(x[1:, :3])
    torch.testing.assert_close(model(x, torch.tensor([8, 3]))[1:], alone, rtol=0, atol=1e-12)
    with pytest.raises(ShapeError):
        model(x.double())


def test_classifier_rejects_one_class_and_unknown_pool():
    with pytest.raises(ConfigError, match="at least 2 classes"):
        SequenceClassifier(1, 1)
    with pytest.raises(ConfigError, match="pool"):
        ClassifierConfig(pool="max")


# --- learning -------------------------------------------------------------------------------

def test_learns_sine_square_sawtooth(wave_run):
    # 90 training series, 30 for validation; chance is 1/3
    assert wave_run.metrics["validation"]["accuracy"] >= 0.9, wave_run.metrics["validation"]
    assert wave_run.history.train_loss[-1] < 0.3 * wave_run.history.train_loss[0]
    assert len(wave_run.meta["val_index"]) == 30 and wave_run.meta["train_class_counts"] == {
        "sawtooth": 30, "sine": 30, "square": 30}
    fresh = waveforms(20, seed=1)
    assert wave_run.evaluate(fresh)["accuracy"] >= 0.85


def test_same_seed_identical_history():
    def losses():
        run = fit_classifier(SequenceDataConfig(), ModelConfig(cell="lstm", hidden_size=4),
                             ClassifierConfig(pool="attention"), FAST.replace(epochs=3), data=waveforms(10), quiet=True)
        return [(r["train_loss"], r["val_loss"]) for r in run.history.rows]
    assert losses() == losses()


def test_learns_strings_from_two_character_distributions():
    run = fit_classifier(SequenceDataConfig(val_frac=0.25), ModelConfig(cell="gru", hidden_size=16),
                         ClassifierConfig(pool="mean", embedding_dim=8), FAST.replace(epochs=15),
                         data=strings(), quiet=True)
    assert run.metrics["validation"]["accuracy"] >= 0.85, run.metrics["validation"]
    assert run.vocab is not None and "a" in run.vocab and run.vocab.unknown == "replace"
    assert run.predict(SequenceData(("aaabbbc", "ffgghhe"), None, ("1", "2"), "<new>", "0")) == ["low", "high"]


def test_balanced_class_weights():
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 2)
    np.testing.assert_allclose(w, [4 / 6, 4 / 2])
    data = waveforms(10)
    keep = [i for i, lab in enumerate(data.labels) if lab != "square" or i % 5 == 0]
    run = fit_classifier(SequenceDataConfig(val_frac=0.0), ModelConfig(cell="gru", hidden_size=4),
                         ClassifierConfig(class_weights="balanced"), FAST.replace(epochs=1),
                         data=data.subset(keep), quiet=True)
    assert run.meta["train_class_counts"] == {"sawtooth": 10, "sine": 10, "square": 2}


# --- errors ---------------------------------------------------------------------------------

def test_class_missing_from_training_and_single_class():
    data = waveforms(5)
    keep = [i for i, lab in enumerate(data.labels) if lab != "square"]
    with pytest.raises(DataError, match="'square' with no examples in the training data"):
        fit_classifier(data=data.subset(keep), test=data, train_config=FAST, quiet=True)
    one = data.subset([i for i, lab in enumerate(data.labels) if lab == "sine"])
    with pytest.raises(DataError, match="only one class"):
        fit_classifier(data=one, train_config=FAST, quiet=True)
    declared = SequenceData(data.sequences, data.labels, data.ids, "<x>", "0", ("sine", "square", "sawtooth", "x"))
    with pytest.raises(DataError, match="'x' declared in the header"):
        fit_classifier(data=declared, train_config=FAST, quiet=True)


def test_prediction_data_must_match_training(wave_run):
    two = SequenceData((np.zeros((5, 2)),), None, ("1",), "<two>", "0")
    with pytest.raises(DataError, match="2 feature"):
        wave_run.predict(two)
    with pytest.raises(DataError, match="'triangle' with no examples"):
        wave_run.evaluate(SequenceData((np.zeros((5, 1)),), ("triangle",), ("1",), "<t>", "0"))
    with pytest.raises(DataError, match="strings"):
        wave_run.predict(SequenceData(("abc",), None, ("1",), "<s>", "0"))


# --- run directory --------------------------------------------------------------------------

def test_saved_run_reloads_bit_for_bit(wave_run, tmp_path):
    out = save_classifier_run(wave_run, tmp_path / "run", plots=False)
    for name in ("config.json", "weights.safetensors", "labels.json", "scaler.json", "history.csv",
                 "metrics.json", "confusion_matrix.csv"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "classify" and config["head"]["pool"] == "mean"
    loaded = load_classifier_run(out)
    fresh = waveforms(8, seed=2)
    np.testing.assert_array_equal(loaded.predict_proba(fresh), wave_run.predict_proba(fresh))
    assert loaded.classes == ("sawtooth", "sine", "square")
    assert isinstance(rnnkit.load_run(out), type(loaded))
    (out / "labels.json").unlink()
    with pytest.raises(RunError, match="incomplete .missing labels.json"):
        load_classifier_run(out)


# --- the examples (slow) ----------------------------------------------------------------------

def _example(name: str):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[3] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_example_italy_power_demand_beats_published_dtw():
    r = _example("classify_ucr").main(seeds=1, datasets=("ItalyPowerDemand",))["ItalyPowerDemand"]
    # the shipped files reproduce the archive's published 1-NN error rates (46 and 51 of 1029)
    assert r["baselines"]["1-NN euclidean (measured)"] == pytest.approx(46 / 1029, abs=1e-12)
    assert r["baselines"]["1-NN dtw (measured)"] == pytest.approx(51 / 1029, abs=1e-12)
    assert r["rnn"][0]["test_error"] < 0.05  # below 1-NN DTW's 0.0496 with seed 0


@pytest.mark.slow
def test_example_names_by_language():
    r = _example("classify_names").main(quick=True)
    assert r["test"]["n"] == 625 and r["test"]["balanced_accuracy"] > 1 / 11  # better than chance after 3 epochs


def test_fused_trainer_runs_equal_length_last_pool_classifiers_exactly():
    """Real-valued series of one length with last-step pooling train in the native fused trainer;
    the history equals the torch loop's (float64), and other set-ups fall back to the torch loop."""
    dc = SequenceDataConfig(source="builtin:ItalyPowerDemand_TRAIN")
    runs = [fit_classifier(dc, ModelConfig(cell="gru", hidden_size=8),
                           train_config=TrainConfig(epochs=3, engine=e, patience=0), quiet=True, dtype=torch.float64)
            for e in ("torch", "auto")]
    assert [r.history.engine for r in runs] == ["torch", "fused"]
    assert runs[0].history.train_loss == pytest.approx(runs[1].history.train_loss, abs=1e-10, rel=0)
    assert runs[0].history.val_loss == pytest.approx(runs[1].history.val_loss, abs=1e-10, rel=0)
    mean_pool = fit_classifier(dc, ModelConfig(cell="gru", hidden_size=8), ClassifierConfig(pool="mean"),
                               train_config=TrainConfig(epochs=1), quiet=True)
    assert mean_pool.history.engine == "torch"


@pytest.mark.parametrize("cell, layers", [("gru", 1), ("lstm", 2), ("jordan", 1)])
def test_fused_trainer_runs_variable_length_classifiers_exactly(cell, layers):
    """Variable-length series (JapaneseVowels: 7 to 29 steps, padded) train in the fused trainer with
    the padding masked: the same history as the torch loop, which cuts each batch to its longest."""
    dc = SequenceDataConfig(source="builtin:JapaneseVowels_TRAIN")
    runs = [fit_classifier(dc, ModelConfig(cell=cell, hidden_size=6, num_layers=layers),
                           train_config=TrainConfig(epochs=2, engine=e, patience=0), quiet=True, dtype=torch.float64)
            for e in ("torch", "auto")]
    assert [r.history.engine for r in runs] == ["torch", "fused"]
    assert runs[0].history.train_loss == pytest.approx(runs[1].history.train_loss, abs=1e-10, rel=0)
    assert runs[0].history.val_loss == pytest.approx(runs[1].history.val_loss, abs=1e-10, rel=0)
