"""The backbone registry: the name of a checkpoint's ``"model"`` section -> its config class and its
network. :func:`minildm.checkpoints.build_model` and the training recipes build every network through
:func:`build_backbone`, so a new backbone is one :func:`register_backbone` call, not a new branch in
each place that reads a config.

=========  ======================  ===================================================
name       config class            network
=========  ======================  ===================================================
``mlp``    ``MLPConfig``           ``MLPDenoiser``, lesson 02's noise predictor on 2-D points
``unet``   ``UNetConfig``          ``UNetModel``, lessons 03-09 (and Stable Diffusion's)
``dit``    ``DiTConfig``           ``DiTModel``, lesson 11's transformer backbone
``vae``    ``VAEConfig``           ``AutoencoderKL``, lesson 04
``clip``   ``MiniCLIPConfig``      transformers' ``CLIPModel`` with our tokenizer, lesson 06
=========  ======================  ===================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from minildm.nn import DiTConfig, DiTModel, UNetConfig, UNetModel
from minildm.nn.mlp import MLPConfig, MLPDenoiser
from minildm.text import MiniCLIPConfig, build_clip, load_tokenizer
from minildm.vae import AutoencoderKL, VAEConfig


@dataclass(frozen=True)
class Backbone:
    """One kind of network a checkpoint can hold: its config class (``from_dict``/``to_dict``) and the
    function that builds the untrained network from such a config."""

    name: str
    config_class: type
    build: Callable[[Any], torch.nn.Module]


def _build_clip(config: MiniCLIPConfig) -> torch.nn.Module:
    return build_clip(config, load_tokenizer())  # (the shipped word-level tokenizer)


BACKBONES: dict[str, Backbone] = {}


def register_backbone(name: str, config_class: type, build: Callable[[Any], torch.nn.Module]) -> Backbone:
    """Add a backbone under ``name`` (the section name its checkpoints use in ``"model"``)."""
    if name in BACKBONES:
        raise ValueError(f"a backbone named {name!r} is registered already")
    BACKBONES[name] = Backbone(name, config_class, build)
    return BACKBONES[name]


for _name, _config_class, _build in (
    ("mlp", MLPConfig, MLPDenoiser),
    ("unet", UNetConfig, UNetModel),
    ("dit", DiTConfig, DiTModel),
    ("vae", VAEConfig, AutoencoderKL),
    ("clip", MiniCLIPConfig, _build_clip),
):
    register_backbone(_name, _config_class, _build)


def get_backbone(name: str) -> Backbone:
    """The registered backbone ``name``; an unknown name lists the known ones."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {list(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(name: str, config: Any) -> torch.nn.Module:
    """The untrained network of backbone ``name`` for ``config`` (its config object, or a dict)."""
    backbone = get_backbone(name)
    if isinstance(config, dict):
        config = backbone.config_class.from_dict(config)
    return backbone.build(config)
