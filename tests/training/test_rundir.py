"""Never lose a user's data: what --force may replace, exclusive creation, atomic replacement,
readers during a replacement, faults injected by killing the process at the critical points,
stale temporaries, permissions, and evaluate/forecast finding the right rows and files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rnnkit
from rnnkit.training import rundir
from rnnkit.cli import main
from rnnkit.errors import RunError

FAST = ["--epochs", "2", "--hidden", "4", "--quiet", "--batch-size", "16"]


def cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    t = np.arange(120)
    df = pd.DataFrame({"date": pd.date_range("2010-01-01", periods=120, freq="MS").strftime("%Y-%m-%d"),
                       "sales": 10 + np.sin(2 * np.pi * t / 12) + 0.01 * t})
    path = tmp_path / "data" / "sales.csv"
    path.parent.mkdir()
    df.to_csv(path, index=False)
    return path


def fit(data, out, *extra) -> int:
    return cli("fit", data, "--time-col", "date", "--lookback", "12", "--horizon", "3", "--out", out, *FAST, *extra)


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: "), err
    return err[0]


# --- what --force may replace ----------------------------------------------------------------------

def test_force_refuses_the_folder_that_holds_the_data(csv, capsys):
    before = snapshot(csv.parent)
    assert fit(csv, csv.parent, "--force") == 2
    assert "holds the data" in one_error_line(capsys)
    assert snapshot(csv.parent) == before


def test_force_refuses_a_directory_that_is_not_a_run(csv, tmp_path, capsys):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8 not a run")
    assert fit(csv, other, "--force") == 2
    assert "not an rnnkit run directory" in one_error_line(capsys)
    assert (other / "cat.jpg").read_bytes() == b"\xff\xd8 not a run"


def test_force_refuses_a_run_that_holds_a_user_file(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert fit(csv, out) == 0
    (out / "notes.txt").write_text("my notes")
    before = snapshot(out)
    capsys.readouterr()
    assert fit(csv, out, "--force") == 2
    assert "notes.txt" in one_error_line(capsys)
    assert snapshot(out) == before


@pytest.mark.parametrize("name", [".", "..", ""])
def test_force_refuses_the_working_directory_its_parents_and_empty(csv, tmp_path, monkeypatch, capsys, name):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert fit(csv, name, "--force") == 2
    one_error_line(capsys)
    assert work.is_dir()


def test_force_refuses_the_home_directory(csv, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for out in ("~", home):
        assert fit(csv, out, "--force") == 2
        assert "your home directory" in one_error_line(capsys)
    assert home.is_dir()


def test_force_replaces_a_run(csv, tmp_path):
    out = tmp_path / "run"
    assert fit(csv, out) == 0
    assert fit(csv, out, "--force", "--seed", "7") == 0
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 7
    assert rundir.is_run_dir(out) and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_every_kind_writes_only_known_run_files(tmp_path):
    """--force trusts RUN_FILES; a kind that wrote another file could never be replaced."""
    data = rnnkit.DataConfig(source="builtin:sine", lookback=5, horizon=1)
    run = rnnkit.fit_forecaster(data, rnnkit.ModelConfig(hidden_size=4), rnnkit.TrainConfig(epochs=2), quiet=True)
    rnnkit.save_forecast_run(run, rnnkit.load_builtin("sine"), tmp_path / "f")
    crun = rnnkit.fit_classifier(rnnkit.SequenceDataConfig(), rnnkit.ModelConfig(hidden_size=4),
                                 train_config=rnnkit.TrainConfig(epochs=1), quiet=True)
    rnnkit.save_classifier_run(crun, tmp_path / "c")
    trun = rnnkit.fit_char_lm(rnnkit.TextConfig(steps=2, seq_len=16), rnnkit.ModelConfig(hidden_size=8),
                              rnnkit.TrainConfig(batch_size=4), quiet=True)
    rnnkit.save_text_run(trun, tmp_path / "t")
    for kind in "fct":
        names = set(os.listdir(tmp_path / kind))
        assert names <= rundir.RUN_FILES, names - rundir.RUN_FILES
        assert rundir.is_run_dir(tmp_path / kind)


# --- exclusive creation ----------------------------------------------------------------------------

def test_a_run_created_meanwhile_is_not_replaced(tmp_path):
    """Two fits to one --out: the existence check passes for both before training; the one that
    writes second must fail, not silently replace the first."""
    out = tmp_path / "run"

    def write(d: Path) -> None:
        (d / "config.json").write_text("{}")
        out.mkdir()  # the other fit finished first (even an empty directory must not be replaced)
        (out / "config.json").write_text('{"winner": true}')

    with pytest.raises(RunError, match="created by another process"):
        rundir.write_run_dir(out, write)
    assert json.loads((out / "config.json").read_text()) == {"winner": True}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_concurrent_fits_exactly_one_wins(csv, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "import sys; from rnnkit.cli import main; sys.exit(main(sys.argv[1:]))", "fit", str(csv), "--time-col", "date", "--lookback", "12",
           "--horizon", "3", "--out", str(out), *FAST]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = [r[1] for r in results if r[0] == 2][0].strip().splitlines()
    assert len(loser) == 1 and loser[0].startswith("rnnkit: error: "), loser
    assert rundir.is_run_dir(out)


# --- atomic replacement and readers ------------------------------------------------------------------

def _two_runs(tmp_path: Path):
    """Two forecasting runs that differ in every file: hidden size, scaler kind, seed."""
    data = rnnkit.DataConfig(source="builtin:sine", lookback=5, horizon=1)
    runs = []
    for hidden, scaler in ((4, "minmax"), (6, "standard")):
        runs.append(rnnkit.fit_forecaster(data.replace(scaler=scaler), rnnkit.ModelConfig(hidden_size=hidden),
                                          rnnkit.TrainConfig(epochs=2), quiet=True))
    return runs


def test_a_reader_never_sees_a_mix_of_two_runs(tmp_path):
    out = tmp_path / "run"
    runs = _two_runs(tmp_path)
    rnnkit.save_run(runs[0], out)
    stop, seen, problems = threading.Event(), set(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                r = rnnkit.load_run(out)
            except Exception as e:  # noqa: BLE001 - any failure is a finding
                problems.append(repr(e))
                continue
            pair = (r.model_config.hidden_size, r.data_config.scaler, r.scaler.kind)
            seen.add(pair)
            if pair not in ((4, "minmax", "minmax"), (6, "standard", "standard")):
                problems.append(f"mixed run {pair}")

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(40):
            rnnkit.save_run(runs[(i + 1) % 2], out, force=True)
    finally:
        stop.set()
        t.join()
    assert not problems, problems[:5]
    assert seen  # the reader did load runs


KILLER = textwrap.dedent("""
    import os, signal, sys
    import rnnkit.training.atomic as at
    point = sys.argv[1]
    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    if point == "swap":
        at.exchange = die
    elif point == "between-renames":       # a system without an atomic swap, killed mid-way
        at.exchange = lambda new, old: False
        at.rename_noreplace = die
    elif point == "writing":
        real = at.fsync_tree
        at.fsync_tree = die
    from rnnkit.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _killed_fit(csv, out, point, *extra) -> int:
    args = [str(csv), "--time-col", "date", "--lookback", "12", "--horizon", "3", "--out", str(out), *FAST, *extra]
    p = subprocess.run([sys.executable, "-c", KILLER, point, "fit", *args], capture_output=True, text=True,
                       timeout=300)
    return p.returncode


@pytest.mark.parametrize("point", ["swap", "between-renames", "writing"])
def test_killed_replacement_keeps_the_old_run_and_leaves_no_debris(csv, tmp_path, point):
    out = tmp_path / "run"
    assert fit(csv, out) == 0
    before = snapshot(out)
    assert _killed_fit(csv, out, point, "--force", "--seed", "3") == -signal.SIGKILL
    # right after the kill: the old run is either in place or (between the renames) put aside
    assert (snapshot(out) == before) if point != "between-renames" else not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the dead process's debris
    done = rundir.clean_stale(tmp_path)
    assert done and snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    rnnkit.load_run(out)


def test_next_write_removes_temporaries_of_killed_processes(csv, tmp_path):
    out = tmp_path / "run"
    assert _killed_fit(csv, out, "writing") == -signal.SIGKILL
    assert not out.exists() and [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert fit(csv, tmp_path / "other") == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_sigterm_while_writing_leaves_nothing(csv, tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys
        import rnnkit.training.atomic as at
        at.fsync_tree = lambda d: os.kill(os.getpid(), signal.SIGTERM)
        from rnnkit.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", script, "fit", str(csv), "--time-col", "date", "--lookback", "12",
                        "--horizon", "3", "--out", str(out), *FAST], capture_output=True, text=True, timeout=300)
    assert p.returncode == 143, p.stderr
    assert p.stderr.strip().splitlines() == ["rnnkit: terminated"]
    assert not out.exists() and not [q for q in tmp_path.iterdir() if q.name.startswith(".")]


# --- the output location, checked before training ------------------------------------------------------

def test_parent_that_is_a_file_is_refused_before_training(csv, tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr("rnnkit.tasks.forecast.workflow.fit_forecaster", lambda *a, **k: pytest.fail("trained anyway"))
    assert fit(csv, tmp_path / "afile" / "run") == 2
    assert "is a file" in one_error_line(capsys)


def test_unwritable_parent_is_refused_before_training(csv, monkeypatch, capsys):
    monkeypatch.setattr("rnnkit.tasks.forecast.workflow.fit_forecaster", lambda *a, **k: pytest.fail("trained anyway"))
    assert fit(csv, "/proc/rnnkit-test-run") == 2  # /proc refuses new directories, even to root
    assert "not writable" in one_error_line(capsys)


def test_full_disk_is_one_line_and_leaves_nothing(csv, tmp_path, monkeypatch, capsys):
    import errno
    from rnnkit.training import runs

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(runs, "save_file", full)
    assert fit(csv, tmp_path / "run") == 2
    assert "No space left on device" in one_error_line(capsys)
    assert not (tmp_path / "run").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_forecast_out_on_a_full_disk_leaves_no_empty_file(csv, tmp_path, monkeypatch, capsys):
    import errno
    out = tmp_path / "run"
    assert fit(csv, out) == 0
    target = tmp_path / "f.csv"

    def full(self, path, *a, **k):
        Path(path).write_text("date,hor")  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    capsys.readouterr()
    assert cli("forecast", "--run", out, "--out", target) == 2
    assert "No space left on device" in one_error_line(capsys)
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".f.csv")]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_run_directory_follows_the_umask(csv, tmp_path, mask):
    old = os.umask(mask)
    try:
        assert fit(csv, tmp_path / "run") == 0
    finally:
        os.umask(old)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o777 & ~mask
    for f in (tmp_path / "run").iterdir():
        assert f.stat().st_mode & 0o777 == 0o666 & ~mask, f.name


# --- evaluate scores only unseen rows; forecast finds its data from anywhere --------------------------

def test_evaluate_refuses_the_training_rows(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert fit(csv, out) == 0
    meta = json.loads((out / "config.json").read_text())["meta"]
    train_only = tmp_path / "train.csv"
    pd.read_csv(csv).iloc[:meta["test_start"]].to_csv(train_only, index=False)
    capsys.readouterr()
    assert cli("evaluate", "--run", out, "--data", train_only) == 2
    assert "not fitted or validated on" in one_error_line(capsys)


def test_evaluate_on_grown_data_scores_only_the_new_rows(csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert fit(csv, out) == 0
    run = rnnkit.load_run(out)
    grown = tmp_path / "grown.csv"
    df = pd.read_csv(csv)
    extra = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=12, freq="MS").strftime("%Y-%m-%d"),
                          "sales": 11.0 + np.arange(12) * 0.1})
    pd.concat([df, extra]).to_csv(grown, index=False)
    data = run.load_data(str(grown))
    start = run.scoring_start(data)
    assert start == run.meta["test_start"]  # the same first row as the run's own test rows
    capsys.readouterr()
    assert cli("evaluate", "--run", out, "--data", grown) == 0
    n_new = 120 + 12 - run.meta["test_start"]
    assert f"scored {n_new} rows after the training and validation rows" in capsys.readouterr().out
    # the model's windows are exactly those starting at the test rows
    assert run.evaluate(data) == run.evaluate(data)
    from rnnkit.tasks.forecast.predict import windows_for
    _, Y, starts = windows_for(data.values, 1, 12, 3, 1, start, len(data))
    assert starts[0] == start and len(starts) == n_new - 3 + 1


def test_forecast_works_from_another_directory_and_says_when_data_is_gone(csv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(csv.parent)
    assert fit("sales.csv", tmp_path / "run") == 0  # a relative data path
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli("forecast", "--run", "run") == 0
    csv.unlink()
    capsys.readouterr()
    assert cli("forecast", "--run", "run") == 2
    assert "no longer exists" in one_error_line(capsys)
