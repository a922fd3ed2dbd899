"""Every bad argument, value and data source: one line on stderr, exit status 2, no run directory.

Issue 12, "one line, exit 2, for every bad input": argparse errors, seeds, sizes too large for the
machine or the native kernels, NaN/infinite/out-of-range floats, and data that are not regular
files or are too large. Settings a job does not use, and the command line's defaults, are in
test_settings.py; Ctrl-C while the command line starts in test_startup.py."""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rnnkit.data.sources as sources
import rnnkit.training.checks as checks
from rnnkit.kernels import limits
from rnnkit import (
    ClassifierConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    SequenceDataConfig,
    TextConfig,
    TrainConfig,
    fit_forecaster,
)
from rnnkit.cli import main
from cli_cases import ENV, fit, classify_fit, text_fit, one_line_error


# --- 1. argparse errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle, cmd", [
    (["fit", "builtin:sine", "--lookback", "5"], "required: --out", "rnnkit fit"),
    (["fit", "builtin:sine", "--lookback", "5", "--horizon", "1", "--out", "r", "--cell", "xyz"],
     "invalid choice: 'xyz'", "rnnkit fit"),
    (["classify", "fit", "d.csv", "--out", "r", "--epochs", "abc"], "invalid int value: 'abc'", "rnnkit classify fit"),
    (["text", "generate", "--run", "r", "--length", "1.5"], "invalid int value: '1.5'", "rnnkit text generate"),
    (["classify"], "required: ACTION", "rnnkit classify"),
    (["nope"], "invalid choice: 'nope'", "rnnkit"),
    ([], "required: COMMAND", "rnnkit"),
    (["fit", "builtin:sine", "--lookback", "5", "--horizon", "1", "--out", "r", "--bogus"],
     "unrecognized arguments: --bogus", "rnnkit"),
])
def test_argparse_errors_are_one_line_with_the_help_command(capsys, args, needle, cmd):
    err = one_line_error(capsys, args)
    assert needle in err and err.rstrip().endswith(f"see `{cmd} --help`"), err


def test_help_and_version_still_work(capsys):
    with pytest.raises(SystemExit) as e:
        main(["classify", "fit", "--help"])
    assert e.value.code == 0 and "--pool" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("rnnkit ")


def test_argparse_error_in_a_subprocess_has_no_usage_text(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnnkit", "fit", "builtin:sine"], capture_output=True, text=True,
                          env=ENV, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("rnnkit: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "usage:" not in proc.stderr


# --- 2. seeds -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["-1", str(2**63), "1.5"])
@pytest.mark.parametrize("job", ["fit", "classify", "text", "generate"])
def test_seed_out_of_range_is_refused(capsys, tmp_path, job, seed):
    out = tmp_path / "run"
    args = {"fit": fit(out), "classify": classify_fit(out), "text": text_fit(out),
            "generate": ["text", "generate", "--run", out]}[job]
    err = one_line_error(capsys, [*args, "--seed", seed])
    assert "2^63 - 1" in err and not out.exists()


def test_train_config_seed_range():
    TrainConfig(seed=0), TrainConfig(seed=2**63 - 1)
    for bad in (-1, 2**63, True, 1.0, "1"):
        with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 2\^63 - 1\]"):
            TrainConfig(seed=bad)


# --- 3. sizes the machine cannot hold ---------------------------------------------------------------

@pytest.mark.parametrize("job, args, needle", [
    ("fit", ["--hidden", "1000000000"], "hidden_size=1000000000"),
    ("classify", ["--hidden", "1000000000"], "hidden_size=1000000000"),
    ("classify_strings", ["--embedding-dim", "1000000000"], "embedding_dim=1000000000"),
    ("text", ["--embedding-dim", "1000000000"], "embedding_dim=1000000000"),
    ("text", ["--hidden", "1000000000"], "hidden_size=1000000000"),
])
def test_models_larger_than_memory_are_refused_before_building(capsys, tmp_path, job, args, needle):
    out = tmp_path / "run"
    base = {"fit": fit(out), "classify": classify_fit(out), "text": text_fit(out),
            "classify_strings": classify_fit(out, data="builtin:surnames")}[job]
    err = one_line_error(capsys, [*base, *args])
    assert "memory" in err and "GiB" in err and needle in err, err
    assert not out.exists()


def test_absurd_depth_is_capped(capsys, tmp_path):
    err = one_line_error(capsys, fit(tmp_path / "run", "--layers", "1000000"))
    assert "num_layers must be at most 1000" in err


def test_memory_estimate_names_the_batch_when_activations_dominate(monkeypatch):
    small = ModelConfig(hidden_size=8)
    params, acts = checks.training_bytes(small, 1, 1, batch=10**6, steps=1000)
    assert acts > params
    monkeypatch.setattr(checks, "physical_memory", lambda: params + acts - 1)
    with pytest.raises(ConfigError, match="batch_size=1000000"):
        checks.check_training_memory(small, 1, 1, batch=10**6, steps=1000)
    monkeypatch.setattr(checks, "physical_memory", lambda: params + acts)
    checks.check_training_memory(small, 1, 1, batch=10**6, steps=1000)  # exactly fits: accepted


# --- 4. batch sizes and C ints ----------------------------------------------------------------------

def test_batch_larger_than_the_data_is_the_whole_data_in_the_fused_trainer():
    dc = DataConfig(source="builtin:sine", lookback=5, horizon=1, val_frac=0.0, test_frac=0.5)
    runs = [fit_forecaster(dc, ModelConfig(hidden_size=4), TrainConfig(epochs=3, batch_size=b, engine="fused"),
                           quiet=True, evaluate=False) for b in (2**31, 2**40, 20)]
    # 50 rows, half for training: 25 - 5 windows. The same native code runs each time: exact equality.
    assert all(r.history.engine == "fused" for r in runs)
    assert runs[0].history.train_loss == runs[1].history.train_loss == runs[2].history.train_loss
    assert all(math.isfinite(v) for v in runs[0].history.train_loss)


def test_cli_batch_size_past_c_int(capsys, tmp_path):
    out = tmp_path / "run"
    assert main([str(a) for a in fit(out, "--batch-size", str(2**31), "--engine", "fused")]) == 0
    assert "diverged" not in capsys.readouterr().err and out.is_dir()


def test_sizes_past_c_int_are_refused_before_the_native_call():
    with pytest.raises(ConfigError, match=r"the batch size \(2147483648\).*2\^31 - 1"):
        from rnnkit.kernels import fused
        import torch
        fused._layer_sizes(0, torch.float32, 2**31, 1, 1, 1, 1)
    assert limits.check_c_int("x", 2**31 - 1) == 2**31 - 1
    for bad in (2**31, -1):
        with pytest.raises(ConfigError, match="x"):
            limits.check_c_int("x", bad)


# --- 5. floats: finite and in range -----------------------------------------------------------------

@pytest.mark.parametrize("args, name", [
    (["--min-delta", "nan"], "min_delta"), (["--momentum", "nan", "--optimizer", "sgd"], "momentum"),
    (["--weight-decay", "inf"], "weight_decay"), (["--lr", "nan"], "lr"), (["--lr", "inf"], "lr"),
    (["--lr", "1e308"], "lr"), (["--lr", "11"], "lr"), (["--dropout", "nan", "--layers", "2"], "dropout"),
    (["--val-frac", "nan"], "val_frac"), (["--test-frac", "inf"], "test_frac"), (["--clip-norm", "nan"], "clip_norm"),
    (["--clip-norm", "inf"], "clip_norm"), (["--clip-value=-inf"], "clip_value"),
    (["--clip-value", "1e308"], "clip_value"),
    (["--momentum", "1e308", "--optimizer", "sgd"], "momentum"), (["--weight-decay", "1e308"], "weight_decay"),
    (["--momentum", "0.9"], "momentum"),  # adam has no momentum setting: refused, not ignored
])
def test_bad_float_settings_are_refused(capsys, tmp_path, args, name):
    out = tmp_path / "run"
    err = one_line_error(capsys, fit(out, *args))
    assert name in err and not out.exists(), err


@pytest.mark.parametrize("job", ["classify", "text"])
@pytest.mark.parametrize("flag", ["--val-frac", "--lr", "--weight-decay", "--clip-norm", "--dropout"])
def test_bad_floats_in_the_other_jobs(capsys, tmp_path, job, flag):
    out = tmp_path / "run"
    args = classify_fit(out) if job == "classify" else text_fit(out)
    one_line_error(capsys, [*args, flag, "nan", *(["--layers", "2"] if flag == "--dropout" else [])])
    assert not out.exists()


def _float_fields():
    for cls in (ModelConfig, DataConfig, TrainConfig, SequenceDataConfig, ClassifierConfig, TextConfig):
        for f in dataclasses.fields(cls):
            if "float" in str(f.type):
                yield cls, f.name


@pytest.mark.parametrize("cls, name", list(_float_fields()), ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e308, "0.1", True])
def test_every_float_field_of_every_config_is_finite_and_in_range(cls, name, value):
    extra = {"num_layers": 2} if name == "dropout" else {}
    with pytest.raises(ConfigError, match=name):
        cls(**{name: value, **extra})


# --- 6. data that are not regular files, or too large --------------------------------------------------

def _fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this system")
    os.mkfifo(path)
    # a safety net: were the reader to open the pipe, this writer would let it see end-of-file, so
    # a regression fails the test instead of hanging the suite
    def unblock():
        time.sleep(30)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
    threading.Thread(target=unblock, daemon=True).start()
    return path


@pytest.mark.parametrize("job", ["fit", "classify", "text"])
def test_a_named_pipe_as_data_is_refused(capsys, tmp_path, job):
    data = _fifo(tmp_path / ("data.txt" if job == "text" else "data.csv"))
    out = tmp_path / "run"
    args = {"fit": ["fit", data, "--lookback", "5", "--horizon", "1", "--out", out],
            "classify": classify_fit(out, data=data), "text": text_fit(out, data=data)}[job]
    err = one_line_error(capsys, args)
    assert "named pipe" in err and "not a regular file" in err and not out.exists()


@pytest.mark.parametrize("job", ["fit", "classify", "text"])
def test_a_device_as_data_is_refused(capsys, tmp_path, monkeypatch, job):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    monkeypatch.setattr(sources, "max_file_bytes", lambda: 1 << 20)  # a regression reads 1 MiB, not all memory
    data = tmp_path / ("zero.txt" if job == "text" else "zero.csv")
    data.symlink_to("/dev/zero")
    out = tmp_path / "run"
    args = {"fit": ["fit", data, "--lookback", "5", "--horizon", "1", "--out", out],
            "classify": classify_fit(out, data=data), "text": text_fit(out, data=data)}[job]
    assert "character device" in one_line_error(capsys, args) and not out.exists()


@pytest.mark.parametrize("job", ["fit", "classify", "text"])
def test_files_above_the_size_limit_are_refused_before_reading(capsys, tmp_path, monkeypatch, job):
    monkeypatch.setattr(sources, "max_file_bytes", lambda: 1000)
    data = tmp_path / ("big.txt" if job == "text" else "big.csv")
    data.write_text("value,label\n" + "1.0,a\n" * 400)
    out = tmp_path / "run"
    args = {"fit": ["fit", data, "--lookback", "5", "--horizon", "1", "--out", out],
            "classify": classify_fit(out, data=data), "text": text_fit(out, data=data)}[job]
    err = one_line_error(capsys, args)
    assert "larger than the" in err and "quarter of this machine's memory" in err and not out.exists()


def test_a_sparse_file_larger_than_memory_is_refused_without_reading(tmp_path):
    data = tmp_path / "huge.csv"
    with open(data, "wb") as f:
        try:
            f.truncate(sources.max_file_bytes() + 1)  # sparse: no disk space used
        except OSError:
            pytest.skip("the file system cannot hold a sparse file this large")
    with pytest.raises(sources.DataError, match="larger than the"):
        sources.read_data_file(data)


def test_a_gzip_that_expands_past_the_limit_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "max_file_bytes", lambda: 1 << 20)
    data = tmp_path / "bomb.ts.gz"
    data.write_bytes(gzip.compress(b"0" * (2 << 20)))
    assert "decompresses to more than" in one_line_error(capsys, classify_fit(tmp_path / "run", data=data))
