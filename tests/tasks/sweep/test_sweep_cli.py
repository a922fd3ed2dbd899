"""``rnnkit sweep`` on the command line: one-line refusals (exit 2, nothing written), a TOML file
with command-line overrides, resuming with the directory's own plan, and Ctrl-C: finished jobs
kept, running ones stopped without a half-written run directory."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import rnnkit
from rnnkit.cli import main
from cli_cases import ENV, one_line_error

QUICK = ["--lookback", "5", "--horizon", "1", "--epochs", "2", "--hidden", "4", "--workers", "1", "--quiet"]


@pytest.mark.parametrize("args, needle", [
    (["builtin:sine", "--grid", "hiden=4,8"], "did you mean hidden_size"),
    (["builtin:sine"], "pass the settings to sweep: --grid"),
    (["--grid", "hidden=4,8"], "pass the data to fit"),
    (["builtin:sine", "--grid", "hidden=4,x"], "hidden_size takes an integer; got 'x'"),
    (["builtin:sine", "--grid", "hidden=4,8", "--hidden", "4"], "hidden_size is both a setting every job shares"),
    (["builtin:sine", "--grid", "lr=-1,-2"], "refused in every combination: lr must be"),
    (["builtin:sine", "--grid", "lr=0.01", "--address", "auto"], "executor='ray'"),
    (["builtin:sine", "--grid", "lr=0.01", "--force", "--resume"], "not both"),
    (["no-such.csv", "--grid", "lr=0.01"], "no-such.csv"),
    (["builtin:sine", "--grid", "lr=0.01", "--config", "missing.toml"], "no such sweep file"),
])
def test_a_bad_sweep_is_one_line_and_writes_nothing(capsys, tmp_path, args, needle):
    out = tmp_path / "s"
    assert needle in one_line_error(capsys, ["sweep", *args, "--out", out, *QUICK])
    assert not out.exists()


def test_a_toml_file_with_command_line_overrides_then_resume(capsys, tmp_path):
    out, spec = tmp_path / "s", tmp_path / "sweep.toml"
    spec.write_text(f'data = "builtin:sine"\nout = {str(out)!r}\nworkers = 1\n'
                    '[settings]\nlookback = 5\nhorizon = 1\nepochs = 2\nhidden = 4\n'
                    '[grid]\nlr = [1e-3, 1e-2]\ncell = ["gru"]\n')
    # --grid replaces the file's lr values, --epochs its epochs; the file's cell stays in the grid
    assert main(["sweep", "--config", str(spec), "--grid", "lr=0.003,0.03", "--epochs", "3"]) == 0
    shown = capsys.readouterr().out
    assert "2 of 2 job(s) trained" in shown and "job-000" in shown
    plan = json.loads((out / "sweep.json").read_text())
    assert [j["settings"] for j in plan["jobs"]] == [{"lr": 0.003, "cell": "gru"}, {"lr": 0.03, "cell": "gru"}]
    run = rnnkit.load_run(out / "job-001")
    assert (run.train_config.lr, run.train_config.epochs, run.model_config.cell, run.data_config.lookback) == \
        (0.03, 3, "gru", 5)
    with open(out / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok", "ok"] and {r["lr"] for r in rows} == {"0.003", "0.03"}
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "already exists; pass --resume" in one_line_error(capsys, ["sweep", "--config", str(spec)])
    assert main(["sweep", "--resume", "--out", str(out), "--quiet"]) == 0  # its own plan: nothing left to run
    assert "2 of 2 job(s) trained" in capsys.readouterr().out


def test_ctrl_c_in_this_process_keeps_the_finished_jobs(tmp_path, interrupt_job):
    interrupt_job("job-001")
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        rnnkit.sweep(rnnkit.DataConfig(lookback=5), {"hidden_size": [4, 5, 6]}, out, rnnkit.ModelConfig(),
                     rnnkit.TrainConfig(epochs=2), config=rnnkit.SweepConfig(workers=1), quiet=True)
    with open(out / "leaderboard.csv", newline="") as f:
        assert [(r["job"], r["status"]) for r in csv.DictReader(f)] == [
            ("job-000", "ok"), ("job-001", "interrupted"), ("job-002", "interrupted")]
    assert sorted(os.listdir(out)) == ["job-000", "jobs.json", "leaderboard.csv", "leaderboard.png", "sweep.json"]


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_leaves_no_half_written_run(tmp_path):
    # job-000 trains 2 epochs, job-001 100000: Ctrl-C (to the whole process group, as a terminal
    # sends it) once job-000 is done stops job-001 within an epoch; whenever it lands, the outcome
    # is the same: status 130, job-000 kept, no job-001 directory, no temporaries
    out = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "sweep", "builtin:sine", "--grid", "epochs=2,100000",
                             "--patience", "0", "--lookback", "5", "--hidden", "4", "--workers", "2", "--quiet",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads((out / "jobs.json").read_text())["rows"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    while proc.poll() is None and time.monotonic() < deadline:  # again if one lands where it is ignored
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.endswith("rnnkit: interrupted\n") and "Traceback" not in err, err
    assert sorted(os.listdir(out)) == ["job-000", "jobs.json", "leaderboard.csv", "leaderboard.png", "sweep.json"]
    assert rnnkit.load_run(out / "job-000").train_config.epochs == 2
    with open(out / "leaderboard.csv", newline="") as f:
        assert [(r["job"], r["status"]) for r in csv.DictReader(f)] == [("job-000", "ok"), ("job-001", "interrupted")]
