"""Static covariates of a panel as network inputs: one row of numbers per series.

A static covariate holds one value per series (:attr:`rnnkit.data.panel.PanelData.static`). A
column whose every value reads as a number is *numeric*: standardised with the mean and standard
deviation over the training series. Any other column is *categorical*: one-hot over the categories
the training series have, in sorted order; a category never seen in training (a new series) reads
as all zeros, so the network treats it as none of the known ones.

The features are known for every row, past and future, so they join the known inputs
(:mod:`rnnkit.tasks.forecast.known`): constant columns after the future covariates and calendar
features, read by direct models over the horizon and by recursive ones at each step.

The learned series embedding (``DataConfig.id_embedding``) is one more categorical column: the
series id, one-hot over ``ids``, the training series (the id vocabulary), after the static
features. The first layer multiplies the one-hot row by its input weights, so the columns of
``weight_ih_l0`` that read the id are a learned vector per series added to every step's gate
pre-activations: an embedding (of the gates' width), trained by whichever engine trains the rest
(:func:`id_embeddings` reads it out). A series the run never trained on reads ``1/len(ids)`` in
every id column, which is the mean of the learned embeddings (:meth:`StaticEncoder.features` says
which ids were new, so the caller can warn).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, DataError, RnnkitWarning

__all__ = ["StaticEncoder", "id_embeddings", "MAX_EMBEDDED_IDS"]

#: the most training series an id embedding is offered for: its one-hot inputs widen every step
#: of the first layer by one column per series
MAX_EMBEDDED_IDS = 2000


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
    #: the id vocabulary of the learned series embedding: the training series (empty: no embedding)
    ids: tuple[str, ...] = ()

    @classmethod
    def fit(cls, static: dict[str, tuple[str, ...]], columns: tuple[str, ...],
            ids: tuple[str, ...] = ()) -> "StaticEncoder":
        """The encoding of ``columns`` from their values over the training series ``static``, and of
        their ``ids`` (the embedding's vocabulary) where one is asked for."""
        if len(ids) > MAX_EMBEDDED_IDS:
            raise DataError(f"--id-embedding: the panel trains on {len(ids)} series, more than the "
                            f"{MAX_EMBEDDED_IDS} an id embedding is offered for (one input column per series); "
                            "pass static covariates that group the series instead")
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
        return cls(tuple(columns), tuple(kinds), tuple(params), tuple(ids))

    @property
    def width(self) -> int:
        return sum(1 if k == "numeric" else len(p) for k, p in zip(self.kinds, self.params)) + len(self.ids)

    @property
    def names(self) -> list[str]:
        out = []
        for c, k, p in zip(self.columns, self.kinds, self.params):
            out += [c] if k == "numeric" else [f"{c}={v}" for v in p]
        return out + [f"id={v}" for v in self.ids]

    def features(self, values: dict[str, str], label: str = "a series", sid: str | None = None) -> np.ndarray:
        """The feature row ``(width,)`` of the series ``sid`` whose static values are ``values``: its
        static features, then (with an id embedding) its id one-hot, or the mean embedding's
        ``1/len(ids)`` everywhere for an id not in the vocabulary (see :meth:`knows`)."""
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
        if self.ids:
            row += [1.0 if sid == v else 0.0 for v in self.ids] if self.knows(sid) else [1.0 / len(self.ids)] * len(self.ids)
        return np.array(row, dtype=np.float64)

    def knows(self, sid: str | None) -> bool:
        """Whether series ``sid`` has its own learned embedding (always, without an embedding)."""
        return not self.ids or sid in self._vocab

    @property
    def _vocab(self) -> frozenset:
        return frozenset(self.ids)

    def warn_new(self, ids) -> None:
        """Warn (:class:`~rnnkit.errors.RnnkitWarning`) that the series of ``ids`` without a learned
        embedding are forecast with the mean one."""
        new = [sid for sid in dict.fromkeys(ids) if not self.knows(sid)]
        if new:
            names = ", ".join(map(repr, new[:5])) + (f" and {len(new) - 5} more" if len(new) > 5 else "")
            warnings.warn(f"series {names} had no training window in this run, so no learned id embedding: "
                          f"forecast with the mean embedding of the {len(self.ids)} training series",
                          RnnkitWarning, stacklevel=4)

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "kinds": list(self.kinds),
                "params": [list(p) for p in self.params], "ids": list(self.ids)}

    @classmethod
    def from_dict(cls, d: dict) -> "StaticEncoder":
        try:
            columns, kinds, params = tuple(d["columns"]), tuple(d["kinds"]), d["params"]
            ids = tuple(d.get("ids", ()))
            if not all(isinstance(v, str) for v in ids) or len(set(ids)) != len(ids):
                raise ValueError("the id vocabulary must list distinct ids")
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
        return cls(columns, kinds, tuple(fixed), ids)


def id_embeddings(model, statics: StaticEncoder) -> np.ndarray:
    """The learned embedding of every id of ``statics.ids``, ``(len(ids), G)``: the columns of the
    first layer's input weights (``weight_ih_l0``, G = gates x hidden) that read the id one-hot (the
    last known inputs: the last input columns of a recursive model, before the future flag of a
    direct one; an ensemble: its first member's)."""
    if not statics.ids:
        raise ConfigError("the run has no id embedding (fit with --id-embedding)")
    member = model.members[0] if hasattr(model, "members") else model
    end = member.input_size - (0 if member.recursive else 1)
    w = member.rnn.weight_ih_l0.detach().double().numpy()  # (G, input_size)
    return w[:, end - len(statics.ids):end].T.copy()  # (G, S) -> (S, G)
