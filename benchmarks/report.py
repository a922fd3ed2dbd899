"""RESULTS.md and docs/img/bench.png from the stored results (benchmarks/results.json)."""

from __future__ import annotations

import math
from pathlib import Path

ORDER = ("layer", "trainer", "fit", "stream", "grid", "engine", "search", "panel", "sweep", "export")


def _table(t: dict) -> list[str]:
    out = []
    if t.get("title"):
        out += [f"**{t['title']}**", ""]
    if t.get("intro"):
        out += [t["intro"], ""]
    out.append("| " + " | ".join(map(str, t["columns"])) + " |")
    out.append("|" + "|".join("---" for _ in t["columns"]) + "|")
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in t["rows"]]
    return out + [""]


def _r(rec: dict, key: str = "ratio") -> float:
    return rec[key]["median"]


def _targets(suites: dict) -> list[list[str]]:
    """One row per project target: what was measured, per thread count, and whether it is met."""
    rows = []

    def add(target, goal, values):
        if not values:
            return
        text = "; ".join(f"{label}: {v:.2f}x" for label, v in values)
        met = "yes" if all(v >= goal for _, v in values) else ("partly" if any(v >= goal for _, v in values) else "no")
        rows.append([target, text, met])

    layer = suites.get("layer", {}).get("records", [])
    for backend in ("fused", "auto"):
        add(f"drop-in layer in a torch loop, seed regime, backend={backend}: >= 3x torch.nn", 3.0,
            [(f"{r['cell'].upper()} t{r['threads']}", _r(r)) for r in layer
             if r["cell"] in ("lstm", "gru") and r["contender"] == f"rnnkit {backend}"])
    fit = suites.get("fit", {}).get("records", [])
    for data in ("sine50", "sine2000"):
        add(f"`rnnkit fit` epochs/s, {data}: >= 30x the plain PyTorch (DataLoader) loop", 30.0,
            [(f"{r['cell'].upper()} t{r['threads']}", _r(r)) for r in fit
             if r["data"] == data and r["cell"] in ("lstm", "gru") and "DataLoader" in r["baseline"]])
    stream = suites.get("stream", {}).get("records", [])
    for mine in ("layer.step", "layer.step_ (in place)"):
        add(f"streaming step `{mine}`, hidden 64: >= 5x nn.LSTMCell / nn.GRUCell", 5.0,
            [(f"{r['cell'].upper()} t{r['threads']}", _r(r)) for r in stream
             if r["hidden"] == 64 and r["baseline"].endswith("Cell") and r.get("rnnkit", "layer.step") == mine])
    grid = suites.get("grid", {}).get("records", [])
    if grid:
        from harness import geomean
        for backend in ("auto", "fused"):
            vals = []
            for nt in sorted({r["threads"] for r in grid}):
                sel = [r["ratio_" + backend]["median"] for r in grid if r["cell"] == "gru" and r["threads"] == nt]
                vals.append((f"t{nt}", geomean(sel)))
            add(f"grid: GRU geometric mean >= 2x nn.GRU (backend={backend})", 2.0, vals)
        rows.append(_never_below("grid: no configuration below 0.9x with backend=auto", grid))
    engine = suites.get("engine", {}).get("records", [])
    if engine:
        rows.append(_never_below("training engine: `engine=\"auto\"` never below 0.9x of the torch loop", engine))
    search = suites.get("search", {}).get("records", [])
    if search:
        rows += _search_rows(search)
    panel = suites.get("panel", {}).get("records")
    if panel:
        rows += _panel_rows(panel)
    for r in suites.get("sweep", {}).get("records", []):  # lower is better: parallel time / sequential time
        v = r["ratio"]
        rows.append([f"{r['jobs']}-job sweep ({'command line' if r['way'] == 'cli' else 'Python API'}), "
                     f"{r['workers']} workers: <= 0.6x the sequential wall time",
                     f"{v['median']:.2f}x [{v['min']:.2f}..{v['max']:.2f}] ({r['cores']} cores)",
                     "yes" if v["max"] <= 0.6 else "partly" if v["median"] <= 0.6 else "no"])
    return rows


def _panel_rows(records: dict) -> list[list[str]]:
    """Suite 6's two targets (issue 16): peak memory linear in the data, not in windows x lookback
    (met where each added series costs fewer bytes of peak than its float32 windows, so they cannot all
    be held); epochs/s ahead of NeuralForecast's LSTM on the same windows."""
    from suite_panel import window_bytes
    out = []
    mem = [r for r in records.get("memory", []) if "error" not in r]
    if len(mem) >= 2:
        a, b = mem[0], mem[-1]
        d_peak = (b["stages"][-1]["peak_mb"] - a["stages"][-1]["peak_mb"]) * 2**20
        d_series = b["series"] - a["series"]
        d_win = window_bytes(b["train_windows"] + b["val_windows"]) - window_bytes(a["train_windows"] + a["val_windows"])
        per = d_peak / d_series
        loaded = [next((s["peak_mb"] for s in r["stages"] if s["stage"].startswith("load_panel")), None) for r in (a, b)]
        share = ""
        if None not in loaded:  # the peak once the frame is read into series, before any window is made
            after = ((b["stages"][-1]["peak_mb"] - loaded[1]) - (a["stages"][-1]["peak_mb"] - loaded[0])) * 2**20
            share = (f" (the frame and `load_panel` {(d_peak - after) / d_series / 1024:,.0f} KB, windows and "
                     f"training {after / d_series / 1024:+,.0f} KB)")
        out.append([f"panel: peak memory grows linearly in the data, not in windows x lookback ({a['series']:,} -> "
                    f"{b['series']:,} series of {b['steps']})",
                    f"{per / 1024:,.0f} KB a series = {d_peak / d_win:.1f}x its float32 windows, "
                    f"{per / (b['steps'] * 8):.0f}x its raw values{share}; peak {b['stages'][-1]['peak_mb']:,.0f} MB at "
                    f"{b['series']:,} series", "yes" if d_peak < d_win else "no"])
    growth = records.get("lookback_growth")
    if growth:  # the same panels with a longer lookback: does each series' share follow its windows?
        ratio, win_ratio = growth["kb"] / growth["short_kb"], growth["window_kb"] / growth["short_window_kb"]
        out.append([f"panel: each series' share of the peak does not follow its windows x lookback (lookback "
                    f"{growth['lookback']} against {growth['short_lookback']}, same panels; met within {LOOKBACK_SLACK:.0%})",
                    f"{growth['kb']:,.1f} KB a series against {growth['short_kb']:,.1f} KB ({ratio:.2f}x), where the "
                    f"windows would take {growth['window_kb']:,.1f} KB against {growth['short_window_kb']:,.1f} KB "
                    f"({win_ratio:.2f}x)", "yes" if ratio <= 1 + LOOKBACK_SLACK else "no"])
    speed = [r for r in records.get("speed", []) if r["baseline"].startswith("NeuralForecast")]
    target = "panel: epochs/s ahead of NeuralForecast's LSTM on the same windows"
    if speed:
        vals = [r["ratio"]["median"] for r in speed]
        met = "yes" if all(v > 1 for v in vals) else ("partly" if any(v > 1 for v in vals) else "no")
        out.append([target, "; ".join(f"t{r['threads']}: {r['ratio']['median']:.2f}x" for r in speed), met])
    elif records.get("skipped"):
        out.append([target, f"not measured: {records['skipped']}", "n/a"])
    return out


#: the panel suite's lookback control: how much more each series may take at the longer lookback (its
#: windows take about 1.5x there) for the peak to count as not following them
LOOKBACK_SLACK = 0.10


def _search_rows(records: list[dict]) -> list[list[str]]:
    """The two rows of suite 5, where lower is better: --auto's wall time (seconds) and the cost of
    --ensemble 10 (times one fit); met where every round of every thread count is below the target."""
    r0, out = records[0], []
    for key, target, what, unit in (("auto_s", 60.0, f"`rnnkit fit --auto` on a {r0['rows']}-point series: under "
                                     f"60 s on 2 cores", " s"),
                                    ("ensemble_ratio", float(r0["ensemble"]), f"`--ensemble {r0['ensemble']}` costs "
                                     f"less than {r0['ensemble']}x one fit", "x")):
        vals = [(r["threads"], r[key]) for r in records]
        text = "; ".join(f"t{nt}: {v['median']:.2f}{unit} [{v['min']:.2f}..{v['max']:.2f}]" for nt, v in vals)
        met = ("yes" if all(v["max"] < target for _, v in vals) else
               "partly" if any(v["median"] < target for _, v in vals) else "no")
        out.append([what, f"{text} ({r0['cores']} cores)" if key == "auto_s" else text, met])
    return out


def _never_below(target: str, records: list[dict], floor: float = 0.9) -> list[str]:
    """A target row: how many configurations ran ``auto`` below ``floor`` x, the worst four named."""
    slow = sorted((r for r in records if r["ratio_auto"]["median"] < floor), key=lambda r: r["ratio_auto"]["median"])
    worst = ", ".join(f"{r['cell'].upper()} H{r['hidden']} B{r['batch']} T{r['T']} t{r['threads']} "
                      f"{r['ratio_auto']['median']:.2f}x" for r in slow[:4])
    return [target, f"{len(slow)} of {len(records)} below {floor}x" + (f" (worst {worst})" if slow else ""),
            "yes" if not slow else "no"]


def _other_cpu(suite: dict, machine: dict) -> str:
    """Where a suite kept from an earlier run ran, when the machine table (the latest run's) may not
    say: " on CPU" for another CPU, " (CPU not recorded)" for a run that did not record it."""
    cpu = suite.get("cpu")
    if cpu is None:
        return " (CPU not recorded)"
    return f" on {cpu}" if cpu != machine.get("cpu") else ""


def write_markdown(results: dict, path: Path, plot_rel: str = "../docs/img/bench.png") -> None:
    m, suites = results["machine"], results["suites"]
    lines = ["# rnnkit benchmarks", "",
             "Generated by `make bench` (`benchmarks/run.py`); see benchmarks/README.md for what each suite does.", "",
             "**How to read.** Every ratio is *baseline time / rnnkit time* measured side by side in one process: "
             "the contenders run interleaved (A B C, B C A, ...) for several rounds, the ratio is taken within each "
             "round, and the table shows its median with [min..max] over the rounds. Above 1 means rnnkit is faster. "
             "Absolute times are shown for orientation only: this machine is shared and noisy, and they move from "
             "run to run while the ratios stay put. `threads` is `torch.set_num_threads` (rnnkit's native kernels "
             "are single-threaded; torch's BLAS/oneDNN use the threads).", "",
             "## Machine", "", "The latest run's; a suite kept from a run on another CPU says so under its tables.", "",
             "| | |", "|---|---|"]
    for k in ("date", "cpu", "cpu_detail", "logical_cpus", "usable_cpus", "torch", "rnnkit", "commit",
              "native_kernels", "python", "platform"):
        lines.append(f"| {k.replace('_', ' ')} | {m.get(k, '')} |")
    lines += ["", "## Against the project's targets", ""]
    lines += _table({"columns": ["target", "measured (median ratio; tN = N torch threads)", "met"],
                     "rows": _targets(suites)})
    lines += [f"![ratios]({plot_rel})", ""]
    for name in ORDER:
        s = suites.get(name)
        if s is None:
            continue
        lines += [f"## {s['title']}", "", s["intro"], "",
                  f"_Run {s.get('date', '?')} on commit {s.get('commit', '?')}{' (--quick)' if s.get('quick') else ''}"
                  f"{_other_cpu(s, m)}, "
                  f"{s.get('seconds', 0):.0f} s; "
                  f"load average before/after: {s.get('load_before', '?')} / {s.get('load_after', '?')}; "
                  f"{len(s.get('threads', []))} thread count(s) timed: {s.get('threads')}" +
                  "".join(f"; parallel probe at {n} threads: {v}x of 1 thread" for n, v in s.get("probes", {}).items())
                  + "._", ""]
        if s.get("skipped_threads"):
            lines += [f"> **threads={s['skipped_threads']} not timed**: when this suite ran, a 256x256 matmul was "
                      "slower at that thread count than at 1 thread (other processes held the cores; torch's "
                      "parallel regions then wait for descheduled threads and time the neighbours, not the code). "
                      "Re-run `python benchmarks/run.py --suite NAME --threads 1,2` on a quiet machine, or add "
                      "`--force-threads`.", ""]
        for t in s["tables"]:
            lines += _table(t)
    path.write_text("\n".join(lines))


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    suites = results["suites"]
    groups: list[tuple[str, dict, float | None]] = []  # label, {threads: ratio}, target

    def collect(label, recs, target=None):
        if recs:
            groups.append((label, {r["threads"]: _r(r) for r in recs}, target))
    layer = suites.get("layer", {}).get("records", [])
    for cell in ("lstm", "gru", "elman", "jordan"):
        collect(f"layer\n{cell}", [r for r in layer if r["cell"] == cell and r["contender"] == "rnnkit fused"],
                3.0 if cell in ("lstm", "gru") else None)
    trainer = suites.get("trainer", {}).get("records", [])
    for cell in ("lstm", "gru", "elman", "jordan"):
        collect(f"trainer\n{cell}", [r for r in trainer if r["cell"] == cell and "engine=fused" in r["contender"]])
    fit = suites.get("fit", {}).get("records", [])
    for data in ("sine50", "sine2000"):
        for cell in ("lstm", "gru", "elman"):
            collect(f"fit {data[4:]}\n{cell}", [r for r in fit if r["cell"] == cell and r["data"] == data
                                                 and "DataLoader" in r["baseline"]],
                    30.0 if cell in ("lstm", "gru") else None)
    stream = suites.get("stream", {}).get("records", [])
    for H in (64, 256):
        for cell in ("lstm", "gru"):
            collect(f"step_ {H}\n{cell}", [r for r in stream if r["cell"] == cell and r["hidden"] == H
                                           and r["baseline"].endswith("Cell")
                                           and r.get("rnnkit") == "layer.step_ (in place)"], 5.0 if H == 64 else None)
    grid = suites.get("grid", {}).get("records", [])
    nrows = 1 + (2 if grid else 0)
    fig, axes = plt.subplots(nrows, 1, figsize=(13, 3.6 * nrows), squeeze=False)
    colors = {1: "tab:blue", 2: "tab:orange"}
    ax = axes[0][0]
    tset = sorted({t for _, d, _ in groups for t in d}) or [1]
    w = 0.8 / len(tset)
    for j, nt in enumerate(tset):
        xs = [i + (j - (len(tset) - 1) / 2) * w for i in range(len(groups))]
        _bars(ax, xs, [d.get(nt, math.nan) for _, d, _ in groups], w, colors.get(nt), f"{nt} thread(s)")
    for i, (_, _, target) in enumerate(groups):
        if target:
            ax.plot([i - 0.45, i + 0.45], [target, target], color="black", lw=1.5, ls="--")
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=7)
    ax.set_title("Seed regime and streaming: speed vs torch.nn (layer/trainer/fit: per step or epoch; "
                 "step: vs nn.*Cell). Dashes: targets", fontsize=9)
    _finish(ax)
    for k, cell in enumerate(("lstm", "gru") if grid else ()):
        ax = axes[k + 1][0]
        sel = [r for r in grid if r["cell"] == cell]
        cfgs = sorted({(r["hidden"], r["batch"], r["T"]) for r in sel}, key=lambda c: (c[2], c[0], c[1]))
        tg = sorted({r["threads"] for r in sel})
        w = 0.8 / max(1, len(tg))
        for j, nt in enumerate(tg):
            by = {(r["hidden"], r["batch"], r["T"]): r for r in sel if r["threads"] == nt}
            xs = [i + (j - (len(tg) - 1) / 2) * w for i in range(len(cfgs))]
            _bars(ax, xs, [by[c]["ratio_auto"]["median"] if c in by else math.nan for c in cfgs], w,
                  colors.get(nt), f"auto, {nt} thread(s)")
            ax.plot(xs, [by[c]["ratio_fused"]["median"] if c in by else math.nan for c in cfgs], "k_" if j else "kx",
                    ms=6, ls="none", label=f"fused, {nt} thread(s)")
        ax.axhline(0.9, color="red", lw=0.8, ls=":")
        ax.set_xticks(range(len(cfgs)), [f"H{h}\nB{b}\nT{t}" for h, b, t in cfgs], fontsize=6)
        ax.set_title(f"Grid, {cell.upper()} fwd+bwd vs torch.nn: bars = auto (none where auto ran torch's own "
                     "kernel: 1x), marks = fused; red dotted: 0.9x", fontsize=9)
        _finish(ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def _bars(ax, xs, values, width, color, label) -> None:
    """Bars that start at 1x and grow up (faster) or down (slower) on the log axis."""
    ax.bar(xs, [v - 1.0 for v in values], width, bottom=1.0, color=color, label=label)


def _finish(ax) -> None:
    from matplotlib.ticker import FuncFormatter
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", lw=1)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    shown = {0.2, 0.3, 0.5, 2, 3, 5, 20, 30, 50, 200, 300, 500}
    ax.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}x" if any(abs(v - m) < 1e-6 * m for m in shown) else ""))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_ylabel("speed ratio (log)")
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
