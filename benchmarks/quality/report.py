"""QUALITY.md and quality.png from the results of run.py (the same dict that quality.json stores)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from . import scores, sources

__all__ = ["markdown", "plot", "targets"]

REFERENCE = "seasonal naive"
DEFAULT, AUTO, GLOBAL = "rnnkit", "rnnkit --auto", "rnnkit global"  # GLOBAL: rnnkit_calls.GLOBAL


def _f(v, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _table(columns: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def _sets_vs_dtw(sets: list[dict], name: str) -> tuple[int, int]:
    """On how many sets ``name``'s test accuracy is at or above 1-NN DTW's (a failure counts as below)."""
    ok = sum(1 for r in sets if r["methods"].get(name, {}).get("accuracy") is not None
             and r["methods"]["1-NN DTW"]["accuracy"] is not None
             and r["methods"][name]["accuracy"] >= r["methods"]["1-NN DTW"]["accuracy"])
    return ok, len(sets)


def targets(results: dict) -> list[list[str]]:
    """One row per target of issue 15 that this benchmark measures: target, measured, met."""
    rows = []
    single = scores.summarise_forecasts(results.get("forecast", []))
    m1 = scores.summarise_forecasts(results.get("m1", []))
    sets = results.get("classify", [])
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    not_run = "not run (rnnkit has no `auto` setting yet)"
    if DEFAULT in single:
        d = single[DEFAULT]
        rows.append(["single series: defaults, geo-mean relative MASE <= 0.90",
                     f"{_f(d['geomean_rel_mase'])} ({d['failures']} of {d['n']} fits failed)",
                     yes(d["geomean_rel_mase"] <= 0.90)])
        refused = f" ({d['failures']} failed, scored as seasonal naive)" if d["failures"] else ""
        rows.append(["single series: defaults worse than seasonal naive on at most 1 in 5 series",
                     f"{d['worse_than_reference']} of {d['n']}{refused}", yes(d["worse_than_reference"] <= d["n"] / 5)])
        a, ets = single.get(AUTO), single["AutoETS"]["geomean_rel_mase"]
        rows.append(["single series: `--auto` geo-mean relative MASE below AutoETS's",
                     not_run if a is None else f"{_f(a['geomean_rel_mase'])} vs AutoETS {_f(ets)}",
                     "-" if a is None else yes(a["geomean_rel_mase"] < ets)])
    if DEFAULT in m1:
        theta = m1["AutoTheta"]["mean_mase"]
        a = m1.get(AUTO)
        rows.append([f"M1 yearly ({m1[DEFAULT]['n']} series): `--auto` mean MASE at or below AutoTheta's",
                     not_run + f"; defaults {_f(m1[DEFAULT]['mean_mase'])} vs AutoTheta {_f(theta)}" if a is None
                     else f"{_f(a['mean_mase'])} vs AutoTheta {_f(theta)}", "-" if a is None else yes(a["mean_mase"] <= theta)])
    glob = m1.get(GLOBAL)
    if glob is not None and DEFAULT in m1:  # issue 16
        per, naive = m1[DEFAULT]["mean_mase"], m1["seasonal naive"]["mean_mase"]
        rows.append([f"M1 yearly (issue 16): one global model's mean MASE below the per-series model's and "
                     "seasonal naive's", f"{_f(glob['mean_mase'])} vs per-series {_f(per)}, seasonal naive {_f(naive)}"
                     + (f" ({glob['failures']} failed)" if glob["failures"] else ""),
                     yes(glob["mean_mase"] < per and glob["mean_mase"] < naive)])
    if sets and DEFAULT in sets[0]["methods"]:
        ok, n = _sets_vs_dtw(sets, DEFAULT)
        need = math.ceil(0.8 * n)
        rows.append([f"classification: defaults at or above 1-NN DTW on at least {need} of the {n} sets",
                     f"{ok} of {n}", yes(ok >= need)])
        fits = [r["methods"][DEFAULT]["fit_accuracy"] for r in sets]
        low = [f"{r['name']} {_f(a)}" for r, a in zip(sets, fits) if a is None or a < 0.95]
        rows.append(["classification: training accuracy >= 0.95 on every set",
                     "all sets" if not low else "below on " + ", ".join(low), yes(not low)])
    return rows


def _summary_rows(summary: dict) -> list[list]:
    return [[k, _f(s["geomean_rel_mase"]), _f(s["mean_mase"]), _f(s["median_mase"]), _f(s["mean_smape"], ".2f"),
             s["wins"], s["worse_than_reference"], s["failures"], _f(s["mean_cpu_s"], ".2f")] for k, s in summary.items()]


SUMMARY_COLUMNS = ["contender", "geo-mean rel. MASE", "mean MASE", "median MASE", "mean sMAPE %", "wins",
                   "worse than s. naive", "failed", "CPU s / series"]


def _per_series(records: list[dict], field: str, spec: str) -> list[str]:
    names = list(records[0]["methods"])
    rows = []
    for r in records:
        vals = {k: r["methods"][k][field] for k in names}
        finite = [v for v in vals.values() if v is not None and math.isfinite(v)]
        best = min(finite) if finite else None
        cells = []
        for k in names:
            cell = _f(vals[k], spec) + ("\\*" if r["methods"][k]["failure"] else "")
            cells.append(f"**{cell}**" if best is not None and vals[k] is not None and vals[k] <= best + 1e-12 else cell)
        rows.append([r["name"], r["m"], r["horizon"], r["n"], *cells])
    return _table(["series", "m", "h", "n", *names], rows)


def _left_out(records: list[dict]) -> list[str]:
    """Says which series the geometric means leave out: those where seasonal naive's MASE is 0 or undefined."""
    out = [r["name"] for r in records if not (r["methods"][REFERENCE]["mase"] or 0) > 0
           or not math.isfinite(r["methods"][REFERENCE]["mase"])]
    return [f"Left out of the geometric means, as seasonal naive's MASE is 0 or undefined there: {', '.join(out)}.",
            ""] if out else []


def _failures(records: list[dict], limit: int | None = None) -> list[str]:
    """The failed fits: one line per failure, or (for a panel) counted by contender and message."""
    failed = [(r["name"], k, m["failure"]) for r in records for k, m in r["methods"].items() if m["failure"]]
    if not failed:
        return ["No contender failed.", ""]
    out = []
    if limit is None:
        out += [f"- {name}, {k} ({f['kind']}): {f['message'][:300]}" for name, k, f in failed]
    else:
        counts = Counter((k, f["kind"], _pattern(f["message"])) for _, k, f in failed)
        for (k, kind, msg), c in counts.most_common(limit):
            out.append(f"- {k} ({kind}) on {c} series: {msg}")
    return out + [""]


def _pattern(message: str) -> str:
    """A refusal message with its numbers blanked, so that the same refusal on many series counts once."""
    import re
    return re.sub(r"\d+(\.\d+)?", "N", message)[:300]


def markdown(results: dict, plot: str | None = "quality.png") -> str:
    mach = results["machine"]
    lines = ["# Accuracy: rnnkit against the classical methods (`make quality`)", "",
             f"Generated by `benchmarks/quality/run.py{' ' + ' '.join(results['argv']) if results['argv'] else ''}` on "
             f"{mach['date']}: {mach['cpu']}, {mach['usable_cpus']} usable CPUs, torch {mach['torch']} "
             f"({results['torch_threads']} threads), rnnkit {mach['rnnkit']} at commit {mach['commit']}, native kernels "
             f"{mach['native_kernels']}. Wall time {results['wall_s'] / 60:.1f} min."
             + (" **Quick run** (a subset: not the benchmark's figures)." if results.get("quick") else ""), ""]
    for note in results.get("merged", []):  # parts measured by another run, combined into this report
        lines += [note, ""]
    if results.get("options"):
        lines += ["rnnkit options: " + ", ".join(f"`{k}={v}`" for k, v in results["options"].items()), ""]
    for job, variants in results.get("variants", {}).items():
        for name, state in variants.items():
            if state != "run":
                lines += [f"- {job}, {name}: {state}."]
    lines += ["", "## Summary", "", "Against the targets of issue 15 (rnnkit's defaults unless stated; no per-series "
              "settings):", ""]
    lines += _table(["target", "measured", "met"], targets(results))
    if plot:
        lines += [f"![accuracy against the classical methods]({plot})", ""]
    single, m1, sets = results.get("forecast", []), results.get("m1", []), results.get("classify", [])
    if single:
        lines += ["## Forecasting: single series", "",
                  "Last-horizon holdout: each contender is fitted on the series without its last h values and "
                  "forecasts them. Relative MASE = MASE / seasonal naive's MASE on the same series; wins = series "
                  "with the lowest MASE (ties shared). A failed fit (`\\*`) is scored with seasonal naive's "
                  "forecast, so that every row of the aggregate covers the same series.", ""]
        lines += _table(SUMMARY_COLUMNS, _summary_rows(scores.summarise_forecasts(single)))
        lines += _left_out(single)
        lines += ["MASE per series (best in bold):", ""] + _per_series(single, "mase", ".3f")
        lines += ["sMAPE per series, in percent:", ""] + _per_series(single, "smape", ".2f")
        lines += ["Failed fits:", ""] + _failures(single)
    if m1:
        lines += [f"## Forecasting: the M1 yearly panel ({len(m1)} series)", "",
                  "Each series fitted alone, horizon 6 (the competition's), m = 1. Same scoring and fallback as "
                  "above.", ""]
        lines += _table(SUMMARY_COLUMNS, _summary_rows(scores.summarise_forecasts(m1)))
        lines += _left_out(m1)
        lines += ["Failed fits, counted by message (numbers blanked):", ""] + _failures(m1, limit=8)
    if sets:
        lines += _classification(sets)
    lines += _method(results)
    return "\n".join(lines).rstrip() + "\n"


def _classification(sets: list[dict]) -> list[str]:
    names = list(sets[0]["methods"])
    rnn = [k for k in names if k.startswith("rnnkit")]
    rows = []
    for r in sets:
        acc = {k: r["methods"][k]["accuracy"] for k in names}
        best = max((v for v in acc.values() if v is not None), default=None)
        cells = [(f"**{_f(acc[k])}**" if acc[k] is not None and acc[k] >= best else _f(acc[k]))
                 + (" (failed)" if r["methods"][k]["failure"] else "") for k in names]
        fits = [_f(r["methods"][k]["fit_accuracy"]) for k in rnn]
        length = str(r["min_length"]) if r["min_length"] == r["max_length"] else f"{r['min_length']}-{r['max_length']}"
        znorm = {True: "yes", False: "no"}.get(r.get("znormalised"), "-")
        rows.append([r["name"], f"{r['train']} / {r['test']}", r["classes"], length, r["features"], znorm, *cells, *fits])
    cols = ["set", "train / test", "classes", "length", "features", "z-normalised", *(f"{k} test acc." for k in names),
            *(f"{k} training acc." for k in rnn)]
    cpu = [[r["name"], *(_f(r["methods"][k]["cpu_s"], ".1f") for k in names)] for r in sets]
    out = ["## Classification", "",
           "Official train/test splits, the data as shipped (z-normalised: every series of the set has mean 0 and "
           "standard deviation 1 per feature, as the UCR archive mostly ships them). Test accuracy (best in bold); "
           "rnnkit's training accuracy is on the training rows it was fitted on (the training file less its own "
           "validation part).", ""]
    out += _table(cols, rows) + ["CPU seconds per set (fit + predict):", ""] + _table(["set", *names], cpu)
    failed = [(r["name"], k, m["failure"]) for r in sets for k, m in r["methods"].items() if m["failure"]]
    out += [f"- {n}, {k} ({f['kind']}): {f['message'][:300]}" for n, k, f in failed] + ([""] if failed else [])
    return out


def _method(results: dict) -> list[str]:
    recs = results.get("forecast", []) + results.get("m1", [])[:1]
    out = ["## Method", "",
           "**Data** (from installed packages, nothing downloaded; the network is refused while they are read):", ""]
    rows = [[r["name"] + (" (and the panel's other series)" if r.get("panel") else ""), f"`{r['origin']}`", r["freq"],
             r["m"], r["horizon"], r["n"]] for r in recs]
    rows += [[r["name"], f"`{r['origin']}`", "-", "-", "-", f"{r['train']} + {r['test']}"] for r in results.get("classify", [])]
    out += _table(["series / set", "source", "frequency", "m", "h", "n"], rows)
    usual = ", ".join(f"{k} {v}" for k, v in sources.HORIZON.items())
    out += [f"- **Horizon h**: the M competitions' by frequency ({usual}), at most a third of the series "
            "(ShampooSales: 36 months, so 12). **m**: 12 monthly, 4 quarterly, 1 yearly and other (lynx's ~10-year "
            "cycle is not a calendar season; heartrate is sampled every 0.5 s).",
            "- **MASE** = MAE over the horizon / the in-sample MAE of the seasonal-naive forecast (lag m) on the "
            "training part; **sMAPE** = 200/h * sum |y - f| / (|y| + |f|) (a step with both 0 counts 0); "
            "geometric means leave out series where a ratio is not positive and finite.",
            "- **Contenders**: seasonal naive (the last season repeated), naive with drift (the last value plus the "
            "mean step), statsforecast's `AutoETS`, `AutoTheta`, `AutoARIMA` (`season_length=m`, defaults); rnnkit "
            "through `rnnkit.fit_forecaster` with its defaults and `DataConfig(horizon=h, seasonal_period=m, "
            "test_frac=0)` on the training part (its validation rows come from that part), then "
            "`run.forecast(data)` (benchmarks/quality/rnnkit_calls.py). Classification: tslearn's "
            "`KNeighborsTimeSeriesClassifier(n_neighbors=1)` with `metric=\"dtw\"` (full window) and "
            "`\"euclidean\"` (variable-length sets resampled linearly to the longest training length for it), "
            "on the data as shipped; rnnkit's `fit_classifier` with its defaults.",
            "- **CPU seconds**: `time.process_time()` around each fit + forecast (all threads of the process; torch "
            "and tslearn may use every core), after one untimed warm-up call of every contender (numba "
            "compilation, rnnkit's native kernels). Series run one after another. Everything is seeded (rnnkit's "
            "seed 0; the classical methods are deterministic).",
            "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items()) + ".", ""]
    return out


def _colors(results: dict) -> dict[str, tuple]:
    """One colour per contender, the same in every panel (rnnkit's variants in the last ones)."""
    import matplotlib.pyplot as plt
    names: list[str] = []
    for key in ("forecast", "m1", "classify"):
        for r in results.get(key, [])[:1]:
            names += [k for k in r["methods"] if k not in names]
    names = [k for k in names if not k.startswith("rnnkit")] + [k for k in names if k.startswith("rnnkit")]
    palette = plt.get_cmap("tab10").colors
    rnn = [k for k in names if k.startswith("rnnkit")]
    others = [k for k in names if k not in rnn]
    out = {k: palette[[0, 1, 2, 4, 5, 7, 8, 9][i % 8]] for i, k in enumerate(others)}
    out.update({k: palette[[3, 6][i % 2]] for i, k in enumerate(rnn)})  # red, pink: rnnkit
    return out


def plot(results: dict, path: Path) -> None:
    """Three panels: relative MASE per single series, M1 mean MASE per contender, test accuracy per set."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    single, m1, sets = results.get("forecast", []), results.get("m1", []), results.get("classify", [])
    panels = [p for p in (single and "single", m1 and "m1", sets and "sets") if p]
    if not panels:
        return
    widths = {"single": 3.0, "m1": 1.2, "sets": 1.8}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * sum(widths[p] for p in panels), 5.2),
                             gridspec_kw={"width_ratios": [widths[p] for p in panels]}, squeeze=False)
    color = _colors(results)
    for ax, p in zip(axes[0], panels):
        if p == "single":
            names = list(single[0]["methods"])
            for j, k in enumerate(names):
                rel = [r["methods"][k]["mase"] / r["methods"][REFERENCE]["mase"]
                       if r["methods"][k]["mase"] and r["methods"][REFERENCE]["mase"] else math.nan for r in single]
                x = [i + (j - (len(names) - 1) / 2) * 0.1 for i in range(len(single))]
                failed = [r["methods"][k]["failure"] is not None for r in single]
                rnn = k.startswith("rnnkit")
                for mask, face in ((False, color[k]), (True, "none")):
                    pts = [(a, b) for a, b, f in zip(x, rel, failed) if f == mask]
                    if pts:
                        ax.scatter(*zip(*pts), s=36 if rnn else 18, marker="D" if rnn else "o", zorder=3,
                                   facecolors=face, edgecolors=color[k],
                                   label=k if not mask else f"{k} failed (seasonal naive used)")
            ax.axhline(1.0, color="gray", lw=1)
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xticks(range(len(single)), [r["name"] for r in single], rotation=60, ha="right", fontsize=8)
            ax.set_ylabel("MASE / seasonal naive's MASE (log; below 1 is better)")
            ax.set_title("single series, last-horizon holdout")
            ax.legend(fontsize=7, loc="best")
        elif p == "m1":
            summ = scores.summarise_forecasts(m1)
            names = list(summ)
            ax.bar(range(len(names)), [summ[k]["mean_mase"] for k in names], color=[color[k] for k in names])
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
            ax.set_ylabel("mean MASE (lower is better)")
            ax.set_title(f"M1 yearly, {len(m1)} series")
        else:
            names = list(sets[0]["methods"])
            w = 0.8 / len(names)
            for j, k in enumerate(names):
                acc = [r["methods"][k]["accuracy"] if r["methods"][k]["accuracy"] is not None else 0.0 for r in sets]
                ax.bar([i + j * w for i in range(len(sets))], acc, width=w, label=k + " (test)", color=color[k])
                fit = [r["methods"][k].get("fit_accuracy") for r in sets]
                pts = [(i + j * w, a) for i, a in enumerate(fit) if a is not None]
                if pts:
                    ax.scatter(*zip(*pts), marker="_", s=120, color="black", zorder=3,
                               label="rnnkit: accuracy on its training rows" if j == len(names) - 1 else None)
            ax.set_xticks([i + 0.4 - w / 2 for i in range(len(sets))], [r["name"] for r in sets], rotation=30,
                          ha="right", fontsize=8)
            ax.set_ylim(0, 1.3)
            ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
            ax.set_ylabel("accuracy")
            ax.set_title("classification, official splits")
            ax.legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
