"""How the command-line tests run rnnkit: in-process with quick settings, or in a subprocess with
this checkout's ``src`` first, and what a refusal must look like (one ``rnnkit: error:`` line,
exit status 2)."""

from __future__ import annotations

import os
from pathlib import Path

from rnnkit.cli import main

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

