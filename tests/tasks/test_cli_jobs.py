"""``rnnkit classify`` and ``rnnkit text``: round trips in a temp dir, and every bad-input case
with its one-line message, exit status 2 and no run directory left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnkit.cli import main

CLASSIFY_FAST = ["--epochs", "3", "--hidden", "4", "--batch-size", "16", "--quiet"]
TEXT_FAST = ["--steps", "20", "--hidden", "8", "--seq-len", "8", "--batch-size", "4", "--quiet"]
SRC = str(Path(__file__).parents[2] / "src")


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


@pytest.fixture
def waves_csv(tmp_path: Path) -> Path:
    """60 rows: sine or square waves of 12-16 steps (shorter rows end in empty cells)."""
    rs = np.random.RandomState(0)
    rows = []
    for i in range(60):
        kind = ("sine", "square")[i % 2]
        T = rs.randint(12, 17)
        u = (np.arange(T) / 6 + rs.uniform()) % 1
        x = np.sin(2 * np.pi * u) if kind == "sine" else np.where(u < 0.5, 1.0, -1.0)
        rows.append([kind] + list(np.round(x + 0.1 * rs.randn(T), 4)) + [None] * (16 - T))
    path = tmp_path / "waves.csv"
    pd.DataFrame(rows, columns=["kind"] + [f"t{i}" for i in range(16)]).to_csv(path, index=False)
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    return path


def _write(tmp_path: Path, name: str, data) -> Path:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def test_classify_fit_predict_evaluate_round_trip(waves_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("classify", "fit", waves_csv, "--label-col", "kind", "--test", waves_csv, "--pool", "attention",
                   "--out", out, *CLASSIFY_FAST) == 0
    printed = capsys.readouterr().out
    assert "test (60)" in printed and "confusion matrix (test)" in printed
    for name in ("config.json", "weights.safetensors", "labels.json", "scaler.json", "history.csv", "metrics.json",
                 "confusion_matrix.csv", "confusion_matrix.png", "learning_curve.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "labels.json").read_text()) == {"classes": ["sine", "square"]}

    assert run_cli("classify", "predict", "--run", out, "--data", waves_csv, "--out", tmp_path / "p.csv") == 0
    preds = pd.read_csv(tmp_path / "p.csv")
    assert list(preds.columns) == ["id", "label", "true", "p_sine", "p_square"] and len(preds) == 60
    np.testing.assert_allclose(preds[["p_sine", "p_square"]].sum(axis=1), 1.0, atol=1e-9)

    capsys.readouterr()
    assert run_cli("classify", "evaluate", "--run", out, "--data", waves_csv, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())["test"]
    assert report["accuracy"] == saved["accuracy"] and report["confusion_matrix"] == saved["confusion_matrix"]
    assert (preds["label"] == preds["true"]).mean() == report["accuracy"]
    assert run_cli("classify", "evaluate", "--run", out, "--data", waves_csv) == 0
    assert "precision" in capsys.readouterr().out


def test_classify_predict_unlabelled_strings(tmp_path, capsys):
    data = _write(tmp_path, "names.csv", "text,label\n" + "".join(f"{w},{lab}\n" for w, lab in [
        ("anna", "a"), ("bob", "b"), ("ada", "a"), ("bibb", "b")] * 5))
    out = tmp_path / "run"
    assert run_cli("classify", "fit", data, "--out", out, "--val-frac", "0", *CLASSIFY_FAST) == 0
    new = _write(tmp_path, "new.csv", "text\nabba\nzzz\n")  # 'z' is unknown: replaced (the default)
    capsys.readouterr()
    assert run_cli("classify", "predict", "--run", out, "--data", new) == 0
    table = capsys.readouterr().out
    assert "abba" in table and "p_a" in table


def test_text_fit_generate_evaluate_suggest_round_trip(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("text", "fit", corpus, "--out", out, *TEXT_FAST) == 0
    printed = capsys.readouterr().out
    assert "add-one trigram (validation)" in printed and "bits/char" in printed
    for name in ("config.json", "weights.safetensors", "vocab.json", "history.csv", "metrics.json", "sample.txt",
                 "learning_curve.png"):
        assert (out / name).is_file(), name
    assert run_cli("text", "generate", "--run", out, "--prime", "the ", "--length", "30", "--seed", "3") == 0
    first = capsys.readouterr().out
    assert first.startswith("the ") and len(first.rstrip("\n")) == 34
    assert run_cli("text", "generate", "--run", out, "--prime", "the ", "--length", "30", "--seed", "3") == 0
    assert capsys.readouterr().out == first  # seeded
    assert run_cli("text", "evaluate", "--run", out, "--data", corpus, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["chars"] == 960 and 0 < result["bits_per_char"] < 5
    assert run_cli("text", "suggest", "--run", out, "--prime", "the c", "--k", "3") == 0
    assert "completion" in capsys.readouterr().out


def test_builtin_names_resolve(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("text", "fit", "builtin:zen", "--out", out, *TEXT_FAST) == 0
    assert "builtin:zen" in (out / "config.json").read_text()


def test_refuses_to_overwrite_without_force(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("text", "fit", corpus, "--out", out, *TEXT_FAST) == 0
    before = (out / "weights.safetensors").read_bytes()
    assert run_cli("text", "fit", corpus, "--out", out, *TEXT_FAST, "--seed", "1") == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "weights.safetensors").read_bytes() == before
    assert run_cli("text", "fit", corpus, "--out", out, *TEXT_FAST, "--seed", "1", "--force") == 0
    assert (out / "weights.safetensors").read_bytes() != before and leftovers(tmp_path) == []


TS = "@problemName toy\n@dimensions 2\n@classLabel true a b\n@data\n"
BAD_CLASSIFY = {
    "missing file": (None, [], "does not exist"),
    "empty file": (("e.csv", ""), [], "is empty"),
    "unknown label column": (("w.csv", "t1,t2,kind\n1,2,a\n3,4,b\n"), ["--label-col", "class"],
                             "its columns are: t1, t2, kind"),
    "no label column": (("w.csv", "t1,t2,kind\n1,2,a\n3,4,b\n"), [], "--label-col"),
    "ragged dimensions": (("r.ts", TS + "1,2,3:4,5:a\n1,2:3,4:b\n"), [], "ragged dimensions"),
    "NaN in a series": (("n.csv", "t1,t2,t3,label\n1,,3,a\n1,2,3,b\n"), [], "missing value (NaN) at step 2"),
    "non-UTF-8": (("l.csv", "text,label\ncaf\xe9,a\n".encode("latin-1")), [], "not UTF-8"),
    "one class": (("o.csv", "t1,t2,label\n1,2,a\n3,4,a\n"), [], "only one class"),
    "bad setting": (("w.csv", "t1,t2,label\n1,2,a\n3,4,b\n"), ["--val-frac", "1.5"], "val_frac"),
    "min count with error": (("s.csv", "text,label\nab,a\ncd,b\n"), ["--min-count", "2", "--unknown", "error"],
                             "min_count"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLASSIFY))
def test_classify_fit_bad_input(case, tmp_path, capsys):
    file, extra, needle = BAD_CLASSIFY[case]
    data = tmp_path / "nope.csv" if file is None else _write(tmp_path, *file)
    out = tmp_path / "run"
    assert run_cli("classify", "fit", data, "--out", out, *CLASSIFY_FAST, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1, err
    assert needle in err, err
    assert not out.exists() and leftovers(tmp_path) == []


def test_classify_test_class_missing_from_training(waves_csv, tmp_path, capsys):
    test = _write(tmp_path, "test.csv", "kind,t0,t1\nsine,1,2\ntriangle,3,4\n")
    out = tmp_path / "run"
    assert run_cli("classify", "fit", waves_csv, "--label-col", "kind", "--test", test, "--out", out,
                   *CLASSIFY_FAST) == 2
    assert "'triangle' with no examples in the training data" in capsys.readouterr().err
    assert not out.exists()


def test_classify_predict_data_checks(waves_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("classify", "fit", waves_csv, "--label-col", "kind", "--out", out, *CLASSIFY_FAST) == 0
    for body, needle in [("t1,t2,t3\n1,2,3\n", None),  # no label column, fewer steps than in training: fine
                         ("f1\n1\n", None),
                         ("text\nabc\n", "holds strings, but the model was trained on numeric series")]:
        capsys.readouterr()
        code = run_cli("classify", "predict", "--run", out, "--data", _write(tmp_path, "new.csv", body))
        assert code == (0 if needle is None else 2), body
        if needle is not None:
            assert needle in capsys.readouterr().err
    long = _write(tmp_path, "long.csv", "id,f1,f2\n1,2,3\n1,4,5\n")  # training data without labels
    assert run_cli("classify", "fit", long, "--id-col", "id", "--out", tmp_path / "x", *CLASSIFY_FAST) == 2
    assert "has no column named 'label'" in capsys.readouterr().err


def test_text_bad_input(corpus, tmp_path, capsys):
    cases = [(_write(tmp_path, "empty.txt", ""), "is empty"),
             (_write(tmp_path, "blank.txt", "  \n"), "only whitespace"),
             (_write(tmp_path, "latin1.txt", "caf\xe9 au lait".encode("latin-1")), "not UTF-8"),
             (_write(tmp_path, "short.txt", "abc"), "too few for 4 parallel streams"),
             (tmp_path / "missing.txt", "does not exist")]
    for path, needle in cases:
        out = tmp_path / "run"
        assert run_cli("text", "fit", path, "--out", out, *TEXT_FAST) == 2, path
        err = capsys.readouterr().err
        assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and needle in err, err
        assert not out.exists() and leftovers(tmp_path) == []


def test_prompt_outside_vocabulary_and_runs_of_the_wrong_kind(corpus, waves_csv, tmp_path, capsys):
    text_run, clf_run = tmp_path / "text", tmp_path / "clf"
    assert run_cli("text", "fit", corpus, "--out", text_run, *TEXT_FAST) == 0
    assert run_cli("classify", "fit", waves_csv, "--label-col", "kind", "--out", clf_run, *CLASSIFY_FAST) == 0
    capsys.readouterr()
    checks = [
        # strict mode (the default maps them to the unknown symbol: tests/tasks/text/test_unknown.py)
        (["text", "generate", "--run", text_run, "--prime", "The Cat", "--unknown", "error"],
         "'T' (U+0054), 'C' (U+0043)"),
        (["text", "suggest", "--run", text_run, "--prime", "dog", "--unknown", "error"], "'d' (U+0064)"),
        (["text", "evaluate", "--run", text_run, "--data", waves_csv, "--unknown", "error"], "vocabulary lacks"),
        (["text", "generate", "--run", clf_run], "is a 'classify' run, not a 'text' run"),
        (["classify", "predict", "--run", text_run, "--data", waves_csv], "is a 'text' run, not a 'classify' run"),
        (["classify", "evaluate", "--run", tmp_path / "none", "--data", waves_csv], "does not exist"),
        (["text", "generate", "--run", text_run, "--temperature", "-1"], "temperature"),
    ]
    for args, needle in checks:
        assert run_cli(*args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and needle in err, (args, err)


def test_subprocess_error_has_no_traceback_and_help_shows_defaults(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli", "classify", "fit", str(tmp_path / "x.ts"),
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.startswith("rnnkit: error:")
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli", "text", "fit", "--help"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0 and "(default: 64)" in " ".join(proc.stdout.split()) and "--seq-len" in proc.stdout


def test_registered_in_the_main_command_line():
    from rnnkit import cli
    commands = getattr(cli, "COMMANDS", {})
    if "classify" not in commands:
        pytest.skip("rnnkit.cli does not register the classify/text commands yet (see rnnkit.tasks.JOBS)")
    assert commands["classify"].__module__ == "rnnkit.tasks.classify.cli" and "text" in commands
