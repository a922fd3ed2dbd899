"""Built-in data for the ``classify`` and ``text`` jobs (files shipped in this folder), and
:func:`load_source`, which reads a data file or a built-in as bytes for both jobs' readers.

Nothing is downloaded at run time. Where each file comes from and its licence are in
``SOURCES.md`` beside this module. Use them as ``builtin:NAME`` wherever a file is accepted::

    rnnkit classify fit builtin:ItalyPowerDemand_TRAIN --test builtin:ItalyPowerDemand_TEST --out runs/ipd
    rnnkit text fit builtin:pydocs --out runs/pydocs
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..checks import gunzip_limited, read_data_file
from ..errors import DataError

__all__ = ["Corpus", "CORPORA", "list_corpora", "get_corpus", "read_corpus_bytes", "load_source", "decode_utf8"]


@dataclass(frozen=True)
class Corpus:
    """One built-in file. ``kind``: ``"series"`` (labelled time series), ``"strings"`` (labelled
    strings) or ``"text"`` (a text for a language model). ``options``: the reader settings it needs."""

    name: str
    file: str
    kind: str
    description: str
    licence: str
    options: dict = field(default_factory=dict)


_UCR = "UCR/UEA archive via sktime 1.2.0 (BSD-3-Clause); cite the archive, see SOURCES.md"
CORPORA: dict[str, Corpus] = {c.name.lower(): c for c in [
    Corpus("ItalyPowerDemand_TRAIN", "ItalyPowerDemand_TRAIN.ts", "series",
           "67 daily electricity-demand curves of Italy (24 hourly values), 2 classes (winter/summer)", _UCR),
    Corpus("ItalyPowerDemand_TEST", "ItalyPowerDemand_TEST.ts", "series",
           "the 1029 test curves of ItalyPowerDemand", _UCR),
    Corpus("JapaneseVowels_TRAIN", "JapaneseVowels_TRAIN.ts.gz", "series",
           "270 utterances, 12 LPC cepstrum coefficients, 7-29 steps, 9 speakers", _UCR),
    Corpus("JapaneseVowels_TEST", "JapaneseVowels_TEST.ts.gz", "series",
           "the 370 test utterances of JapaneseVowels", _UCR),
    Corpus("surnames", "surnames.csv", "strings",
           "3,122 surnames in Latin script labelled with 11 languages (from Faker, MIT)",
           "MIT (Faker 40.54.0); see SOURCES.md", {"text_col": "name", "label_col": "language"}),
    Corpus("pydocs", "pydocs.txt", "text",
           "201 KB of Python 3.11 standard-library docstrings (English prose and code)",
           "PSF License Version 2; see SOURCES.md"),
    Corpus("zen", "zen.txt", "text", "The Zen of Python (857 characters)", "PSF License Version 2"),
]}


def list_corpora(kind: str | None = None) -> list[Corpus]:
    """The built-in files, optionally only those of one ``kind``."""
    return [c for c in CORPORA.values() if kind is None or c.kind == kind]


def get_corpus(name: str, kinds: tuple[str, ...]) -> Corpus:
    """The built-in ``name`` (case-insensitive), which must be of one of ``kinds``."""
    c = CORPORA.get(name.lower())
    if c is None or c.kind not in kinds:
        names = ", ".join(f"builtin:{c.name}" for c in CORPORA.values() if c.kind in kinds)
        raise DataError(f"no built-in {' or '.join(kinds)} data named {name!r}; choose one of {names}")
    return c


def read_corpus_bytes(corpus: Corpus) -> bytes:
    """The raw bytes of a built-in file (still gzip-compressed for ``.gz`` files)."""
    return resources.files(__name__).joinpath(corpus.file).read_bytes()


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
