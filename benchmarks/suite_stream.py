"""Suite 2: streaming, one step at batch 1 under ``torch.no_grad()``.

rnnkit's ``layer.step(x_t, state)`` and the in-place ``layer.step_(x_t, state)`` vs ``nn.LSTMCell``/``nn.GRUCell`` and vs ``nn.LSTM``/``nn.GRU``
on a sequence of length 1, each feeding its new state back in (a live stream), input size 1.

Then a profile of rnnkit's step: the same call taken apart with ``time.perf_counter`` around its
pieces (each piece timed alone in a tight loop, interleaved). The pieces are internal names of
``rnnkit.kernels.stream``; where they change, the profile says "n/a" instead of failing.
"""

from __future__ import annotations

import torch

from harness import compare, fmt_ratio, fmt_time, ratio, threads

HIDDEN = (64, 256)
CELLS = ("lstm", "gru")
I = 1


def _contenders(cell: str, H: int) -> tuple[dict, object]:
    import rnnkit
    torch.manual_seed(0)
    layer = (rnnkit.LSTM if cell == "lstm" else rnnkit.GRU)(I, H)  # default backend "auto"
    tcell = (torch.nn.LSTMCell if cell == "lstm" else torch.nn.GRUCell)(I, H)
    tseq = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H)
    xs = [torch.randn(1, I) for _ in range(16)]
    k = [0]

    def nxt():
        k[0] = (k[0] + 1) & 15
        return xs[k[0]]
    lstm = cell == "lstm"
    st = {"rk": layer.init_state(1), "rk_": layer.init_state(1),
          "cell": (torch.zeros(1, H), torch.zeros(1, H)) if lstm else torch.zeros(1, H),
          "seq": (torch.zeros(1, 1, H), torch.zeros(1, 1, H)) if lstm else torch.zeros(1, 1, H)}

    def rk_step():
        _, st["rk"] = layer.step(nxt(), st["rk"])

    def rk_step_inplace():
        layer.step_(nxt(), st["rk_"])  # the state is updated in place

    def cell_step():
        st["cell"] = tcell(nxt(), st["cell"])

    def seq_step():
        _, st["seq"] = tseq(nxt().unsqueeze(0), st["seq"])  # (1, 1, I): T=1
    c = {"rnnkit layer.step": rk_step, "rnnkit layer.step_ (in place)": rk_step_inplace,
         f"nn.{type(tcell).__name__}": cell_step,
         f"nn.{type(tseq).__name__} (T=1)": seq_step}
    return c, layer


def _profile(layer, H: int, repeats: int, sample_s: float) -> list[tuple[str, float | None]]:
    """Median seconds of each piece of ``layer.step`` (None where the internals differ)."""
    from rnnkit.kernels import _native
    from rnnkit.kernels import stream as fk
    x = torch.randn(1, I)
    state = layer.init_state(1)
    pieces: dict[str, object] = {"layer.step(x, state), whole": lambda: layer.step(x, state)}
    stream = getattr(fk, "stream", None)
    if stream is not None:
        pieces["kernels.stream.stream(layer, ...) (step minus its own checks)"] = lambda: stream(layer, x, state)
    layer.step(x, state)
    plan = fk.stream_plan(layer) if hasattr(fk, "stream_plan") else layer.__dict__.get("_stream_plan")
    lstm = isinstance(state, tuple)
    s0, c0 = (state if lstm else (state, None))
    if plan is not None and hasattr(plan, "current"):
        pieces["plan.current(...) (per-step validity checks)"] = lambda: plan.current(layer._parameters, x, state)
    if plan is not None and hasattr(plan, "step"):
        pieces["plan.step(...) (take pooled outputs + native call)"] = lambda: plan.step(x, s0, c0)
    if plan is not None and hasattr(plan, "fn") and hasattr(plan, "args"):
        out_s, out_c = torch.empty_like(s0), (torch.empty_like(c0) if lstm else None)
        a = type(plan.args)(*plan.args)  # a private copy: plan.step rewrites the shared one's pointers
        a[9], a[10], a[12] = x.data_ptr(), s0.data_ptr(), out_s.data_ptr()
        if lstm:
            a[11], a[13] = c0.data_ptr(), out_c.data_ptr()
        pieces["native kernel via ctypes (packed args, no allocation)"] = lambda: plan.fn(a)
    try:
        lib = _native.library()
        noop = lib.rk_abi_version
        pieces["ctypes call floor (rk_abi_version(), no work)"] = lambda: noop()
    except Exception:  # noqa: BLE001
        pass
    pieces["for comparison: torch.empty_like(state) x" + ("2" if lstm else "1") + " (pooled in layer.step)"] = (
        (lambda: (torch.empty_like(s0), torch.empty_like(c0))) if lstm else (lambda: torch.empty_like(s0)))
    pieces["for comparison: s_out[-1], one view (pooled in layer.step)"] = lambda: s0[-1]
    with torch.no_grad():
        res = compare(pieces, repeats=repeats, sample_s=sample_s, warmup=50)
    return [(k, v.median) for k, v in res.items()]


def run(cfg) -> dict:
    rows, records, prof_rows = [], [], []
    for nt in cfg.threads:
        with threads(nt), torch.no_grad():
            for H in HIDDEN:
                for cell in CELLS:
                    c, layer = _contenders(cell, H)
                    res = compare(c, repeats=cfg.repeats + 2, sample_s=cfg.sample_s, warmup=100)
                    for mine in ("rnnkit layer.step", "rnnkit layer.step_ (in place)"):
                        rk = res[mine]
                        for name in c:
                            if name.startswith("rnnkit"):
                                continue
                            r = ratio(res[name], rk)
                            rows.append([nt, cell.upper(), H, mine[7:], fmt_time(rk.median), name,
                                         fmt_time(res[name].median), fmt_ratio(r)])
                            records.append({"threads": nt, "cell": cell, "hidden": H, "rnnkit": mine[7:],
                                            "baseline": name, "rnnkit_s": rk.to_dict(),
                                            "baseline_s": res[name].to_dict(), "ratio": r.to_dict()})
                    if nt == cfg.threads[0]:
                        prof = _profile(layer, H, cfg.repeats, cfg.sample_s / 2)
                        whole = prof[0][1]
                        for k, v in prof:
                            prof_rows.append([cell.upper(), H, k, fmt_time(v),
                                              f"{100 * v / whole:.0f} %" if whole else ""])
    return {
        "title": "2. Streaming: one step at batch 1 under torch.no_grad()",
        "intro": ("`y, state = layer.step(x_t, state)` and the in-place `y = layer.step_(x_t, state)` (rnnkit, "
                  "default backend) vs `nn.LSTMCell/GRUCell` and `nn.LSTM/GRU` on a length-1 sequence; input size "
                  "1, float32, the new state fed back each step. Ratio = baseline time / rnnkit time. Target: >= 5x "
                  "nn.LSTMCell/GRUCell at hidden 64."),
        "tables": [
            {"columns": ["threads", "cell", "hidden", "rnnkit", "rnnkit time/step", "baseline",
                         "baseline time/step", "ratio [min..max]"], "rows": rows},
            {"title": (f"Where rnnkit's streaming step spends its time (threads={cfg.threads[0]}; each piece timed "
                       "alone, median; % of the whole step; pieces nest, so they do not add up)"),
             "columns": ["cell", "hidden", "piece", "time", "% of step"], "rows": prof_rows},
        ],
        "records": records,
    }

