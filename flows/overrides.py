"""Params overrides as the flows pass them on: validation, DVC `-S` arguments, names.

An override mapping is `{dotted params key: value}`, e.g. `{"cnn.embedding_init": "rand"}`.
`validate(root, overrides)` runs it through the project's one parser (tasks.core.params) before any
work; `set_param_args` turns it into `dvc exp run -S key=value` arguments in DVC's (Hydra)
override syntax; `variant_name` and `exp_name` make stable, readable names for MLflow tags
and DVC experiment names (which must be valid git ref components).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flows.stages import read_yaml
from tasks.core.params import Config, load_params

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./:-]*")
_RESERVED = {"true", "false", "null", "none", "nan", "inf", "yes", "no", "on", "off"}


def validate(root: Path | str, overrides: Mapping[str, Any] | None) -> Config:
    """The validated Config of `<root>/params.yaml` with `overrides`; raises ParamsError."""
    return load_params(Path(root) / "params.yaml", dict(overrides or {}))


def hydra_value(value: Any) -> str:
    """`value` in DVC's `-S` (Hydra override) syntax: strings stay strings, lists stay lists."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _has_key(raw: Any, dotted: str) -> bool:
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def set_param_args(params_file: Path | str, overrides: Mapping[str, Any]) -> list[str]:
    """`["-S", "cnn.epochs=2", ...]`; a key new to params.yaml (data.custom.*) gets Hydra's `+`."""
    raw = read_yaml(Path(params_file)) or {}
    args = []
    for key, value in overrides.items():
        prefix = "" if _has_key(raw, key) else "+"
        args += ["-S", f"{prefix}{key}={hydra_value(value)}"]
    return args


def slug(text: str, limit: int = 60) -> str:
    """Lowercase letters, digits and single dashes (safe in git refs, URLs and file names)."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")[:limit] or "x"


def variant_name(overrides: Mapping[str, Any] | None) -> str:
    """`{"cnn.embedding_init": "rand"}` -> `"cnn.embedding_init=rand"`; `{}` -> `"baseline"`."""
    if not overrides:
        return "baseline"
    return ",".join(f"{key}={value}" for key, value in overrides.items())


def exp_name(prefix: str, overrides: Mapping[str, Any] | None, unique: str) -> str:
    """A DVC experiment name like `sweep-1a2b-embedding-init-rand-3f9c`."""
    parts = [slug(prefix, 20)]
    if overrides:
        parts.append(slug("-".join(f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in overrides.items()),
                          40))
    parts.append(slug(unique, 12))
    return "-".join(parts)
