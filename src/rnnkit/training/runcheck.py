"""Checking every file of a run directory before anything is built from it.

A run directory may be damaged (a truncated copy, a full disk, a hand edit) or hostile. Loading
one must then fail with one :class:`~rnnkit.errors.RunError` naming the file and the problem,
never with a traceback, a hang, an exhausted memory or a silently different model. So the
loaders (:func:`rnnkit.tasks.forecast.run.load_forecast_run`, :func:`rnnkit.tasks.classify.run.load_classifier_run`,
:func:`rnnkit.tasks.text.run.load_text_run`) go through one :class:`RunCheck`, in this order:

1. every JSON file is read with a size limit, as strict UTF-8 JSON (no NaN/Infinity, no
   duplicate keys, no nesting deeper than the interpreter can parse);
2. config.json: every section the writer wrote, every key of it, with the right JSON type, and
   the values valid for its dataclass; ``meta`` and ``shapes`` against the tables below, and
   the sections against each other;
3. scaler.json / labels.json / vocab.json against the config;
4. weights.safetensors: its header is parsed here (nothing is unpickled, no tensor is read),
   the sizes the config asks for are bounded by what the file actually holds, the model the
   config describes is built on the ``meta`` device (shapes only, no memory), and the file's
   tensor names, dtypes and shapes must equal that model's state_dict exactly; only then are
   the tensors read (and must be finite) and the real model built;
5. history.csv and metrics.json are reports, not needed to use a run: when one is damaged it is
   ignored with an :class:`~rnnkit.errors.RnnkitWarning`, and loading goes on.

Files are read through :meth:`RunCheck.open`, the one place that touches the directory. What the
files may hold (the config's tables, JSON types, strict JSON) is :mod:`rnnkit.training.runschema`.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import stat
import struct
import typing
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable, NoReturn

import torch

from ..data.scaler import Scaler
from ..data.vocab import CharVocab
from ..errors import ConfigError, RnnkitError, RnnkitWarning, RunError
from .loop import History
from .runschema import META, RUN_DTYPES, SHAPES, conforms, describe, field_spec, show, strict_json

__all__ = ["RunCheck", "MAX_JSON_BYTES", "MAX_HEADER_BYTES", "MAKE", "USE"]

#: the largest JSON file of a run rnnkit reads (config.json of a classifier keeps the validation
#: indices, about 8 bytes per series; vocabularies and metrics are far smaller)
MAX_JSON_BYTES = 64 << 20
#: the largest safetensors header (the safetensors library's own limit)
MAX_HEADER_BYTES = 100 << 20
#: how each kind of run is made and used, for messages
MAKE = {"forecast": "rnnkit fit", "panel": "rnnkit fit --id-col COL", "classify": "rnnkit classify fit", "text": "rnnkit text fit"}
USE = {"forecast": "rnnkit forecast/evaluate/backtest", "panel": "rnnkit forecast/evaluate", "classify": "rnnkit classify predict/evaluate",
       "text": "rnnkit text generate/evaluate/suggest"}
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
             "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_CODE = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
         torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL", torch.uint8: "U8"}

class RunCheck:
    """The checks of one run directory ``d`` of ``kind``; each failure is a :class:`RunError`
    ``"<file>: <problem>; <what to do>"`` on one line."""

    def __init__(self, d: Path, kind: str) -> None:
        self.d, self.kind = Path(d), kind

    def fail(self, name: str, problem: str) -> NoReturn:
        err = RunError(f"{self.d / name}: {problem}; the run directory is damaged or was not written by "
                       f"rnnkit, re-run `{MAKE.get(self.kind, 'rnnkit fit')}` to make it again")
        err.problem = f"{self.d / name}: {problem}"  # what reports() warns about
        raise err

    # --- reading --------------------------------------------------------------------------------
    def open(self, name: str, limit: int | None = None) -> tuple[BinaryIO, int]:
        """``(binary file, size)`` of ``name``, a regular file of at most ``limit`` bytes."""
        path = self.d / name
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
        except FileNotFoundError:
            self.fail(name, "is missing")
        except OSError as e:
            self.fail(name, f"cannot be opened ({e.strerror})")
        st = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(st.st_mode):
            problem = f"is {'a directory' if stat.S_ISDIR(st.st_mode) else 'not a regular file'}, where rnnkit " \
                      "wrote a file"
        elif limit is not None and st.st_size > limit:
            problem = f"is {st.st_size} bytes, more than the {limit} bytes rnnkit reads for it"
        if problem:
            os.close(fd)
            self.fail(name, problem)
        return os.fdopen(fd, "rb"), st.st_size

    def read(self, name: str, limit: int = MAX_JSON_BYTES) -> bytes:
        f, _ = self.open(name, limit)
        try:
            with f:
                return f.read(limit + 1)
        except OSError as e:
            self.fail(name, f"cannot be read ({e.strerror})")

    def json(self, name: str, raw: bytes | None = None) -> Any:
        """The strict JSON content of ``name`` (``raw``: its bytes, already read)."""
        raw = self.read(name) if raw is None else raw
        try:
            return strict_json(raw)
        except UnicodeDecodeError as e:
            self.fail(name, f"is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})")
        except RecursionError:
            self.fail(name, "nests objects more deeply than any file rnnkit writes")
        except ValueError as e:  # JSONDecodeError, the rejections above, integers too long to parse
            self.fail(name, f"is not valid JSON ({str(e).splitlines()[0]})")

    # --- config.json ----------------------------------------------------------------------------
    def entries(self, config: dict, section: str, spec: dict[str, str], exact: bool = True) -> dict:
        """``config[section]`` with the keys and types of ``spec`` (more keys only if not ``exact``);
        ``section=""`` checks the top level."""
        d = config.get(section) if section else config
        where = f"the {section!r} section" if section else "the file"
        if not isinstance(d, dict):
            self.fail("config.json", f"lacks the {section!r} section" if d is None else
                      f"{where} must be a JSON object, not {show(d)}")
        missing = [k for k in spec if k not in d]
        if missing:
            self.fail("config.json", f"{where} lacks {', '.join(map(repr, missing))}")
        extra = [k for k in d if k not in spec]
        if exact and extra:
            self.fail("config.json", f"{where} has unknown key(s) {', '.join(map(repr, extra))}")
        for k, s in spec.items():
            if not conforms(d[k], s):
                self.fail("config.json", f"{k!r} in {where} must be {describe(s)}, not {show(d[k])}")
        return d

    def section(self, config: dict, section: str, cls: type) -> Any:
        """``cls.from_dict(config[section])`` after checking every field's presence and JSON type."""
        hints = typing.get_type_hints(cls)
        spec = {f.name: field_spec(hints[f.name]) for f in dataclasses.fields(cls)}
        d = self.entries(config, section, spec)
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            self.fail("config.json", f"the {section!r} section: {e}")

    def sections(self, config: dict, classes: dict[str, type]) -> tuple[dict[str, Any], dict, dict]:
        """The dataclass sections, ``meta`` and ``shapes`` of ``config``, every key checked."""
        objs = {name: self.section(config, name, cls) for name, cls in classes.items()}
        meta = self.entries(config, "meta", META[self.kind], exact=False)
        shapes = self.entries(config, "shapes", SHAPES[self.kind])
        if meta["dtype"] not in RUN_DTYPES:
            self.fail("config.json", f"meta.dtype is {show(meta['dtype'])}, not a dtype rnnkit models have "
                                     f"({', '.join(RUN_DTYPES)})")
        bad = [k for k, v in shapes.items() if v is not None and v < 0]
        if bad:
            self.fail("config.json", f"shapes.{bad[0]} is negative ({shapes[bad[0]]})")
        return objs, meta, shapes

    def agree(self, ok: bool, name: str, problem: str) -> None:
        """Fail with ``problem`` about ``name`` unless ``ok``."""
        if not ok:
            self.fail(name, problem)

    # --- the other files ------------------------------------------------------------------------
    def scaler(self, columns: int):
        """scaler.json as a fitted :class:`~rnnkit.data.scaler.Scaler` of ``columns`` columns."""
        try:
            scaler = Scaler.from_dict(self.json("scaler.json"))
        except ConfigError as e:
            self.fail("scaler.json", str(e))
        self.agree(len(scaler.offset) == columns, "scaler.json",
                   f"scales {len(scaler.offset)} column(s), the config's model reads {columns}")
        return scaler

    def vocab(self, size: int):
        """vocab.json as a :class:`~rnnkit.data.vocab.CharVocab` of ``size`` characters."""
        try:
            vocab = CharVocab.from_dict(self.json("vocab.json"))
        except ConfigError as e:
            self.fail("vocab.json", str(e))
        self.agree(len(vocab) == size, "vocab.json",
                   f"lists {len(vocab)} characters, config.json shapes.vocab_size says {size}")
        return vocab

    def labels(self, n_classes: int) -> tuple[str, ...]:
        """labels.json's classes: ``n_classes`` distinct strings."""
        d = self.json("labels.json")
        classes = d.get("classes") if isinstance(d, dict) else None
        if not isinstance(d, dict) or set(d) != {"classes"} or not conforms(classes, "list[str]"):
            self.fail("labels.json", 'must be {"classes": [one string per class]}')
        self.agree(len(set(classes)) == len(classes), "labels.json", "lists a class twice")
        self.agree(len(classes) == n_classes, "labels.json",
                   f"lists {len(classes)} classes, config.json shapes.n_classes (the head's outputs) says {n_classes}")
        return tuple(classes)

    # --- weights.safetensors ----------------------------------------------------------------------
    def _header(self, f: BinaryIO, size: int) -> dict[str, tuple[str, tuple[int, ...]]]:
        """``{name: (dtype code, shape)}`` of a safetensors file, every offset checked against ``size``."""
        name = "weights.safetensors"
        if size < 8:
            self.fail(name, f"is {'empty' if size == 0 else f'{size} bytes long'}, not a safetensors file")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > min(size - 8, MAX_HEADER_BYTES):
            self.fail(name, f"declares a {n}-byte header in a {size}-byte file: it is truncated or not "
                            "a safetensors file")
        try:
            header = strict_json(f.read(n))
        except (ValueError, RecursionError):
            self.fail(name, "has no valid safetensors header (not a safetensors file, or damaged)")
        if not isinstance(header, dict):
            self.fail(name, "has no valid safetensors header (not a safetensors file, or damaged)")
        header.pop("__metadata__", None)
        out, spans = {}, []
        for key, e in header.items():
            ok = (isinstance(e, dict) and set(e) == {"dtype", "shape", "data_offsets"} and e["dtype"] in _ITEMSIZE
                  and conforms(e["shape"], "list[int]") and all(s >= 0 for s in e["shape"])
                  and conforms(e["data_offsets"], "list[int]") and len(e["data_offsets"]) == 2)
            if not ok:
                self.fail(name, f"the header entry of tensor {key!r} is malformed")
            begin, end = e["data_offsets"]
            if end - begin != math.prod(e["shape"]) * _ITEMSIZE[e["dtype"]] or begin < 0:
                self.fail(name, f"tensor {key!r} has {end - begin} bytes of data for shape {e['shape']} "
                                f"of {e['dtype']}")
            out[key] = (e["dtype"], tuple(e["shape"]))
            spans.append((begin, end))
        pos = 0
        for begin, end in sorted(spans):  # the tensors tile the data area, as every writer lays them out
            if begin != pos:
                self.fail(name, "the header's tensors overlap or leave gaps: it is damaged")
            pos = end
        if pos != size - 8 - n:
            self.fail(name, f"holds {size - 8 - n} bytes of tensor data where its header describes {pos}: "
                            "it is truncated or damaged")
        return out

    def weights(self, build: Callable[[], torch.nn.Module], dtype: str, layers: int,
                sizes: dict[str, int]) -> torch.nn.Module:
        """The model ``build()`` makes, in ``dtype``, with the weights of weights.safetensors.

        ``layers`` (layers x directions) and ``sizes`` (named widths and counts from the config)
        are bounded by the file first: each layer owns at least one tensor, each size at least
        one value, so a config asking for more describes a model the file cannot hold and is
        refused before anything is built. The model is then built on the ``meta`` device, which
        allocates nothing, to compare the file with its state_dict.
        """
        name = "weights.safetensors"
        f, size = self.open(name)
        with f:
            header = self._header(f, size)
            n_values = sum(math.prod(s) for _, s in header.values())
            if layers > len(header):
                self.fail("config.json", f"describes {layers} recurrent layers (x directions), but {name} holds "
                                         f"only {len(header)} tensors")
            for what, v in sizes.items():
                if v > n_values:
                    self.fail("config.json", f"asks for {what} {v}, but {name} holds only {n_values} values in all")
            try:
                with torch.device("meta"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the real build below warns where it should
                    expected = build().to(getattr(torch, dtype)).state_dict()
            except (RnnkitError, RuntimeError, ValueError, OverflowError, TypeError) as e:
                self.fail("config.json", f"describes a model rnnkit cannot build ({str(e).splitlines()[0]})")
            missing = [k for k in expected if k not in header]
            extra = [k for k in header if k not in expected]
            if missing or extra:
                self.fail(name, "does not match the model config.json describes: " + "; ".join(
                    f"{what} {', '.join(ks[:4])}{' ...' if len(ks) > 4 else ''}"
                    for what, ks in (("lacks", missing), ("has extra tensor(s)", extra)) if ks))
            for k, t in expected.items():
                code, shape = header[k]
                if code != _CODE.get(t.dtype):
                    self.fail(name, f"tensor {k} is {code}, but the run's dtype is {dtype} ({_CODE.get(t.dtype)})")
                if shape != tuple(t.shape):
                    self.fail(name, f"tensor {k} has shape {list(shape)}, where the model config.json "
                                    f"describes needs {list(t.shape)}")
            f.seek(0)
            raw = f.read()
        from safetensors.torch import load
        try:
            tensors = load(raw)
        except Exception as e:  # noqa: BLE001 - SafetensorError has no importable base; the header was valid
            self.fail(name, f"could not be read ({type(e).__name__}: {str(e).splitlines()[0]})")
        for k, t in tensors.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                self.fail(name, f"tensor {k} holds NaN or infinite values")
        model = build().to(getattr(torch, dtype))
        model.load_state_dict(tensors)
        return model.eval()

    # --- history.csv and metrics.json -----------------------------------------------------------
    def reports(self):
        """``(History or None, metrics dict or None)``; a damaged one is ignored with a warning."""
        import pandas as pd
        history = metrics = None
        columns = ["epoch", "steps", "train_loss", "val_loss", "lr"]
        older = [c for c in columns if c != "steps"]  # runs before the steps column; before timing.csv: "seconds" too
        if os.path.lexists(self.d / "history.csv"):
            try:
                frame = self._numeric_csv("history.csv", (columns, older, older + ["seconds"]))
                history = History.from_frames(frame)
            except (RunError, ValueError, TypeError, OverflowError) as e:
                self._ignored("history.csv", e)
        if history is not None and os.path.lexists(self.d / "timing.csv"):
            try:
                history = History.from_frames(frame, self._numeric_csv("timing.csv", (["epoch", "seconds"],)))
            except (RunError, ValueError, TypeError, OverflowError) as e:
                self._ignored("timing.csv", e)
        if os.path.lexists(self.d / "metrics.json"):
            try:
                metrics = self.json("metrics.json")
                if not isinstance(metrics, dict):
                    raise ValueError("it is not a JSON object")
            except (RunError, ValueError) as e:
                metrics = None
                self._ignored("metrics.json", e)
        return history, metrics

    def _numeric_csv(self, name: str, allowed: tuple[list[str], ...]):
        import pandas as pd
        # the values written (repr, shortest round-tripping) must read back bit for bit: pandas 3's default
        # parser does; pandas 2's can be off in the last bit unless asked (pandas 3 deprecates asking)
        exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
        frame = pd.read_csv(io.BytesIO(self.read(name)), encoding="utf-8", **exact)
        if list(frame.columns) not in allowed:
            raise ValueError(f"its columns are {list(map(str, frame.columns))[:6]}, not {allowed[0]}")
        if not all(pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns):
            raise ValueError("it has values that are not numbers")
        return frame

    def _ignored(self, name: str, e: Exception) -> None:
        why = getattr(e, "problem", None) or f"{self.d / name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        warnings.warn(f"{why}; this report is ignored (the model, its settings and its scaling are intact)",
                      RnnkitWarning, stacklevel=4)
