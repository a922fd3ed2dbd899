"""Loading a damaged or hostile run directory: every file is checked against the config before
anything is built, and each problem is one RunError naming the file (API) or one line and exit
status 2 (CLI). Real small runs of each kind are made once per module; each test damages a copy.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

import rnnkit
from rnnkit.tasks.classify.workflow import fit_classifier
from rnnkit.tasks.classify.run import load_classifier_run, save_classifier_run
from rnnkit.cli import main
from rnnkit.tasks.classify.config import ClassifierConfig, SequenceDataConfig
from rnnkit.tasks.forecast.config import DataConfig
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.tasks.text.config import TextConfig
from rnnkit.errors import RnnkitWarning, RunError
from rnnkit.tasks.forecast.workflow import fit_forecaster
from rnnkit.training.runcheck import MAX_JSON_BYTES
from rnnkit.tasks.forecast.run import load_forecast_run, save_run
from rnnkit.tasks.text.workflow import fit_char_lm
from rnnkit.tasks.text.run import load_text_run, save_text_run

KINDS = ("forecast", "classify", "strings", "text")
LOADERS = {"forecast": load_forecast_run, "classify": load_classifier_run, "strings": load_classifier_run,
           "text": load_text_run}
W = "weights.safetensors"


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One small trained run of each kind (the string classifier has a vocab.json, not a scaler)."""
    root = tmp_path_factory.mktemp("runs")
    tc = TrainConfig(epochs=2, batch_size=8, patience=0)
    mc = ModelConfig(cell="gru", hidden_size=4)
    out = {}
    run = fit_forecaster(DataConfig(source="builtin:sine", lookback=5, horizon=2), mc, tc, quiet=True)
    out["forecast"] = save_run(run, root / "forecast")
    # one classifier (the job's default is an ensemble, whose damaged files tests/tasks/classify/test_ensemble.py
    # checks): the tensor names below are a single classifier's
    run = fit_classifier(SequenceDataConfig(source="builtin:ItalyPowerDemand_TRAIN"), mc, None, tc, quiet=True,
                         ensemble=1)
    out["classify"] = save_classifier_run(run, root / "classify", plots=False)
    csv = root / "names.csv"
    csv.write_text("text,label\n" + "".join(f"{w}{i},{lab}\n" for i in range(6)
                                            for w, lab in (("anna", "a"), ("bert", "b"))), encoding="utf-8")
    run = fit_classifier(SequenceDataConfig(source=str(csv)), mc, ClassifierConfig(embedding_dim=3), tc, quiet=True)
    out["strings"] = save_classifier_run(run, root / "strings", plots=False)
    run = fit_char_lm(TextConfig(seq_len=8, steps=4), mc, TrainConfig(batch_size=4, patience=0),
                      text="hello world, hello there. " * 20, quiet=True)
    out["text"] = save_text_run(run, root / "text", plots=False)
    out["names.csv"] = csv
    return out


def cli_commands(kind: str, d: Path, runs) -> list[list[str]]:
    if kind == "forecast":
        return [["forecast", "--run", d], ["evaluate", "--run", d]]
    if kind == "text":
        return [["text", "generate", "--run", d, "--length", "5"]]
    data = "builtin:ItalyPowerDemand_TEST" if kind == "classify" else runs["names.csv"]
    return [["classify", "predict", "--run", d, "--data", data]]


def damaged(runs, kind: str, tmp_path: Path, damage) -> Path:
    d = tmp_path / kind
    shutil.copytree(runs[kind], d)
    damage(d)
    return d


def assert_refused(runs, kind: str, d: Path, file: str, needle: str, capsys) -> None:
    """API: RunError naming ``file`` and ``needle``, on one line. CLI: that line, exit 2."""
    for load in (LOADERS[kind], rnnkit.load_run):
        with pytest.raises(RunError) as e:
            load(d)
        msg = str(e.value)
        assert file in msg and needle in msg and "\n" not in msg, msg
    for argv in cli_commands(kind, d, runs):
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("rnnkit: error: ") and needle in err, err


def edit_json(name: str, change):
    def damage(d: Path) -> None:
        obj = json.loads((d / name).read_text(encoding="utf-8"))
        change(obj)
        (d / name).write_text(json.dumps(obj), encoding="utf-8")
    return damage


def write(name: str, data: bytes | str):
    def damage(d: Path) -> None:
        (d / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return damage


def edit_weights(change):
    def damage(d: Path) -> None:
        state = load_file(str(d / W))
        change(state)
        save_file(state, str(d / W))
    return damage


def replace_with_dir(name: str):
    def damage(d: Path) -> None:
        (d / name).unlink()
        (d / name).mkdir()
    return damage


def test_intact_runs_load_without_warnings_or_pickle(runs, monkeypatch):
    """The checks refuse nothing a real run holds, and loading never unpickles."""
    def no_pickle(*args, **kwargs):
        raise AssertionError("loading a run must not unpickle")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind in KINDS:
            run = rnnkit.load_run(runs[kind])
            assert run.history is not None and run.metrics is not None


# --- 1. weights that are not a safetensors file -------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("damage, needle", [
    (write(W, np.random.default_rng(0).bytes(4000)), "not a safetensors file"),
    (write(W, b"\x10" + bytes(7) + b"not json at all!" + bytes(64)), "no valid safetensors header"),
    (lambda d: os.truncate(d / W, os.path.getsize(d / W) // 2), "truncated"),
    (lambda d: os.truncate(d / W, os.path.getsize(d / W) - 1), "truncated"),
    (write(W, b""), "is empty"),
    (replace_with_dir(W), "is a directory"),
], ids=["garbage", "bad-header", "half", "one-byte-short", "empty", "directory"])
def test_weights_file_damaged(runs, kind, damage, needle, tmp_path, capsys):
    assert_refused(runs, kind, damaged(runs, kind, tmp_path, damage), W, needle, capsys)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_weights_fifo_is_refused_without_blocking(runs, tmp_path, capsys):
    def fifo(d: Path) -> None:
        (d / W).unlink()
        os.mkfifo(d / W)
    assert_refused(runs, "forecast", damaged(runs, "forecast", tmp_path, fifo), W, "not a regular file", capsys)


# --- 2. weights that do not match the model the config describes ---------------------------------

def _first(state) -> str:
    return sorted(state)[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("change, needle", [
    (lambda s: s.update({k: v.to(torch.int64) for k, v in s.items()}), "is I64, but the run's dtype is float32"),
    (lambda s: s.update({k: v > 0 for k, v in s.items()}), "is BOOL, but the run's dtype is float32"),
    (lambda s: s.update({k: v.double() for k, v in s.items()}), "is F64, but the run's dtype is float32"),
    (lambda s: s.pop("head.bias"), "lacks head.bias"),
    (lambda s: s.update({"extra.weight": torch.zeros(2)}), "has extra tensor(s) extra.weight"),
    (lambda s: s.update({"head.bias": torch.zeros(s["head.bias"].shape[0] + 1)}), "tensor head.bias has shape"),
    (lambda s: s.update({"head.weight": s["head.weight"].reshape(-1)}), "tensor head.weight has shape"),
    (lambda s: s[_first(s)].view(-1).__setitem__(0, float("nan")), "holds NaN or infinite values"),
], ids=["int64", "bool", "float64", "missing", "extra", "shape", "flattened", "nan"])
def test_weights_must_match_the_config(runs, kind, change, needle, tmp_path, capsys):
    assert_refused(runs, kind, damaged(runs, kind, tmp_path, edit_weights(change)), W, needle, capsys)


# --- 3. config.json -------------------------------------------------------------------------------

def _set(path: str, value):
    def change(c: dict) -> None:
        *parents, key = path.split(".")
        for p in parents:
            c = c[p]
        c[key] = value
    return change


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("damage, needle", [
    (edit_json("config.json", _set("meta.dtype", "float99")), "meta.dtype is \"float99\""),
    (edit_json("config.json", _set("meta.dtype", "int64")), "meta.dtype is \"int64\""),
    (edit_json("config.json", _set("model.hidden_size", "4")), "'hidden_size' in the 'model' section must be an integer"),
    (edit_json("config.json", _set("model.hidden_size", 4.0)), "'hidden_size' in the 'model' section must be an integer"),
    (edit_json("config.json", _set("model.bidirectional", "no")), "'bidirectional' in the 'model' section must be true"),
    (edit_json("config.json", _set("model", [])), "the 'model' section must be a JSON object"),
    (edit_json("config.json", _set("meta", "x")), "the 'meta' section must be a JSON object"),
    (edit_json("config.json", _set("model.cell", "rnn")), "cell must be one of"),
    (edit_json("config.json", _set("model.extra", 1)), "unknown key(s) 'extra'"),
    (edit_json("config.json", _set("shapes.extra", 1)), "unknown key(s) 'extra'"),
    (edit_json("config.json", _set("train.lr", -1.0)), "lr must be a positive number"),
    (edit_json("config.json", _set("versions", "new")), "'versions' in the file must be an object of strings"),
    (edit_json("config.json", _set("kind", 3)), "'kind' in the file must be a string"),
    (edit_json("config.json", _set("format_version", 2)), "format version 2"),
    (edit_json("config.json", _set("format_version", True)), "format version True"),
    (edit_json("config.json", _set("format_version", "1")), "format version '1'"),
    (write("config.json", "[" * 100_000 + "]" * 100_000), "nests objects more deeply"),
    (write("config.json", '{"format_version": 1, "model": ' + "[" * 100_000 + "]" * 100_000 + "}"), "nests"),
    (write("config.json", b'{"format_version": 1, "kind": "\xff"}'), "is not UTF-8 text (byte 0xff"),
    (write("config.json", '{"format_version": 1, '), "is not valid JSON"),
    (write("config.json", '{"format_version": 1, "format_version": 1}'), "appears twice"),
    (write("config.json", '{"format_version": 1, "x": NaN}'), "NaN is not JSON"),
    (write("config.json", '{"format_version": 1, "x": 1' + "0" * 5000 + "}"), "is not valid JSON"),
    (write("config.json", "[1]"), "is not a JSON object"),
    (lambda d: os.truncate(d / "config.json", MAX_JSON_BYTES + 1), "more than the"),
    (replace_with_dir("config.json"), "is a directory"),
], ids=["float99", "int64", "str-hidden", "float-hidden", "str-bool", "list-section", "str-meta", "cell",
        "extra-setting", "extra-shape", "bad-value", "versions", "kind-type", "version-2", "version-true",
        "version-str", "deep", "deep-inside", "non-utf8", "truncated", "duplicate-key", "nan", "huge-int", "list",
        "huge-file", "directory"])
def test_config_damaged(runs, kind, damage, needle, tmp_path, capsys):
    assert_refused(runs, kind, damaged(runs, kind, tmp_path, damage), "config.json", needle, capsys)


def test_config_number_out_of_float_range_is_refused(runs, tmp_path, capsys):
    d = damaged(runs, "forecast", tmp_path, lambda d: (d / "config.json").write_text(
        (d / "config.json").read_text().replace('"lr": 0.001', '"lr": 1e999')))
    assert_refused(runs, "forecast", d, "config.json", "'lr' in the 'train' section must be a number", capsys)


@pytest.mark.parametrize("kind", KINDS)
def test_every_missing_config_key_is_refused(runs, kind, tmp_path, capsys):
    """Each key the writer puts in config.json (sections and the keys in them): a setting left out
    is refused, never silently replaced by a default."""
    config = json.loads((runs[kind] / "config.json").read_text())
    paths = [k for k in config] + [f"{s}.{k}" for s, v in config.items() if isinstance(v, dict) and s != "versions"
                                   for k in v]
    assert len(paths) > 40
    for i, path in enumerate(paths):
        def drop(c: dict, path=path) -> None:
            *parents, key = path.split(".")
            for p in parents:
                c = c[p]
            del c[key]
        d = damaged(runs, kind, tmp_path / str(i), edit_json("config.json", drop))
        key = path.split(".")[-1]
        needle = "format version None" if key == "format_version" else f"lacks {'the ' if '.' not in path and key not in ('kind', 'versions') else ''}'{key}'"
        assert_refused(runs, kind, d, "config.json", needle, capsys)


# --- 4. absurd sizes are refused before anything is built ---------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path, value, needle", [
    ("model.num_layers", 500, "describes 500 recurrent layers"),
    ("model.hidden_size", 10 ** 9, "asks for hidden_size 1000000000"),
    ("model.hidden_size", 10 ** 18, "asks for hidden_size"),
    ("model.hidden_size", 5, "has shape"),
    ("model.num_layers", 2, "lacks rnn.weight_ih_l1"),
], ids=["layers", "hidden", "hidden-overflow", "hidden+1", "layers+1"])
def test_absurd_or_wrong_sizes(runs, kind, path, value, needle, tmp_path, capsys):
    d = damaged(runs, kind, tmp_path, edit_json("config.json", _set(path, value)))
    assert_refused(runs, kind, d, "", needle, capsys)


@pytest.mark.parametrize("kind, changes, needle", [
    ("forecast", {"data.horizon": 10 ** 9, "shapes.horizon": 10 ** 9}, "asks for horizon x targets"),
    ("forecast", {"shapes.n_targets": 2}, "do not match the data section"),
    ("forecast", {"meta.test_start": 10 ** 6}, "meta's split"),
    ("forecast", {"meta.refit_epochs": [2, 2]}, "meta's refit_epochs [2, 2]"),  # two members in a run of one
    ("forecast", {"meta.refit_epochs": [-1]}, "meta's refit_epochs [-1]"),
    ("forecast", {"data.refit": "none", "meta.refit_epochs": [2]}, "with refit 'none'"),
    ("forecast", {"meta.naive_members": 1, "meta.refit_epochs": [2]}, "1 naive"),
    ("strings", {"head.embedding_dim": 10 ** 9}, "asks for vocab_size x embedding_dim"),
    ("strings", {"shapes.input_size": 3}, "contradict each other"),
    ("text", {"text.embedding_dim": 10 ** 9, "shapes.embedding_dim": 10 ** 9}, "vocab_size x embedding_dim"),
    ("text", {"shapes.embedding_dim": 3}, "differs from the text section"),
    ("text", {"model.bidirectional": True}, "cannot be bidirectional"),
    ("classify", {"model.bidirectional": True}, "lacks rnn.weight_ih_l0_reverse"),
    ("classify", {"head.pool": "attention"}, "lacks attention.proj.weight"),
])
def test_config_sections_must_agree(runs, kind, changes, needle, tmp_path, capsys):
    def change(c: dict) -> None:
        for path, value in changes.items():
            _set(path, value)(c)
    assert_refused(runs, kind, damaged(runs, kind, tmp_path, edit_json("config.json", change)), "", needle, capsys)


# --- 5. labels and vocabularies -------------------------------------------------------------------

@pytest.mark.parametrize("kind, damage, needle", [
    ("classify", edit_json("labels.json", lambda c: c["classes"].append("3")), "lists 3 classes"),
    ("classify", edit_json("labels.json", lambda c: c["classes"].pop()), "lists 1 classes"),
    ("classify", edit_json("labels.json", lambda c: c.update(classes=["1", "1"])), "lists a class twice"),
    ("classify", edit_json("labels.json", lambda c: c.update(classes="12")), "must be {\"classes\""),
    ("classify", write("labels.json", "[]"), "must be {\"classes\""),
    ("classify", replace_with_dir("labels.json"), "is a directory"),
    ("classify", lambda d: (d / "labels.json").unlink(), "incomplete (missing labels.json)"),
    ("strings", edit_json("vocab.json", lambda c: c["chars"].pop()), "characters, config.json shapes.vocab_size"),
    ("strings", edit_json("vocab.json", lambda c: c.update(chars="abc")), "list of single characters"),
    ("strings", edit_json("vocab.json", lambda c: c["chars"].append("ab")), "list of single characters"),
    ("strings", edit_json("vocab.json", lambda c: c["chars"].append(c["chars"][-1])), "cannot list a character twice"),
    ("strings", edit_json("vocab.json", lambda c: c["chars"].remove("\ufffd")), "must list U+FFFD"),
    ("strings", lambda d: (d / "vocab.json").unlink(), "vocab.json: is missing"),
    ("text", edit_json("vocab.json", lambda c: c["chars"].pop()), "characters, config.json shapes.vocab_size"),
    ("text", edit_json("vocab.json", lambda c: c.update(unknown="maybe")), "unknown must be one of"),
    ("text", edit_json("vocab.json", lambda c: c.update(extra=1)), "expected exactly the keys"),
    ("text", write("vocab.json", "\"abc\""), "not a saved CharVocab"),
])
def test_labels_and_vocabulary_must_match(runs, kind, damage, needle, tmp_path, capsys):
    assert_refused(runs, kind, damaged(runs, kind, tmp_path, damage), "", needle, capsys)


def test_labels_and_head_size_must_match_even_when_the_config_agrees(runs, tmp_path, capsys):
    def three_classes(d: Path) -> None:
        edit_json("labels.json", lambda c: c["classes"].append("3"))(d)
        edit_json("config.json", _set("shapes.n_classes", 3))(d)
    d = damaged(runs, "classify", tmp_path, three_classes)
    assert_refused(runs, "classify", d, W, "tensor head.weight has shape [2, 4], where the model config.json "
                   "describes needs [3, 4]", capsys)


# --- 6. scaler.json -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["forecast", "classify"])
@pytest.mark.parametrize("damage, needle", [
    (edit_json("scaler.json", lambda s: s.update(scale=[-1.0])), "scales must be positive"),
    (edit_json("scaler.json", lambda s: s.update(scale=[0.0])), "scales must be positive"),
    (edit_json("scaler.json", lambda s: s.update(offset=[None])), "must be a list of numbers"),
    (edit_json("scaler.json", lambda s: s.update(offset=["0.5"])), "must be a list of numbers"),
    (edit_json("scaler.json", lambda s: s.update(scale=[True])), "must be a list of numbers"),
    (edit_json("scaler.json", lambda s: s.update(offset=s["offset"] * 2, scale=s["scale"] * 2)), "scales 2 column(s)"),
    (edit_json("scaler.json", lambda s: s.update(offset=s["offset"] * 2)), "one offset and one scale per column"),
    (edit_json("scaler.json", lambda s: s.update(kind="robust")), "unknown scaler kind 'robust'"),
    (edit_json("scaler.json", lambda s: s.update(kind="none")), "offset 0 and scale 1"),
    (edit_json("scaler.json", lambda s: s.pop("kind")), "expected exactly the keys 'kind', 'offset', 'scale'"),
    (lambda d: (d / "scaler.json").write_text('{"kind": "minmax", "offset": [NaN], "scale": [1]}'), "NaN is not JSON"),
    (lambda d: (d / "scaler.json").write_text('{"kind": "minmax", "offset": [0], "scale": [1e999]}'), "NaN or infinite"),
    (write("scaler.json", b"\x00\x01garbage"), "is not valid JSON"),
], ids=["negative", "zero", "null", "string", "bool", "columns", "mismatched", "kind", "none", "keys", "nan",
        "inf", "garbage"])
def test_scaler_damaged(runs, kind, damage, needle, tmp_path, capsys):
    assert_refused(runs, kind, damaged(runs, kind, tmp_path, damage), "scaler.json", needle, capsys)


# --- 7. history.csv and metrics.json are reports: ignored with a warning --------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name, damage, needle", [
    ("history.csv", write("history.csv", np.random.default_rng(1).bytes(300)), "history.csv"),
    ("history.csv", write("history.csv", "a,b\n1,2\n"), "its columns are"),
    ("history.csv", write("history.csv", "epoch,train_loss,val_loss,lr,seconds\n1,x,2,3,4\n"), "not numbers"),
    ("history.csv", write("history.csv", ""), "history.csv"),
    ("history.csv", replace_with_dir("history.csv"), "is a directory"),
    ("metrics.json", write("metrics.json", "{"), "is not valid JSON"),
    ("metrics.json", write("metrics.json", "[]"), "not a JSON object"),
    ("metrics.json", write("metrics.json", "[" * 100_000), "nests objects more deeply"),
    ("metrics.json", replace_with_dir("metrics.json"), "is a directory"),
], ids=["history-garbage", "history-columns", "history-text", "history-empty", "history-dir", "metrics-json",
        "metrics-list", "metrics-deep", "metrics-dir"])
def test_damaged_reports_are_ignored_with_a_warning(runs, kind, name, damage, needle, tmp_path, capsys):
    d = damaged(runs, kind, tmp_path, damage)
    with pytest.warns(RnnkitWarning, match="ignored") as record:
        run = LOADERS[kind](d)
    (message,) = [str(w.message) for w in record if issubclass(w.category, RnnkitWarning)]
    assert needle in message and name in message, message
    assert (run.history if name == "history.csv" else run.metrics) is None
    assert (run.metrics if name == "history.csv" else run.history) is not None
    for argv in cli_commands(kind, d, runs):
        assert main([str(a) for a in argv]) == 0
        err = capsys.readouterr().err
        assert err.startswith("rnnkit: warning: ") and err.count("\n") == 1 and needle in err, err


def test_absent_reports_are_not_a_problem(runs, tmp_path):
    def drop(d: Path) -> None:
        (d / "history.csv").unlink()
        (d / "metrics.json").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = rnnkit.load_run(damaged(runs, "forecast", tmp_path, drop))
    assert run.history is None and run.metrics is None


def test_a_history_written_before_the_steps_column_loads(runs, tmp_path):
    """history.csv gained its ``steps`` column with the step budget; the older files, without it
    (and the oldest, with ``seconds``), are still read, with no warning."""
    def older(d: Path) -> None:
        frame = pd.read_csv(d / "history.csv")
        assert list(frame.columns) == ["epoch", "steps", "train_loss", "val_loss", "lr"]
        frame.drop(columns="steps").assign(seconds=0.5).to_csv(d / "history.csv", index=False)
        (d / "timing.csv").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = rnnkit.load_run(damaged(runs, "forecast", tmp_path, older))
    assert run.history.rows and all("steps" not in r and r["seconds"] == 0.5 for r in run.history.rows)
