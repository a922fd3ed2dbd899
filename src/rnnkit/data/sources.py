"""Where data come from: a file (CSV, TSV, Parquet, .ts, text...) or ``builtin:NAME``.

The jobs' front doors are here: :func:`read_series` (a series for forecasting) and
:func:`load_source` (the bytes of a sequence set or a text, for the classify and text jobs'
readers). Data come only from regular files of a size that fits in memory
(:func:`read_data_file`, :func:`gunzip_limited`): a FIFO, ``/dev/zero`` or a 1 TB file would hang
or exhaust memory. Built-ins are resolved by :mod:`rnnkit.data.builtin`; a series' validation is
:mod:`rnnkit.data.series`.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..errors import DataError
from .builtin import get_corpus, list_corpora, load_builtin, read_corpus_bytes
from .series import Fill, SeriesData, series_from_frame

__all__ = ["read_series", "read_table", "load_source", "decode_utf8", "read_data_file", "gunzip_limited",
           "max_file_bytes", "physical_memory", "gib"]

_READERS = {".csv": ",", ".tsv": "\t", ".parquet": None, ".pq": None}
_GIB = 1 << 30


def read_series(
    source: str | Path,
    target: str | Sequence[str] | None = None,
    time_col: str | None = None,
    covariates: Sequence[str] = (),
    fill: Fill = None,
) -> SeriesData:
    """Read a CSV, TSV or Parquet file (or ``"builtin:NAME"``) and validate it.

    Args:
        source: a path ending in .csv, .tsv, .parquet or .pq, or ``"builtin:NAME"``
            (see :func:`rnnkit.data.builtin.list_builtins`; a builtin's own target and time column are the defaults).
        target: column(s) to forecast. None picks the only numeric column that is neither the
            time column nor a covariate, and fails if there is not exactly one.
        time_col: a column of dates; it becomes the index and is checked for parse errors,
            duplicates, order and gaps (against the frequency of the most common step).
        covariates: extra numeric input columns.
        fill: None (missing values and gaps are errors), ``"ffill"`` or ``"interpolate"``
            (gaps in a regular time index are inserted, then filled). Infinite values count as
            missing.

    Returns:
        SeriesData with frame columns = targets then covariates, all float64.

    Raises:
        DataError: the file or its contents are unusable; the message says what to change.
        ConfigError: ``fill`` is not one of the allowed values.
    """
    text = str(source)
    if text.startswith("builtin:"):
        return load_builtin(text.removeprefix("builtin:"), target=target, time_col=time_col,
                             covariates=covariates, fill=fill)
    raw, sha256 = read_table(source, builtin=True)
    return series_from_frame(raw, target, time_col, covariates, fill, source=text, sha256=sha256)


def read_table(source: str | Path, builtin: bool = False) -> tuple[pd.DataFrame, str]:
    """A CSV, TSV or Parquet file's table, unvalidated (CSV/TSV cells kept as strings), and the
    SHA-256 of its bytes. ``builtin`` says that ``builtin:NAME`` is an alternative (for the message).

    Raises:
        DataError: the file is missing, unreadable, of another type or not a table.
    """
    text = str(source)
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise DataError(f"{text}: unsupported file type {suffix or '(none)'!r}; "
                        f"use one of {', '.join(_READERS)}" + (" or 'builtin:NAME'" if builtin else ""))
    if not path.exists():
        raise DataError(f"{text}: file not found; check the path (relative paths start at "
                        f"{Path.cwd()})")
    try:  # a FIFO, a device or a file larger than memory is refused before reading
        raw_bytes = read_data_file(path, text)
    except OSError as exc:  # a directory, no permission, ...
        raise DataError(f"{text}: cannot read the file ({exc.strerror or exc})") from exc
    return _parse_table(raw_bytes, suffix, text), hashlib.sha256(raw_bytes).hexdigest()


def _parse_table(raw_bytes: bytes, suffix: str, label: str) -> pd.DataFrame:
    """Bytes of a file -> a raw DataFrame (CSV/TSV cells kept as strings)."""
    if not raw_bytes.strip():
        raise DataError(f"{label}: the file is empty; it needs a header row and data rows")
    sep = _READERS[suffix]
    try:
        if sep is None:
            return pd.read_parquet(io.BytesIO(raw_bytes), engine="pyarrow")
        return pd.read_csv(io.BytesIO(raw_bytes), sep=sep, dtype=str, encoding="utf-8-sig")
    except ImportError as exc:
        raise DataError(f"{label}: reading Parquet needs pyarrow; install it with "
                        f"`pip install rnnkit[parquet]` or convert the file to CSV") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                        f"save the file as UTF-8") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{label}: no columns found; the file needs a header row") from exc
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{label}: cannot parse the file ({first_line}); check that it is a "
                        f"valid {suffix.lstrip('.').upper()} file") from exc


def load_source(source: str | Path, kinds: tuple[str, ...]) -> tuple[bytes, str, str, dict, str]:
    """``(bytes, display name, format suffix, built-in reader options, sha256)`` of a file or built-in.

    gzip files are decompressed; missing, empty and unreadable files raise :class:`DataError`.
    """
    source = str(source)
    options: dict = {}
    if source.startswith("builtin:"):
        corpus = get_corpus(source[len("builtin:"):], kinds)
        raw, name, fname, options = read_corpus_bytes(corpus), source, corpus.file, corpus.options
    else:
        path = Path(source)
        if not path.exists():
            shown = ", ".join(f"builtin:{c.name}" for c in list_corpora() if c.kind in kinds)
            raise DataError(f"file {source} does not exist; check the path, or use a built-in set ({shown})")
        if path.is_dir():
            raise DataError(f"{source} is a directory; pass a data file")
        try:  # a FIFO, a device or a file larger than memory is refused before reading
            raw = read_data_file(path, source)
        except OSError as e:
            raise DataError(f"cannot read {source}: {e.strerror}") from None
        name, fname = source, path.name
    sha = hashlib.sha256(raw).hexdigest()
    if fname.lower().endswith(".gz"):
        try:
            raw = gunzip_limited(raw, name)  # a small file may expand without bound
        except (OSError, EOFError) as e:
            raise DataError(f"{name} ends in .gz but is not a readable gzip file ({e})") from None
        fname = fname[:-3]
    if not raw.strip():
        raise DataError(f"{name} is empty{' (only whitespace)' if raw else ''}; pass a file with data")
    return raw, name, Path(fname).suffix.lower(), options, sha


def decode_utf8(raw: bytes, name: str) -> str:
    """``raw`` as text (UTF-8, a BOM allowed), newlines normalised to ``\\n``."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{name} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                        "re-save it as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- regular files of a bounded size --------------------------------------------------------------

def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the OS does not say."""
    try:
        n = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return n if n > 0 else None


def gib(n: float) -> str:
    """``n`` bytes in GiB, for messages."""
    return f"{n / _GIB:.3g} GiB"


def max_file_bytes() -> int:
    """The largest data file rnnkit reads: a quarter of physical memory (parsing a table takes
    several times the file's size), or 4 GiB where the machine's memory is unknown."""
    ram = physical_memory()
    return ram // 4 if ram else 4 * _GIB


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory")):
        if test(mode):
            return name
    return "special file"


def read_data_file(path: str | os.PathLike, label: str | None = None) -> bytes:
    """The bytes of a data file, refusing (:class:`DataError`) anything but a regular file of at
    most :func:`max_file_bytes`; checked before reading, so a FIFO or ``/dev/zero`` never blocks
    or fills memory. Links are followed. ``OSError`` of a missing or unreadable file propagates
    (callers word those messages)."""
    label = label or str(path)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{label} is a {_kind(st.st_mode)}, not a regular file; rnnkit reads data only from "
                        "files: save the data to a file and pass its path")
    limit = max_file_bytes()
    if st.st_size > limit:
        raise DataError(f"{label} is {gib(st.st_size)}, larger than the {gib(limit)} rnnkit reads at once (a "
                        "quarter of this machine's memory: parsing takes several times the file's size); "
                        "use a sample or a shorter span of the data")
    with open(path, "rb") as f:
        raw = f.read(limit + 1)  # a file that grows while it is read still stops at the limit
    if len(raw) > limit:
        raise DataError(f"{label} grew past {gib(limit)} while it was read; pass a file that is not being written")
    return raw


def gunzip_limited(raw: bytes, label: str) -> bytes:
    """``raw`` decompressed, refusing (:class:`DataError`) more than :func:`max_file_bytes` of output
    (a small compressed file can expand without bound). ``OSError``/``EOFError`` of a damaged
    file propagate."""
    import gzip
    limit = max_file_bytes()
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
        out = f.read(limit + 1)
    if len(out) > limit:
        raise DataError(f"{label} decompresses to more than {gib(limit)}, larger than rnnkit reads at once (a "
                        "quarter of this machine's memory); use a sample of the data")
    return out
