"""Suite 6: ``rnnkit sweep``'s parallel speed-up (issue 17's target: a 16-job sweep on 2 cores runs
in at most 0.6x the sequential wall time).

16 small jobs on ``builtin:elnino`` (732 months, horizon 12, 50 epochs at most with the default
early stopping): cell lstm/gru x hidden 8/16 x lr 1e-3/3e-3 x lookback 12/24. Each is a whole
``fit_forecaster`` call and its run directory (plots included), as ``rnnkit sweep`` writes it.
Two pairs of contenders, interleaved in each round:

* the command line as a user runs it, a fresh Python process each (start-up, imports, the fork
  server and its workers for the parallel one, the leaderboard): ``rnnkit sweep ... --workers 1``
  (the jobs one after another in that process) against ``--workers 2``;
* :func:`rnnkit.sweep` in this (warm) process: ``workers=1`` against ``workers=2`` (new worker
  processes every call, forked from the fork server that the first call started).

The ratio is parallel time / sequential time within each round, median [min..max] over the rounds;
below 1 the parallel sweep is faster, and with 2 workers on 2 cores 0.5 is the ideal.
The run directories are the same bytes either way (tests/tasks/sweep/test_sweep_runs.py).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import ROOT, compare, fmt_time, ratio

SOURCE, HORIZON, EPOCHS = "builtin:elnino", 12, 50
GRID = {"cell": ["lstm", "gru"], "hidden_size": [8, 16], "lr": [1e-3, 3e-3], "lookback": [12, 24]}
WORKERS, TARGET = 2, 0.6


def _grid_text() -> str:
    return ";".join(f"{k}={','.join(f'{v:g}' if isinstance(v, float) else str(v) for v in vs)}"
                    for k, vs in GRID.items())


def run(cfg) -> dict:
    import rnnkit
    jobs = len(list(itertools.product(*GRID.values())))
    epochs = 10 if cfg.quick else EPOCHS
    data = rnnkit.DataConfig(source=SOURCE, horizon=HORIZON)
    train = rnnkit.TrainConfig(epochs=epochs)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)}
    with tempfile.TemporaryDirectory() as tmp:
        count = itertools.count()

        def api(workers: int):
            def call():
                rnnkit.sweep(data, GRID, Path(tmp) / f"api{next(count)}", train_config=train,
                             config=rnnkit.SweepConfig(workers=workers), quiet=True)
            return call

        def cli(workers: int):
            def call():
                cmd = [sys.executable, "-m", "rnnkit", "sweep", SOURCE, "--horizon", str(HORIZON), "--epochs",
                       str(epochs), "--grid", _grid_text(), "--workers", str(workers), "--quiet",
                       "--out", str(Path(tmp) / f"cli{next(count)}")]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
                if done.returncode != 0:
                    raise RuntimeError(f"`rnnkit sweep` failed ({done.returncode}): {done.stderr.strip()[-300:]}")
            return call

        rnnkit.sweep(data, {"cell": ["gru"]}, Path(tmp) / "warm", train_config=train,  # imports, kernels, plots
                     config=rnnkit.SweepConfig(workers=1), quiet=True)
        rnnkit.sweep(data, {"cell": ["gru", "lstm"]}, Path(tmp) / "warm2", train_config=train,  # the fork server
                     config=rnnkit.SweepConfig(workers=WORKERS), quiet=True)
        names = {"cli1": "`rnnkit sweep --workers 1` (command line)", "cli2": f"`rnnkit sweep --workers {WORKERS}`",
                 "api1": "`rnnkit.sweep(workers=1)` (warm process)", "api2": f"`rnnkit.sweep(workers={WORKERS})`"}
        calls = {names["cli1"]: cli(1), names["cli2"]: cli(WORKERS), names["api1"]: api(1),
                 names["api2"]: api(WORKERS)}
        res = compare(calls, repeats=cfg.repeats, sample_s=0.0, warmup=0)
    rows, records = [], []
    for way in ("cli", "api"):
        seq, par = res[names[f"{way}1"]], res[names[f"{way}2"]]
        r = ratio(par, seq)  # parallel time / sequential time, per round
        span = lambda st: f"[{fmt_time(st.min)}..{fmt_time(st.max)}]"  # noqa: E731
        rows += [[names[f"{way}1"], fmt_time(seq.median), span(seq), "1x"],
                 [names[f"{way}2"], fmt_time(par.median), span(par),
                  f"**{r.median:.2f}x** [{r.min:.2f}..{r.max:.2f}] (target <= {TARGET}x: "
                  f"{'met' if r.median <= TARGET else 'not met'})"]]
        records.append({"way": way, "jobs": jobs, "workers": WORKERS, "epochs": epochs, "cores": cores,
                        "sequential_s": seq.to_dict(), "parallel_s": par.to_dict(), "ratio": r.to_dict()})
    return {
        "title": f"7. Sweeps: {jobs} jobs, one after another against {WORKERS} worker processes",
        "intro": (f"`{SOURCE}` (horizon {HORIZON}, at most {epochs} epochs with the default early stopping), the grid "
                  f"`{_grid_text()}` ({jobs} jobs, each `fit_forecaster` and its run directory with plots). The "
                  "command line runs as a separate process per call (start-up and imports included; the parallel "
                  "one also starts its fork server and workers); the Python API runs in this process, whose imports "
                  f"are warm. Interleaved, one call per sample, {cfg.repeats} rounds; the ratio is parallel time over "
                  f"sequential time within each round (0.5 is ideal on 2 cores). Cores usable: {cores}. Target "
                  f"(issue 17): <= {TARGET}x on 2 cores."),
        "tables": [{"columns": ["call", "wall time (median)", "[min..max]", "parallel / sequential"], "rows": rows}],
        "records": records,
    }
