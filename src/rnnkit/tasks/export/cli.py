"""``rnnkit export``: a trained run (forecaster, classifier, character model) written as an ONNX file
(:func:`~.onnx_file.export_onnx`).

Light on purpose, like every job's command line: torch and onnx load when the command runs.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "COMMANDS", "FORMATS"]

#: the file formats ``rnnkit export`` writes
FORMATS = ("onnx",)


def register(sub) -> None:
    """Add ``rnnkit export`` to ``rnnkit``'s subparsers."""
    p = sub.add_parser("export", help="write a trained run as an ONNX graph (for onnxruntime)",
                       description="Write a run as an ONNX file. A forecaster: by default the whole forecast (target "
                                   "transform, scaler, per-window normalisation, the network, the way back) from raw "
                                   "context windows (batch, L, F) to forecasts (batch, horizon, C) in the data's "
                                   "units, both float64 (a quantile or distribution head: its levels, (batch, "
                                   "horizon, C, Q)); a run with future covariates also reads their raw values over the "
                                   "forecast's rows (future (batch, H, K)); with --step the network's streaming step "
                                   "with explicit state inputs and outputs. A panel (--id-col) run: the same, the "
                                   "forecast graph also reading each row's scaler (shift, scale), and the scalers of "
                                   "its series "
                                   "written next to the graph (model.series.csv). A classifier: raw series and "
                                   "their lengths to class probabilities. A character model: character ids and "
                                   "states to next-character logits and states (--step: one character per "
                                   "stream). Needs pip install 'rnnkit[deploy]'.")
    p.add_argument("--run", required=True, metavar="RUN", help="run directory from `rnnkit fit` (one series or a "
                   "panel), `rnnkit classify fit` or `rnnkit text fit`")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="file format (default: onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write, such as model.onnx")
    p.add_argument("--step", action="store_true", help="write the streaming step graph (x_t, state_in_* -> y, "
                   "state_out_*; a forecaster's in the network's units) instead of the forecast (or sequence) graph")
    p.add_argument("--horizon", type=int, metavar="H", help="steps the forecast graph forecasts (default: the "
                   "run's horizon)")
    p.add_argument("--force", action="store_true", help="replace an existing file (a panel's: either of the two)")


def cmd_export(a: argparse.Namespace) -> int:
    from .onnx_file import export_onnx
    path = export_onnx(a.run, a.out, step=a.step, horizon=a.horizon, force=a.force)
    import onnx
    props = {e.key: e.value for e in onnx.load(str(path), load_external_data=False).metadata_props}

    def signature(entries: str) -> str:
        return ", ".join(f"{e['name']} ({', '.join(str(d) for d in e['shape'])}) {e['dtype']}"
                         for e in json.loads(entries))
    units = f" ({props['units']} units)" if "units" in props else ""
    print(f"wrote {path}: the {props['graph']} graph, {signature(props['inputs'])} -> {signature(props['outputs'])}"
          + units)
    if "series_file" in props:  # a panel run: each series' scaler, the forecast graph's shift and scale
        print(f"wrote {path.parent / props['series_file']}: the scalers of the run's {props['n_series']} series "
              f"({props['id_col']}, shift_<column>, scale_<column>)")
    if "checked_max_rel_diff" in props:
        print(f"checked with onnxruntime against rnnkit's own numbers: largest relative difference "
              f"{props['checked_max_rel_diff']}")
    else:
        print("not checked: onnxruntime is not installed (pip install 'rnnkit[deploy]')")
    return 0


COMMANDS = {"export": cmd_export}
