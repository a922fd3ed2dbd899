"""What the files of a run directory may hold, as checked by :class:`~rnnkit.training.runcheck.RunCheck`:
the keys and JSON types config.json has besides its dataclass sections (:data:`META`,
:data:`SHAPES`, :data:`TOP`), the dtypes a run's model may have, the JSON type specs themselves
(``"int"``, ``"num"``, ``"str|null"``, ``"list[int]"``, ...) with a check and a wording for each,
and strict JSON (no NaN, no duplicate keys).
"""

from __future__ import annotations

import json
import math
import typing
from typing import Any, NoReturn

__all__ = ["META", "SHAPES", "TOP", "RUN_DTYPES", "conforms", "describe", "show", "field_spec", "strict_json"]

#: the dtypes a run's model may have, and their safetensors codes
RUN_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16"}

# What the writers put in config.json besides the dataclass sections, as JSON type specs:
# "int", "num" (a finite number), "str", "bool", "null", "list[X]", "dict[X]" (string keys) and
# "A|B", "any" (any JSON value). META may hold more keys (they are kept, not checked); SHAPES must be exactly these.
_COMMON_META = {"data_source": "str", "data_sha256": "str", "dtype": "str"}
META = {
    "forecast": {**_COMMON_META, "n_rows": "int", "train_rows": "int", "val_rows": "int",
                 "test_start": "int", "freq": "str|null", "index_is_time": "bool",
                 "fit_end_time": "str|null", "norm_floor": "list[num]", "transform_lambda": "num",
                 "ensemble": "int", "naive_members": "int", "member_best_epochs": "list[int]", "selection": "any",
                 "known_inputs": "list[str]", "refit_epochs": "list[int]", "trainer": "any",
                 "naive_weights": "list[num]", "covariate_effect": "list[list[num]]"},
    "classify": {**_COMMON_META, "n_series": "int", "n_train": "int", "n_val": "int",
                 "val_index": "list[int]", "input": "str", "n_features": "int",
                 "test_source": "str|null", "test_sha256": "str|null", "train_class_counts": "dict[int]",
                 "ensemble": "int", "member_best_epochs": "list[int]", "member_val_accuracy": "list[num]|null"},
    "panel": {**_COMMON_META, "freq": "str|null", "norm_floor": "list[num]", "covariate_effect": "list[list[num]]",
              "ensemble": "int",
              "naive_members": "int", "member_best_epochs": "list[int]", "ids": "list[str]",
              "splits": "list[list[int]]", "n_rows": "list[int]", "trained_series": "int"},
    "text": {**_COMMON_META, "n_chars": "int", "train_chars": "int", "val_chars": "int", "streams": "int",
             "steps_per_epoch": "int", "epochs": "int", "steps": "int", "first_char": "str"},
}
SHAPES = {
    "forecast": {"input_size": "int", "n_targets": "int", "horizon": "int"},
    "panel": {"input_size": "int", "n_targets": "int", "horizon": "int"},
    "classify": {"input_size": "int", "n_classes": "int", "vocab_size": "int|null"},
    "text": {"vocab_size": "int", "embedding_dim": "int"},
}
TOP = {"format_version": "int", "kind": "str", "versions": "dict[str]"}


def conforms(value: Any, spec: str) -> bool:
    """Whether the parsed JSON ``value`` has the type ``spec`` describes (see META)."""
    if "|" in spec:
        return any(conforms(value, s) for s in spec.split("|"))
    if spec.startswith("list["):
        return isinstance(value, list) and all(conforms(v, spec[5:-1]) for v in value)
    if spec.startswith("dict["):
        return isinstance(value, dict) and all(conforms(v, spec[5:-1]) for v in value.values())
    if spec == "any":  # a record kept for people (what a search tried), never read back into a model
        return True
    if spec == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return {"str": str, "bool": bool, "null": type(None)}[spec] is type(value)


def describe(spec: str) -> str:
    names = {"any": "any value", "int": "an integer", "num": "a number", "str": "a string", "bool": "true or false", "null": "null"}
    if "|" in spec:
        return " or ".join(describe(s) for s in spec.split("|"))
    if spec.startswith("list["):
        return f"a list of {describe(spec[5:-1]).split(' ', 1)[1]}s"
    if spec.startswith("dict["):
        return f"an object of {describe(spec[5:-1]).split(' ', 1)[1]}s"
    return names[spec]


def show(value: Any) -> str:
    """A short one-line rendering of a JSON value for a message (containers only by size: they
    may nest too deeply to print)."""
    if isinstance(value, (list, dict)):
        return f"{'a list' if isinstance(value, list) else 'an object'} of {len(value)} item(s)"
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def field_spec(hint: Any) -> str:
    """The JSON spec of a config dataclass field from its type hint (int, float, str, bool,
    Optional[...] and tuple[str, ...] are all the configs use)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:
        return "|".join(field_spec(a) for a in args)
    if typing.get_origin(hint) is tuple:
        return f"list[{field_spec(args[0])}]"
    return {int: "int", float: "num", str: "str", bool: "bool", type(None): "null"}[hint]


def strict_json(raw: bytes) -> Any:
    def no_constant(name: str) -> NoReturn:
        raise ValueError(f"{name} is not JSON (rnnkit writes null for a missing number)")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
        d = dict(pairs)
        if len(d) != len(pairs):
            seen = [k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i])]
            raise ValueError(f"the key {seen[0]!r} appears twice in one object")
        return d
    return json.loads(raw.decode("utf-8"), parse_constant=no_constant, object_pairs_hook=no_duplicates)
