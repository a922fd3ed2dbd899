"""Suite 3: the grid. Forward + backward of one layer (loss = sum of outputs) over hidden size,
batch and sequence length, rnnkit's ``fused`` and ``auto`` backends vs torch.nn, with GFLOP/s next
to the machine's float32 matmul ceiling at the same thread count.

FLOPs: forward = 2 T B G (I + H) with G = 4H (LSTM) or 3H (GRU); forward + backward ~ 3x that.
The input size is I = H and the input requires a gradient (a layer inside a network), so the
backward computes dx, dW and the recurrence: the 3x estimate holds.
"""

from __future__ import annotations

import time

import torch

from harness import Stats, compare, fmt_ratio, fmt_time, geomean, ratio, threads

FULL = {"hidden": (16, 64, 256, 512), "batch": (1, 8, 64), "T": (50, 500)}
QUICK = {"hidden": (16, 64, 256), "batch": (1, 64), "T": (50,)}
CELLS = ("lstm", "gru")
REUSE_AUTO_ABOVE_S = 0.25  # auto -> fused is the same code path: not re-timed for calls this long
HEAVY_S = 1.0  # torch + fused calls together this long: 3 rounds, the first calls counting as round 1


def flops(cell: str, H: int, B: int, T: int, I: int) -> float:
    G = (4 if cell == "lstm" else 3) * H
    return 3.0 * 2.0 * T * B * G * (I + H)


def _best_gflops(f, n: int, repeats: int) -> float:
    f()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def matmul_ceiling(n: int = 2048, repeats: int = 7) -> dict[str, float | None]:
    """GFLOP/s of an n x n float32 matrix product at the current thread count, best of ``repeats``
    (a ceiling: what the machine reaches when the neighbours are quiet), through torch.matmul
    (torch's BLAS, MKL on x86 builds) and through oneDNN (what torch.nn.LSTM/GRU use on the CPU).
    On AMD CPUs the two differ about 2x: MKL does not take its AVX-512 path there."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    res: dict[str, float | None] = {"matmul": _best_gflops(lambda: torch.matmul(a, b, out=out), n, repeats)}
    try:
        am, bm = a.to_mkldnn(), b.to_mkldnn()
        res["onednn"] = _best_gflops(lambda: torch._C._nn.mkldnn_linear(am, bm), n, repeats)
    except Exception:  # noqa: BLE001 - a build without oneDNN: report the BLAS ceiling only
        res["onednn"] = None
    return res


def _ceiling_text(c: dict) -> str:
    return f"{c['matmul']:.0f} / {c['onednn']:.0f}" if c.get("onednn") else f"{c['matmul']:.0f} / n/a"


def _modules(cell: str, H: int, I: int):
    import rnnkit
    torch.manual_seed(0)
    tn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H, batch_first=True)
    cls = rnnkit.LSTM if cell == "lstm" else rnnkit.GRU
    fused, auto = cls(I, H, batch_first=True, backend="fused"), cls(I, H, batch_first=True, backend="auto")
    fused.load_state_dict(tn.state_dict())
    auto.load_state_dict(tn.state_dict())
    return tn, fused, auto


def _fwd_bwd(m: torch.nn.Module, x: torch.Tensor):
    def f():
        m.zero_grad(set_to_none=True)
        x.grad = None
        m(x)[0].sum().backward()
    return f


def _one_config(cell: str, H: int, B: int, T: int, cfg) -> dict:
    I = H
    x = torch.randn(B, T, I, requires_grad=True)  # a layer inside a network: dx is computed too
    tn, fused, auto = _modules(cell, H, I)
    resolved = auto.resolved_backend(x)
    fns = {"torch": _fwd_bwd(tn, x), "fused": _fwd_bwd(fused, x), "auto": _fwd_bwd(auto, x)}
    first: dict[str, float] = {}

    def once(k):  # the first call of each contender: warm-up, size estimate, and for heavy ones round 1
        t0 = time.perf_counter()
        fns[k]()
        first[k] = time.perf_counter() - t0
    once("torch")
    once("fused")
    heavy = first["torch"] + first["fused"] >= HEAVY_S
    # auto runs the same code as what it resolved to; re-timing a long call of it buys nothing
    reuse = (resolved == "fused" and first["fused"] > REUSE_AUTO_ABOVE_S) or (resolved == "torch" and heavy)
    if reuse:
        del fns["auto"]
    else:
        once("auto")
    total = sum(first.values())
    if heavy:  # the first calls were round 1 (A B C order); two more rounds, rotated
        res = compare(fns, repeats=2, sample_s=0.0, warmup=0)
        for k, v in res.items():
            v.samples.insert(0, first[k])
    elif total < 0.03:
        res = compare(fns, repeats=cfg.repeats, sample_s=cfg.sample_s / 2, warmup=1)
    else:
        res = compare(fns, repeats=cfg.repeats, sample_s=0.0, warmup=0)
    if reuse:
        res["auto"] = Stats(list(res[resolved].samples))
    fl = flops(cell, H, B, T, I)
    return {"cell": cell, "hidden": H, "batch": B, "T": T, "input": I, "auto_backend": resolved,
            "auto_reused": reuse, "flops": fl,
            **{f"{k}_s": v.to_dict() for k, v in res.items()},
            "ratio_fused": ratio(res["torch"], res["fused"]).to_dict(),
            "ratio_auto": ratio(res["torch"], res["auto"]).to_dict()}


def _gf(rec: dict, key: str) -> str:
    return f"{rec['flops'] / rec[key]['median'] / 1e9:.1f}"


def _crossover_table(recs: list[dict], cell: str, nt: int, grid: dict) -> dict:
    cols = [(B, T) for T in grid["T"] for B in grid["batch"]]
    rows = []
    for H in grid["hidden"]:
        row = [H]
        for B, T in cols:
            r = next((r for r in recs if (r["cell"], r["hidden"], r["batch"], r["T"], r["threads"]) ==
                      (cell, H, B, T, nt)), None)
            if r is None:
                row.append("")
                continue
            v = r["ratio_fused"]["median"]
            row.append(f"**{v:.2f}**" if v >= 1.0 else f"{v:.2f}")
        rows.append(row)
    return {"title": f"{cell.upper()}, threads={nt}: fused / torch.nn speed ratio (bold: fused faster)",
            "columns": ["hidden \\ (batch, T)"] + [f"({B}, {T})" for B, T in cols], "rows": rows}


def run(cfg) -> dict:
    grid = QUICK if cfg.quick else FULL
    recs, ceilings = [], {}
    for nt in cfg.threads:
        with threads(nt):
            ceilings[nt] = matmul_ceiling(1024 if cfg.quick else 2048)
            for cell in CELLS:
                for H in grid["hidden"]:
                    for B in grid["batch"]:
                        for T in grid["T"]:
                            rec = _one_config(cell, H, B, T, cfg)
                            rec["threads"] = nt
                            recs.append(rec)
                            print(f"    grid threads={nt} {cell} H={H} B={B} T={T}: fused "
                                  f"{rec['ratio_fused']['median']:.2f}x auto({rec['auto_backend']}) "
                                  f"{rec['ratio_auto']['median']:.2f}x", flush=True)
    done = sorted({r["threads"] for r in recs})  # the thread counts measured (cfg.threads probes again)
    rows = []
    for r in recs:
        rows.append([r["threads"], r["cell"].upper(), r["hidden"], r["batch"], r["T"], r["auto_backend"],
                     fmt_time(r["torch_s"]["median"]), fmt_time(r["fused_s"]["median"]), fmt_ratio(r["ratio_fused"]),
                     fmt_ratio(r["ratio_auto"]) + (f" (={r['auto_backend']})" if r["auto_reused"] else ""),
                     f"{_gf(r, 'torch_s')} / {_gf(r, 'fused_s')} / {_gf(r, 'auto_s')}",
                     _ceiling_text(ceilings[r["threads"]])])
    summary = []
    for nt in done:
        for cell in CELLS:
            sel = [r for r in recs if r["threads"] == nt and r["cell"] == cell]
            gf = geomean([r["ratio_fused"]["median"] for r in sel])
            ga = geomean([r["ratio_auto"]["median"] for r in sel])
            slow = [r for r in sel if r["ratio_auto"]["median"] < 0.9]
            summary.append([nt, cell.upper(), len(sel), f"{gf:.2f}x", f"{ga:.2f}x",
                            sum(r["ratio_fused"]["median"] >= 1.0 for r in sel),
                            ", ".join(f"H{r['hidden']} B{r['batch']} T{r['T']} ({r['ratio_auto']['median']:.2f}x)"
                                      for r in slow) or "none"])
    tables = [
        {"title": "Geometric means and auto's slow spots",
         "columns": ["threads", "cell", "configs", "geomean fused", "geomean auto", "configs where fused wins",
                     "auto below 0.9x"], "rows": summary},
    ]
    tables += [_crossover_table(recs, cell, nt, grid) for cell in CELLS for nt in done]
    tables.append({"title": "All configurations",
                   "columns": ["threads", "cell", "hidden", "batch", "T", "auto ran", "torch.nn time", "fused time",
                               "fused ratio [min..max]", "auto ratio [min..max]",
                               "GFLOP/s torch / fused / auto", "ceiling GFLOP/s torch.matmul / oneDNN"],
                   "rows": rows})
    return {
        "title": "3. Grid: forward + backward of one layer, fused and auto vs torch.nn",
        "intro": ("`m.zero_grad(); m(x)[0].sum().backward()`, x `(B, T, I)` batch_first float32 with requires_grad, "
                  "I = H, weights copied from the torch.nn module. Ratio = torch.nn time / rnnkit time. GFLOP/s from "
                  "fwd+bwd = 3 x 2TBG(I+H), G = 4H (LSTM) / 3H (GRU); the ceilings are a float32 "
                  f"{1024 if cfg.quick else 2048}^2 matrix product at the same thread count (best of 7) through "
                  "torch.matmul (MKL in this torch build) and through oneDNN (`mkldnn_linear`, the library behind "
                  "torch.nn.LSTM/GRU on the CPU); on AMD CPUs MKL runs at about half oneDNN's speed, which is why "
                  "torch.nn can exceed the first. Repeats: 5 rounds "
                  "(3 for configurations whose calls take over a second together, the first, warm-up, calls counting as "
                  "round 1). `auto ran` is what `resolved_backend` chose; \"(=fused)\" / \"(=torch)\": auto was not "
                  "timed a second time because it runs that very code (fused: the same kernel call, on calls over "
                  "0.25 s; torch: torch's own `_VF` kernel on the same weights, on calls over 1 s, where the few "
                  "microseconds of rnnkit's wrapper cannot show), so its ratio is copied (1.00x for =torch). Targets: GRU geometric mean >= 2x nn.GRU; no configuration of "
                  "either cell below 0.9x with backend=\"auto\"."),
        "tables": tables,
        "records": recs,
        "ceilings": {str(k): v for k, v in ceilings.items()},
    }
