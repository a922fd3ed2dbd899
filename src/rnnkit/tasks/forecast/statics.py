"""Static covariates of a panel as network inputs: one row of numbers per series.

A static covariate holds one value per series (:attr:`rnnkit.data.panel.PanelData.static`). A
column whose every value reads as a number is *numeric*: standardised with the mean and standard
deviation over the training series. Any other column is *categorical*: one-hot over the categories
the training series have, in sorted order; a category never seen in training (a new series) reads
as all zeros, so the network treats it as none of the known ones.

The features are known for every row, past and future, so they join the known inputs
(:mod:`rnnkit.tasks.forecast.known`): constant columns after the future covariates and calendar
features, read by direct models over the horizon and by recursive ones at each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, DataError

__all__ = ["StaticEncoder"]


def _numbers(values) -> np.ndarray | None:
    try:
        out = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return None
    return out if np.isfinite(out).all() else None


@dataclass(frozen=True)
class StaticEncoder:
    """How each static column becomes features: ``columns`` in order, each with its ``kind``
    (``"numeric"``: ``(mean, std)``; ``"categorical"``: its sorted categories)."""

    columns: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    params: tuple = ()

    @classmethod
    def fit(cls, static: dict[str, tuple[str, ...]], columns: tuple[str, ...]) -> "StaticEncoder":
        """The encoding of ``columns`` from their values over the training series ``static``."""
        kinds, params = [], []
        for c in columns:
            if c not in static:
                raise DataError(f"the panel has no static covariate {c!r}")
            x = _numbers(static[c])
            if x is not None:
                std = float(x.std())
                kinds.append("numeric")
                params.append((float(x.mean()), std if std > 0 else 1.0))
            else:
                kinds.append("categorical")
                params.append(tuple(sorted(set(static[c]))))
        return cls(tuple(columns), tuple(kinds), tuple(params))

    @property
    def width(self) -> int:
        return sum(1 if k == "numeric" else len(p) for k, p in zip(self.kinds, self.params))

    @property
    def names(self) -> list[str]:
        out = []
        for c, k, p in zip(self.columns, self.kinds, self.params):
            out += [c] if k == "numeric" else [f"{c}={v}" for v in p]
        return out

    def features(self, values: dict[str, str], label: str = "a series") -> np.ndarray:
        """The feature row ``(width,)`` of one series whose static values are ``values``."""
        row = []
        for c, k, p in zip(self.columns, self.kinds, self.params):
            if c not in values:
                raise DataError(f"{label}: no value for the static covariate {c!r}")
            v = values[c]
            if k == "numeric":
                try:
                    x = float(v)
                except ValueError:
                    raise DataError(f"{label}: the static covariate {c!r} is numeric in the run; got {v!r}") from None
                if not math.isfinite(x):
                    raise DataError(f"{label}: the static covariate {c!r} must be a finite number; got {v!r}")
                row.append((x - p[0]) / p[1])
            else:
                row += [1.0 if v == cat else 0.0 for cat in p]
        return np.array(row, dtype=np.float64)

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "kinds": list(self.kinds),
                "params": [list(p) for p in self.params]}

    @classmethod
    def from_dict(cls, d: dict) -> "StaticEncoder":
        try:
            columns, kinds, params = tuple(d["columns"]), tuple(d["kinds"]), d["params"]
            if not (len(columns) == len(kinds) == len(params)) or set(kinds) - {"numeric", "categorical"}:
                raise ValueError("columns, kinds and params do not match")
            fixed = []
            for k, p in zip(kinds, params):
                if k == "numeric":
                    mean, std = (float(v) for v in p)
                    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
                        raise ValueError("a numeric column needs a finite mean and a positive std")
                    fixed.append((mean, std))
                else:
                    fixed.append(tuple(str(v) for v in p))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"the static covariates' encoding is unusable ({e})") from None
        return cls(columns, kinds, tuple(fixed))
