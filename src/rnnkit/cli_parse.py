"""Pieces shared by every ``rnnkit`` parser: one-line usage errors, the seed option, and the options
the sequence jobs (``classify``, ``text``) share.

argparse's own ``error()`` prints the whole usage text (twenty lines for ``rnnkit fit``) and exits
from deep inside parsing; :class:`Parser` raises :class:`UsageError` instead, and
``rnnkit.cli.main`` prints ``rnnkit: error: <message>; see `rnnkit CMD --help``` on one line with
exit status 2, like every other user mistake. ``--help`` and ``--version`` are unchanged.
"""

from __future__ import annotations

import argparse

from .config import CELL_NAMES, MAX_SEED, OPTIMIZERS, ModelConfig, TrainConfig
from .training.rundir import check_out

__all__ = ["Parser", "UsageError", "seed_arg", "seed_value", "EXIT_USAGE", "run_arg", "model_args", "train_args",
           "out_args", "vocab_args", "refuse_existing", "loss_callbacks"]

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


# --- options the sequence jobs share --------------------------------------------------------------

def run_arg(p: argparse.ArgumentParser, job: str) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help=f"run directory from `rnnkit {job} fit`")


def model_args(p: argparse.ArgumentParser, m: ModelConfig):
    """The model options every sequence job has, with the job's defaults ``m`` (its ``tasks/X/config.py``'s
    ``*_DEFAULTS``); returns the group, for the job's own model options."""
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=CELL_NAMES, default=m.cell, help=f"recurrent cell (default: {m.cell})")
    g.add_argument("--hidden", type=int, default=m.hidden_size, metavar="N",
                   help=f"hidden units per layer (default: {m.hidden_size})")
    g.add_argument("--layers", type=int, default=m.num_layers, metavar="N",
                   help=f"stacked layers (default: {m.num_layers})")
    g.add_argument("--dropout", type=float, default=m.dropout,
                   help=f"dropout between stacked layers (default: {m.dropout:g})")
    g.add_argument("--init", choices=["torch", "keras"], default=m.init,
                   help=f"weight initialisation (default: {m.init})")
    g.add_argument("--peephole", action="store_true",
                   help="LSTM with peephole connections (the gates see the cell state; slower: no fused kernels)")
    return g


def train_args(g, t: TrainConfig, patience_unit: str) -> None:
    """The training options every sequence job has, added to the group ``g`` after the job's own,
    with the job's defaults ``t``; ``patience_unit`` says what early stopping counts."""
    g.add_argument("--lr", type=float, default=t.lr, help=f"learning rate, at most 10 (default: {t.lr:g})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=t.optimizer, help=f"optimiser (default: {t.optimizer})")
    g.add_argument("--weight-decay", type=float, default=t.weight_decay,
                   help=f"L2 weight decay, in [0, 1] (default: {t.weight_decay:g})")
    g.add_argument("--clip-norm", type=float, default=t.clip_norm,
                   help=f"clip the gradient norm to this value (default: {t.clip_norm or 'off'})")
    g.add_argument("--patience", type=int, default=t.patience,
                   help=f"early stopping: {patience_unit} without a "
                        f"better validation loss before stopping; 0 = never; the best weights are kept "
                        f"(default: {t.patience})")
    seed_arg(g, t.seed)


def out_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--verbose", action="store_true", help="print the losses every few epochs")


def vocab_args(g, defaults, unknown_help: str, min_count_help: str) -> None:
    """--unknown and --min-count: the character vocabulary's policy for unseen characters."""
    g.add_argument("--unknown", choices=["error", "skip", "replace"], default=defaults.unknown,
                   help=f"{unknown_help} (default: {defaults.unknown})")
    g.add_argument("--min-count", type=int, default=defaults.min_count,
                   help=f"{min_count_help} (default: {defaults.min_count})")


def refuse_existing(a: argparse.Namespace, *sources: str | None) -> None:
    check_out(a.out, a.force, protect=sources)  # refuse before spending minutes on training


def loss_callbacks(a: argparse.Namespace, epochs: int) -> list:
    from .training.loop import loss_printer  # start-up speed: torch loads once a command runs
    return [loss_printer(epochs)] if a.verbose else []
