"""Suite 1c: training epochs per second of ``rnnkit.fit_forecaster`` (what ``rnnkit fit`` calls)
vs the plain PyTorch loop with a DataLoader a user would write, on the same windows.

Each contender is one whole call: build the model (and the DataLoader / read and scale the data),
then train for E epochs. E is chosen per contender so that a call lasts about ``call_s``
seconds (at least one epoch), so set-up costs are amortised alike; epochs per second = E / call time.
Keras 3 (torch backend) joins as ``model.fit`` when it is importable.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from harness import compare, fmt_ratio, fmt_time, optional_keras, ratio, threads

H, LOOKBACK, BATCH = 16, 5, 5
CELLS = ("lstm", "gru", "elman")
TORCH_TWIN = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}
KERAS_LAYER = {"lstm": "LSTM", "gru": "GRU", "elman": "SimpleRNN"}


def _datasets(quick: bool) -> dict:
    """name -> (SeriesData, description). ReNom's 50-point sine, and a longer synthetic one."""
    import pandas as pd
    import rnnkit
    from rnnkit.data.series import series_from_frame
    sets = {"sine50": (rnnkit.load_builtin("sine"), "builtin:sine (ReNom: 50 points)")}
    if not quick:
        t = np.linspace(0.0, 80 * np.pi, 2000)
        frame = pd.DataFrame({"y": np.sin(t) + 0.05 * np.random.RandomState(0).randn(len(t))})
        sets["sine2000"] = (series_from_frame(frame, source="synthetic:sine2000"), "noisy sine, 2,000 points")
    return sets


def _configs(cell: str, epochs: int):
    import rnnkit
    dc = rnnkit.DataConfig(source="builtin:sine", lookback=LOOKBACK, horizon=1, val_frac=0.0, test_frac=0.5)
    mc = rnnkit.ModelConfig(cell=cell, hidden_size=H)
    # the CLI's defaults but a batch of 5 and patience=0, so that exactly E epochs run
    tc = rnnkit.TrainConfig(epochs=epochs, batch_size=BATCH, lr=1e-3, patience=0)
    return dc, mc, tc


def _same_windows(data) -> tuple[np.ndarray, np.ndarray]:
    """The training windows fit_forecaster makes (split, min-max scaler on train rows, windows)."""
    import rnnkit
    from rnnkit.tasks.forecast.predict import windows_for
    dc = _configs("lstm", 1)[0]
    values = data.values
    split = rnnkit.split_series(len(values), dc.val_frac, dc.test_frac)
    scaled = rnnkit.Scaler("minmax").fit(values[:split.train_end]).transform(values)
    X, Y = windows_for(scaled, 1, dc.lookback, dc.horizon, 1, 0, split.train_end)[:2]
    return X.astype(np.float32), Y.reshape(len(Y), -1).astype(np.float32)


def _rnnkit_call(cell: str, data):
    import rnnkit

    def call(epochs: int):
        dc, mc, tc = _configs(cell, epochs)
        run = rnnkit.fit_forecaster(dc, mc, tc, data=data, quiet=True, evaluate=False)
        assert len(run.history.rows) == epochs
    return call


def _torch_call(cell: str, X: np.ndarray, Y: np.ndarray):
    def call(epochs: int):
        torch.manual_seed(0)
        ds = TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
        loader = DataLoader(ds, batch_size=BATCH, shuffle=True)
        rnn = TORCH_TWIN[cell](1, H, batch_first=True)
        head = torch.nn.Linear(H, 1)
        opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-3)
        for _ in range(epochs):
            total = 0.0
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.mse_loss(head(rnn(xb)[0][:, -1]), yb)
                loss.backward()
                opt.step()
                total += loss.item() * len(xb)
    return call


def _keras_call(keras, cell: str, X: np.ndarray, Y: np.ndarray):
    def call(epochs: int):
        model = keras.Sequential([keras.Input((LOOKBACK, 1)), getattr(keras.layers, KERAS_LAYER[cell])(H),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        model.fit(X, Y, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0)
    return call


def _epochs_for(call, call_s: float, cap: int) -> tuple[int, float, float]:
    """Epochs per call so that one call (set-up + E epochs) takes about ``call_s`` seconds, from a
    1-epoch call and a longer one after a warm-up; returns E, the expected call time and the set-up
    time (the 1-epoch call minus one epoch; a rough, not interleaved, estimate)."""
    call(1)  # warm-up: first-call costs (lazy imports, kernel loading) must not enter the estimate
    t0 = time.perf_counter()
    call(1)
    t1 = time.perf_counter() - t0
    if t1 >= call_s / 3:  # long epochs: the set-up is lost in them, and so is its estimate
        e = max(1, round(call_s / t1))
        return e, e * t1, math.nan
    n, tn = 1, t1
    while tn < call_s / 3 and n < cap:  # grow the probe until the epochs outweigh the set-up noise
        n = min(cap, n * 4)
        t0 = time.perf_counter()
        call(n)
        tn = time.perf_counter() - t0
    per = max((tn - t1) / (n - 1), tn / (n * 50), 1e-7)
    setup = max(t1 - per, 0.0)
    e = int(max(1, min(cap, round((call_s - setup) / per))))
    return e, setup + e * per, setup


def run(cfg) -> dict:
    keras = optional_keras()
    call_s = 0.15 if cfg.quick else 0.3
    rows, records = [], []
    for nt in cfg.threads:
        with threads(nt):
            for dname, (data, desc) in _datasets(cfg.quick).items():
                X, Y = _same_windows(data)
                for cell in CELLS:
                    base = f"torch.nn.{TORCH_TWIN[cell].__name__} + DataLoader loop"
                    calls = {"rnnkit.fit_forecaster": _rnnkit_call(cell, data), base: _torch_call(cell, X, Y)}
                    if keras is not None:
                        calls[f"keras.layers.{KERAS_LAYER[cell]} model.fit (torch backend)"] = \
                            _keras_call(keras, cell, X, Y)
                    plan = {k: _epochs_for(f, call_s, 5000) for k, f in calls.items()}
                    epochs = {k: e for k, (e, _, _) in plan.items()}
                    c = {k: (lambda f=f, e=epochs[k]: f(e)) for k, f in calls.items()}
                    long_calls = max(t for _, t, _ in plan.values()) > 1.0  # e.g. an epoch of torch on 995 windows
                    res = compare(c, repeats=3 if long_calls else cfg.repeats, sample_s=0.0, warmup=0, units=epochs)
                    rk = res["rnnkit.fit_forecaster"]
                    for name in calls:
                        if name == "rnnkit.fit_forecaster":
                            continue
                        r = ratio(res[name], rk)
                        rk_setup, base_setup = plan["rnnkit.fit_forecaster"][2], plan[name][2]
                        rows.append([nt, desc, f"{len(X)} windows", cell.upper(),
                                     f"{1 / rk.median:,.0f} ({epochs['rnnkit.fit_forecaster']} ep/call)",
                                     name, f"{1 / res[name].median:,.1f} ({epochs[name]} ep/call)", fmt_ratio(r),
                                     f"{fmt_time(rk_setup)} / {fmt_time(base_setup)}"])
                        records.append({"threads": nt, "data": dname, "cell": cell, "baseline": name,
                                        "rnnkit_s": rk.to_dict(), "baseline_s": res[name].to_dict(),
                                        "ratio": r.to_dict(), "windows": len(X), "epochs": [epochs["rnnkit.fit_forecaster"], epochs[name]],
                                        "setup_s": [rk_setup, base_setup]})
    keras_note = ("Keras 3 (torch backend) was importable and is included." if keras is not None else
                  "Keras 3 is not installed here, so its optional contender (`model.fit`, torch backend) was skipped.")
    return {
        "title": "1c. Seed regime: `rnnkit.fit_forecaster` (the `rnnkit fit` CLI's API) epochs per second",
        "intro": ("One call = set-up + E epochs; epochs/s = E / call time (set-up amortised over a call of about "
                  f"{call_s} s, or one epoch where that takes longer; 3 rounds then, else {cfg.repeats}). rnnkit: `fit_forecaster(DataConfig(lookback={LOOKBACK}, horizon=1, val_frac=0, "
                  f"test_frac=0.5), ModelConfig(cell, hidden_size={H}), TrainConfig(batch_size={BATCH}, "
                  "patience=0), evaluate=False)`, i.e. the CLI's path (engine=auto) without scoring. torch: "
                  f"TensorDataset + DataLoader(batch_size={BATCH}, shuffle=True), torch.nn layer + Linear, Adam(1e-3), "
                  "MSE, `loss.item()` per batch, on the same scaled windows (the first half of the series). "
                  "Ratio = rnnkit epochs/s / baseline epochs/s. Target: >= 30x for the seed regime. " + keras_note),
        "tables": [{"columns": ["threads", "data", "train windows", "cell", "rnnkit epochs/s", "baseline",
                                "baseline epochs/s", "ratio [min..max]", "set-up rnnkit / baseline (rough)"],
                    "rows": rows}],
        "records": records,
    }

