"""Per-column scaling fitted on the training rows only (and undone on forecasts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, RnnkitError, ShapeError

__all__ = ["Scaler"]


class Scaler:
    """Per-column affine scaling, fitted on training rows only: ``(x - offset) / scale``.

    Kinds:
        ``"minmax"``: offset = column min, scale = max - min, so training values map to [0, 1]
        (later values may fall outside it). ``"standard"``: offset = mean, scale = population
        standard deviation (ddof=0). ``"none"``: offset 0, scale 1.
        A constant column gets scale 1, so nothing divides by zero.

    ``transform`` and ``inverse_transform`` take arrays whose LAST axis holds the columns, with any
    leading axes (N, F) or (W, T, F). ``columns=[0]`` applies only the parameters of the listed
    columns, e.g. to undo the scaling of the target columns of a scaler fitted on targets +
    covariates.
    """

    KINDS = ("minmax", "standard", "none")

    def __init__(self, kind: str = "minmax") -> None:
        if kind not in self.KINDS:
            raise ConfigError(f"unknown scaler {kind!r}; use one of {', '.join(self.KINDS)}")
        self.kind = kind
        self.offset: np.ndarray | None = None  # (F,)
        self.scale: np.ndarray | None = None  # (F,)

    @property
    def fitted(self) -> bool:
        return self.offset is not None

    def fit(self, values: np.ndarray) -> Scaler:
        """Fit per-column parameters on ``values`` of shape (N, F); returns self."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ShapeError(f"Scaler.fit needs a 2-D array (N rows, F columns) with N > 0, "
                             f"got shape {x.shape}; reshape a single series with .reshape(-1, 1)")
        if not np.isfinite(x).all():
            raise DataError("Scaler.fit got NaN or infinite values; fill them first "
                            "(read_series(..., fill='ffill'))")
        constant = np.ptp(x, axis=0) == 0
        if self.kind == "minmax":
            offset, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
        elif self.kind == "standard":
            offset, scale = x.mean(axis=0), x.std(axis=0, ddof=0)
        else:
            offset, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        self.offset, self.scale = offset, np.where(constant, 1.0, scale)
        return self

    def _params(self, x: np.ndarray, columns: Sequence[int] | None) -> tuple[np.ndarray, ...]:
        if self.offset is None or self.scale is None:
            raise RnnkitError("this Scaler is not fitted; call fit(train_values) first")
        cols = np.arange(len(self.offset)) if columns is None else np.asarray(columns, dtype=int)
        if cols.ndim != 1 or (len(cols) and (cols.min() < 0 or cols.max() >= len(self.offset))):
            raise ShapeError(f"columns={list(np.atleast_1d(cols))} must be indices below "
                             f"{len(self.offset)}, the number of fitted columns")
        if x.ndim == 0 or x.shape[-1] != len(cols):
            raise ShapeError(f"expected the last axis to hold {len(cols)} column(s), got shape "
                             f"{x.shape}; pass columns=[...] to scale a subset of the columns")
        return self.offset[cols], self.scale[cols]

    def transform(self, values: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:
        """Scale ``values`` (..., F) or (..., len(columns)); returns a new float64 array."""
        x = np.asarray(values, dtype=np.float64)
        offset, scale = self._params(x, columns)
        return (x - offset) / scale

    def inverse_transform(self, values: np.ndarray,
                          columns: Sequence[int] | None = None) -> np.ndarray:
        """Undo :meth:`transform`: ``x * scale + offset``, same shapes as transform."""
        x = np.asarray(values, dtype=np.float64)
        offset, scale = self._params(x, columns)
        return x * scale + offset

    def fit_transform(self, values: np.ndarray) -> np.ndarray:
        return self.fit(values).transform(values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters; floats survive ``json`` exactly (it writes ``repr``)."""
        if self.offset is None or self.scale is None:
            raise RnnkitError("this Scaler is not fitted; call fit(train_values) before saving")
        return {"kind": self.kind, "offset": [float(v) for v in self.offset],
                "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Scaler:
        """Rebuild a fitted Scaler from :meth:`to_dict` output.

        Strict, because the parameters come from a file: exactly the keys ``to_dict`` writes, a
        known kind, finite numbers (not strings or booleans), one positive scale per column
        (every kind fits scales > 0), and offset 0 / scale 1 for ``"none"``; anything else would
        scale new data into nonsense without a word.
        """
        keys = ("kind", "offset", "scale")
        if not isinstance(state, dict) or set(state) != set(keys):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ConfigError(f"not a saved Scaler (got {got}); expected exactly the keys 'kind', 'offset', "
                              "'scale' written by to_dict()")
        if state["kind"] not in cls.KINDS:
            raise ConfigError(f"unknown scaler kind {state['kind']!r}; a saved Scaler is one of {', '.join(cls.KINDS)}")
        params = {}
        for key in ("offset", "scale"):
            v = state[key]
            if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                raise ConfigError(f"a saved Scaler's {key!r} must be a list of numbers, one per column")
            params[key] = np.array(v, dtype=np.float64)
            if not np.isfinite(params[key]).all():
                raise ConfigError(f"a saved Scaler's {key!r} holds NaN or infinite values; re-fit it")
        offset, scale = params["offset"], params["scale"]
        if offset.shape != scale.shape or not len(offset):
            raise ConfigError(f"a saved Scaler needs one offset and one scale per column; got {len(offset)} "
                              f"offset(s) and {len(scale)} scale(s)")
        if (scale <= 0).any():
            raise ConfigError(f"a saved Scaler's scales must be positive; column {int(np.argmax(scale <= 0))} "
                              f"has {float(scale[scale <= 0][0])!r}")
        if state["kind"] == "none" and ((offset != 0).any() or (scale != 1).any()):
            raise ConfigError("a saved Scaler of kind 'none' must have offset 0 and scale 1 in every column")
        scaler = cls(state["kind"])
        scaler.offset, scaler.scale = offset, scale
        return scaler

    def __repr__(self) -> str:
        return f"Scaler(kind={self.kind!r}, fitted={self.fitted})"
