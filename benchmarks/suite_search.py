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
    rows, records = [], []
    names = ("rnnkit fit --auto (command line)", "fit_forecaster, defaults", f"fit_forecaster, ensemble={ENSEMBLE}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        csv = _write_series(Path(tmp))
        for nt in cfg.threads:
            with threads(nt):
                seen: dict = {}
                one, ens = _api_fit(csv, 1), _api_fit(csv, ENSEMBLE)
                one()  # warm-up: first-call costs (reading, kernel loading) stay out of the rounds
                calls = dict(zip(names, (_cli_auto(csv, Path(tmp) / "run", nt, seen), one, ens)))
                res = compare(calls, repeats=cfg.repeats, sample_s=0.0, warmup=0)
            auto, single, many = (res[n] for n in names)
            cost = ratio(many, single)  # ensemble time / one fit's, per round
            span = lambda st: f"[{fmt_time(st.min)}..{fmt_time(st.max)}]"  # noqa: E731
            rows += [[nt, names[0], fmt_time(auto.median), span(auto),
                      f"target < {AUTO_TARGET_S:.0f} s: {'met' if auto.max < AUTO_TARGET_S else 'not met'}"],
                     [nt, names[1], fmt_time(single.median), span(single), "1x"],
                     [nt, names[2], fmt_time(many.median), span(many),
                      f"**{cost.median:.2f}x** one fit [{cost.min:.2f}..{cost.max:.2f}] "
                      f"(target < {ENSEMBLE_TARGET:.0f}x)"]]
            records.append({"threads": nt, "rows": ROWS, "series": f"builtin:{SOURCE}[:{ROWS}]", "horizon": HORIZON,
                            "auto_s": auto.to_dict(), "one_fit_s": single.to_dict(), "ensemble_s": many.to_dict(),
                            "ensemble": ENSEMBLE, "ensemble_ratio": cost.to_dict(), "cores": cores,
                            "auto_said": seen.get("said", "")})
    said = "; ".join(sorted({r["auto_said"] for r in records if r["auto_said"]})) or "n/a"
    return {
        "title": "5. Search and ensembles: `--auto` wall time and `--ensemble 10` against one fit",
        "intro": (f"The first {ROWS} months of `builtin:{SOURCE}` as a CSV file (horizon {HORIZON}, every other "
                  "setting the default). `rnnkit fit --auto` runs as a separate process, timed around it (start-up, "
                  "search within the default `--time-budget` of 60 s, final ensemble, run directory with plots; "
                  "`OMP_NUM_THREADS` = the row's threads); `fit_forecaster` with the defaults and with "
                  f"`SearchConfig(ensemble={ENSEMBLE})` run in this process (reading, training, scoring). "
                  f"Interleaved, one call per sample, {cfg.repeats} rounds; the ensemble's cost is its time over one "
                  f"fit's within each round. Cores usable: {cores} (the members train side by side on all of them "
                  f"at any torch thread count). Targets (issue 15): `--auto` under {AUTO_TARGET_S:.0f} s on 2 cores; "
                  f"`--ensemble {ENSEMBLE}` under {ENSEMBLE_TARGET:.0f}x one fit. What `--auto` said: {said}."),
        "tables": [{"columns": ["threads", "call", "wall time (median)", "[min..max]", "against the target"],
                    "rows": rows}],
        "records": records,
    }
