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

from minildm.names import KIND_BACKBONES
from minildm.validation import is_real_number

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


# ------------------------------------------------------------------ the typed view of a config.json

@dataclasses.dataclass(frozen=True)
class VAERef:
    """What a latent model records of the VAE it was trained on (the pipeline refuses another)."""

    model: dict  # the VAE checkpoint's "model" entry
    scale_factor: float  # the latent scale f of z = f * E(x) it was trained with

    def to_dict(self) -> dict:
        return {"model": self.model, "scale_factor": self.scale_factor}


@dataclasses.dataclass(frozen=True)
class TextEncoderRef:
    """What a text-to-image model records of its text encoder: our mini CLIP (``kind="clip"``, its
    config in ``model``) or a transformers CLIP folder (``kind="transformers"``, at ``path``)."""

    kind: str
    model: dict | None = None
    path: str | None = None
    width: int | None = None
    max_length: int | None = None
    clip_skip: int = 0  # condition on that many layers before the last (lesson 10)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"kind": self.kind}
        out.update({k: v for k, v in (("model", self.model), ("path", self.path), ("width", self.width),
                                      ("max_length", self.max_length)) if v is not None})
        if self.clip_skip:
            out["clip_skip"] = self.clip_skip
        return out


@dataclasses.dataclass(frozen=True)
class Distillation:
    """How a few-step student was distilled (lesson 11): its sampler's steps and schedule."""

    steps: tuple[int, ...]  # the step counts it was trained for
    original_inference_steps: int  # the teacher's skipping schedule (LCM's N)
    timestep_scaling: float
    guidance_scale: float  # the teacher's guidance, built into the student
    method: str = "lcm"
    loss: str = "l2"
    teacher: str | None = None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["steps"] = list(self.steps)
        return {k: v for k, v in out.items() if v is not None}


#: the entries of a config.json that :class:`CheckpointConfig` reads; the others stay in ``extra``
_TYPED = ("kind", "model", "scheduler", "vae", "text_encoder", "distillation", "weights_dtype")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """A checkpoint's ``config.json`` with types: what it is (``kind``), its network (``backbone`` and
    that backbone's section), its noise schedule, and what it was trained on (VAE, text encoder,
    teacher). Training records (data, budget, steps) stay plain JSON in ``extra``. The file's layout is
    unchanged, so every config.json written before this class existed reads the same."""

    kind: str
    backbone: str
    model: dict  # the backbone's section: keyword arguments of its config class
    scheduler: dict | None = None  # DDPMScheduler's keyword arguments (none for the VAE and CLIP)
    vae: VAERef | None = None
    text_encoder: TextEncoderRef | None = None
    distillation: Distillation | None = None
    weights_dtype: str = "float32"
    extra: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, config: dict, folder: str | Path | None = None) -> CheckpointConfig:
        """Read and type-check ``config`` (the ``config.json`` of ``folder``, named in errors)."""
        kind = config_value(config, "kind", str, folder)
        if kind not in KIND_BACKBONES:
            raise ValueError(f"unknown checkpoint kind {kind!r}; expected one of {list(KIND_BACKBONES)}")
        model = config_value(config, "model", dict, folder)
        sections = [name for name in model if name in KIND_BACKBONES[kind]]
        if not model:  # (names the section the kind expects first: "has no 'model.vae' section")
            config_value(config, f"model.{KIND_BACKBONES[kind][0]}", dict, folder)
        if len(sections) != 1 or len(model) != 1:
            raise ValueError(f"{_where(folder)}: 'model' must hold one section, one of "
                             f"{list(KIND_BACKBONES[kind])} for a {kind!r} model, got {sorted(model)}")
        backbone = sections[0]
        weights_dtype = config_value(config, "weights_dtype", str, folder, default="float32")
        if weights_dtype not in ("float32", "float16"):
            raise ValueError(f"{_where(folder)}: 'weights_dtype' must be float32 or float16, "
                             f"got {weights_dtype!r}")
        return cls(
            kind=kind, backbone=backbone, model=config_value(config, f"model.{backbone}", dict, folder),
            scheduler=config_value(config, "scheduler", dict, folder, default=None),
            vae=_vae_ref(config, folder), text_encoder=_text_encoder_ref(config, folder),
            distillation=read_distillation(config, folder), weights_dtype=weights_dtype,
            extra={k: v for k, v in config.items() if k not in _TYPED},
        )

    def require(self, *parts: str, folder: str | Path | None = None) -> CheckpointConfig:
        """Refuse a config without the sections a reader needs (``"vae"``, ``"text_encoder"``, ...),
        naming the file as :func:`config_value` does; returns ``self``."""
        for part in parts:
            if getattr(self, part) is None:
                config_value({}, part, dict, folder)  # (raises: "... has no 'vae' section ...")
        return self

    def to_dict(self) -> dict:
        """The ``config.json`` this describes (what :meth:`from_dict` reads back)."""
        out = dict(self.extra, kind=self.kind, model={self.backbone: self.model})
        parts = (("scheduler", self.scheduler), ("vae", self.vae), ("text_encoder", self.text_encoder),
                 ("distillation", self.distillation))
        out.update({k: v if isinstance(v, dict) else v.to_dict() for k, v in parts if v is not None})
        if self.weights_dtype != "float32":
            out["weights_dtype"] = self.weights_dtype
        return out


def _vae_ref(config: dict, folder: str | Path | None) -> VAERef | None:
    if "vae" not in config:
        return None
    model = config_value(config, "vae.model", dict, folder)
    return VAERef(model, check_scale_factor(config, "vae.scale_factor", folder))


def _text_encoder_ref(config: dict, folder: str | Path | None) -> TextEncoderRef | None:
    if "text_encoder" not in config:
        return None
    kind = config_value(config, "text_encoder.kind", str, folder)
    if kind not in ("clip", "transformers"):
        raise ValueError(f"{_where(folder)}: 'text_encoder.kind' must be 'clip' or 'transformers', "
                         f"got {kind!r}")
    def get(key: str, expected: type) -> Any:  # noqa: E306
        return config_value(config, f"text_encoder.{key}", expected, folder, default=None)

    ours = kind == "clip"  # ours records the CLIP's config, a transformers CLIP the folder it was read from
    return TextEncoderRef(
        kind=kind,
        model=config_value(config, "text_encoder.model", dict, folder) if ours else get("model", dict),
        path=get("path", str) if ours else config_value(config, "text_encoder.path", str, folder),
        width=get("width", int), max_length=get("max_length", int),
        clip_skip=config_value(config, "text_encoder.clip_skip", int, folder, default=0),
    )


def read_distillation(config: dict, folder: str | Path | None = None) -> Distillation | None:
    """The ``distillation`` record of a config (None for a model that was not distilled)."""
    if "distillation" not in config:
        return None
    def get(key: str, expected: type, default: Any = _MISSING) -> Any:  # noqa: E306
        return config_value(config, f"distillation.{key}", expected, folder, default=default)

    steps = get("steps", list)
    if not steps or not all(_is_type(n, int) and n > 0 for n in steps):
        raise ValueError(f"{_where(folder)}: 'distillation.steps' must be a list of ints > 0, got {steps!r}")
    return Distillation(
        steps=tuple(steps), original_inference_steps=get("original_inference_steps", int),
        timestep_scaling=float(get("timestep_scaling", float)),
        guidance_scale=float(get("guidance_scale", float)),
        method=get("method", str, "lcm"), loss=get("loss", str, "l2"), teacher=get("teacher", str, None),
    )
