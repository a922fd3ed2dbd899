"""Suite 9 (``export``): the streaming step of an exported forecaster, onnxruntime vs rnnkit.

A small forecaster is trained (``builtin:elnino``, a few epochs, ``--normalise none`` so that its
step graph reads a stream: see docs/deploy.md), exported with ``rnnkit export --step``, and one
step at batch 1 is timed three ways, interleaved in the same rounds, each feeding its new state
back in as a live stream does:

- rnnkit's ``run.model.step(x_t, state)`` under ``torch.no_grad()`` (the native streaming kernel);
- onnxruntime's ``session.run`` of the step graph (one thread, its default CPU provider), with the
  state passed in and out as NumPy arrays, as a service would;
- for scale, ``nn.LSTMCell``/``nn.GRUCell`` of the same size.

Ratio = onnxruntime (or torch) time / rnnkit time: above 1, rnnkit's step is the faster. Skipped,
with the reason, when the ``deploy`` extra (onnx, onnxruntime) is not installed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from harness import compare, fmt_ratio, fmt_time, ratio, threads

HIDDEN = (16, 64)
CELLS = ("lstm", "gru")


def _runs(tmp: Path):
    """One trained run and its step graph per (cell, hidden)."""
    import rnnkit
    from rnnkit.config import ModelConfig, TrainConfig
    from rnnkit.tasks.forecast.config import DataConfig
    for cell in CELLS:
        for H in HIDDEN:
            dc = DataConfig(source="builtin:elnino", targets=("temperature",), time_col="date", horizon=6, lookback=24, normalise="none")
            run = rnnkit.fit_forecaster(dc, ModelConfig(cell=cell, hidden_size=H), TrainConfig(epochs=3, seed=0),
                                        quiet=True, evaluate=False)
            path = rnnkit.export_onnx(run, tmp / f"{cell}{H}.onnx", step=True)
            yield cell, H, run, path


def _contenders(cell: str, H: int, run, path: Path) -> dict:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    shapes = {i.name: i.shape for i in session.get_inputs()}
    F = run.model.input_size
    xs = [np.random.default_rng(k).standard_normal((1, F)).astype(np.float32) for k in range(16)]
    tx = [torch.from_numpy(x) for x in xs]
    states = {n: np.zeros([1 if isinstance(d, str) else d for d in shapes[n]], dtype=np.float32)
              for n in names if n.startswith("state_in")}
    k = [0]
    st = {"rk": run.model.init_state(1), "ort": states,
          "cell": (torch.zeros(1, H), torch.zeros(1, H)) if cell == "lstm" else torch.zeros(1, H)}
    tcell = (torch.nn.LSTMCell if cell == "lstm" else torch.nn.GRUCell)(F, H)
    outs = [o.name for o in session.get_outputs()]

    def nxt() -> int:
        k[0] = (k[0] + 1) & 15
        return k[0]

    def rk_step():
        _, st["rk"] = run.model.step(tx[nxt()], st["rk"])

    def ort_step():
        res = session.run(outs, {"x_t": xs[nxt()], **st["ort"]})
        st["ort"] = {n.replace("state_out", "state_in"): v for n, v in zip(outs, res) if n.startswith("state_out")}

    def cell_step():
        st["cell"] = tcell(tx[nxt()], st["cell"])
    return {"rnnkit model.step": rk_step, "onnxruntime step graph": ort_step,
            f"nn.{type(tcell).__name__} (cell only)": cell_step}


def run(cfg) -> dict:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return {"title": "8. Exported step: onnxruntime vs rnnkit", "skipped": f"the deploy extra is missing ({e})",
                "tables": [], "records": []}
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp, threads(1), torch.no_grad():
        for cell, H, fitted, path in _runs(Path(tmp)):
            c = _contenders(cell, H, fitted, path)
            res = compare(c, repeats=cfg.repeats + 2, sample_s=cfg.sample_s, warmup=100)
            rk = res["rnnkit model.step"]
            for name in c:
                if name.startswith("rnnkit"):
                    continue
                r = ratio(res[name], rk)
                rows.append([cell.upper(), H, fmt_time(rk.median), name, fmt_time(res[name].median), fmt_ratio(r)])
                records.append({"cell": cell, "hidden": H, "baseline": name, "rnnkit_s": rk.to_dict(),
                                "baseline_s": res[name].to_dict(), "ratio": r.to_dict()})
    return {
        "title": "8. Exported step: onnxruntime vs rnnkit (one streaming step, batch 1, one thread)",
        "intro": ("A forecaster trained on builtin:elnino (lookback 24, horizon 6, direct, --normalise none) is "
                  "exported with `rnnkit export --step`; its step is timed as `run.model.step(x_t, state)` in rnnkit "
                  "and as onnxruntime's `session.run` of the step graph (state in and out as NumPy arrays), "
                  "interleaved. The step graph includes the direct head (all horizon outputs each step). "
                  "Ratio = baseline time / rnnkit time."),
        "tables": [{"columns": ["cell", "hidden", "rnnkit time/step", "baseline", "baseline time/step",
                                "ratio [min..max]"], "rows": rows}],
        "records": records,
    }
