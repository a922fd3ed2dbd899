"""`make quality`: rnnkit's accuracy against the classical methods a user would pick instead (issue 15).

    python benchmarks/quality/run.py                  # everything: 14 series, the M1 yearly panel, 5 sets
    python benchmarks/quality/run.py --quick          # 4 series, 20 M1 series, 2 sets; writes benchmarks/quick/
    python benchmarks/quality/run.py --only forecast --series wineind --series T12
    python benchmarks/quality/run.py --rnnkit-option lookback=24 --rnnkit-option classify.pool=mean
    python benchmarks/quality/run.py --report benchmarks/quality.json   # only rewrite QUALITY.md and the plot

Every contender sees the same split (the last horizon of each series; the official train/test
split of each set); series run one after another, each contender's fit+forecast timed with
``time.process_time``. The data come from the packages of the ``bench`` extra; nothing is downloaded.
Writes QUALITY.md, quality.json and quality.png into ``--out`` (default benchmarks/, with
--quick benchmarks/quick/). See benchmarks/README.md, "make quality".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # import this folder as the package
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402  (puts the checkout's src/ first: the working tree is measured)
import numpy as np  # noqa: E402
import torch  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.errors import RnnkitWarning  # noqa: E402
from quality import classical, report, rnnkit_calls, scores, sources  # noqa: E402

QUICK_M1 = 20
RNNKIT_SRC = str(Path(rnnkit.__file__).resolve().parent)  # warnings raised in here are rnnkit's, and recorded


def _portable(argv: list[str]) -> list[str]:
    """The command's arguments as the report records them: the output folder (a path of this machine)
    written as ``DIR``."""
    out, after_out = [], False
    for a in argv:
        out.append("DIR" if after_out else "--out=DIR" if a.startswith("--out=") else a)
        after_out = a == "--out"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help=f"{len(sources.QUICK_SINGLE)} series, {QUICK_M1} M1 series "
                   f"and {len(sources.QUICK_CLASSIFY)} sets, for development (a few minutes)")
    p.add_argument("--only", choices=("forecast", "classify"), help="run one job only")
    p.add_argument("--series", action="append", metavar="NAME",
                   help="only this series or set (repeatable): a single series, an M1 series (T1..T181) or a set")
    p.add_argument("--rnnkit-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting for rnnkit's calls (repeatable): a config field or fit keyword, "
                        "optionally prefixed forecast. or classify.")
    p.add_argument("--out", type=Path, help="folder for QUALITY.md, quality.json and quality.png "
                                            "(default: benchmarks/, or benchmarks/quick/ with --quick)")
    p.add_argument("--report", type=Path, metavar="JSON", help="rewrite the report from a stored quality.json, run nothing")
    args = p.parse_args(argv)
    out = args.out or (BENCH / "quick" if args.quick else BENCH)
    if args.report:
        results = json.loads(args.report.read_text())
        _write(results, out, json_too=False)
        return 0
    try:
        options = dict(rnnkit_calls.parse_option(o) for o in args.rnnkit_option)
        for job in rnnkit_calls.JOBS:
            rnnkit_calls.job_options(job, options)  # refuse an unknown key before anything runs
        series, panel, sets = _select(args)
    except (ValueError, KeyError) as e:
        p.error(str(e))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")  # statsforecast/statsmodels convergence chatter; rnnkit's are recorded
    machine = harness.machine_info()
    results = {"machine": machine, "versions": _versions(), "torch_threads": torch.get_num_threads(),
               "quick": args.quick, "argv": _portable(sys.argv[1:] if argv is None else list(argv)), "options": options,
               "variants": {}, "forecast": [], "m1": [], "classify": []}
    print(f"rnnkit quality benchmark on {machine['cpu']} ({machine['usable_cpus']} usable CPUs), rnnkit commit "
          f"{machine['commit']}; {len(series)} series, {len(panel)} M1 series, {len(sets)} sets", flush=True)
    t_all = time.perf_counter()
    classical.warm_up()
    _warm_up_rnnkit()
    if series or panel:
        contenders = _forecasters(options, results["variants"])
        for key, group in (("forecast", series), ("m1", panel)):
            for i, s in enumerate(group, 1):
                rec = run_series(s, contenders)
                results[key].append(rec)
                print(f"  [{key} {i}/{len(group)}] {_progress(rec)}", flush=True)
        if panel:
            add_global(panel, results["m1"], options)
            summary = scores.summarise_forecasts(results["m1"])
            print("  [m1] mean MASE: " + ", ".join(f"{k} {_fmt(v['mean_mase'])}" for k, v in summary.items()), flush=True)
    if sets:
        variants = _variants("classify", options, results["variants"])
        for i, ds in enumerate(sets, 1):
            rec = run_set(ds, variants)
            results["classify"].append(rec)
            print(f"  [classify {i}/{len(sets)}] {_progress_set(rec)}", flush=True)
    results["wall_s"] = time.perf_counter() - t_all
    _write(results, out)
    print(f"done in {results['wall_s'] / 60:.1f} min; wrote {out / 'QUALITY.md'}, quality.json, quality.png")
    return 0


def _select(args) -> tuple[list, list, list]:
    """The series, M1 series and sets to run, from --quick, --only and --series (loaded offline)."""
    want = set(args.series or ())
    single = [n for n in sources.SINGLE if (n in want if want else not args.quick or n in sources.QUICK_SINGLE)]
    sets = [n for n in sources.CLASSIFY if (n in want if want else not args.quick or n in sources.QUICK_CLASSIFY)]
    with no_network():
        panel = sources.m1_yearly() if args.only != "classify" else []
        panel = [s for s in panel if s.name in want] if want else panel[:QUICK_M1] if args.quick else panel
        unknown = want - set(single) - set(sets) - {s.name for s in panel}
        if unknown:
            raise ValueError(f"--series {', '.join(sorted(unknown))}: not a series or set of this benchmark; the "
                             f"single series are {', '.join(sources.SINGLE)}, the M1 series T1..T181, the sets "
                             f"{', '.join(sources.CLASSIFY)}")
        series = sources.single_series(single) if args.only != "classify" and single else []
        sets = sources.classification_sets(sets) if args.only != "forecast" and sets else []
    return series, panel, sets


@contextlib.contextmanager
def no_network():
    """Refuse every network connection while the data are read: they must come from installed packages."""
    real = socket.socket.connect

    def refuse(sock, address):
        if sock.family == getattr(socket, "AF_UNIX", None):
            return real(sock, address)
        raise OSError(f"make quality downloads nothing, but a data loader tried to connect to {address}")
    socket.socket.connect = refuse
    try:
        yield
    finally:
        socket.socket.connect = real


def _variants(job: str, options: dict, record: dict) -> dict[str, dict]:
    """The rnnkit contenders this job can run: name -> options (the variant's, then the user's)."""
    out = {}
    for name, own in rnnkit_calls.VARIANTS.items():
        missing = [k for k in own if not rnnkit_calls.accepts(job, k)]
        record.setdefault(job, {})[name] = ("not run: rnnkit's " + job + " job has no " +
                                            ", ".join(f"{k!r}" for k in missing) + " setting yet") if missing else "run"
        if not missing:
            out[name] = {**own, **options}
    return out


def _forecasters(options: dict, record: dict) -> dict[str, Callable]:
    """Contender name -> f(series) -> horizon forecasts; seasonal naive first (the fallback)."""
    out: dict[str, Callable] = {name: (lambda s, f=f: f(s.train.to_numpy(), s.horizon, s.m))
                                for name, f in classical.FORECASTERS.items()}
    for name, opts in _variants("forecast", options, record).items():
        out[name] = lambda s, o=opts: rnnkit_calls.fit_rnnkit_forecast(s.train, s.horizon, s.m, o)
    return out


def _timed(call: Callable):
    """Run ``call()``: -> (result or None, failure or None, CPU seconds, wall seconds, rnnkit warnings)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result, failure = None, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except rnnkit.RnnkitError as e:
            failure = {"kind": "refused", "message": str(e)}
        except Exception as e:  # noqa: BLE001  (a contender that crashes is a result, not the benchmark's end)
            failure = {"kind": "error", "message": f"{type(e).__name__}: {e}"}
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    said = sorted({str(w.message) for w in caught
                   if issubclass(w.category, RnnkitWarning) or (w.filename or "").startswith(RNNKIT_SRC)})
    return result, failure, cpu, wall, said[:3]


def run_series(s: sources.Series, contenders: dict[str, Callable]) -> dict:
    """Every contender on one series' holdout. A failed contender is scored with seasonal naive's
    forecast (``fallback``), so that the aggregates stay over the same series."""
    y_train, h, m = s.train.to_numpy(), s.horizon, s.m
    scale = scores.mase_scale(y_train, m)
    rec = {"name": s.name, "origin": s.origin, "panel": s.panel, "freq": s.freq, "m": m, "horizon": h,
           "n": len(s.values), "test": s.test.tolist(), "methods": {}}
    fallback = None
    for name, call in contenders.items():
        f, failure, cpu, wall, said = _timed(lambda: call(s))
        if failure is None:
            f = np.asarray(f, dtype=np.float64)
            if f.shape != (h,) or not np.isfinite(f).all():
                failure = {"kind": "error", "message": f"returned {f.shape} values (finite: {np.isfinite(f).all()}), "
                                                       f"not {h} finite forecasts"}
        if failure is not None:
            f = fallback
        fallback = f if fallback is None else fallback
        rec["methods"][name] = {"forecast": f.tolist(), "mase": scores.mase(s.test, f, scale),
                                "smape": scores.smape(s.test, f), "cpu_s": cpu, "wall_s": wall,
                                "failure": failure, "warnings": said}
    return rec


def add_global(panel: list, records: list[dict], options: dict) -> None:
    """One rnnkit global model fitted on the training parts of every series of ``panel`` at once,
    scored on each series' holdout next to the per-series contenders of ``records`` (its CPU time
    shared equally by the series). A failure falls back to seasonal naive, as for the others."""
    opts = rnnkit_calls.job_options("forecast", options)
    h, m = panel[0].horizon, panel[0].m
    out, failure, cpu, wall, said = _timed(lambda: rnnkit_calls.fit_rnnkit_global([s.train for s in panel], h, m, opts))
    for s, rec in zip(panel, records):
        f = None if failure else np.asarray(out.get(s.name), dtype=np.float64)
        if f is not None and (f.shape != (h,) or not np.isfinite(f).all()):
            failure = {"kind": "error", "message": f"series {s.name}: not {h} finite forecasts"}
        f = f if failure is None else np.asarray(rec["methods"]["seasonal naive"]["forecast"])
        scale = scores.mase_scale(s.train.to_numpy(), m)
        rec["methods"][rnnkit_calls.GLOBAL] = {"forecast": f.tolist(), "mase": scores.mase(s.test, f, scale),
                                               "smape": scores.smape(s.test, f), "cpu_s": cpu / len(panel),
                                               "wall_s": wall / len(panel), "failure": failure, "warnings": said}


def run_set(ds: sources.SequenceSet, variants: dict[str, dict]) -> dict:
    """Every classifier on one set's official split: test accuracy (and rnnkit's on its training rows)."""
    rec = {"name": ds.name, "origin": ds.origin, **ds.summary, "methods": {}}
    calls = {name: (lambda c=c: {"test_pred": c(ds.X_train, ds.y_train, ds.X_test)})
             for name, c in classical.CLASSIFIERS.items()}
    for name, opts in variants.items():
        calls[name] = lambda o=opts: rnnkit_calls.fit_rnnkit_classifier(ds.name, ds.X_train, ds.y_train, ds.X_test, o)
    for name, call in calls.items():
        out, failure, cpu, wall, said = _timed(call)
        rec["methods"][name] = {"accuracy": None if failure else scores.accuracy(ds.y_test, out["test_pred"]),
                                "fit_accuracy": None if failure else out.get("fit_accuracy"),
                                "cpu_s": cpu, "wall_s": wall, "failure": failure, "warnings": said}
    return rec


def _fmt(v, spec=".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _progress(rec: dict) -> str:
    parts = []
    for name, r in rec["methods"].items():
        mark = f" ({r['failure']['kind']})" if r["failure"] else ""
        parts.append(f"{name} {_fmt(r['mase'])}{mark} {r['cpu_s']:.1f}s")
    return f"{rec['name']} (n={rec['n']}, m={rec['m']}, h={rec['horizon']}) MASE: " + ", ".join(parts)


def _progress_set(rec: dict) -> str:
    parts = []
    for name, r in rec["methods"].items():
        what = f"{r['failure']['kind']}: {r['failure']['message'][:80]}" if r["failure"] else _fmt(r["accuracy"])
        fit = f" (fit {_fmt(r['fit_accuracy'])})" if r.get("fit_accuracy") is not None else ""
        parts.append(f"{name} {what}{fit} {r['cpu_s']:.1f}s")
    return f"{rec['name']} ({rec['train']}/{rec['test']}, {rec['classes']} classes) accuracy: " + ", ".join(parts)


def _warm_up_rnnkit() -> None:
    """Build or load the native kernels before anything is timed (the first use compiles them)."""
    import pandas as pd
    y = pd.Series(np.sin(np.arange(80) / 4.0), name="warm-up")
    for call in (lambda: rnnkit_calls.fit_rnnkit_forecast(y, 4, 1, {"epochs": 2}),
                 lambda: rnnkit_calls.fit_rnnkit_classifier("warm-up", [np.ones((8, 1)), np.zeros((8, 1))] * 4,
                                                            ["a", "b"] * 4, [np.ones((8, 1))], {"epochs": 2})):
        _timed(call)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for name in ("statsforecast", "tslearn", "pmdarima", "statsmodels", "sktime", "aeon", "pyts", "numpy", "pandas",
                 "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _finite(obj):
    """NaN and infinities -> None (JSON has neither), recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _write(results: dict, out: Path, json_too: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if json_too:
        (out / "quality.json").write_text(json.dumps(_finite(results), indent=1, allow_nan=False) + "\n")
    (out / "QUALITY.md").write_text(report.markdown(results, plot="quality.png"))
    report.plot(results, out / "quality.png")


if __name__ == "__main__":
    sys.exit(main())
