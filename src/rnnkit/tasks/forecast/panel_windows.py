"""A panel's windows, indexed lazily: each series' scaled rows are kept once, and a window is cut,
normalised and given its known inputs only when it trains.

A global model over 10,000 series of 200 rows trains on 1.4 million windows of lookback + horizon
rows each; held as tensors they cost windows x (lookback + horizon) x features, many times the data.
:class:`PanelWindows` keeps instead what the windows are made of, :class:`PanelRows` (every series'
scaled values and known inputs, float64, one concatenated array each, plus where each series
starts), and a few numbers per series (its first window's target row and window count), so a
window's index maps to its rows by arithmetic, and builds the windows of any indices on demand
(:meth:`PanelWindows.take`): the same rows, per-window normalisation, naive-skip targets and
network input as the windows of each series made at once (:func:`~.predict.windows_for`,
:meth:`~.normalise.WindowNorm.encode`, :func:`~.known.model_input`), in the same float64
arithmetic window by window, then cast to the network's dtype, so a gathered window equals the
materialised one exactly. The values stay float64 (the data's own size, 8 bytes a value) for that
reason: a float32 copy would save half the data's bytes and change the windows' normalisation in
its last bits.

Training reads them through :class:`rnnkit.training.examples.LazyExamples`: each epoch's order
(:func:`rnnkit.training.loop.epoch_order`, balanced sampling included: the windows lie series by
series, as the groups say) is gathered a chunk of whole batches at a time and trained, so peak
memory is the data plus one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ...training.examples import LazyExamples
from .known import model_input
from .normalise import WindowNorm

__all__ = ["PanelRows", "PanelWindows"]


@dataclass(frozen=True, eq=False)
class PanelRows:
    """Every series' rows, stacked: ``values (R, F)`` (scaled, every column of the series),
    ``known (R, K)`` (its known inputs in the network's units, None without) and ``offsets (S + 1,)``:
    series k's rows are ``offsets[k]:offsets[k + 1]``."""

    values: np.ndarray
    known: np.ndarray | None
    offsets: np.ndarray

    @classmethod
    def stack(cls, values: Sequence[np.ndarray], known: Sequence[np.ndarray] | None = None) -> "PanelRows":
        lengths = [len(v) for v in values]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        stacked = np.concatenate([np.asarray(v, dtype=np.float64) for v in values])  # (R, F)
        rows = None if known is None else np.concatenate([np.asarray(k, dtype=np.float64) for k in known])  # (R, K)
        return cls(stacked, rows, offsets)


class PanelWindows(LazyExamples):
    """The windows of one part ("train" or "val") of every series, series by series and, within a
    series, by target row: those whose targets lie in rows ``[lo, hi)`` of series k for each
    ``bounds[k] = (lo, hi)``, every ``stride`` rows (as :func:`~.predict.windows_for` cuts them;
    the context may reach back before ``lo``). :meth:`take` gives ``(inputs, targets)`` tensors in the
    network's units and ``dtype``: ``(W, L or L + H, features)`` and ``(W, H, C)``."""

    def __init__(self, rows: PanelRows, bounds: Sequence[tuple[int, int]], stride: int, lookback: int, horizon: int,
                 n_targets: int, n_values: int, recursive: bool, norm: WindowNorm,
                 dtype: torch.dtype = torch.float32, chunk: int = LazyExamples.chunk,
                 seasons: np.ndarray | None = None) -> None:
        self.rows, self.stride, self.lookback, self.horizon = rows, int(stride), int(lookback), int(horizon)
        self.n_targets, self.n_values, self.recursive, self.norm = n_targets, n_values, recursive, norm
        self.dtype, self.chunk = dtype, int(chunk)
        self.seasons = None if seasons is None else np.asarray(seasons, dtype=np.int64)  # (S,) each series' season
        self._np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        L, H = self.lookback, self.horizon
        # window w of a series starts its context at row max(0, lo - L) + w * stride (make_windows)
        firsts = [max(0, lo - L) for lo, _ in bounds]
        counts = np.array([len(range(f, hi - L - H + 1, self.stride)) for f, (_, hi) in zip(firsts, bounds)],
                          dtype=np.int64)
        self.counts = counts  # (S,): each series' windows (0: none)
        self._ends = np.cumsum(counts)  # window j belongs to the first series whose end is above j
        self._begins = self._ends - counts
        self._target0 = rows.offsets[:-1] + np.asarray(firsts, dtype=np.int64) + L  # stacked row of its first target

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def sizes(self) -> tuple[int, ...]:
        """The window count of each series that has windows, in order (balanced sampling's groups)."""
        return tuple(int(c) for c in self.counts if c)

    def target_rows(self, idx) -> np.ndarray:
        """The stacked row (in :attr:`rows`) of each window's first target."""
        return self._locate(idx)[1]

    def _locate(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """Each window's series and the stacked row of its first target, ``(W,)`` each."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise IndexError(f"window indices must lie in [0, {len(self)}); got {int(idx.min())}..{int(idx.max())}")
        k = np.searchsorted(self._ends, idx, side="right")  # (W,) the series of each window
        return k, self._target0[k] + (idx - self._begins[k]) * self.stride

    def take(self, idx) -> tuple[Tensor, Tensor]:
        idx = idx.numpy() if isinstance(idx, Tensor) else idx
        k, t = self._locate(idx)  # (W,) each
        L, H, C = self.lookback, self.horizon, self.n_targets
        X = self.rows.values[t[:, None] - L + np.arange(L)]  # (W, L, F), as make_windows cuts it
        Y = self.rows.values[:, :C][t[:, None] + np.arange(H)]  # (W, H, C)
        known = None if self.rows.known is None else self.rows.known[t[:, None] - L + np.arange(L + H)]  # (W, L + H, K)
        if self.norm.active:
            X, Y = self.norm.encode(X, Y, None if self.seasons is None else self.seasons[k])
        x = model_input(X, known, self.n_values, self.recursive).astype(self._np_dtype, copy=False)
        return torch.from_numpy(x), torch.from_numpy(np.asarray(Y).astype(self._np_dtype, copy=False))
