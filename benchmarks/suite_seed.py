"""Suites 1a and 1b, the seed regime (hidden 16, batch 5, T 5, input 1, Linear head, MSE, Adam).

``layer`` (1a): the drop-in layer inside a plain torch training loop (zero_grad, forward, loss,
backward, Adam step), rnnkit's layer vs torch.nn's, per training step.

``trainer`` (1b): ``rnnkit.fit(..., engine="fused")``, whose epochs run in one native call, vs a
plain torch loop over the same tensors (randperm, index, step), per training step.

Elman is compared with its twin torch.nn.RNN; Jordan has no torch twin, so its baseline is
rnnkit's own readable path (the reference backend, the generic fit loop), said in the table.
"""

from __future__ import annotations

import itertools
import statistics
import time

import torch
import torch.nn.functional as F

from harness import compare, fmt_ratio, fmt_time, ratio, threads

H, B, T, I = 16, 5, 5, 1
CELLS = ("lstm", "gru", "elman", "jordan")
TORCH_TWIN = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}


def _rnnkit_layer(cell: str, backend: str):
    import rnnkit
    cls = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "elman": rnnkit.RNN, "jordan": rnnkit.Jordan}[cell]
    return cls(I, H, batch_first=True, backend=backend)


def _add_result(rows: list, records: list, nt: int, cell: str, res: dict, name: str, base: str) -> None:
    """One table row and one stored record: contender ``name`` against baseline ``base``."""
    r = ratio(res[base], res[name])
    rows.append([nt, cell.upper(), name, fmt_time(res[name].median), base, fmt_time(res[base].median), fmt_ratio(r)])
    records.append({"threads": nt, "cell": cell, "contender": name, "baseline": base,
                    "rnnkit_s": res[name].to_dict(), "baseline_s": res[base].to_dict(), "ratio": r.to_dict()})


def _batches(n: int = 64, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A pool of random batches cycled through: the loss never converges, so gradients never drift
    into float32 denormals (which would make timings bimodal after many steps)."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(B, T, I, generator=g), torch.randn(B, 1, generator=g)) for _ in range(n)]


def _step_fn(rnn: torch.nn.Module, split: dict | None = None, **adam):
    """One training step of ``rnn`` + Linear head + MSE + Adam(lr=1e-3), as a user writes it."""
    torch.manual_seed(0)
    head = torch.nn.Linear(H, 1)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-3, **adam)
    pool = itertools.cycle(_batches())
    if split is None:
        def step():
            x, y = next(pool)
            opt.zero_grad()
            loss = F.mse_loss(head(rnn(x)[0][:, -1]), y)
            loss.backward()
            opt.step()
        return step
    pc = time.perf_counter_ns

    def timed_step():
        x, y = next(pool)
        a = pc()
        opt.zero_grad()
        b = pc()
        loss = F.mse_loss(head(rnn(x)[0][:, -1]), y)
        c = pc()
        loss.backward()
        d = pc()
        opt.step()
        e = pc()
        for k, v in zip(split, (b - a, c - b, d - c, e - d)):
            split[k].append(v)
    return timed_step


FUSED_ADAM = ", Adam(fused=True)"
ZERO_COST = "zero-cost layer (bound for any layer)"


class _ZeroCost(torch.autograd.Function):
    """Outputs zeros and returns zero gradients: what any layer must at least do in a torch loop."""

    @staticmethod
    def forward(ctx, x, *w):
        ctx.save_for_backward(*w)
        return x.new_zeros(x.shape[0], x.shape[1], H)

    @staticmethod
    def backward(ctx, grad):
        return (None, *(torch.zeros_like(w) for w in ctx.saved_tensors))


class _ZeroCostLayer(torch.nn.Module):
    """A layer that computes nothing but has ``like``'s parameter tensors: in the same training
    loop (autograd, head, loss, torch's Adam over the same tensors) it bounds what any layer with
    that parameter layout can reach against torch.nn."""

    def __init__(self, like: torch.nn.Module) -> None:
        super().__init__()
        for name, p in like.named_parameters():
            self.register_parameter(name, torch.nn.Parameter(p.detach().clone()))

    def forward(self, x):
        return _ZeroCost.apply(x, *self.parameters()), None


def _layer_contenders(cell: str, extra: bool) -> tuple[dict, list[tuple[str, str]]]:
    """Step functions, and the (rnnkit, baseline) pairs to report. With ``extra`` (LSTM, GRU), also
    both sides with torch's fused Adam, and the prototype's comparison (rnnkit with fused Adam vs
    torch.nn with the default Adam), which is how its 3-4x figure was measured."""
    if cell in TORCH_TWIN:
        base = f"torch.nn.{TORCH_TWIN[cell].__name__}"
        make_base = lambda: TORCH_TWIN[cell](I, H, batch_first=True)  # noqa: E731
    else:
        base = "rnnkit reference loop (no torch twin)"
        make_base = lambda: _rnnkit_layer(cell, "reference")  # noqa: E731
    c = {base: _step_fn(make_base())}
    pairs = []
    for backend in ("fused", "auto"):
        c[f"rnnkit {backend}"] = _step_fn(_rnnkit_layer(cell, backend))
        pairs.append((f"rnnkit {backend}", base))
    if extra:
        c[base + FUSED_ADAM] = _step_fn(make_base(), fused=True)
        c["rnnkit fused" + FUSED_ADAM] = _step_fn(_rnnkit_layer(cell, "fused"), fused=True)
        pairs += [("rnnkit fused" + FUSED_ADAM, base + FUSED_ADAM), ("rnnkit fused" + FUSED_ADAM, base)]
        c[ZERO_COST] = _step_fn(_ZeroCostLayer(make_base()))
        pairs.append((ZERO_COST, base))
    return c, pairs


def _time_split(cell: str, n: int) -> dict[str, dict[str, float]]:
    """Median microseconds of each part of a step, torch.nn vs rnnkit fused (diagnostic)."""
    out = {}
    for label, rnn in ((f"torch.nn.{TORCH_TWIN[cell].__name__}", TORCH_TWIN[cell](I, H, batch_first=True)),
                       ("rnnkit fused", _rnnkit_layer(cell, "fused"))):
        split = {k: [] for k in ("zero_grad", "forward+loss", "backward", "opt.step")}
        step = _step_fn(rnn, split)
        for _ in range(n // 5):
            step()
        for v in split.values():
            v.clear()
        for _ in range(n):
            step()
        out[label] = {k: statistics.median(v) / 1e3 for k, v in split.items()}
    return out


def run_layer(cfg) -> dict:
    rows, records, split_rows = [], [], []
    for nt in cfg.threads:
        with threads(nt):
            for cell in CELLS:
                c, pairs = _layer_contenders(cell, extra=cell in ("lstm", "gru") and not cfg.quick)
                res = compare(c, repeats=cfg.repeats, sample_s=cfg.sample_s, warmup=20)
                for name, base in pairs:
                    _add_result(rows, records, nt, cell, res, name, base)
            if nt == cfg.threads[0]:
                for cell in ("lstm", "gru"):
                    for label, parts in _time_split(cell, 200 if cfg.quick else 2000).items():
                        split_rows.append([nt, cell.upper(), label] + [f"{v:.1f}" for v in parts.values()]
                                          + [f"{sum(parts.values()):.1f}"])
    return {
        "title": "1a. Seed regime: the drop-in layer in a plain torch training loop",
        "intro": ("Per training step: `opt.zero_grad(); loss = mse(Linear(rnn(x)[0][:, -1]), y); "
                  "loss.backward(); opt.step()` with torch.optim.Adam(lr=1e-3, defaults) on both sides; "
                  f"hidden {H}, batch {B}, T {T}, input {I}, batch_first, float32, a pool of 64 random "
                  "batches cycled. Ratio = baseline time / rnnkit time. Target: >= 3x torch.nn for LSTM and GRU "
                  "(the first two rows of each cell; the target table uses them). The prototype's 3-4x compared "
                  "its layer *with torch's fused Adam* against torch.nn with the default Adam: that comparison is "
                  "the row after the fair one with fused Adam on both sides. The last row of each cell is the "
                  f"bound: a {ZERO_COST.split(' (')[0]} (an autograd.Function that returns zeros and zero "
                  "gradients, with torch.nn's four parameter tensors) in the same loop, with the default Adam. "
                  "No layer with that parameter layout can beat torch.nn by more than that ratio; the rest of "
                  "the step is torch's autograd, the head, the loss and Adam."),
        "tables": [
            {"columns": ["threads", "cell", "rnnkit", "rnnkit time/step", "baseline", "baseline time/step",
                         "ratio [min..max]"], "rows": rows},
            {"title": "Where a step's time goes (median microseconds per part, diagnostic, not interleaved)",
             "columns": ["threads", "cell", "layer", "zero_grad", "forward+loss", "backward", "opt.step", "sum"],
             "rows": split_rows},
        ],
        "records": records,
    }


# --- 1b: the fused trainer ----------------------------------------------------------------------

def _windows(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` windows of a noisy sine (inputs ``(n, T, 1)``, next values ``(n, 1, 1)``)."""
    g = torch.Generator().manual_seed(seed)
    s = torch.sin(torch.arange(n + T, dtype=torch.float32) * 0.2) + 0.1 * torch.randn(n + T, generator=g)
    idx = torch.arange(n).unsqueeze(1) + torch.arange(T)  # (n, T)
    return s[idx].unsqueeze(-1), s[T:T + n].reshape(n, 1, 1)


def _fit_fn(cell: str, x, y, engine: str, epochs: int):
    import rnnkit
    from rnnkit.tasks.forecast.workflow import forecast_fused_task, forecast_loss
    torch.manual_seed(0)
    model = rnnkit.Forecaster(I, 1, 1, rnnkit.ModelConfig(cell=cell, hidden_size=H))
    config = rnnkit.TrainConfig(epochs=epochs, batch_size=B, lr=1e-3, patience=0, restore_best=False,
                                engine=engine)
    loss_fn = forecast_loss(model, config)
    task = forecast_fused_task(model, config, (x, y), None)

    def run():
        rnnkit.fit(model, loss_fn, (x, y), None, config, quiet=True, fused=task)
    return run


def _plain_epoch_fn(cell: str, x, y):
    """What a user writes without a DataLoader: shuffle indices, slice batches, step."""
    torch.manual_seed(0)
    rnn = TORCH_TWIN[cell](I, H, batch_first=True)
    head = torch.nn.Linear(H, 1)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-3)
    n = x.shape[0]
    yy = y.reshape(n, 1)

    def epoch():
        order = torch.randperm(n)
        for i in range(0, n, B):
            idx = order[i:i + B]
            opt.zero_grad()
            loss = F.mse_loss(head(rnn(x[idx])[0][:, -1]), yy[idx])
            loss.backward()
            opt.step()
    return epoch


def run_trainer(cfg) -> dict:
    n = 100 if cfg.quick else 500
    steps = n // B
    epochs = 5 if cfg.quick else 20  # per fit() call: amortises fit's set-up like a real run
    x, y = _windows(n)
    rows, records = [], []
    for nt in cfg.threads:
        with threads(nt):
            for cell in CELLS:
                fused = f"rnnkit.fit engine=fused ({epochs} epochs/call)"
                generic = "rnnkit.fit engine=torch (generic loop)"
                c = {fused: _fit_fn(cell, x, y, "fused", epochs)}
                units = {fused: epochs * steps}
                if cell in TORCH_TWIN:
                    base = f"plain torch loop, torch.nn.{TORCH_TWIN[cell].__name__}"
                    c[base] = _plain_epoch_fn(cell, x, y)
                    units[base] = steps
                else:
                    base = generic + ", no torch twin"
                c[generic if cell in TORCH_TWIN else base] = _fit_fn(cell, x, y, "torch", 1)
                units[generic if cell in TORCH_TWIN else base] = steps
                res = compare(c, repeats=cfg.repeats, sample_s=cfg.sample_s * 2, warmup=1, units=units)
                for name in c:
                    if name != base:
                        _add_result(rows, records, nt, cell, res, name, base)
    return {
        "title": "1b. Seed regime: the fused trainer vs a plain torch loop",
        "intro": (f"Time per training step, derived from whole epochs: {n} windows of a noisy sine, batch {B} "
                  f"-> {steps} steps per epoch, shuffled, hidden {H}, T {T}, Linear head, MSE, Adam(lr=1e-3). "
                  f"`rnnkit.fit(..., engine=\"fused\")` runs {epochs} epochs per call (patience=0, "
                  "restore_best=False; its set-up is included); the plain loop is one epoch of randperm + index + "
                  "zero_grad/forward/backward/step. `engine=torch` is rnnkit's generic loop (with the auto layer) "
                  "for reference."),
        "tables": [{"columns": ["threads", "cell", "rnnkit", "rnnkit time/step", "baseline", "baseline time/step",
                                "ratio [min..max]"], "rows": rows}],
        "records": records,
    }
