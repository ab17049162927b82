"""Reading a checkpoint's ``config.json`` safely: every entry is checked for presence and type,
and an error names the file and the key (``'.../config.json': 'model.vae.ch' must be an int``).

A config is plain JSON; these readers give it the types the model classes expect. They import no
model code, so anything that reads a config (pipelines, tasks, the Stable Diffusion loaders) can
use them.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

from minildm.utils import is_real_number

CONFIG_NAME = "config.json"

#: what each JSON type is called in an error message
_TYPE_NAMES = {dict: "a JSON object", list: "a list", str: "a str", int: "an int", float: "a number",
               bool: "true or false"}
_MISSING = object()


def _is_type(value: object, expected: type) -> bool:
    """JSON's notion of ``expected``: an int is a float too; a bool is neither."""
    if expected is float:
        return is_real_number(value)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is list:
        return isinstance(value, (list, tuple))
    return isinstance(value, expected)


def _where(folder: str | Path | None) -> str:
    return repr(str(Path(folder) / CONFIG_NAME)) if folder is not None else "the checkpoint config"


def config_value(
    config: dict, key: str, expected: type, folder: str | Path | None, default: Any = _MISSING
) -> Any:
    """``config[k1][k2]...`` for ``key = "k1.k2..."``, from the ``config.json`` of ``folder``, checked to
    be of type ``expected`` (dict, list, str, int, float or bool; a float must be finite). A missing key
    (without ``default``) or a value of another type raises a ValueError naming the file, the key and
    the type expected: every reader of a checkpoint config goes through here."""
    where, parts = _where(folder), key.split(".")
    value: Any = config
    for depth, part in enumerate(parts):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: {'.'.join(parts[:depth])!r} must be a JSON object, got {value!r}")
        if part not in value:
            if default is not _MISSING and depth == len(parts) - 1:
                return default
            absent, wanted = ".".join(parts[: depth + 1]), expected if depth == len(parts) - 1 else dict
            kind = "section" if wanted is dict else "entry"
            raise ValueError(f"{where} has no {absent!r} {kind} (expected {_TYPE_NAMES[wanted]}): the config "
                             "is incomplete (edited by hand, or written by another program?)")
        value = value[part]
    if not _is_type(value, expected) or (expected is float and not math.isfinite(value)):
        raise ValueError(f"{where}: {key!r} must be {_TYPE_NAMES[expected]}"
                         f"{' (finite)' if expected is float else ''}, got {value!r}")
    return value


def _annotation_types(annotation: Any) -> tuple[type, ...] | None:
    """The JSON types a parameter annotated ``annotation`` may hold (None: unchecked)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [_annotation_types(a) for a in typing.get_args(annotation)]
        return None if any(p is None for p in parts) else tuple(t for p in parts for t in p)
    base = origin or annotation
    if base is type(None):
        return (type(None),)
    if base in (tuple, list):
        return (list,)
    return (base,) if base in (int, float, str, bool, dict) else None


def _item_type(annotation: Any) -> type | None:
    """The type of every item of a list annotated ``annotation`` (``tuple[int, ...]`` -> int), or None."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return next((t for t in map(_item_type, args) if t is not None), None)
    items = {a for a in args if a is not Ellipsis}
    if origin in (tuple, list) and len(items) == 1 and next(iter(items)) in (int, float, str, bool):
        return next(iter(items))
    return None


def config_section(config: dict, key: str, target: Any, folder: str | Path | None) -> dict:
    """The section ``key`` of a checkpoint config as keyword arguments of ``target`` (a config
    dataclass, or a class whose ``__init__`` takes them), each checked against its type annotation:
    an unknown key or a value of another type raises a ValueError naming the file and the key."""
    section = config_value(config, key, dict, folder)
    hints = typing.get_type_hints(target if dataclasses.is_dataclass(target) else target.__init__)
    where = _where(folder)
    for name, value in section.items():
        if name not in hints or name == "return":
            known = sorted(k for k in hints if k != "return")
            raise ValueError(f"{where}: unknown key {key + '.' + name!r} (expected some of {known})")
        allowed = _annotation_types(hints[name])
        if allowed is not None and not any(
            value is None if t is type(None) else _is_type(value, t) for t in allowed
        ):
            names = " or ".join(_TYPE_NAMES.get(t, "null") for t in allowed)
            raise ValueError(f"{where}: {key + '.' + name!r} must be {names}, got {value!r}")
        item = _item_type(hints[name])
        if item is not None and isinstance(value, list) and not all(_is_type(v, item) for v in value):
            raise ValueError(f"{where}: {key + '.' + name!r} must be a list of which each item is "
                             f"{_TYPE_NAMES[item]}, got {value!r}")
    return section


def check_scale_factor(config: dict, key: str, folder: str | Path) -> float:
    """The latent scale ``config[key]`` (e.g. ``"vae.scale_factor"``) of a checkpoint: a number > 0."""
    value = config_value(config, key, float, folder)
    if not value > 0:
        raise ValueError(f"{_where(folder)}: {key!r} must be a number > 0, got {value!r}")
    return float(value)
