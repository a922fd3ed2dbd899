"""`make bench`: rnnkit vs torch.nn (and Keras when installed), speed ratios measured side by side.

    python benchmarks/run.py                  # every suite, 1 and 2 threads (~14 minutes on 2 cores)
    python benchmarks/run.py --quick          # smoke run (~1 minute), written to benchmarks/quick/
    python benchmarks/run.py --suite stream   # one suite (repeatable); the others keep their stored results

Suites: layer, trainer, fit (the seed regime: 1a, 1b, 1c), stream, grid, engine, search, panel, sweep, export; ``seed`` =
layer+trainer+fit.
Results: ``results.json`` (raw samples) and ``RESULTS.md`` in the output folder, and the plot
``docs/img/bench.png`` (``quick/bench.png`` for --quick). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402  (puts the checkout's src/ on sys.path)
import report  # noqa: E402

SUITES = {"layer": ("suite_seed", "run_layer"), "trainer": ("suite_seed", "run_trainer"),
          "fit": ("suite_fit", "run"), "stream": ("suite_stream", "run"), "grid": ("suite_grid", "run"),
          "engine": ("suite_engine", "run"), "search": ("suite_search", "run"),
          "panel": ("suite_panel", "run"), "sweep": ("suite_sweep", "run"), "export": ("suite_export", "run")}
ALIASES = {"seed": ("layer", "trainer", "fit"), "all": tuple(SUITES)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: fewer configurations and rounds (~1 minute)")
    p.add_argument("--suite", action="append", choices=sorted(SUITES) + sorted(ALIASES),
                   help="run only this suite (repeatable; default: all)")
    p.add_argument("--threads", help="torch thread counts, comma-separated (default: 1,2; --quick: 1)")
    p.add_argument("--repeats", type=int, help="rounds per comparison (default: 5, --quick 3)")
    p.add_argument("--force-threads", action="store_true",
                   help="time every thread count even when the machine is oversubscribed (see README)")
    p.add_argument("--out", type=Path, help="folder for results.json and RESULTS.md "
                                            "(default: benchmarks/, or benchmarks/quick/ with --quick)")
    p.add_argument("--plot", type=Path, help="where the PNG goes (default: docs/img/bench.png, "
                                             "or OUT/bench.png with --quick or --out)")
    args = p.parse_args(argv)
    names: list[str] = []
    for s in args.suite or ["all"]:
        for n in ALIASES.get(s, (s,)):
            if n not in names:
                names.append(n)
    out = args.out or (HERE / "quick" if args.quick else HERE)
    plot_path = args.plot or (out / "bench.png" if (args.quick or args.out) else harness.ROOT / "docs/img/bench.png")
    out.mkdir(parents=True, exist_ok=True)
    cfg = SimpleNamespace(quick=args.quick, threads=tuple(int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")),
                          repeats=args.repeats or (3 if args.quick else 5), sample_s=0.05 if args.quick else 0.1)
    store = out / "results.json"
    results = json.loads(store.read_text()) if store.exists() else {"suites": {}}
    warnings.filterwarnings("ignore", category=UserWarning)  # e.g. DataLoader/keras chatter
    machine = harness.machine_info()  # also builds/loads the native kernels
    import rnnkit.tasks.forecast.workflow  # noqa: F401  (import everything the suites use, then freeze the heap)
    import torch.utils.data  # noqa: F401
    harness.freeze_heap()
    results["machine"] = machine
    print(f"rnnkit benchmarks on {machine['cpu']} ({machine['usable_cpus']} usable CPUs), torch {machine['torch']}, "
          f"native kernels {machine['native_kernels']}; suites {', '.join(names)}; threads {cfg.threads}", flush=True)
    t_all = time.perf_counter()
    wanted = cfg.threads
    for name in names:
        mod, fn = SUITES[name]
        cfg.threads = gate = ThreadGate(wanted, args.force_threads)
        print(f"  {name} ...", flush=True)
        load_before, t0 = harness.loadavg(), time.perf_counter()
        res = getattr(importlib.import_module(mod), fn)(cfg)
        now = machine if name == names[0] else harness.machine_info()
        res.update(date=now["date"], commit=now["commit"],
                   seconds=time.perf_counter() - t0, quick=cfg.quick,
                   threads=[n for n in wanted if n not in gate.skipped], skipped_threads=gate.skipped,
                   probes=gate.probes, load_before=load_before, load_after=harness.loadavg(), cpu=machine["cpu"])
        results["suites"][name] = res
        store.write_text(_dumps(results))  # keep what is done if a later suite fails
        print(f"  {name}: {res['seconds']:.0f} s", flush=True)
    report.write_markdown(results, out / "RESULTS.md", os.path.relpath(plot_path, out))
    report.plot(results, plot_path)
    size = plot_path.stat().st_size / 1024
    print(f"done in {time.perf_counter() - t_all:.0f} s: {out / 'RESULTS.md'}, {plot_path} ({size:.0f} KB)")
    return 0


OVERSUBSCRIBED = 0.7  # n threads this much slower than 1 on a parallel matmul: the cores are taken


def _dumps(results: dict) -> str:
    """Compact JSON, floats to 4 significant digits (the samples' noise is larger than that)."""
    def squeeze(o):
        if isinstance(o, float):
            return float(f"{o:.4g}")
        if isinstance(o, dict):
            return {k: squeeze(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [squeeze(v) for v in o]
        return o
    return json.dumps(squeeze(results), separators=(",", ":"))


class ThreadGate:
    """The thread counts a suite loops over, each n > 1 probed just before it is used.

    Where n threads run a parallel matmul slower than OVERSUBSCRIBED x one thread, other processes
    hold the cores and torch's parallel regions wait for descheduled threads: such timings measure
    the neighbours (a tiny LSTM step took 800x longer here), so that thread count is skipped for
    the suite (unless forced) and RESULTS.md says so."""

    def __init__(self, wanted: tuple[int, ...], force: bool) -> None:
        self.wanted, self.force = tuple(wanted), force
        self.skipped: list[int] = []
        self.probes: dict[str, float] = {}

    def __getitem__(self, i: int) -> int:
        return self.wanted[i]

    def __iter__(self):
        for n in self.wanted:
            if n > 1:
                speed = self.probes[str(n)] = round(harness.parallel_probe(n), 2)
                if speed < OVERSUBSCRIBED and not self.force:
                    self.skipped.append(n)
                    print(f"    threads={n}: skipped, a 256^2 matmul runs {speed:.2f}x as fast as at 1 thread "
                          "(machine oversubscribed; --force-threads to time it anyway)", flush=True)
                    continue
            yield n


if __name__ == "__main__":
    sys.exit(main())
