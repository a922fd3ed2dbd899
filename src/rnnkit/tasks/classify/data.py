"""Labelled sequences for classification: read and validate a file, normalise, split, pad.

Data flows one way: file -> :class:`SequenceData` (validated) -> stratified split ->
per-series z-normalisation (optional) -> scaler fitted on the training steps -> padded tensors
with lengths -> :func:`rnnkit.training.loop.fit`.

:func:`read_sequences` reads (any of them may be gzip-compressed, ``NAME.gz``):

- ``.ts``: the sktime / UEA format: ``@`` header lines (``@classLabel true 1 2``, ...), then
  ``@data`` and one case per line, dimensions separated by ``:``, values by ``,``, the label last.
  Variable lengths are allowed; every dimension of one case must have the same length.
- ``.tsv``: the UCR 2018 archive format: one series per line, the label first, tab-separated.
  Trailing ``NaN`` values are padding of variable-length series (the archive's convention).
- ``.csv``: one row per series, the label in ``label_col`` (default ``label``), every other column
  one time step (trailing empty cells shorten a series); or, with ``id_col``, the long format:
  one row per time step, rows of a series sharing its id, every other column a feature; or, with
  ``text_col`` (default ``text`` if there is such a column), one string per row.
- ``.npz``: ``X`` of shape ``(N, T)`` or ``(N, T, F)``, optional ``y`` ``(N,)`` and ``lengths`` ``(N,)``.
- ``builtin:NAME``: a file shipped in :mod:`rnnkit.data.builtin`.

Labels are kept as strings. A missing or non-finite value inside a series is an error: rnnkit does
not impute classification data.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...data.sources import decode_utf8, load_source
from ...errors import ConfigError, DataError

__all__ = ["SequenceData", "read_sequences", "sort_labels", "stratified_split", "znormalise", "pad_series"]

FORMATS = (".ts", ".tsv", ".csv", ".npz")


@dataclass(frozen=True, eq=False)
class SequenceData:
    """Validated sequences: float64 arrays ``(T_i, F)`` or strings, with optional string labels.

    ``ids`` name each sequence in messages and prediction files; ``declared_classes`` are the
    classes a ``.ts`` header lists (``None`` otherwise); ``sha256`` is the file's digest.
    """

    sequences: tuple
    labels: tuple[str, ...] | None
    ids: tuple[str, ...]
    source: str
    sha256: str
    declared_classes: tuple[str, ...] | None = None

    @property
    def is_text(self) -> bool:
        return isinstance(self.sequences[0], str)

    @property
    def n_features(self) -> int:
        return 0 if self.is_text else int(self.sequences[0].shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, idx: Sequence[int]) -> SequenceData:
        pick = lambda xs: None if xs is None else tuple(xs[i] for i in idx)  # noqa: E731
        return SequenceData(pick(self.sequences), pick(self.labels), pick(self.ids), self.source,
                            self.sha256, self.declared_classes)


# --- readers -------------------------------------------------------------------------------------

def read_sequences(source: str | Path, label_col: str | None = None, id_col: str | None = None,
                   text_col: str | None = None, require_labels: bool = True) -> SequenceData:
    """Read and validate labelled sequences (see the module docstring for the formats).

    ``require_labels=False`` accepts unlabelled files (for prediction); ``labels`` is then
    ``None`` when the file has none.
    """
    raw, name, fmt, options, sha = load_source(source, ("series", "strings"))
    label_col = label_col or options.get("label_col")
    text_col = text_col or options.get("text_col")
    if fmt == ".npz":
        seqs, labels, ids, declared = _read_npz(raw, name)
    elif fmt not in FORMATS:
        raise DataError(f"{name}: unsupported file type {fmt or '(none)'!r}; use .ts, .tsv, .csv or .npz "
                        "(optionally gzip-compressed, .gz)")
    else:
        text = decode_utf8(raw, name)
        if fmt == ".ts":
            seqs, labels, ids, declared = _read_ts(text, name)
        elif fmt == ".tsv":
            seqs, labels, ids, declared = _read_ucr_tsv(text, name)
        else:
            seqs, labels, ids, declared = _read_csv(text, name, label_col, id_col, text_col, require_labels)
    if not seqs:
        raise DataError(f"{name} holds no sequences; pass a file with data rows")
    if labels is None and require_labels:
        raise DataError(f"{name} has no class labels; training and evaluation need labelled data")
    if not isinstance(seqs[0], str):
        _check_finite(seqs, ids, name)
    return SequenceData(tuple(seqs), None if labels is None else tuple(labels), tuple(ids), name, sha, declared)


def _floats(values: list[str], where: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except ValueError:
        pass
    out = []
    for v in values:
        v = v.strip()
        if v in ("", "?", "NaN", "nan", "NA"):
            out.append(np.nan)
            continue
        try:
            out.append(float(v))
        except ValueError:
            raise DataError(f"{where}: {v[:30]!r} is not a number") from None
    return np.asarray(out, dtype=np.float64)


def _read_ts(text: str, name: str):
    header: dict[str, list[str]] = {}
    lines = text.split("\n")
    start = None
    for i, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not s.startswith("@"):
            raise DataError(f"{name}, line {i + 1}: expected '@' header lines before '@data'; is this a .ts file?")
        tag, *rest = s.split()
        if tag.lower() == "@data":
            start = i + 1
            break
        header[tag.lower()] = rest
    if start is None:
        raise DataError(f"{name} has no '@data' line; a .ts file (sktime/UEA format) lists its cases after it")
    if header.get("@timestamps", ["false"])[0].lower() == "true":
        raise DataError(f"{name} uses '@timeStamps true', which rnnkit does not read; write the values without "
                        "timestamps")
    cl = header.get("@classlabel", ["false"])
    has_labels = cl[0].lower() == "true"
    declared = (tuple(cl[1:]) or None) if has_labels else None
    seqs, labels, ids, n_dims = [], [], [], None
    for j in range(start, len(lines)):
        s = lines[j].strip()
        if not s or s.startswith("#"):
            continue
        where = f"{name}, line {j + 1}"
        parts = s.split(":")
        if has_labels:
            if len(parts) < 2 or not parts[-1].strip():
                raise DataError(f"{where}: expected the values then ':' and the class label (@classLabel true)")
            label = parts.pop().strip()
            if declared and label not in declared:
                raise DataError(f"{where}: label {label!r} is not one of the classes the header declares "
                                f"({', '.join(declared)})")
            labels.append(label)
        dims = [_floats(p.split(","), f"{where}, dimension {d + 1}") for d, p in enumerate(parts)]
        if n_dims is None:
            n_dims = len(dims)
        elif len(dims) != n_dims:
            raise DataError(f"{where}: {len(dims)} dimension(s), but earlier cases have {n_dims}; every case "
                            "needs the same dimensions")
        if len({len(a) for a in dims}) > 1:
            raise DataError(f"{where}: the dimensions have different lengths ({', '.join(str(len(a)) for a in dims)}); "
                            "every dimension of one case must have as many values (ragged dimensions)")
        seqs.append(np.stack(dims, 1))  # F x (T,) -> (T, F)
        ids.append(str(len(seqs)))
    return seqs, (labels if has_labels else None), ids, declared


def _trim_padding(x: np.ndarray) -> np.ndarray:
    """Drop trailing NaN (the padding of a shorter series); NaN further in stays, to be reported."""
    valid = np.flatnonzero(~np.isnan(x))
    return x[:valid[-1] + 1] if valid.size else x[:0]


def _read_ucr_tsv(text: str, name: str):
    seqs, labels, ids = [], [], []
    for i, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{name}, line {i + 1}: expected a label and values separated by tabs (UCR .tsv)")
        x = _trim_padding(_floats(fields[1:], f"{name}, line {i + 1}"))
        if not x.size:
            raise DataError(f"{name}, line {i + 1}: the series has no values")
        labels.append(fields[0].strip())
        seqs.append(x[:, None])  # (T,) -> (T, 1)
        ids.append(str(len(seqs)))
    return seqs, labels, ids, None


def _column(frame: pd.DataFrame, col: str | None, flag: str, name: str) -> str | None:
    if col is not None and col not in frame.columns:
        raise DataError(f"{name} has no column {col!r}; its columns are: {', '.join(map(str, frame.columns))}; "
                        f"pass {flag} with one of them")
    return col


def _read_csv(text: str, name: str, label_col, id_col, text_col, require_labels: bool):
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{name} is not a readable CSV file ({str(e).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{name} has a header but no data rows")
    if label_col is not None and label_col not in frame.columns and not require_labels:
        label_col = None  # data to predict need not carry the label column the model was trained with
    _column(frame, label_col, "--label-col", name)
    _column(frame, id_col, "--id-col", name)
    _column(frame, text_col, "--text-col", name)
    if label_col is None and "label" in frame.columns:
        label_col = "label"
    if label_col is None and require_labels:
        raise DataError(f"{name} has no column named 'label'; name the label column with --label-col "
                        f"(its columns are: {', '.join(frame.columns)})")
    if text_col is None and id_col is None and "text" in frame.columns and label_col != "text":
        text_col = "text"
    labels = None
    if label_col is not None:
        labels = [v.strip() for v in frame[label_col]]
        empty = [i for i, v in enumerate(labels) if not v]
        if empty:
            raise DataError(f"{name}, data row {empty[0] + 1}: the label ({label_col!r}) is missing")
    if text_col is not None:
        texts = list(frame[text_col])
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise DataError(f"{name}, data row {empty[0] + 1}: the text ({text_col!r}) is empty; remove the row")
        return texts, labels, [str(i + 1) for i in range(len(texts))], None
    value_cols = [c for c in frame.columns if c not in (label_col, id_col)]
    if not value_cols:
        raise DataError(f"{name} has no value columns besides the label; one column per time step (or per "
                        "feature with --id-col) is needed")
    if id_col is not None:
        return _read_long(frame, name, id_col, label_col, value_cols)
    seqs = []
    for r, row in enumerate(frame[value_cols].itertuples(index=False)):
        x = _trim_padding(_floats(list(row), f"{name}, data row {r + 1}"))
        if not x.size:
            raise DataError(f"{name}, data row {r + 1}: the series has no values")
        seqs.append(x[:, None])  # (T,) -> (T, 1)
    return seqs, labels, [str(i + 1) for i in range(len(seqs))], None


def _read_long(frame: pd.DataFrame, name: str, id_col: str, label_col, value_cols: list[str]):
    seqs, labels, ids = [], [] if label_col else None, []
    for key, rows in frame.groupby(id_col, sort=False):
        where = f"{name}, series {key!r} (data rows {rows.index[0] + 1}-{rows.index[-1] + 1})"
        if label_col:
            found = list(dict.fromkeys(v.strip() for v in rows[label_col]))
            if len(found) > 1:
                raise DataError(f"{where}: more than one label ({', '.join(found[:3])}); a series has one class")
            labels.append(found[0])
        values = rows[value_cols].to_numpy(dtype=str)
        seqs.append(np.stack([_floats(list(values[:, f]), f"{where}, column {c!r}")
                              for f, c in enumerate(value_cols)], 1))  # (T, F)
        ids.append(str(key))
    return seqs, labels, ids, None


def _read_npz(raw: bytes, name: str):
    try:
        z = np.load(io.BytesIO(raw), allow_pickle=False)
        keys = set(z.files)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{name} is not a readable .npz file ({e})") from None
    if "X" not in keys:
        raise DataError(f"{name} has no array 'X' (it has: {', '.join(sorted(keys)) or 'nothing'}); save the "
                        "series as X (N, T) or (N, T, F), the labels as y (N,)")
    try:
        X = z["X"]
    except ValueError:
        raise DataError(f"{name}: X is an object array; store variable-length series padded in one numeric "
                        "array X with their lengths in 'lengths'") from None
    if X.dtype.kind not in "fiub" or X.ndim not in (2, 3) or X.shape[0] == 0:
        raise DataError(f"{name}: X must be a non-empty numeric array (N, T) or (N, T, F); got {X.dtype} "
                        f"{X.shape}")
    X = X.astype(np.float64).reshape(X.shape[0], X.shape[1], -1)  # (N, T) -> (N, T, 1)
    N, T = X.shape[:2]
    lengths = np.full(N, T, dtype=np.int64)
    if "lengths" in keys:
        lengths = np.asarray(z["lengths"])
        if lengths.shape != (N,) or lengths.dtype.kind not in "iu" or (lengths < 1).any() or (lengths > T).any():
            raise DataError(f"{name}: lengths must be {N} integers in [1, {T}]; got {lengths.dtype} {lengths.shape}")
    labels = None
    if "y" in keys:
        y = np.asarray(z["y"])
        if y.shape != (N,):
            raise DataError(f"{name}: y must hold one label per series, shape ({N},); got {y.shape}")
        labels = [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in y.tolist()]
    seqs = [X[i, :lengths[i]] for i in range(N)]
    return seqs, labels, [str(i) for i in range(N)], None


def _check_finite(seqs: Sequence[np.ndarray], ids: Sequence[str], name: str) -> None:
    n_feat = seqs[0].shape[1]
    for x, i in zip(seqs, ids):
        if x.shape[1] != n_feat:
            raise DataError(f"{name}: series {i} has {x.shape[1]} features but the first has {n_feat}")
        bad = ~np.isfinite(x)
        if bad.any():
            t, f = np.argwhere(bad)[0]
            what = "a missing value (NaN)" if np.isnan(x[t, f]) else "an infinite value"
            dim = f", dimension {f + 1}" if n_feat > 1 else ""
            raise DataError(f"{name}: series {i} has {what} at step {t + 1}{dim}; rnnkit does not fill gaps in "
                            "classification data: drop the series or fill it (e.g. interpolate) first")


# --- labels, splits, normalisation, padding ------------------------------------------------------

def sort_labels(labels) -> tuple[str, ...]:
    """The distinct labels, numerically sorted when they are all numbers, else alphabetically."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(sorted(distinct))


def stratified_split(labels: Sequence[str], val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices, each class split in proportion (seeded).

    Every class keeps at least one training example; a class's validation share is
    ``round(n_class * val_frac)``. ``numpy.random.RandomState(seed)`` makes the split identical
    across numpy versions.
    """
    if not 0.0 <= val_frac < 1.0:
        raise ConfigError(f"val_frac must be in [0, 1); got {val_frac!r}")
    rs = np.random.RandomState(seed)
    y = np.asarray(labels)
    train, val = [], []
    for c in sort_labels(labels):
        idx = rs.permutation(np.flatnonzero(y == c))
        n_val = min(int(round(len(idx) * val_frac)), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def znormalise(seqs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each series minus its mean over time, divided by its standard deviation, per feature (the
    UCR convention). A constant feature is only centred."""
    out = []
    for x in seqs:
        mu, sd = x.mean(0, keepdims=True), x.std(0, keepdims=True)  # (1, F)
        out.append((x - mu) / np.where(sd > 1e-12, sd, 1.0))
    return out


def pad_series(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded ``X (N, T_max, F)`` and ``lengths (N,)``; the model masks the padding."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    X = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]))
    for i, s in enumerate(seqs):
        X[i, :len(s)] = s
    return X, lengths
