"""One fit per series of a panel (``SweepConfig(per_series=True)``, ``rnnkit sweep --per-series``).

The data is a long-format panel (``DataConfig.id_col``). Before any job trains, the sweep writes
each series' rows of the panel file as a table of its own, ``SWEEPDIR/series/series-NNN.csv`` (NNN:
the series' position in the panel, in order of first appearance; the panel file's format, the id
column and the static covariates left out, every other cell as it was). Each job then fits one
series alone: an ordinary single-series run whose data is that file, so ``rnnkit evaluate --run
SWEEPDIR/job-000`` and every other command read it as any run, and its weights are the bytes a
``rnnkit fit`` of that file writes.

A job's settings hold the series' id under :data:`SERIES` (the leaderboard's ``series`` column),
before the grid's values; the jobs are every series times every combination of the grid (an
empty grid: one job per series), the series varying slowest. A series that cannot be fitted (too
short for the lookback and horizon, ...) is a failed row, as any job's failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...errors import ConfigError
from ...training.atomic import write_file_atomic
from ..forecast.config import DataConfig

__all__ = ["SERIES", "SERIES_DIR", "series_ids", "series_files", "write_series", "single_series"]

#: the key of a per-series job's settings that holds its series' id
SERIES = "series"
#: the folder of a sweep directory that holds the series' tables
SERIES_DIR = "series"
#: grid keys a per-series sweep refuses: they choose the panel and how its series are read
_PANEL_KEYS = ("source", "id_col", "time_col", "targets", "covariates", "future_covariates", "static_covariates",
               "fill", "sampling", "id_embedding")


def _check(dc: DataConfig, grid: Mapping[str, Any]) -> None:
    if dc.id_col is None:
        raise ConfigError("--per-series fits each series of a panel alone: pass --id-col COL (the column of series "
                          "ids of a long-format panel file)")
    if dc.static_covariates or dc.id_embedding or dc.sampling != "proportional":
        raise ConfigError("--static-covariates, --id-embedding and --sampling tell series apart in one global model; "
                          "a --per-series job fits one series alone: drop them")
    swept = next((k for k in grid if k in _PANEL_KEYS), None)
    if swept is not None:
        raise ConfigError(f"a --per-series sweep reads the panel once, so its grid cannot set {swept}; give it as a "
                          "setting every job shares")


def series_ids(dc: DataConfig, grid: Mapping[str, Any]) -> tuple[str, ...]:
    """The panel's series ids, in order of first appearance; the panel is read and validated here
    (a missing file or column, a series with a non-numeric value is refused before any job)."""
    from ..forecast.panel_run import load_panel
    _check(dc, grid)
    return load_panel(dc).ids


def series_files(out: Path, dc: DataConfig, ids: tuple[str, ...]) -> dict[str, str]:
    """Each series' table (absolute path) in the sweep directory ``out``, by id."""
    suffix = Path(dc.source).suffix.lower()
    width = max(3, len(str(len(ids) - 1)))
    return {sid: str((out / SERIES_DIR / f"series-{k:0{width}d}{suffix}").absolute()) for k, sid in enumerate(ids)}


def write_series(dc: DataConfig, files: Mapping[str, str]) -> None:
    """Write each series' rows of the panel ``dc.source`` to its file (``files``: id -> path), each
    atomically. The rows are split as the panel reader splits them (the id's text, stripped)."""
    from ...data.sources import read_table
    raw, _ = read_table(dc.source)
    keys = raw[dc.id_col].astype(str).str.strip()
    body = raw.drop(columns=[dc.id_col])
    rows = body.groupby(keys.to_numpy(), sort=False).indices
    for sid, path in files.items():
        _write_table(body.iloc[rows[sid]], Path(path))


def _write_table(table, path: Path) -> None:
    def write(p: Path) -> None:
        if path.suffix in (".parquet", ".pq"):
            table.to_parquet(p, index=False)
        else:
            table.to_csv(p, index=False, sep="\t" if path.suffix == ".tsv" else ",")
    write_file_atomic(path, write)


def single_series(dc: DataConfig, source: str) -> DataConfig:
    """The data settings of one series' job: the panel's, reading the series' own table."""
    return dc.replace(source=source, id_col=None)
