"""Pieces shared by every ``rnnkit`` parser: one-line usage errors, the seed option, the options
built from the config dataclasses (:func:`config_arg`), and the options the sequence jobs
(``classify``, ``text``) share.

A config field's option comes from one place, the field itself: its name (``--batch-size`` for
``batch_size``, or the metadata's ``"flag"``), its type (a ``tuple[str, ...]`` field takes names,
repeated or comma-separated), its default (from the job's default config),
and the metadata's ``"help"``, ``"choices"`` and ``"metavar"``. Its value lands in the namespace
under ``"ConfigClass.field"``, so :func:`config_values` builds the config from the command line
with no hand-kept mapping, and a test checks every such option's default against its config.
The options a user typed are recorded too (:data:`GIVEN`), for the one rule between two options
(:func:`config_values`): ``--epochs`` without ``--steps`` turns a job's default step budget off.

argparse's own ``error()`` prints the whole usage text (twenty lines for ``rnnkit fit``) and exits
from deep inside parsing; :class:`Parser` raises :class:`UsageError` instead, and
``rnnkit.cli.main`` prints ``rnnkit: error: <message>; see `rnnkit CMD --help``` on one line with
exit status 2, like every other user mistake. ``--help`` and ``--version`` are unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .config import MAX_SEED, ModelConfig, TrainConfig
from .training.rundir import check_out

__all__ = ["Parser", "UsageError", "seed_arg", "seed_value", "int_list", "float_list", "EXIT_USAGE", "run_arg", "model_args",
           "train_args", "out_args", "refuse_existing", "loss_callbacks", "config_arg", "config_values"]

#: the exit status of a user mistake
EXIT_USAGE = 2


class UsageError(Exception):
    """A command line argparse could not parse: its message and the (sub)command's ``prog``."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message, self.prog = " ".join(message.split()), prog


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` (subparsers inherit the class)."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message, self.prog)


def seed_value(text: str) -> int:
    """An argparse ``type``: an integer seed in [0, 2^63 - 1], the range torch's generators take."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: pass an integer in [0, 2^63 - 1]") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: pass an integer in [0, 2^63 - 1] "
                                         f"({MAX_SEED})")
    return value


def seed_arg(p, default: int, what: str = "random seed") -> None:
    """Add ``--seed`` to parser or group ``p``."""
    p.add_argument("--seed", type=seed_value, default=default, metavar="N", help=f"{what} (default: {default})")


# --- options built from the config dataclasses ---------------------------------------------------

def _list_of(kind: type, what: str, example: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid list {text!r}: pass {what} separated by commas, e.g. {example}") \
                from None
    return parse


#: argparse ``type``s: ``"12,24,36"`` -> ``(12, 24, 36)``, ``"80,95"`` -> ``(80.0, 95.0)`` (the options of
#: ``tuple[int, ...]`` and ``tuple[float, ...]`` fields)
int_list = _list_of(int, "integers", "12,24,36")
float_list = _list_of(float, "numbers", "80,95")


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple[int, ...]": int_list,
          "tuple[float, ...]": float_list}
#: the namespace attribute holding the dests of the config options given on the command line
GIVEN = "given_options"


class _Store(argparse.Action):
    """argparse's ``store``, also recording that the option was given (in ``namespace.given_options``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        given = getattr(namespace, GIVEN, None) or set()
        setattr(namespace, GIVEN, given | {self.dest})


class _Names(argparse.Action):
    """A list of names, repeated or comma-separated (``--x a --x b,c``), appended to the default
    (recorded as given, as :class:`_Store` does)."""

    def __call__(self, parser, namespace, values, option_string=None):
        names = tuple(getattr(namespace, self.dest, None) or ()) + tuple(
            v.strip() for v in values.split(",") if v.strip())
        setattr(namespace, self.dest, names)
        given = getattr(namespace, GIVEN, None) or set()
        setattr(namespace, GIVEN, given | {self.dest})


def _field_type(f: dataclasses.Field) -> type:
    """The Python type of a field declared ``int``, ``float``, ``str``, ``bool``, ``Optional[...]`` of
    one, ``tuple[str, ...]`` (a list of names), ``tuple[int, ...]`` (:func:`int_list`) or ``tuple[float, ...]``
    (:func:`float_list`)."""
    name = f.type if isinstance(f.type, str) else f.type.__name__
    name = name[len("Optional["):-1] if name.startswith("Optional[") else name
    if name.startswith("tuple[") and name not in _TYPES:
        return tuple  # a list of names
    return _TYPES[name]


def config_arg(g, config, name: str, *, help: str | None = None, choices: tuple | None = None,
               default_text: str | None = None) -> argparse.Action:
    """Add the option of field ``name`` of the config dataclass instance ``config`` (the job's
    defaults) to parser or group ``g``, from the field's name, type and metadata (see the module
    docstring); ``help`` and ``choices`` override the metadata's where a job means something
    narrower (``--batch-size`` counts windows, sequences or streams; forecasting trains with mse or
    mae only), ``default_text`` says what a default of None means for the job. ``--seed`` takes
    :func:`seed_value`. A bool field is a switch that turns it on, so its default must be False."""
    f = {f.name: f for f in dataclasses.fields(config)}[name]
    md, default, kind = f.metadata, getattr(config, name), _field_type(f)
    flag = "--" + md.get("flag", name).replace("_", "-")
    text = help or md["help"]
    dest = f"{type(config).__name__}.{name}"
    if kind is bool:
        if default is not False:
            raise ValueError(f"{dest} defaults to {default!r}: a command-line switch can only turn it on")
        return g.add_argument(flag, action="store_true", dest=dest, help=text)
    if kind is tuple:  # names: repeated or comma-separated, added to the (empty) default
        if default != ():
            raise ValueError(f"{dest} defaults to {default!r}: a list option can only add names")
        return g.add_argument(flag, dest=dest, action=_Names, default=(),
                              help=f"{text} (default: {md.get('off', 'none')})",
                              metavar=md.get("metavar", flag[2:].upper().replace("-", "_")))
    if default is None or default == ():  # () of a list of numbers: "off"
        shown = default_text or md.get("off", "none")
    else:
        shown = f"{default:g}" if isinstance(default, float) else str(default)
    choices = choices or md.get("choices")
    return g.add_argument(flag, dest=dest, action=_Store,
                          type=seed_value if (type(config), name) == (TrainConfig, "seed") else kind,
                          default=default, choices=choices, help=f"{text} (default: {shown})",
                          metavar=None if choices else md.get("metavar", flag[2:].upper().replace("-", "_")))


def config_values(a: argparse.Namespace, cls: type) -> dict[str, Any]:
    """``{field: value}`` of every option :func:`config_arg` added for fields of ``cls``.

    For :class:`TrainConfig`, ``--epochs`` given without ``--steps`` sets ``steps`` to None: a
    job may default to a step budget (with a larger epoch cap), but whoever asks for N epochs
    gets N epochs."""
    prefix = f"{cls.__name__}."
    values = {k[len(prefix):]: v for k, v in vars(a).items() if k.startswith(prefix)}
    given = getattr(a, GIVEN, None) or set()
    if cls is TrainConfig and "steps" in values and f"{prefix}epochs" in given and f"{prefix}steps" not in given:
        values["steps"] = None
    return values


# --- options the sequence jobs share --------------------------------------------------------------

def run_arg(p: argparse.ArgumentParser, job: str) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help=f"run directory from `rnnkit {job} fit`")


def model_args(p: argparse.ArgumentParser, m: ModelConfig):
    """The model options every sequence job has, with the job's defaults ``m`` (its ``tasks/X/config.py``'s
    ``*_DEFAULTS``); returns the group, for the job's own model options."""
    g = p.add_argument_group("model")
    for name in ("cell", "hidden_size", "num_layers", "dropout", "init", "peephole"):
        config_arg(g, m, name)
    return g


def train_args(g, t: TrainConfig, patience_unit: str) -> None:
    """The training options every sequence job has, added to the group ``g`` after the job's own,
    with the job's defaults ``t``; ``patience_unit`` says what early stopping counts."""
    for name in ("lr", "optimizer", "weight_decay", "clip_norm"):
        config_arg(g, t, name)
    config_arg(g, t, "patience", help=f"early stopping: {patience_unit} without a better validation loss before "
                                      "stopping; 0 = never; the best weights are kept")
    config_arg(g, t, "seed")
    config_arg(g, t, "device")


def out_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--verbose", action="store_true", help="print the losses every few epochs")


def refuse_existing(a: argparse.Namespace, *sources: str | None) -> None:
    check_out(a.out, a.force, protect=sources)  # refuse before spending minutes on training


def loss_callbacks(a: argparse.Namespace, epochs: int) -> list:
    from .training.loop import loss_printer  # start-up speed: torch loads once a command runs
    return [loss_printer(epochs)] if a.verbose else []
