"""Numeric ranges in a sweep's grid: a key searched over an interval instead of a list of values.

On the command line a range is the key's only value, ``LOW..HIGH`` with flags: ``lr=1e-4..1e-2:log``
(a float range, log-uniform), ``dropout=0..0.3`` (a float range, uniform), ``hidden=16..128:int``
(every integer from 16 to 128), ``hidden=8..256:int:log``. In TOML and Python it is a table (a dict)
of ``low``, ``high`` and optionally ``log`` and ``int`` (``{low = 1e-4, high = 1e-2, log = true}``);
a string there is read as on the command line, and Python also takes a :class:`Range`.

A range is for a number field only. An integer field takes an ``:int`` range and a float field a
float one, so that the kind of every draw is the field's. Both ends must be finite, the low one
below the high one, and a ``:log`` range needs a low end above 0. The sweep checks both ends
against the field's own checks (``dropout`` in [0, 1), ``lr`` above 0) before any job runs.

A range has no list of values to run one by one: it needs ``--random N`` (each job's value drawn
with the seeded :class:`random.Random` of ``random_seed``: uniform, or uniform in log space with
``:log``) or ``--optuna N`` (Optuna's ``FloatDistribution``/``IntDistribution``, as
``trial.suggest_float``/``suggest_int`` ask them). A drawn float is rounded to
:data:`DIGITS` significant digits (kept within the range), so that the value the leaderboard and
``sweep.json`` show is the one trained, and it can be typed back on the command line.
"""

from __future__ import annotations

import math
import random as _random
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ...errors import ConfigError

__all__ = ["Range", "read_range", "draw_jobs", "space_size", "check_ranges", "DIGITS"]

#: significant digits a drawn float keeps
DIGITS = 6
_FLAGS = ("int", "log")
_KEYS = ("low", "high", "log", "int")
_EXAMPLE = "such as lr=1e-4..1e-2:log or hidden=16..128:int"


def _num(x: float | int) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}" if float(f"{x:g}") == x else repr(x)


@dataclass(frozen=True)
class Range:
    """The numbers from ``low`` to ``high`` (both included): floats, or with ``integer`` the
    integers; drawn uniformly, or uniformly in log space with ``log``."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def text(self) -> str:
        """``1e-04..0.01:log``: the range as the command line writes it."""
        return f"{_num(self.low)}..{_num(self.high)}" + ":int" * self.integer + ":log" * self.log

    def to_dict(self) -> dict:
        """The range as TOML and ``sweep.json`` hold it."""
        return {"low": self.low, "high": self.high, "log": self.log, "int": self.integer}

    @property
    def size(self) -> float:
        """How many values it holds: the integers' count, or ``math.inf``."""
        return self.high - self.low + 1 if self.integer else math.inf

    def values(self) -> tuple:
        """An integer range's every value."""
        return tuple(range(self.low, self.high + 1))

    def snap(self, x: float) -> float | int:
        """``x`` (from the range's interval) as a job holds it: rounded to an integer, or to
        :data:`DIGITS` significant digits, and kept within the ends."""
        v = int(round(x)) if self.integer else float(f"{x:.{DIGITS}g}")
        return min(max(v, self.low), self.high)

    def draw(self, rng: _random.Random) -> float | int:
        """One value: uniform, or log-uniform with ``log`` (an integer one as Optuna draws it:
        log-uniform over [low - 0.5, high + 0.5], rounded, so that each integer has the width of
        its own rounding interval in log space)."""
        if self.integer and not self.log:
            return rng.randint(self.low, self.high)
        lo, hi = (self.low - 0.5, self.high + 0.5) if self.integer else (self.low, self.high)
        x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if self.log else rng.uniform(lo, hi)
        return self.snap(x)

    def middle(self) -> float | int:
        """A value inside the range (its middle, in log space for a log range)."""
        return self.snap(math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2)

    def distribution(self, optuna):
        """The range as Optuna's distribution."""
        d = optuna.distributions
        return (d.IntDistribution if self.integer else d.FloatDistribution)(self.low, self.high, log=self.log)


def _bound(text: Any, integer: bool) -> float | int | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, str):
        try:
            text = float(text.strip()) if not integer or not text.strip().lstrip("+-").isdigit() \
                else int(text.strip())
        except ValueError:
            return None
    if not isinstance(text, (int, float)) or not math.isfinite(text):
        return None
    if integer:
        return int(text) if float(text).is_integer() else None
    return float(text)


def _split(text: str) -> tuple[str, str, list[str]] | None:
    """``"1e-4..1e-2:log"`` -> ``("1e-4", "1e-2", ["log"])``; None without ``..``."""
    head, *flags = text.strip().split(":")
    low, dots, high = head.partition("..")
    return (low.strip(), high.strip(), [f.strip().lower() for f in flags]) if dots else None


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_range(name: str, base: str, value: Any, where: str) -> Range | None:
    """The range ``value`` gives field ``name`` (of base type ``base``: ``"int"``, ``"float"``, ...),
    or None when it is not a range; a bad range (or a range on a field that is not a number)
    raises a one-line :class:`ConfigError` naming the key."""
    if isinstance(value, Range):
        value = value.to_dict()
    if isinstance(value, str):
        parts = _split(value)
        if parts is None or (base not in ("int", "float") and not (_numeric(parts[0]) and _numeric(parts[1]))):
            return None  # a value such as source=../x.csv
        low, high, flags = parts
        shown = f"{name}={value.strip()}"
        bad = next((f for f in flags if f not in _FLAGS), None)
        if bad is not None:
            raise ConfigError(f"{where}: {shown}: unknown flag ':{bad}'; a range takes :int and :log ({_EXAMPLE})")
        log, integer = "log" in flags, "int" in flags
    elif isinstance(value, Mapping):
        shown = f"{name}={value!r}"
        bad = next((k for k in value if k not in _KEYS), None)
        if bad is not None or "low" not in value or "high" not in value:
            what = f"has the key {bad!r}" if bad is not None else "lacks low or high"
            raise ConfigError(f"{where}: {name}: a range is a table of low and high, and optionally log and int "
                              f"(such as {{low = 1e-4, high = 1e-2, log = true}}); this one {what}")
        for k in ("log", "int"):
            if not isinstance(value.get(k, False), bool):
                raise ConfigError(f"{where}: {name}: a range's {k} is true or false; got {value[k]!r}")
        low, high, log, integer = value["low"], value["high"], value.get("log", False), value.get("int", False)
    else:
        return None
    if base not in ("int", "float"):
        raise ConfigError(f"{where}: {name} is not a number setting, so it takes no range LOW..HIGH; list its "
                          f"values instead, such as {name}=A,B")
    if integer and base != "int":
        raise ConfigError(f"{where}: {shown}: {name} takes any number, not only integers: drop :int (int = true) "
                          "to search it as a float range")
    if base == "int" and not integer:
        raise ConfigError(f"{where}: {shown}: {name} takes an integer: mark the range as an integer one "
                          f"(LOW..HIGH:int, or int = true in a table)")
    lo, hi = _bound(low, integer), _bound(high, integer)
    if lo is None or hi is None:
        kind = "integers" if integer else "finite numbers"
        raise ConfigError(f"{where}: {shown}: a range needs {kind} at both ends, LOW..HIGH with :int or :log "
                          f"after them ({_EXAMPLE})")
    if lo >= hi:
        raise ConfigError(f"{where}: {shown}: the low end must be below the high end"
                          + (f" (for one value write {name}={_num(lo)})" if lo == hi else ""))
    if log and lo <= 0:
        raise ConfigError(f"{where}: {shown}: a :log range needs a low end above 0")
    return Range(lo, hi, log=log, integer=integer)


def space_size(grid: Mapping[str, Any]) -> float:
    """How many combinations the grid holds (``math.inf`` with a float range)."""
    return math.prod(v.size if isinstance(v, Range) else len(v) for v in grid.values())


def draw_jobs(grid: Mapping[str, Any], n: int, seed: int, most: int) -> list[dict]:
    """``n`` distinct jobs of a grid with ranges, drawn with ``random.Random(seed)`` in the order
    drawn: each listed key's value uniformly among its values, each range's value as
    :meth:`Range.draw` draws it, the keys in the grid's order. A job drawn again is drawn anew;
    after ``100 n`` draws (only integer ranges that the N jobs nearly exhaust get there) the jobs
    drawn so far are all."""
    if n > most:
        raise ConfigError(f"--random {n} is more jobs than a sweep runs (at most {most}); ask for fewer")
    rng = _random.Random(seed)
    jobs: list[dict] = []
    seen: set = set()
    for _ in range(100 * n):
        job = {k: v.draw(rng) if isinstance(v, Range) else v[rng.randrange(len(v))] for k, v in grid.items()}
        key = tuple(job.values())
        if key not in seen:
            seen.add(key)
            jobs.append(job)
            if len(jobs) == n:
                break
    return jobs


def check_ranges(grid: Mapping[str, Any], jobs: list[dict],
                 configure: Callable[[dict], tuple[Any, str]]) -> None:
    """Refuse a range whose end no job can use (``dropout=0..1``, ``lr=0..1e-2``): each end, with
    the other ranges at their middles, is tried in each distinct combination of the listed keys
    that ``jobs`` hold; ``configure(settings)`` returns the configs, or None and why not."""
    ranges = {k: v for k, v in grid.items() if isinstance(v, Range)}
    middles = {k: r.middle() for k, r in ranges.items()}
    combos = list({tuple((k, v) for k, v in j.items() if k not in ranges): j for j in jobs}.values())
    for key, r in ranges.items():
        for end, bound in (("low", r.low), ("high", r.high)):
            why = ""
            for j in combos:
                c, why = configure({**j, **middles, key: bound})
                if c is not None:
                    break
            else:
                if combos:
                    raise ConfigError(f"grid range {key}={r.text()} is refused at its {end} end {_num(bound)} in "
                                      f"every combination: {why}")
