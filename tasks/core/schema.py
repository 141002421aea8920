"""Turns a plain mapping (parsed YAML) into frozen dataclasses, strictly.

Used only by `tasks.core.params`. Every field of a config dataclass is required; a field may carry
bounds in its metadata (`ge`, `gt`, `le`, `lt`); a `Literal[...]` type lists the allowed values. Errors name the dotted key:
`ParamsError: word2vec.dims: expected int >= 1, got 0`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import re
import types
import typing
from typing import Any, Literal, get_args, get_origin

from tasks.core.errors import ParamsError

_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def bounded(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with numeric bounds checked by `build`."""
    meta = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_bounds(key: str, value: float, meta: typing.Mapping[str, Any]) -> None:
    checks = {
        "ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
        "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<"),
    }
    for name, (ok, sym) in checks.items():
        if name in meta and not ok(value, meta[name]):
            raise ParamsError(f"{key}: must be {sym} {meta[name]}, got {value!r}")


def convert(key: str, tp: Any, value: Any) -> Any:
    """Check `value` against annotation `tp` and return it in its frozen form."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is Literal:
        if value not in get_args(tp):
            raise ParamsError(f"{key}: expected one of {_type_name(tp)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            try:
                return convert(key, option, value)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0])
    if tp is type(None):
        if value is not None:
            raise ParamsError(f"{key}: expected null, got {value!r}")
        return None
    if origin is tuple:
        (item_tp, _ellipsis) = get_args(tp)
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return tuple(convert(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value))
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        key_tp, val_tp = get_args(tp) or (str, Any)
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping, got {value!r}")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ParamsError(f"{key}: keys must be strings, got {k!r}")
            out[k] = v if val_tp is Any else convert(f"{key}.{k}", val_tp, v)
        return types.MappingProxyType(out)
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            # PyYAML (YAML 1.1) reads `1e-05` (no dot), as DVC writes small floats, as a string.
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            # `.inf` / `.nan` are YAML floats; no param of the pipeline means anything with them.
            raise ParamsError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported annotation {tp!r}")  # a bug in config.py, not input


def build(cls: type, raw: Any, prefix: str = "") -> Any:
    """Build dataclass `cls` from mapping `raw`; every key known, every field present."""
    where = prefix or "params"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ParamsError(f"{name}: unknown key (known: {', '.join(sorted(fields))})")
    values = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            has_default = (field.default is not dataclasses.MISSING
                           or field.default_factory is not dataclasses.MISSING)
            if has_default:
                continue
            raise ParamsError(f"{key}: missing key")
        value = convert(key, hints[name], raw[name])
        if isinstance(value, int | float) and not isinstance(value, bool):
            _check_bounds(key, value, field.metadata)
        values[name] = value
    try:
        return cls(**values)
    except ParamsError as exc:
        raise ParamsError(f"{prefix}.{exc}" if prefix else str(exc)) from None


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of a config object, for MLflow params and Prefect overrides."""
    out: dict[str, Any] = {}
    if dataclasses.is_dataclass(obj):
        items = ((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
    elif isinstance(obj, typing.Mapping):
        items = obj.items()
    else:
        return {prefix: obj}
    for name, value in items:
        key = f"{prefix}.{name}" if prefix else name
        if dataclasses.is_dataclass(value) or isinstance(value, typing.Mapping):
            out.update(flatten(value, key) or {key: {}})
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out
