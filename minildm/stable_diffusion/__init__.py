"""Stable Diffusion itself in the modules the course built: SD 1.x / 2.x weights loaded into our
``UNetModel``, ``AutoencoderKL`` and ``TextEncoder``, and our own models written in diffusers' layout.

    pipe = TextToImagePipeline.from_pretrained("path/to/stable-diffusion-v1-5")   # a diffusers folder
    pipe = TextToImagePipeline.from_pretrained("v1-5-pruned-emaonly.safetensors",  # an original file
                                               text_encoder_path="path/to/stable-diffusion-v1-5")
    save_pretrained(pipe, "my-model")     # -> diffusers.StableDiffusionPipeline.from_pretrained("my-model")

Nothing is downloaded here: a folder or a file on this machine is read (``hf download``, the
Hugging Face CLI, fetches one, online).

- :mod:`minildm.stable_diffusion.configs`: diffusers' ``config.json`` <-> ``UNetConfig`` / ``VAEConfig``,
  and SD 1.5's and 2.x's configurations;
- :mod:`minildm.stable_diffusion.weights`: weight names, diffusers <-> ours, and CompVis' single files;
- :mod:`minildm.stable_diffusion.scheduler`: our scheduler from ``scheduler_config.json``, and back;
- :mod:`minildm.stable_diffusion.text`: ``SDTextEncoder``, CLIP read as SD reads it;
- :mod:`minildm.stable_diffusion.loading`: a folder or a single file -> our modules;
- :mod:`minildm.stable_diffusion.saving`: our pipeline -> a diffusers folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from minildm.stable_diffusion.configs import (
    sd2_unet_config,
    sd15_unet_config,
    sd_vae_config,
    unet_config_from_diffusers,
    unet_config_to_diffusers,
    vae_config_from_diffusers,
    vae_config_to_diffusers,
)
from minildm.stable_diffusion.loading import (
    is_sd_folder,
    is_single_file,
    load_sd_folder,
    load_single_file,
    refuse_pickle,
)
from minildm.stable_diffusion.saving import save_pretrained
from minildm.stable_diffusion.scheduler import scheduler_from_diffusers, scheduler_to_diffusers
from minildm.stable_diffusion.text import SDTextEncoder


def is_stable_diffusion(path: str | Path) -> bool:
    """True when ``path`` is for this package (a diffusers SD folder, or a checkpoint file), False for
    a minildm checkpoint folder or a path that does not exist (the caller reports that); a folder that
    is neither raises a FileNotFoundError saying what was expected."""
    path = Path(path)
    if is_single_file(path) or is_sd_folder(path):
        return True
    if path.is_dir() and not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} is neither a minildm checkpoint (config.json + model.safetensors) nor a Stable "
            "Diffusion folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)"
        )
    return False


def load_components(
    path: str | Path,
    tokenizer_path: str | Path | None = None,
    device: str | torch.device | None = None,
    sampler: str | None = None,
    prediction_type: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of :class:`~minildm.pipelines.TextToImagePipeline` (and of img2img and
    inpainting) for a diffusers SD folder or an original ``.safetensors`` checkpoint (then
    ``tokenizer_path`` names a folder with CLIP's tokenizer, e.g. an SD folder)."""
    if is_single_file(path):
        refuse_pickle(path)
        if tokenizer_path is None:
            raise ValueError(
                f"{path}: a single-file checkpoint holds no tokenizer: pass text_encoder_path "
                "(a folder with CLIP's tokenizer, e.g. an SD folder)"
            )
        return load_single_file(path, tokenizer_path, device, sampler, prediction_type)
    return load_sd_folder(path, device, sampler, prediction_type)


__all__ = [
    "SDTextEncoder",
    "is_sd_folder",
    "is_single_file",
    "is_stable_diffusion",
    "load_components",
    "load_sd_folder",
    "load_single_file",
    "save_pretrained",
    "scheduler_from_diffusers",
    "scheduler_to_diffusers",
    "sd15_unet_config",
    "sd2_unet_config",
    "sd_vae_config",
    "unet_config_from_diffusers",
    "unet_config_to_diffusers",
    "vae_config_from_diffusers",
    "vae_config_to_diffusers",
]
