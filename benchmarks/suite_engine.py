"""Suite 4: which training engine ``engine="auto"`` picks, and whether that pick is the faster one.

``rnnkit.fit`` runs whole epochs in the native fused trainer or in the generic torch loop (whose
layers still use the fused kernels where those pay off). The fused trainer removes all per-step
framework overhead but computes its matrix products on one core, so it wins for small and medium
models and can lose for large LSTMs (torch's multi-threaded oneDNN kernel); each cell's
``NativeSpec.trainer_limits`` draw the line. This suite times both engines side by side on a grid
around that line, a recurrent layer plus a Linear head on the last step, MSE, Adam, and reports the
engine auto chose and its speed against the torch loop.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from harness import compare, fmt_ratio, fmt_time, ratio, threads

CELLS = ("lstm", "gru", "elman")
GRID = {"hidden": (16, 64, 256), "batch": (8, 64), "T": (10, 50)}
QUICK_GRID = {"hidden": (16, 256), "batch": (8,), "T": (10,)}


class _Model(torch.nn.Module):
    def __init__(self, cell: str, hidden: int) -> None:
        super().__init__()
        import rnnkit
        self.rnn = rnnkit.Recurrent(cell, 1, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _fit_call(cell: str, hidden: int, batch: int, x, y, engine: str):
    """One call = ``rnnkit.fit`` for 2 epochs over the windows (set-up included, as in a run)."""
    from rnnkit import TrainConfig
    from rnnkit.kernels.trainer import FusedTask
    from rnnkit.training.loop import fit
    task = FusedTask("last", "mse", x, y)
    config = TrainConfig(epochs=2, batch_size=batch, engine=engine, patience=0)
    seen = {}

    def call():
        torch.manual_seed(0)
        seen["engine"] = fit(_Model(cell, hidden), lambda m, b: F.mse_loss(m(b[0]), b[1]), (x, y), None,
                             config, quiet=True, fused=task).engine
    return call, seen


def run(cfg) -> dict:
    grid = QUICK_GRID if cfg.quick else GRID
    rows, records = [], []
    for nt in cfg.threads:
        with threads(nt):
            for cell, hidden, batch, T in itertools.product(CELLS, *grid.values()):
                # enough windows for an epoch of ~20 batches, fewer for the slowest points
                n = batch * (20 if hidden * batch * T <= 64 * 64 * 10 else 6)
                g = torch.Generator().manual_seed(0)
                x, y = torch.randn(n, T, 1, generator=g), torch.randn(n, 1, generator=g)
                calls, seen = {}, {}
                for engine in ("auto", "torch", "fused"):
                    calls[engine], seen[engine] = _fit_call(cell, hidden, batch, x, y, engine)
                res = compare(calls, repeats=cfg.repeats, sample_s=cfg.sample_s * 2)
                auto, fused = ratio(res["torch"], res["auto"]), ratio(res["torch"], res["fused"])
                rows.append([nt, cell.upper(), hidden, batch, T, seen["auto"]["engine"],
                             fmt_time(res["torch"].median), fmt_time(res["fused"].median), fmt_ratio(fused),
                             fmt_ratio(auto)])
                records.append({"threads": nt, "cell": cell, "hidden": hidden, "batch": batch, "T": T,
                                "windows": n, "auto_engine": seen["auto"]["engine"],
                                "torch_s": res["torch"].to_dict(), "fused_s": res["fused"].to_dict(),
                                "auto_s": res["auto"].to_dict(), "ratio_fused": fused.to_dict(),
                                "ratio_auto": auto.to_dict()})
    return {
        "title": "4. Training engine: the fused trainer vs the torch loop, and what `engine=\"auto\"` picks",
        "intro": ("`rnnkit.fit` with `engine=\"fused\"` (every epoch one native call) and `engine=\"torch\"` "
                  "(the generic loop; its layers use `backend=\"auto\"`), 2 epochs per call including set-up, "
                  "a layer of the given size on 1 input feature + Linear head on the last step, MSE, Adam(1e-3). "
                  "Ratio = torch-loop time / contender time. `auto` is `engine=\"auto\"` timed as a third "
                  "contender. Target: auto never below 0.9x of the torch loop."),
        "tables": [{"columns": ["threads", "cell", "hidden", "batch", "T", "auto picks", "torch loop / call",
                                "fused / call", "fused vs torch [min..max]", "auto vs torch [min..max]"],
                    "rows": rows}],
        "records": records,
    }
