"""Suite 5: what ``--auto`` and ``--ensemble`` cost on a 200-point series (issue 15's two speed targets:
``--auto`` finishes in under 60 s on 2 cores; ``--ensemble 10`` costs less than 10x one fit).

The series is the first 200 months of ``builtin:elnino`` (1950-1966), written to a CSV file with its
date column, so that the command line and the Python API read the same file. Three contenders,
interleaved (A B C, B C A, C A B, one call per sample, set-up and scoring included):

* ``rnnkit fit DATA --time-col date --auto --out RUN`` as a user runs it: a fresh Python process
  (start-up, imports, the search within the default ``--time-budget``, the final ensemble, the run
  directory with its plots), timed by the wall clock around the process;
* ``fit_forecaster`` with the defaults (one forecaster; ``normalise="auto"`` may train two networks
  to choose, as ``rnnkit fit`` does), in this process;
* the same with ``SearchConfig(ensemble=10)``.

The ensemble ratio is (ensemble 10 time) / (one fit time) within each round, median [min..max] over
the rounds: below 10 means members cost less than separate fits (they train side by side on every
core, and the first one's set-up is shared). Torch runs at one thread count: the largest of
``--threads`` the oversubscription probe lets through (``OMP_NUM_THREADS`` for the command line).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, compare, fmt_time, ratio, threads

ROWS, SOURCE, HORIZON = 200, "elnino", 1
AUTO_TARGET_S, ENSEMBLE, ENSEMBLE_TARGET = 60.0, 10, 10.0


def _write_series(folder: Path) -> Path:
    import rnnkit
    frame = rnnkit.load_builtin(SOURCE).frame.iloc[:ROWS]
    path = folder / f"{SOURCE}{ROWS}.csv"
    frame.to_csv(path, index_label="date")
    return path


def _cli_auto(csv: Path, out: Path, nt: int, seen: dict):
    env = {**os.environ, "OMP_NUM_THREADS": str(nt),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    cmd = [sys.executable, "-m", "rnnkit", "fit", str(csv), "--time-col", "date", "--auto", "--quiet", "--force",
           "--out", str(out)]

    def call():
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=20 * AUTO_TARGET_S)
        if done.returncode != 0:
            raise RuntimeError(f"`rnnkit fit --auto` failed ({done.returncode}): {done.stderr.strip()[-300:]}")
        seen["said"] = next((line for line in done.stdout.splitlines() if line.startswith("auto: tried")), "")
    return call


def _api_fit(csv: Path, members: int):
    import rnnkit

    def call():
        rnnkit.fit_forecaster(rnnkit.DataConfig(source=str(csv), time_col="date", horizon=HORIZON), quiet=True,
                              search=rnnkit.SearchConfig(ensemble=members))
    return call


def run(cfg) -> dict:
    timed = list(cfg.threads)  # each n > 1 probed; an oversubscribed one is left out
    nt = max(timed) if timed else 1
    repeats = 1 if cfg.quick else 3
    seen: dict = {}
    with tempfile.TemporaryDirectory() as tmp, threads(nt):
        csv = _write_series(Path(tmp))
        one, ens = _api_fit(csv, 1), _api_fit(csv, ENSEMBLE)
        one()  # warm-up: first-call costs (reading, kernel loading) stay out of the rounds
        names = ("rnnkit fit --auto (command line)", "fit_forecaster, defaults",
                 f"fit_forecaster, ensemble={ENSEMBLE}")
        calls = dict(zip(names, (_cli_auto(csv, Path(tmp) / "run", nt, seen), one, ens)))
        t0 = time.perf_counter()
        res = compare(calls, repeats=repeats, sample_s=0.0, warmup=0)
        seconds = time.perf_counter() - t0
    auto, single, many = (res[n] for n in names)
    cost = ratio(many, single)  # ensemble time / one fit's, per round
    rows = [[nt, names[0], fmt_time(auto.median), f"[{fmt_time(auto.min)}..{fmt_time(auto.max)}]",
             f"target < {AUTO_TARGET_S:.0f} s: {'met' if auto.max < AUTO_TARGET_S else 'not met'}"],
            [nt, names[1], fmt_time(single.median), f"[{fmt_time(single.min)}..{fmt_time(single.max)}]", "1x"],
            [nt, names[2], fmt_time(many.median), f"[{fmt_time(many.min)}..{fmt_time(many.max)}]",
             f"**{cost.median:.2f}x** one fit [{cost.min:.2f}..{cost.max:.2f}] (target < {ENSEMBLE_TARGET:.0f}x)"]]
    record = {"threads": nt, "rows": ROWS, "series": f"builtin:{SOURCE}[:{ROWS}]", "horizon": HORIZON,
              "auto_s": auto.to_dict(), "one_fit_s": single.to_dict(), "ensemble_s": many.to_dict(),
              "ensemble": ENSEMBLE, "ensemble_ratio": cost.to_dict(), "auto_said": seen.get("said", ""),
              "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
              "rounds_s": seconds}
    return {
        "title": "5. Search and ensembles: `--auto` wall time and `--ensemble 10` against one fit",
        "intro": (f"The first {ROWS} months of `builtin:{SOURCE}` as a CSV file (horizon {HORIZON}, every other "
                  "setting the default). `rnnkit fit --auto` runs as a separate process, timed around it (start-up, "
                  "search within the default `--time-budget` of 60 s, final ensemble, run directory with plots); "
                  "`fit_forecaster` with the defaults and with `SearchConfig(ensemble=10)` run in this process "
                  "(reading, training, scoring). Interleaved, one call per sample, "
                  f"{repeats} round(s); the ensemble's cost is its time over one fit's within each round. "
                  f"Torch threads: {nt}; cores usable: {record['cores']}. Targets (issue 15): `--auto` under "
                  f"{AUTO_TARGET_S:.0f} s on 2 cores; `--ensemble {ENSEMBLE}` under {ENSEMBLE_TARGET:.0f}x one fit. "
                  f"What `--auto` said: {record['auto_said'] or 'n/a'}."),
        "tables": [{"columns": ["threads", "call", "wall time (median)", "[min..max]", "against the target"],
                    "rows": rows}],
        "records": [record],
        "timed_threads": [nt],
    }
