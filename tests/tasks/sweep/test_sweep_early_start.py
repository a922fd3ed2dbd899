"""``rnnkit sweep`` starts its workers' fork server before it imports torch (rnnkit._workers.start_early):
only for a local pool of more than one worker, read from the raw arguments."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit._workers import _option, start_early

SRC = str(Path(__file__).resolve().parents[3] / "src")


def test_the_options_are_read_as_argparse_reads_them():
    assert _option(["builtin:sine", "--workers", "3"], "--workers") == "3"
    assert _option(["--workers=1", "x"], "--workers") == "1"
    assert _option(["--workers", "2", "--workers", "1"], "--workers") == "1"  # the last one counts
    assert _option(["--workers"], "--workers") is None and _option([], "--executor") is None
    assert _option(["--workers-x", "2"], "--workers") is None


@pytest.mark.parametrize("args", [["d", "--workers", "1"], ["d", "--workers=1"], ["d", "--executor", "ray"],
                                  ["d", "--executor=ray", "--workers", "4"], ["--help"], ["d", "-h"]])
def test_no_server_for_jobs_that_run_here_or_on_ray(args):
    assert start_early(args) is False


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods() or _usable_cpus() < 2,
                    reason="needs a fork server and two usable CPUs")
def test_a_local_pool_gets_its_server_before_torch_is_imported():
    code = ("import sys; from rnnkit._workers import start_early; started = start_early(['d', '--workers', '2']); "
            "from multiprocessing import forkserver; pid = forkserver._forkserver._forkserver_pid; "
            "print(started, pid is not None and pid > 0, 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False"]
