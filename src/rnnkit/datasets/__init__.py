"""Where series come from: files (CSV, TSV, Parquet) and the builtin collection.

``rnnkit.data`` re-exports everything here; import from there in ordinary code::

    from rnnkit.data import read_series, list_builtins
    nile = read_series("builtin:nile")          # 100 rows, target "volume", index "year"
    own = read_series("sales.csv", target="units", time_col="date", fill="interpolate")

Modules: ``_read`` (parsing and validation, SeriesData) and ``_builtin`` (the builtin series;
their CSV files and SOURCES.md live in this folder).
"""

from ._builtin import BuiltinInfo, list_builtins, load_builtin
from ._read import SeriesData, read_series, series_from_frame

__all__ = [
    "SeriesData", "read_series", "series_from_frame", "BuiltinInfo", "list_builtins",
    "load_builtin",
]
