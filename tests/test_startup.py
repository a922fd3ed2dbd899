"""The command line's start: ``rnnkit`` imports only the standard library before it can handle
Ctrl-C, and an interrupt while torch loads (or soon after) is one line, exit status 130, and no
run directory."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_cases import ROOT, ENV


# --- Ctrl-C while the command line starts ---------------------------------------------------------------

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
