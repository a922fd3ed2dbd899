"""Suite 6: rnnkit's global model at scale (issue 16, item 5): peak memory by panel size, and training
epochs per second against a plain PyTorch loop and NeuralForecast's LSTM on the same windows.

The panels are :mod:`panelgen`'s (seeded, monthly, levels over three orders of magnitude), fitted as
``rnnkit.fit_forecaster(DataConfig(id_col="id", time_col="time", horizon=12), data=frame)`` does:
per-series split (the last 12 rows test, the 12 before validation), per-series min-max scaler,
lookback 24 (two seasons), per-window normalisation with the seasonal skip, LSTM hidden 32, batch 32.

**Memory.** One fresh process per panel size (``python suite_panel.py --memory-worker N T``), so
peaks do not mix: it builds the frame, then runs the steps ``fit_global`` runs (``load_panel``:
validate every series; ``prepare_panel``: split, scale, window, normalise, pool; ``train_members``:
one epoch) and reads the peak resident set size (``ru_maxrss``) after each. Next to it, the bytes the
window tensors would take were they materialised (windows x (lookback + horizon) x 4, float32): rnnkit
indexes the training windows lazily (:mod:`rnnkit.tasks.forecast.panel_windows`: each series' scaled
rows kept once, a chunk of whole batches built at a time as it trains, on either engine), so the
report says how many bytes of peak each added series costs against its raw data (T x 8 bytes) and
against those windows, and how many bytes the prepared panel holds (its rows, known inputs and
validation windows).

**Speed.** On a smaller panel, interleaved rounds as ``harness.compare`` does (one call = set-up +
E epochs; E per contender so that a call lasts about a second): rnnkit's ``train_members`` (what
``fit_global`` trains with: model, engine choice, validation each epoch, the naive gate) on the
prepared panel (its lazily indexed windows); a plain PyTorch loop (``torch.nn.LSTM`` + Linear, Adam,
MSE, ``randperm`` batches of 32) on the very same windows, materialised as tensors once outside the
timed calls; and NeuralForecast's ``LSTM`` (encoder hidden 32, one
layer, a linear decoder, lookback 24, horizon 12) on the same long frame with 32 windows per step,
when ``neuralforecast`` imports, for as many optimiser steps as one rnnkit epoch has. The ratios are
baseline time / rnnkit time within each round (above 1: rnnkit is faster).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402  (puts the checkout's src/ on sys.path)
import panelgen  # noqa: E402

STEPS, HORIZON, LOOKBACK, HIDDEN, BATCH = 200, 12, 24, 32, 32
MEMORY_SIZES, MEMORY_SIZES_QUICK = (1000, 3000, 10000), (300, 1000, 3000)
#: optimiser steps each size trains for (the epoch cut short: TrainConfig.steps), so that the three sizes
#: fit the suite's minutes; the largest (10,000 series, 44,000 batches an epoch, about half a minute on
#: the fused trainer) also trains a whole epoch, as a control that training's memory does not grow with
#: the steps taken
MEMORY_STEPS = 500
#: the smallest and the largest size once more with a longer lookback (on the same data the windows would
#: take 1.5x the bytes), as a control that each series' share of the peak follows its data, not its
#: windows x lookback
CONTROL_LOOKBACK = 96
SPEED_SERIES, SPEED_SERIES_QUICK = 60, 30
SPEED_ROUNDS = 3  # a NeuralForecast epoch takes seconds: 3 interleaved rounds (harness.compare rotates the order)
ITEMSIZE = 4  # float32 windows


def _configs(epochs: int = 1):
    import rnnkit
    dc = rnnkit.DataConfig(id_col="id", time_col="time", horizon=HORIZON, lookback=LOOKBACK)
    mc = rnnkit.ModelConfig(cell="lstm", hidden_size=HIDDEN)
    tc = rnnkit.TrainConfig(epochs=epochs, batch_size=BATCH, patience=0)
    return dc, mc, tc


def expected_windows(n_series: int, steps: int, lookback: int = LOOKBACK, horizon: int = HORIZON) -> tuple[int, int]:
    """Training and validation windows of a panel of ``n_series`` series of ``steps`` rows with the
    default split (the last horizon test, the one before it validation, stride 1): each series has
    ``steps - 2 horizon - lookback - horizon + 1`` training windows and one validation window."""
    per = steps - 2 * horizon - lookback - horizon + 1
    return n_series * max(per, 0), n_series


def window_bytes(windows: int, lookback: int = LOOKBACK, horizon: int = HORIZON, itemsize: int = ITEMSIZE) -> int:
    """Bytes of ``windows`` materialised windows of one target: inputs and targets, ``(L + H) x itemsize`` each."""
    return windows * (lookback + horizon) * itemsize


# ---- memory: one process per size ----------------------------------------------------------------

def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _now_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def memory_worker(n_series: int, steps: int, train_steps: int = 0, lookback: int = LOOKBACK) -> dict:
    """Peak RSS after each step of fitting a global model for one epoch, cut at ``train_steps``
    optimiser steps when that is above 0 (run in a fresh process), with ``lookback``."""
    import torch
    from rnnkit.tasks.forecast.fitting import train_members
    from rnnkit.tasks.forecast.panel import prepare_panel
    from rnnkit.tasks.forecast.panel_run import load_panel
    torch.set_num_threads(1)
    dc, mc, tc = _configs(1)
    dc, tc = dc.replace(lookback=lookback), tc.replace(steps=train_steps or None)
    out: dict = {"series": n_series, "steps": steps, "stages": []}

    def stage(name: str, t0: float) -> None:
        out["stages"].append({"stage": name, "peak_mb": _peak_mb(), "now_mb": _now_mb(),
                              "seconds": time.perf_counter() - t0})
    stage("imports", time.perf_counter())
    t0 = time.perf_counter()
    frame = panelgen.synthetic_panel(n_series, steps)
    out["frame_mb"] = frame.memory_usage(deep=True).sum() / 2**20
    stage("frame built", t0)
    t0 = time.perf_counter()
    panel = load_panel(dc, frame)
    stage("load_panel (validate every series)", t0)
    del frame
    t0 = time.perf_counter()
    prep = prepare_panel(dc, mc, tc, panel)
    stage("prepare_panel (split, scale, window, pool)", t0)
    t0 = time.perf_counter()
    _, histories, _ = train_members(prep, mc, prep.train_config, 1, quiet=True)
    stage("train_members (1 epoch, cut at train_steps)", t0)
    out["train_steps"] = int(histories[0].rows[-1]["steps"])
    rows, val = prep.train.rows, prep.val or ()
    held = rows.values.nbytes + (0 if rows.known is None else rows.known.nbytes) + rows.offsets.nbytes \
        + sum(t.numel() * t.element_size() for t in val)
    out.update(train_windows=len(prep.train), val_windows=int(val[0].shape[0]) if val else 0,
               engine=histories[0].engine, engine_reason=histories[0].engine_reason,
               lookback=prep.data_config.lookback, horizon=prep.data_config.horizon, held_bytes=int(held))
    return out


def _run_worker(n_series: int, steps: int, train_steps: int, timeout: float, lookback: int = LOOKBACK) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(harness.ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-worker", str(n_series), str(steps),
                           str(train_steps), str(lookback)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        return {"series": n_series, "steps": steps, "error": done.stderr.strip()[-400:] or f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def per_series_growth(a: dict, b: dict) -> tuple[float, float]:
    """KB of peak RSS each series added from run ``a`` to the larger run ``b``, and KB of the float32
    windows each would add were they materialised."""
    d_series = (b["series"] - a["series"]) * 1024
    d_win = (window_bytes(b["train_windows"] + b["val_windows"], b["lookback"])
             - window_bytes(a["train_windows"] + a["val_windows"], a["lookback"]))
    return (b["stages"][-1]["peak_mb"] - a["stages"][-1]["peak_mb"]) * 2**20 / d_series, d_win / d_series


def memory_rows(results: list[dict]) -> tuple[list[list], list[str]]:
    """The memory table and the sentences on growth (increments between consecutive sizes)."""
    rows, notes = [], []
    ok = [r for r in results if "error" not in r]
    for r in results:
        if "error" in r:
            rows.append([f"{r['series']:,}", r["steps"], "failed", "", "", "", "", "", "", r["error"][-120:]])
            continue
        peak = {s["stage"]: s["peak_mb"] for s in r["stages"]}
        names = list(peak)
        base, final = peak[names[0]], peak[names[-1]]
        win_mb = window_bytes(r["train_windows"] + r["val_windows"]) / 2**20
        data_mb = r["series"] * r["steps"] * 8 / 2**20
        secs = {s["stage"]: s["seconds"] for s in r["stages"]}
        rows.append([f"{r['series']:,}", r["steps"], f"{r['train_windows']:,}", f"{r['train_steps']:,}",
                     f"{data_mb:,.1f}", f"{win_mb:,.0f}", f"{r.get('held_bytes', 0) / 2**20:,.1f}",
                     f"{final:,.0f} (+{final - base:,.0f} over imports)",
                     " / ".join(f"{peak[n] - base:,.0f}" for n in names[1:]),
                     f"{secs[names[2]]:.1f} / {secs[names[3]]:.1f} / {secs[names[4]]:.1f}"])
    if len(ok) >= 2:
        incs = []
        for a, b in zip(ok, ok[1:]):
            d_mb = b["stages"][-1]["peak_mb"] - a["stages"][-1]["peak_mb"]
            d_series = b["series"] - a["series"]
            d_win = window_bytes(b["train_windows"] + b["val_windows"]) - window_bytes(a["train_windows"] + a["val_windows"])
            per_series_kb = d_mb * 1024 / d_series
            incs.append(d_mb / d_series)
            notes.append(f"{a['series']:,} -> {b['series']:,} series: +{d_mb:,.0f} MB peak, {per_series_kb:,.1f} KB per "
                         f"series = {d_mb * 2**20 / d_win:.1f}x the float32 window bytes added and "
                         f"{per_series_kb * 1024 / (b['steps'] * 8):.0f}x the raw values (T x 8 bytes)")
        if len(incs) >= 2:
            notes.append(f"ratio of the per-series increments (later / earlier): "
                         f"{' , '.join(f'{b / a:.2f}' for a, b in zip(incs, incs[1:]))} (1.00 = exactly linear)")
        a, b = ok[0], ok[-1]
        rises = [[s["peak_mb"] - p["peak_mb"] for p, s in zip(r["stages"], r["stages"][1:])] for r in (a, b)]
        names = [s["stage"].split(" ")[0] for s in b["stages"][1:]]
        notes.append(f"where each added series' peak goes, {a['series']:,} -> {b['series']:,} series (KB a series, by "
                     f"the stage that raised the peak; a negative share reuses memory an earlier stage freed): " +
                     ", ".join(f"{n} {(rb - ra) * 1024 / (b['series'] - a['series']):+,.1f}"
                               for n, ra, rb in zip(names, *rises)))
    return rows, notes


# ---- speed: side by side in this process ----------------------------------------------------------

def _prepared(n_series: int):
    from rnnkit.tasks.forecast.panel import prepare_panel
    from rnnkit.tasks.forecast.panel_run import load_panel
    dc, mc, tc = _configs(1)
    frame = panelgen.synthetic_panel(n_series, STEPS)
    t0 = time.perf_counter()
    panel = load_panel(dc, frame)
    t1 = time.perf_counter()
    prep = prepare_panel(dc, mc, tc, panel)
    return frame, prep, {"load_panel_s": t1 - t0, "prepare_panel_s": time.perf_counter() - t1}


def _rnnkit_call(prep, seen: dict):
    from rnnkit.tasks.forecast.fitting import train_members
    _, mc, _ = _configs(1)

    def call(epochs: int):
        _, hist, _ = train_members(prep, mc, prep.train_config.replace(epochs=epochs), 1, quiet=True)
        assert len(hist[0].rows) == epochs
        seen["engine"], seen["reason"] = hist[0].engine, hist[0].engine_reason
    return call


def _torch_call(prep):
    import torch
    import torch.nn.functional as F
    x, y = prep.train.materialise()  # (W, L, 1), (W, H, 1): the normalised windows rnnkit trains on, as tensors
    y = y.reshape(len(y), -1)  # (W, H, 1) -> (W, H)

    def call(epochs: int):
        torch.manual_seed(0)
        rnn = torch.nn.LSTM(x.shape[-1], HIDDEN, batch_first=True)
        head = torch.nn.Linear(HIDDEN, y.shape[1])
        opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-3)
        for _ in range(epochs):
            total = 0.0
            for idx in torch.randperm(len(x)).split(BATCH):
                opt.zero_grad()
                loss = F.mse_loss(head(rnn(x[idx])[0][:, -1]), y[idx])  # (B, L, H) -> (B, H) -> (B, horizon)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
    return call


def optional_neuralforecast():
    """(the neuralforecast modules, None) when it imports, else (None, why not)."""
    try:
        from neuralforecast import NeuralForecast
        from neuralforecast.models import LSTM
        import neuralforecast
    except Exception as e:  # noqa: BLE001 - optional contender: any import failure means "absent"
        return None, f"neuralforecast is not importable here ({type(e).__name__}: {e})"
    import logging
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)  # after the import: it sets its loggers to INFO
    return (NeuralForecast, LSTM, neuralforecast.__version__), None


def _nf_call(nf, frame, steps_per_epoch: int):
    NeuralForecast, LSTM, _ = nf
    df = frame.rename(columns={"id": "unique_id", "time": "ds"})
    n_series = df["unique_id"].nunique()
    # what rnnkit trains on: each series without its last 2 horizons (validation and test rows)
    df = df.groupby("unique_id", sort=False).head(STEPS - 2 * HORIZON).reset_index(drop=True)

    def call(epochs: int):
        with warnings.catch_warnings():  # Lightning's advice on data loader workers, deprecations
            warnings.simplefilter("ignore")
            fit(epochs)

    def fit(epochs: int):
        model = LSTM(h=HORIZON, input_size=LOOKBACK, encoder_n_layers=1, encoder_hidden_size=HIDDEN,
                     decoder_layers=1, batch_size=min(BATCH, n_series), windows_batch_size=BATCH,
                     max_steps=epochs * steps_per_epoch, val_check_steps=10**9, learning_rate=1e-3,
                     random_seed=0, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False)
        NeuralForecast(models=[model], freq="MS").fit(df, val_size=0)
    return call


def _epochs_for(call, call_s: float, cap: int = 200) -> int:
    """Epochs per call so that one call (set-up + E epochs) lasts about ``call_s`` (at least one),
    after a warm-up call (first-call costs stay out); a warm-up already that long settles it at 1."""
    t0 = time.perf_counter()
    call(1)
    if time.perf_counter() - t0 >= call_s:
        return 1
    t0 = time.perf_counter()
    call(1)
    return int(max(1, min(cap, round(call_s / (time.perf_counter() - t0)))))


def run(cfg) -> dict:
    sizes = MEMORY_SIZES_QUICK if cfg.quick else MEMORY_SIZES
    n_speed = SPEED_SERIES_QUICK if cfg.quick else SPEED_SERIES
    print(f"    memory: one process per panel size {sizes} x {STEPS} steps", flush=True)
    mem, control, long = [], None, []
    for n, train_steps, lookback in ([(n, MEMORY_STEPS, LOOKBACK) for n in sizes] + [(sizes[-1], 0, LOOKBACK)]
                                     + [(n, MEMORY_STEPS, CONTROL_LOOKBACK) for n in (sizes[0], sizes[-1])]):
        t0 = time.perf_counter()
        got = _run_worker(n, STEPS, train_steps, timeout=900, lookback=lookback)
        print(f"      {n:,} series, lookback {lookback}, {train_steps or 'a whole epoch of'} steps: "
              f"{'failed' if 'error' in got else 'done'} in {time.perf_counter() - t0:.0f} s", flush=True)
        if lookback != LOOKBACK:
            long.append(got)
        elif train_steps:
            mem.append(got)
        else:
            control = got
    mem_rows, mem_notes = memory_rows(mem)
    growth = None
    if len(long) == 2 and not any("error" in r for r in (*long, mem[0], mem[-1])):
        (short_kb, short_win), (long_kb, long_win) = (per_series_growth(a, b) for a, b in ((mem[0], mem[-1]), long))
        growth = {"lookback": long[0]["lookback"], "short_lookback": LOOKBACK, "kb": long_kb, "window_kb": long_win,
                  "short_kb": short_kb, "short_window_kb": short_win}
        mem_notes.append(f"control: the same panels ({sizes[0]:,} and {sizes[-1]:,} series) with lookback "
                         f"{long[0]['lookback']} instead of {LOOKBACK}: each added series' peak {long_kb:,.1f} KB "
                         f"against {short_kb:,.1f} KB, where its materialised windows would take {long_win:,.1f} KB "
                         f"against {short_win:,.1f} KB ({long_win / short_win:.2f}x)")
    if control is not None and "error" not in control and "error" not in mem[-1]:
        whole, cut = control["stages"][-1]["peak_mb"], mem[-1]["stages"][-1]["peak_mb"]
        mem_notes.append(f"control: {sizes[-1]:,} series trained for a whole epoch ({control['train_steps']:,} steps, "
                         f"{control['stages'][-1]['seconds']:.0f} s) "
                         f"peaked at {whole:,.0f} MB against {cut:,.0f} MB for {mem[-1]['train_steps']:,} steps "
                         f"({whole - cut:+,.0f} MB)")

    nf, nf_why = optional_neuralforecast()
    frame, prep, setup = _prepared(n_speed)
    windows = len(prep.train)
    per_epoch = -(-windows // BATCH)
    seen: dict = {}
    speed_rows, records = [], []
    call_s = 0.5 if cfg.quick else 1.0
    for nt in cfg.threads:
        with harness.threads(nt):
            calls = {"rnnkit (train_members)": _rnnkit_call(prep, seen),
                     "torch.nn.LSTM + Linear loop": _torch_call(prep)}
            if nf is not None:
                calls[f"NeuralForecast {nf[2]} LSTM"] = _nf_call(nf, frame, per_epoch)
            epochs = {k: _epochs_for(f, call_s) for k, f in calls.items()}
            c = {k: (lambda f=f, e=epochs[k]: f(e)) for k, f in calls.items()}
            res = harness.compare(c, repeats=min(cfg.repeats, SPEED_ROUNDS), sample_s=0.0, warmup=0, units=epochs)
        rk = res["rnnkit (train_members)"]
        speed_rows.append([nt, "rnnkit (train_members)", f"{1 / rk.median:,.2f} ({epochs['rnnkit (train_members)']} ep/call)",
                           "1x", f"{seen.get('engine')}" + (f" ({seen['reason']})" if seen.get("reason") else "")])
        for name in list(calls)[1:]:
            r = harness.ratio(res[name], rk)
            speed_rows.append([nt, name, f"{1 / res[name].median:,.2f} ({epochs[name]} ep/call)", harness.fmt_ratio(r), ""])
            records.append({"threads": nt, "baseline": name, "rnnkit_s": rk.to_dict(), "baseline_s": res[name].to_dict(),
                            "ratio": r.to_dict(), "epochs": [epochs["rnnkit (train_members)"], epochs[name]]})
    nf_note = (f"NeuralForecast {nf[2]} was importable and is included (its `LSTM`: encoder_n_layers=1, "
               f"encoder_hidden_size={HIDDEN}, decoder_layers=1, input_size={LOOKBACK}, h={HORIZON}, "
               f"batch_size={BATCH} series, windows_batch_size={BATCH}, its default robust per-window scaler and MAE "
               f"loss, no validation; one 'epoch' = {per_epoch} optimiser steps, as many as rnnkit's; trained on "
               f"each series less its last {2 * HORIZON} rows; set-up (Lightning trainer, data loader) inside the call)."
               if nf is not None else f"NeuralForecast skipped: {nf_why}.")
    print(f"    {nf_note}", flush=True)
    mem_intro = (f"One fresh process per size (so peaks do not mix), torch at 1 thread: the frame of "
                 f"`panelgen.synthetic_panel(N, {STEPS})`, then the steps `fit_global` runs (`load_panel`, `prepare_panel`, "
                 f"`train_members`; lookback {LOOKBACK}, horizon {HORIZON}, LSTM hidden {HIDDEN}, batch "
                 f"{BATCH}); peak RSS (`ru_maxrss`) after each step. Training is one epoch cut at {MEMORY_STEPS} "
                 f"optimiser steps (`TrainConfig(steps={MEMORY_STEPS})`); the largest size also trains a whole epoch, and the smallest and the largest run again with lookback {CONTROL_LOOKBACK}, as controls (below). *Window MB* = materialised float32 windows "
                 f"(train + validation) x (lookback + horizon) x 4 bytes, what they would take were they materialised; rnnkit "
                 f"indexes them lazily (`panel_windows.PanelWindows`: each series' scaled rows kept once, float64, and "
                 f"a chunk of whole batches, about 4,096 windows, built as it trains, the fused trainer called once a "
                 f"chunk), so the prepared panel holds *held MB* (rows, known inputs, the validation windows), and what peak memory "
                 f"still adds per series is mostly the frame's and `load_panel`'s (the validated series, a pandas frame "
                 f"each), before any window is made (the last note below splits it by stage). "
                 f"Times are single measurements (not ratios), for orientation only. "
                 + " ".join(f"{n}." for n in mem_notes))
    speed_intro = (f"`panelgen.synthetic_panel({n_speed}, {STEPS})`: {windows:,} training windows (lookback {LOOKBACK}, "
                   f"horizon {HORIZON}), {per_epoch} batches of {BATCH} an epoch. One call = set-up + E epochs (E per "
                   f"contender so that a call lasts about {call_s:g} s); epochs/s = E / call time; {min(cfg.repeats, SPEED_ROUNDS)} "
                   f"interleaved rounds, ratio = baseline time / rnnkit time per round. rnnkit: `train_members` on the "
                   f"prepared panel (model, engine choice, validation on {len(prep.val[0]) if prep.val else 0} windows each epoch, "
                   f"restore-best, naive gate), `patience=0`. torch: `nn.LSTM(1, {HIDDEN})` + `Linear({HIDDEN}, {HORIZON})`, "
                   f"Adam(1e-3), MSE, `randperm` batches, `loss.item()` per batch, on the same windows, materialised as tensors once (not in the calls). Set-up of "
                   f"that panel, once (not in the calls): `load_panel` {setup['load_panel_s']:.1f} s, `prepare_panel` "
                   f"{setup['prepare_panel_s']:.1f} s. " + nf_note)
    return {
        "title": "6. Panels: the global model's peak memory by panel size, epochs/s vs torch.nn and NeuralForecast",
        "intro": mem_intro,
        "tables": [
            {"columns": ["series", "steps", "train windows", "optimiser steps trained", "raw values MB (N x T x 8)",
                         "window MB (float32, if materialised)", "held MB", "peak RSS MB", "peak over imports after frame / load / prepare / "
                         "train (MB)", "seconds load / prepare / train"],
             "rows": mem_rows},
            {"intro": speed_intro,
             "columns": ["threads", "contender", "epochs/s", "ratio to rnnkit [min..max]", "rnnkit engine"],
             "rows": speed_rows}],
        "records": {"memory": mem, "memory_lookback": long, "lookback_growth": growth, "speed": records,
                    "speed_series": n_speed, "speed_windows": windows,
                    "setup_s": setup, "neuralforecast": nf[2] if nf is not None else None, "skipped": nf_why},
    }


if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--memory-worker":
        print(json.dumps(memory_worker(*map(int, sys.argv[2:]))))
    else:
        sys.exit("usage: suite_panel.py --memory-worker N_SERIES STEPS TRAIN_STEPS (0: a whole epoch) [LOOKBACK]; "
                 "the suite itself: run.py --suite panel")
