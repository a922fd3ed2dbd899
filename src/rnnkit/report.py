"""Plain-text result tables, shared by every job's command line."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["format_table", "FIRST_COLUMNS"]

#: columns a table shows first, in this order, when its rows have them (the forecasting metrics)
FIRST_COLUMNS = ("mae", "rmse", "mape", "smape", "mase")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float, np.floating, np.integer)):
        v = float(value)
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(value)


def format_table(rows: Mapping[str, Mapping[str, float]],
                 columns: Sequence[str] | None = None) -> str:
    """A plain-text table, one row per model, one column per metric, numbers right-aligned.

    Args:
        rows: ``{"lstm": {"mae": 1.2, ...}, "last value": {...}}``, printed in this order.
        columns: metrics to show, in order; by default every metric that appears, in
            ``FIRST_COLUMNS`` order first. A metric a row lacks prints as ``-``.

    Example::

        model          mae    rmse
        lstm        1.2000  1.5000
        last value  2.0000  2.5000
    """
    if columns is None:
        seen = [k for row in rows.values() for k in row]
        columns = [c for c in FIRST_COLUMNS if c in seen]
        columns += [c for c in dict.fromkeys(seen) if c not in columns]
    header = ["model", *columns]
    body = [[str(name), *(_cell(metrics.get(c)) for c in columns)]
            for name, metrics in rows.items()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        first = r[0].ljust(widths[0])
        rest = [cell.rjust(w) for cell, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join(lines)
