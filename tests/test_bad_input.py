"""Every bad argument, setting and data source: one line on stderr, exit status 2, no run directory.

Issue 12, "one line, exit 2, for every bad input": argparse errors, seeds, sizes too large for the
machine or the native kernels, NaN/infinite/out-of-range floats, settings a job does not use,
defaults that drift between the command line and the configs, data that are not regular files,
and Ctrl-C while the command line starts.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import re
import signal
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
    fit_char_lm,
    fit_classifier,
    fit_forecaster,
)
from rnnkit.cli import build_parser, main
from rnnkit.tasks.classify.config import CLASSIFY_DEFAULTS
from rnnkit.tasks.text.config import TEXT_DEFAULTS

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
QUICK = ["--epochs", "2", "--hidden", "4", "--quiet"]


def fit(out, *extra):
    return ["fit", "builtin:sine", "--lookback", "5", "--horizon", "1", "--out", out, *QUICK, *extra]


def classify_fit(out, *extra, data="builtin:ItalyPowerDemand_TRAIN"):
    return ["classify", "fit", data, "--out", out, *QUICK, *extra]


def text_fit(out, *extra, data="builtin:zen"):
    return ["text", "fit", data, "--out", out, "--steps", "2", "--hidden", "4", "--quiet", *extra]


def one_line_error(capsys, args) -> str:
    """Run ``rnnkit args`` in-process; it must fail with status 2 and one ``rnnkit: error:`` line."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# --- 1. argparse errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle, cmd", [
    (["fit", "builtin:sine", "--lookback", "5"], "required: --horizon, --out", "rnnkit fit"),
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


# --- 6. settings a job does not use -----------------------------------------------------------------

SINE = DataConfig(source="builtin:sine", lookback=5, horizon=1)
FAST = dict(epochs=1, batch_size=8)


@pytest.mark.parametrize("model, train, needle", [
    ({}, {"loss": "ce"}, "loss='ce'"),
    ({}, {"many_to_many": True}, "many_to_many"),
    ({"strategy": "recursive"}, {"warmup": 2}, "warmup"),
    ({"strategy": "recursive"}, {"many_to_many": True, "warmup": 5}, "below the lookback (5)"),
    ({"strategy": "recursive"}, {"tbptt": 4}, "tbptt"),
    ({"strategy": "recursive"}, {"stateful": True, "tbptt": 3, "warmup": 3, "shuffle": False}, "below the tbptt (3)"),
])
def test_forecasting_refuses_what_it_does_not_use(model, train, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        fit_forecaster(SINE, ModelConfig(**model), TrainConfig(**FAST, **train), quiet=True)


def test_forecasting_records_the_loss_it_used():
    run = fit_forecaster(SINE, ModelConfig(hidden_size=4), TrainConfig(**FAST), quiet=True, evaluate=False)
    assert run.train_config.loss == "mse"
    run = fit_forecaster(SINE, ModelConfig(hidden_size=4), TrainConfig(**FAST, loss="mae"), quiet=True,
                         evaluate=False)
    assert run.train_config.loss == "mae"


@pytest.mark.parametrize("model, train, needle", [
    ({}, {"loss": "mse"}, "loss='mse'"), ({}, {"loss": "mae"}, "loss='mae'"),
    ({"strategy": "recursive"}, {}, "strategy"), ({}, {"many_to_many": True}, "many_to_many"),
    ({}, {"warmup": 1}, "warmup"), ({}, {"stateful": True}, "stateful"), ({}, {"tbptt": 4}, "tbptt"),
])
def test_classification_refuses_what_it_does_not_use(model, train, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        fit_classifier(SequenceDataConfig(), ModelConfig(**model), None, TrainConfig(**FAST, **train), quiet=True)


@pytest.mark.parametrize("source, data, head, needle", [
    ("builtin:ItalyPowerDemand_TRAIN", {}, {"embedding_dim": 8}, "embedding_dim"),
    ("builtin:ItalyPowerDemand_TRAIN", {"unknown": "skip"}, {}, "unknown"),
    ("builtin:ItalyPowerDemand_TRAIN", {"min_count": 2}, {}, "min_count"),
    ("builtin:surnames", {"znorm": True}, {}, "znorm"),
    ("builtin:surnames", {"scaler": "minmax"}, {}, "scaler"),
])
def test_classification_refuses_input_settings_of_the_other_kind(source, data, head, needle):
    with pytest.raises(ConfigError, match=needle):
        fit_classifier(SequenceDataConfig(source=source, **data), ModelConfig(hidden_size=4),
                       ClassifierConfig(**head), TrainConfig(**FAST), quiet=True)


def test_classification_defaults_are_the_command_lines_and_record_the_loss():
    run = fit_classifier(SequenceDataConfig(), train_config=CLASSIFY_DEFAULTS[2].replace(**FAST), quiet=True)
    assert run.model_config == CLASSIFY_DEFAULTS[0] and run.train_config.loss == "ce"


@pytest.mark.parametrize("model, train, needle", [
    ({}, {"loss": "mse"}, "loss='mse'"), ({"strategy": "recursive"}, {}, "strategy"),
    ({}, {"epochs": 5}, "epochs"), ({}, {"tbptt": 7}, "tbptt"), ({}, {"many_to_many": True}, "many_to_many"),
    ({}, {"warmup": 2}, "warmup"), ({}, {"steps": 5}, "TrainConfig.steps=5"),
])
def test_text_refuses_what_it_does_not_use(model, train, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        fit_char_lm(TextConfig(source="builtin:zen", steps=2), ModelConfig(hidden_size=4, **model),
                    TrainConfig(batch_size=4, **train), quiet=True)


@pytest.mark.parametrize("kw, needle", [
    ({"cell": "lstm", "nonlinearity": "relu"}, "nonlinearity"),
    ({"cell": "gru", "output_activation": "tanh"}, "output_activation"),
    ({"dropout": 0.2}, "num_layers >= 2"),
])
def test_model_settings_a_cell_does_not_have(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        ModelConfig(**kw)


@pytest.mark.parametrize("args, needle", [
    (["--warmup", "2"], "warmup"), (["--many-to-many"], "many_to_many"), (["--tbptt", "4"], "tbptt"),
])
def test_cli_refuses_what_forecasting_does_not_use(capsys, tmp_path, args, needle):
    out = tmp_path / "run"
    assert needle in one_line_error(capsys, fit(out, *args)) and not out.exists()


# --- 7. command-line defaults are the configs' ---------------------------------------------------------

_D, _M, _T = DataConfig(), ModelConfig(), TrainConfig()
_S, _X = SequenceDataConfig(), TextConfig()
CM, CH, CT = CLASSIFY_DEFAULTS
TM, TT = TEXT_DEFAULTS
# Options built from ModelConfig/TrainConfig fields (rnnkit.cli_parse.config_arg) name their field in
# their dest ("TrainConfig.lr"): the test finds them itself and needs only each job's default configs.
JOB_DEFAULTS = {("fit",): (_M, _T), ("classify", "fit"): (CM, CT), ("text", "fit"): (TM, TT)}
# the jobs' own options, still declared by hand: option dest -> (config object holding the default, field)
DEFAULTS = {
    ("fit",): {k: (_D, f) for k, f in {"target": "targets", "time_col": "time_col", "covariates": "covariates",
                                       "fill": "fill", "stride": "stride", "val_frac": "val_frac",
                                       "test_frac": "test_frac", "val_start": "val_start", "test_start": "test_start",
                                       "scaler": "scaler", "seasonal_period": "seasonal_period"}.items()},
    ("classify", "fit"): {
        **{k: (_S, f) for k, f in {"test": "test_source", "label_col": "label_col", "id_col": "id_col",
                                   "text_col": "text_col", "znorm": "znorm", "scaler": "scaler",
                                   "val_frac": "val_frac", "unknown": "unknown", "min_count": "min_count"}.items()},
        **{k: (CH, k) for k in ("pool", "embedding_dim", "class_weights", "frame")},
    },
    ("text", "fit"): {k: (_X, k) for k in ("val_frac", "unknown", "min_count", "seq_len", "steps", "embedding_dim")},
}
REQUIRED = {("fit",): ["DATA", "--lookback", "5", "--horizon", "1", "--out", "r"],
            ("classify", "fit"): ["TRAIN", "--out", "r"], ("text", "fit"): ["CORPUS", "--out", "r"]}
NOT_CONFIG = {"help", "command", "action", "data", "train", "corpus", "lookback", "horizon", "out", "force", "quiet",
              "verbose"}
def _subparser(parser, path):
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


def _config_mapping(path) -> dict:
    """dest -> (default config, field) of every option built from a shared config's field."""
    by_class = {type(c).__name__: c for c in JOB_DEFAULTS[path]}
    mapping = {}
    for action in _subparser(build_parser(), path)._actions:
        if "." in action.dest:
            cls, field = action.dest.split(".", 1)
            assert field in {f.name for f in dataclasses.fields(by_class[cls])}, action.dest
            mapping[action.dest] = (by_class[cls], field)
    return mapping


@pytest.mark.parametrize("path", list(DEFAULTS), ids=" ".join)
def test_every_cli_default_is_the_config_default(path):
    args = vars(build_parser().parse_args([*path, *REQUIRED[path]]))
    mapping = {**DEFAULTS[path], **_config_mapping(path)}
    # an option neither built from a config field nor declared above fails here
    unmapped = set(args) - set(mapping) - NOT_CONFIG
    assert not unmapped, f"options without a config field in this test: {unmapped}"
    for dest, (config, field) in mapping.items():
        expected = getattr(config, field)
        got = tuple(args[dest]) if isinstance(expected, tuple) else args[dest]
        assert got == expected and type(got) is type(expected), (dest, got, expected)
    # and the help text shows each default that is a value (not None = "off"/"none")
    helps = {a.dest: a.help for a in _subparser(build_parser(), path)._actions}
    for dest, (config, field) in mapping.items():
        value = getattr(config, field)
        if value not in (None, (), False) and dest not in ("loss",):
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert f"default: {shown}" in helps[dest], (dest, helps[dest])


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_config_metadata_choices_are_what_the_config_accepts(cls):
    # the option's choices come from the field's metadata and its validation from __post_init__:
    # every choice must construct (with the settings it needs) and anything else must be refused
    needs = {"strategy": {"recursive": {}}, "cell": {}, "loss": {}}
    for f in dataclasses.fields(cls):
        for choice in f.metadata.get("choices", ()):
            cls(**{f.name: choice, **needs.get(f.name, {}).get(choice, {})})
        if "choices" in f.metadata:
            with pytest.raises(ConfigError):
                cls(**{f.name: "no-such-choice"})


def test_a_value_given_on_the_command_line_reaches_the_config():
    # every option built from a config field carries its value to that field (config_values)
    from rnnkit.cli_parse import config_values
    values = {"ModelConfig.hidden_size": "7", "ModelConfig.num_layers": "2", "ModelConfig.dropout": "0.25",
              "TrainConfig.lr": "0.5", "TrainConfig.seed": "11", "TrainConfig.clip_norm": "3"}
    parser = _subparser(build_parser(), ("classify", "fit"))
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.dest in values}
    argv = ["classify", "fit", "TRAIN", "--out", "r", "--cell", "lstm", "--peephole"]
    argv += [x for dest, v in values.items() for x in (flags[dest], v)]
    a = build_parser().parse_args(argv)
    mc, tc = ModelConfig(**config_values(a, ModelConfig)), TrainConfig(**config_values(a, TrainConfig))
    assert (mc.cell, mc.hidden_size, mc.num_layers, mc.dropout, mc.peephole) == ("lstm", 7, 2, 0.25, True)
    assert (tc.lr, tc.seed, tc.clip_norm) == (0.5, 11, 3.0)


# --- 8. data that are not regular files, or too large --------------------------------------------------

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


# --- 9. Ctrl-C while the command line starts ---------------------------------------------------------------

def test_entry_point_module_imports_only_the_standard_library():
    code = ("import sys, rnnkit.__main__; heavy = [m for m in ('torch', 'numpy', 'pandas', 'rnnkit.cli') "
            "if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^rnnkit = "rnnkit.__main__:run"$', text, re.M)


def test_sigint_during_the_heavy_imports_is_one_line_and_130(tmp_path):
    # Deterministic: the child interrupts itself at the moment torch starts to import, inside main()
    child = f"""
import importlib.abc, os, signal, sys
class Interrupt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = ["rnnkit", "fit", "builtin:sine", "--lookback", "5", "--horizon", "1", "--out", {str(tmp_path / "run")!r}]
from rnnkit.__main__ import run
run()
"""
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "rnnkit: interrupted\n", proc.stderr
    assert not (tmp_path / "run").exists()


def test_sigint_soon_after_start_is_one_line_and_130(tmp_path):
    """A real Ctrl-C from outside, sent once the process is up and loading torch (seen in its memory
    map) - during the imports or, on a fast machine, during training: either way one line, 130."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc to see when the child has started")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "fit", "builtin:sine", "--lookback", "5", "--horizon",
                             "1", "--epochs", "100000", "--patience", "0", "--quiet", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if "torch" in Path(f"/proc/{proc.pid}/maps").read_text():
                    break
            except OSError:
                pass
            time.sleep(0.005)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.endswith("rnnkit: interrupted\n") and "Traceback" not in stderr, stderr
    assert not out.exists()
