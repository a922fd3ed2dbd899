"""Settings, checked against what uses them: each job refuses the settings it does not use (one line
on the command line, a ConfigError in Python) and records the ones it chose, and every default and
choice of the command line is the config's (the options are built from the config fields)."""

from __future__ import annotations

import dataclasses
import re

import pytest

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
from rnnkit.cli import build_parser
from rnnkit.tasks.classify.config import CLASSIFY_DEFAULTS
from rnnkit.tasks.text.config import TEXT_DEFAULTS
from rnnkit.tasks.forecast.config import SearchConfig
from rnnkit.tasks.sweep.config import SweepConfig
from cli_cases import fit, one_line_error


# --- 1. settings a job does not use -----------------------------------------------------------------

SINE = DataConfig(source="builtin:sine", lookback=5, horizon=1)
FAST = dict(epochs=1, batch_size=8)


@pytest.mark.parametrize("model, train, needle", [
    ({}, {"loss": "ce"}, "loss='ce'"),
    ({}, {"many_to_many": True}, "many_to_many"),
    ({"strategy": "recursive"}, {"warmup": 2}, "warmup"),
    ({"strategy": "recursive"}, {"many_to_many": True, "warmup": 5}, "below the lookback (5)"),
    ({"strategy": "recursive"}, {"tbptt": 4}, "tbptt"),
    ({"strategy": "recursive"}, {"stateful": True, "tbptt": 3, "warmup": 3, "shuffle": False}, "below the tbptt (3)"),
    ({}, {"loss": "pinball"}, "pass quantiles"),
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
    ({"quantiles": (0.1, 0.9)}, {}, "quantiles"), ({}, {"loss": "pinball"}, "loss='pinball'"),
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
    ({"quantiles": (0.5,)}, {}, "quantiles"),
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


# --- 2. command-line defaults are the configs' ---------------------------------------------------------

_D, _M, _T = DataConfig(), ModelConfig(), TrainConfig()
CM, CH, CT = CLASSIFY_DEFAULTS
TM, TT = TEXT_DEFAULTS
# Options built from config fields (rnnkit.cli_parse.config_arg) name their field in their dest
# ("TrainConfig.lr"): the test finds them itself and needs only each job's default configs.
JOB_DEFAULTS = {("fit",): (_D, _M, _T, SearchConfig()),
                ("classify", "fit"): (SequenceDataConfig(), CM, CH, CT),
                ("text", "fit"): (TextConfig(), TM, TT),
                ("sweep",): (_D, _M, _T, SearchConfig(), SweepConfig())}
# the options still declared by hand for a config field: option dest -> (config holding the default, field)
DEFAULTS = {
    ("fit",): {},
    ("classify", "fit"): {},
    ("text", "fit"): {},
    ("sweep",): {},
}
# the positional argument: the dest holding the job's data config's ``source``
POSITIONAL = {("fit",): "data", ("classify", "fit"): "train", ("text", "fit"): "corpus", ("sweep",): "data"}
REQUIRED = {("fit",): ["DATA", "--out", "r"],
            ("classify", "fit"): ["TRAIN", "--out", "r"], ("text", "fit"): ["CORPUS", "--out", "r"],
            ("sweep",): ["DATA", "--out", "r"]}
# options that are not a config field (a sweep's grid and file: the fields they set are every config's)
NOT_CONFIG = {"help", "command", "action", "out", "force", "quiet", "verbose", "future", "grid", "config", "resume"}
# fields no command line offers, and so without option metadata: set in Python
PYTHON_ONLY = {"ModelConfig.nonlinearity", "ModelConfig.output_activation", "ModelConfig.output_size",
               "TrainConfig.restore_best", "TrainConfig.shuffle"}
# fields with option metadata that a job's command line leaves out on purpose, and why
_REFUSED = "refused by the job (refuse_unsupported)"
_PYTHON = "not on this job's command line; set it in Python"
_SEQUENCE_JOBS = {  # classification and text
    **{f"TrainConfig.{k}": _REFUSED for k in ("many_to_many", "warmup", "stateful", "tbptt", "distributed")},
    "ModelConfig.strategy": _REFUSED, "ModelConfig.quantiles": _REFUSED, "ModelConfig.distribution": _REFUSED, "ModelConfig.samples": _REFUSED, "TrainConfig.loss": "always cross-entropy",
    **{f"TrainConfig.{k}": _PYTHON for k in ("momentum", "clip_value", "schedule", "min_delta", "check_every",
                                             "engine")},
}
NOT_OFFERED = {
    ("fit",): {},
    ("classify", "fit"): _SEQUENCE_JOBS,
    ("text", "fit"): {**_SEQUENCE_JOBS, "ModelConfig.bidirectional": "a language model reads left to right (refused)",
                      "TrainConfig.epochs": "the budget is --steps (TextConfig.steps)",
                      "TrainConfig.steps": "the budget is --steps (TextConfig.steps)"},
    ("sweep",): {},
}
METADATA_KEYS = {"help", "choices", "flag", "metavar", "off"}


def _subparser(parser, path):
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


def _config_mapping(path) -> dict:
    """dest -> (default config, field) of every option built from a config's field."""
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
    unmapped = set(args) - set(mapping) - NOT_CONFIG - {POSITIONAL[path]}
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


@pytest.mark.parametrize("path", list(DEFAULTS), ids=" ".join)
def test_every_config_field_is_an_option_or_left_out_on_purpose(path):
    # each field of each config the job reads is exactly one of: an option built from it, an
    # option declared by hand, the positional source, a Python-only field (no metadata), or a
    # field with metadata this job leaves out (NOT_OFFERED, with the reason)
    built = set(_config_mapping(path))
    by_hand = {f"{type(config).__name__}.{field}" for config, field in DEFAULTS[path].values()}
    source = {f"{type(JOB_DEFAULTS[path][0]).__name__}.source"}
    left_out = set(NOT_OFFERED[path])
    fields = {f"{type(c).__name__}.{f.name}": f for c in JOB_DEFAULTS[path] for f in dataclasses.fields(c)}
    groups = {"built from the config": built, "declared by hand": by_hand, "the positional": source,
              "Python only": PYTHON_ONLY, "NOT_OFFERED": left_out}
    for name, f in fields.items():
        places = [group for group, names in groups.items() if name in names]
        assert len(places) == 1, f"{name} is {' and '.join(places) or 'not on the command line nor listed here'}"
        assert bool(f.metadata) == (name in built or name in left_out), \
            f"{name}: option metadata ({dict(f.metadata)}) must go with an option built from it (or NOT_OFFERED)"
    assert left_out <= set(fields), left_out - set(fields)


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig, DataConfig, SearchConfig, SequenceDataConfig,
                                 ClassifierConfig, TextConfig, SweepConfig])
def test_config_metadata_says_what_an_option_needs(cls):
    for f in dataclasses.fields(cls):
        if f.metadata:
            assert "help" in f.metadata and set(f.metadata) <= METADATA_KEYS, (cls.__name__, f.name, f.metadata)


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig, DataConfig, SequenceDataConfig, ClassifierConfig,
                                 TextConfig, SweepConfig])
def test_config_metadata_choices_are_what_the_config_accepts(cls):
    # the option's choices come from the field's metadata and its validation from __post_init__:
    # every choice must construct (with the settings it needs) and anything else must be refused
    needs = {"strategy": {"recursive": {}}, "cell": {}, "loss": {}, "sampling": {"balanced": {"id_col": "id"}}}
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


@pytest.mark.parametrize("argv, cls, expected", [
    (["classify", "fit", "T", "--out", "r", "--test", "U", "--label-col", "y", "--id-col", "i", "--text-col", "s",
      "--znorm", "--scaler", "minmax", "--val-frac", "0.3", "--unknown", "skip", "--min-count", "2"],
     SequenceDataConfig, dict(test_source="U", label_col="y", id_col="i", text_col="s", znorm=True, scaler="minmax",
                              val_frac=0.3, unknown="skip", min_count=2)),
    (["classify", "fit", "T", "--out", "r", "--pool", "mean", "--frame", "3", "--embedding-dim", "8",
      "--class-weights", "balanced", "--ensemble", "3"],
     ClassifierConfig, dict(pool="mean", frame=3, embedding_dim=8, class_weights="balanced", ensemble=3)),
    (["text", "fit", "C", "--out", "r", "--val-frac", "0.2", "--unknown", "replace", "--min-count", "3",
      "--embedding-dim", "4", "--seq-len", "16", "--steps", "7"],
     TextConfig, dict(val_frac=0.2, unknown="replace", min_count=3, embedding_dim=4, seq_len=16, steps=7)),
], ids=["classify data", "classify head", "text"])
def test_a_jobs_own_setting_given_on_the_command_line_reaches_its_config(argv, cls, expected):
    from rnnkit.cli_parse import config_values
    values = config_values(build_parser().parse_args(argv), cls)
    assert set(expected) == {f.name for f in dataclasses.fields(cls) if f.metadata}  # every option, once
    assert {k: values[k] for k in expected} == expected and set(values) == set(expected)
    source = {"source": argv[2]} if cls is not ClassifierConfig else {}  # the positional, as the handler passes it
    config = cls(**source, **values)
    assert {k: getattr(config, k) for k in {**expected, **source}} == {**expected, **source}


@pytest.mark.parametrize("action, method, options", [
    ("generate", "generate_iter", {"prime": "prime", "length": "length", "temperature": "temperature",
                                   "top_k": "top_k", "seed": "seed", "unknown": "unknown"}),
    ("suggest", "suggest", {"k": "k", "max_chars": "max_chars", "unknown": "unknown"}),
    ("evaluate", "evaluate", {"unknown": "unknown"}),
])
def test_text_use_options_default_to_the_python_methods_defaults(action, method, options):
    # `rnnkit text generate|suggest|evaluate` read no config: their defaults are TextRun's arguments'
    import inspect
    from rnnkit.tasks.text.workflow import TextRun
    required = {"generate": [], "suggest": ["--prime", "x"], "evaluate": ["--data", "f.txt"]}[action]
    args = vars(build_parser().parse_args(["text", action, "--run", "r", *required]))
    params = inspect.signature(getattr(TextRun, method)).parameters
    offered = set(args) - {"command", "action", "run", "json", "data"} - ({"prime"} if action == "suggest" else set())
    assert offered == set(options), offered ^ set(options)
    for dest, name in options.items():
        assert args[dest] == params[name].default and type(args[dest]) is type(params[name].default), dest
