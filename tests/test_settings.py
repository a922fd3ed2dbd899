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


# --- 2. command-line defaults are the configs' ---------------------------------------------------------

_D, _M, _T = DataConfig(), ModelConfig(), TrainConfig()
_S, _X = SequenceDataConfig(), TextConfig()
CM, CH, CT = CLASSIFY_DEFAULTS
TM, TT = TEXT_DEFAULTS
# Options built from ModelConfig/TrainConfig fields (rnnkit.cli_parse.config_arg) name their field in
# their dest ("TrainConfig.lr"): the test finds them itself and needs only each job's default configs.
JOB_DEFAULTS = {("fit",): (_D, _M, _T, SearchConfig()), ("classify", "fit"): (CM, CT), ("text", "fit"): (TM, TT)}
# the jobs' own options, still declared by hand: option dest -> (config object holding the default, field)
DEFAULTS = {
    ("fit",): {},
    ("classify", "fit"): {
        **{k: (_S, f) for k, f in {"test": "test_source", "label_col": "label_col", "id_col": "id_col",
                                   "text_col": "text_col", "znorm": "znorm", "scaler": "scaler",
                                   "val_frac": "val_frac", "unknown": "unknown", "min_count": "min_count"}.items()},
        **{k: (CH, k) for k in ("pool", "embedding_dim", "class_weights", "frame")},
    },
    ("text", "fit"): {k: (_X, k) for k in ("val_frac", "unknown", "min_count", "seq_len", "steps", "embedding_dim")},
}
REQUIRED = {("fit",): ["DATA", "--out", "r"],
            ("classify", "fit"): ["TRAIN", "--out", "r"], ("text", "fit"): ["CORPUS", "--out", "r"]}
NOT_CONFIG = {"help", "command", "action", "data", "train", "corpus", "out", "force", "quiet",
              "verbose", "future"}
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
