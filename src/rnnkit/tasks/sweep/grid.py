"""A sweep's grid: which forecasting settings vary, their values, and the jobs they make.

A key names a field of :class:`~rnnkit.tasks.forecast.config.DataConfig`,
:class:`~rnnkit.config.ModelConfig`, :class:`~rnnkit.config.TrainConfig` or
:class:`~rnnkit.tasks.forecast.config.SearchConfig` (their names do not overlap): by its name
(``hidden_size``), its command-line option (``hidden``, ``--hidden``, ``batch-size``) or with its
section (``model.hidden_size``). Values are typed by the field: ``16``, ``3e-3``, ``true``, ``none``
(for a field that may be None); a list field (``targets``, ``ensemble_lookbacks``) takes its items
joined by ``+`` on the command line (``12+24``), a list in Python and TOML. A number field may
instead take a range (``lr=1e-4..1e-2:log``, ``hidden=16..128:int``; :mod:`rnnkit.tasks.sweep.ranges`),
which only a sampled search can run.

The jobs are every combination, the last key varying fastest (as :func:`itertools.product`), or
``random`` of them drawn without repeats (sorted back into the grid's order, so job numbers follow
it; with a range, each job is drawn whole, in the order drawn: :func:`~rnnkit.tasks.sweep.ranges.draw_jobs`).
Each value is checked against its field when the grid is read; a combination the configs refuse
(dropout with one layer, peepholes on a GRU) becomes a failed job with the config's message, unless
no combination holding the value is valid, which refuses the whole grid (a range: either of its ends).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import random as _random
from typing import Any, Mapping

from ...config import ModelConfig, TrainConfig
from ...errors import ConfigError
from ..forecast.config import DataConfig, SearchConfig
from .config import MAX_JOBS
from .ranges import Range, draw_jobs, read_range, space_size

__all__ = ["SECTIONS", "resolve_key", "parse_text", "coerce", "parse_grid", "normalise_grid",
           "normalise_settings", "apply_settings", "plan_jobs", "describe", "listed"]

#: the sections of a forecasting run's config.json, and their config classes
SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "search": SearchConfig}
_FIELDS: dict[str, tuple[str, dataclasses.Field]] = {
    f.name: (section, f) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
#: other names of a field: its command-line option's (``hidden`` for ``hidden_size``)
_ALIASES = {f.metadata["flag"]: name for name, (_, f) in _FIELDS.items() if "flag" in f.metadata}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def resolve_key(key: Any, where: str = "the grid") -> str:
    """The field a key names (``"--hidden"``, ``"model.hidden_size"`` -> ``"hidden_size"``)."""
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(f"{where}: a setting's name must be a field name such as hidden_size; got {key!r}")
    name = key.strip().lstrip("-").replace("-", "_")
    section, dot, rest = name.partition(".")
    if dot:
        if section not in SECTIONS:
            raise ConfigError(f"{where}: {key!r} names the section {section!r}; the sections are "
                              f"{', '.join(SECTIONS)}")
        name = rest
    name = _ALIASES.get(name, name)
    if name not in _FIELDS or (dot and _FIELDS[name][0] != section):
        close = difflib.get_close_matches(name, list(_FIELDS) + list(_ALIASES), n=1)
        hint = f"; did you mean {_ALIASES.get(close[0], close[0])}?" if close else ""
        raise ConfigError(f"{where}: unknown setting {key!r} (a field of DataConfig, ModelConfig, TrainConfig or "
                          f"SearchConfig, such as hidden_size or lr){hint}")
    return name


def _kind(name: str) -> tuple[str, bool]:
    """The field's base type (``int``, ``float``, ``str``, ``bool``, ``tuple[str, ...]``, ...) and
    whether it may be None."""
    t = _FIELDS[name][1].type
    t = t if isinstance(t, str) else getattr(t, "__name__", str(t))
    if t.startswith("Optional[") and t.endswith("]"):
        return t[len("Optional["):-1], True
    return t, False


def _item(name: str, base: str, value: Any, where: str) -> Any:
    """One value of type ``base`` from a Python/TOML value (a string is parsed as on the command line)."""
    what = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[base]
    if isinstance(value, str) and base != "str":
        text = value.strip()
        try:
            if base == "int":
                return int(text)
            if base == "float":
                return float(text)
        except ValueError:
            pass
        if base == "bool" and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
    elif base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif base == "bool" and isinstance(value, bool):
        return value
    elif base == "str" and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {name} takes {what}; got {value!r}")


def coerce(name: str, value: Any, where: str = "the grid") -> Any:
    """``value`` (Python, TOML or text) as field ``name`` holds it: ``"16"`` -> 16 for an int,
    ``"none"`` -> None where the field may be None, a list -> a tuple for a list field."""
    base, optional = _kind(name)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() == "none")):
        return None
    if base.startswith("tuple["):
        item = base[len("tuple["):-len(", ...]")]
        if isinstance(value, str):
            text = value.strip()
            value = [] if text.lower() in ("", "none") else [v.strip() for v in text.split("+")]
        elif not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_item(name, item, v, where) for v in value)
    if value is None:
        raise ConfigError(f"{where}: {name} cannot be none; give a value")
    return _item(name, base, value, where)


def parse_text(name: str, text: str, where: str = "the grid") -> Any:
    """A value of field ``name`` from the command line's text (see :func:`coerce`)."""
    return coerce(name, text, where)


def _values(name: str, values: list, where: str) -> tuple:
    if not values:
        raise ConfigError(f"{where}: {name} has no values; list at least one, such as {name}=A,B")
    out: list = []
    for v in values:
        v = coerce(name, v, where)
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where}: {name}={v} is not a finite number")
        if v in out:
            raise ConfigError(f"{where}: {name} lists {describe(v)} twice; give each value once")
        out.append(v)
    return tuple(out)


def _entry(name: str, values: list, where: str) -> tuple | Range:
    """A key's values, or its range (which must then be its only value)."""
    base = _kind(name)[0]
    ranges = [r for r in (read_range(name, base, v, where) for v in values) if r is not None]
    if ranges and len(values) > 1:
        raise ConfigError(f"{where}: {name} mixes a range with other values; a range is the key's only value "
                          f"(such as {name}={ranges[0].text()}), or list values ({name}=A,B,...)")
    return ranges[0] if ranges else _values(name, values, where)


def parse_grid(spec: str, where: str = "--grid") -> dict[str, tuple | Range]:
    """``"hidden_size=16,32;lr=1e-3,3e-3"`` -> ``{"hidden_size": (16, 32), "lr": (0.001, 0.003)}``:
    settings separated by ``;``, each ``NAME=V1,V2,...`` or a range ``NAME=LOW..HIGH[:int][:log]``."""
    grid: dict[str, tuple | Range] = {}
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        key, eq, values = part.partition("=")
        if not eq:
            raise ConfigError(f"{where}: {part!r} is not NAME=V1,V2,...; separate settings with ';', such as "
                              "\"hidden_size=16,32;lr=1e-3,3e-3\"")
        name = resolve_key(key, where)
        if name in grid:
            raise ConfigError(f"{where}: {name} is given twice; list all its values once")
        grid[name] = _entry(name, [v for v in values.split(",")], where)
    if not grid:
        raise ConfigError(f"{where}: no settings; pass NAME=V1,V2,... such as \"hidden_size=16,32;lr=1e-3,3e-3\"")
    return grid


def normalise_grid(grid: Mapping[str, Any] | str, where: str = "the grid") -> dict[str, tuple | Range]:
    """A grid from Python or TOML (``{"hidden_size": [16, 32]}``; a string value is parsed as on the
    command line, a single value is a list of one, a table ``{"low": ..., "high": ..., "log": ...,
    "int": ...}`` or a :class:`~rnnkit.tasks.sweep.ranges.Range` is a range; a TOML table per section,
    ``[grid.model]``, is read as its dotted keys) or the command line's text."""
    if isinstance(grid, str):
        return parse_grid(grid, where)
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{where} must map setting names to lists of values, such as {{'hidden_size': [16, 32]}}; "
                          f"got {type(grid).__name__}")
    out: dict[str, tuple | Range] = {}
    flat: list[tuple[str, Any]] = []
    for key, values in grid.items():
        if key in SECTIONS and isinstance(values, Mapping):
            flat += [(f"{key}.{k}", v) for k, v in values.items()]
        else:
            flat.append((key, values))
    for key, values in flat:
        name = resolve_key(key, where)
        if name in out:
            raise ConfigError(f"{where}: {name} is given twice (as {key!r} too); list all its values once")
        if isinstance(values, str) and not _kind(name)[0].startswith("tuple["):
            values = values.split(",")
        elif not isinstance(values, (list, tuple)):
            values = [values]
        out[name] = _entry(name, list(values), where)
    return out


def normalise_settings(settings: Mapping[str, Any], where: str = "the settings") -> dict[str, Any]:
    """Fixed settings (``{"horizon": 6, "model.cell": "gru"}``) keyed by field name, typed; a TOML
    table per section (``[settings.model]``) is read as its dotted keys."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and key in SECTIONS:
            for k, v in normalise_settings({f"{key}.{k}": v for k, v in value.items()}, where).items():
                out[k] = v
            continue
        name = resolve_key(key, where)
        out[name] = coerce(name, value, where)
    return out


def apply_settings(base: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The configs ``base`` (section -> config) with ``settings`` (field -> value) put in; raises
    the config's :class:`ConfigError` for a combination it refuses. As on the command line,
    stateful training reads its streams in order: setting ``stateful`` sets ``shuffle`` to its
    opposite unless ``shuffle`` is set too."""
    changes: dict[str, dict] = {section: {} for section in SECTIONS}
    for name, value in settings.items():
        changes[_FIELDS[name][0]][name] = value
    if "stateful" in settings and "shuffle" not in settings:
        changes["train"]["shuffle"] = not settings["stateful"]
    return {section: base[section].replace(**changes[section]) if changes[section] else base[section]
            for section in SECTIONS}


def listed(grid: Mapping[str, Any]) -> dict[str, tuple]:
    """The grid's keys that list their values (those that are not ranges)."""
    return {k: v for k, v in grid.items() if not isinstance(v, Range)}


def plan_jobs(grid: Mapping[str, Any], random: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The jobs' settings: every combination of ``grid`` in order, the last key varying fastest, or
    ``random`` of them drawn without repeats with ``seed`` (all of them when there are no more).
    A grid with a range needs ``random``: its jobs are drawn (:func:`~rnnkit.tasks.sweep.ranges.draw_jobs`),
    unless its ranges are integer ones holding no more than ``random`` combinations (then every one)."""
    ranged = [k for k, v in grid.items() if isinstance(v, Range)]
    if ranged:
        if random is None:
            r = grid[ranged[0]]
            raise ConfigError(f"{ranged[0]}={r.text()} is a range, which has no list of values to run one by one: "
                              "a range needs --random N or --optuna N (or list values instead, such as "
                              f"{ranged[0]}={describe(r.low)},{describe(r.high)})")
        if space_size(grid) > random:
            return draw_jobs(grid, random, seed, MAX_JOBS)
        grid = {k: v.values() if isinstance(v, Range) else v for k, v in grid.items()}
    keys, total = list(grid), math.prod(len(v) for v in grid.values())
    if random is not None and random < total:
        picks = sorted(_random.Random(seed).sample(range(total), random))
    else:
        if total > MAX_JOBS:
            raise ConfigError(f"the grid has {total} combinations, more than a sweep runs (at most {MAX_JOBS}); "
                              "sample some with --random N or list fewer values")
        picks = range(total)
    jobs = []
    for index in picks:
        settings: dict[str, Any] = {}
        for key in reversed(keys):  # mixed radix, the last key least significant
            index, k = divmod(index, len(grid[key]))
            settings[key] = grid[key][k]
        jobs.append({key: settings[key] for key in keys})
    return jobs


def describe(value: Any) -> str:
    """A value as the command line writes it (``none``, ``true``, ``12+24``, ``0.003``)."""
    if value is None:
        return "none"
    if isinstance(value, Range):
        return value.text()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):  # a list field's value (a list once read back from JSON)
        return "+".join(map(describe, value)) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
