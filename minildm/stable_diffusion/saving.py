"""Write a text-to-image pipeline of ours in diffusers' layout, so that
``diffusers.StableDiffusionPipeline.from_pretrained(folder)`` opens it and draws the same pictures.

What is written (the layout :mod:`minildm.stable_diffusion.loading` reads)::

    model_index.json
    unet/          config.json, diffusion_pytorch_model.safetensors   (our names -> diffusers')
    vae/           config.json (with scaling_factor), diffusion_pytorch_model.safetensors
    text_encoder/  config.json, model.safetensors                     (CLIPTextModel, as it is)
    tokenizer/     the pipeline's tokenizer as transformers saves it
    scheduler/     scheduler_config.json

Two details keep the pictures the same. ``clip_skip``: diffusers reads ``last_hidden_state``, so the
layers our encoder skips are left out of the saved text model (LN(h_{L-k}) is then the last layer's).
The attention mask: lesson 06's encoder masks the padding, SD's does not, so the config of a text
encoder that masks says ``use_attention_mask: true``, which diffusers' pipeline honours.

Our shapes-world tokenizer is word-level (``tokenizer.json``): transformers' ``CLIPTokenizer``, a
byte-pair tokenizer, cannot hold it, so ``model_index.json`` names it ``PreTrainedTokenizerFast``,
which diffusers and transformers load as well. What diffusers' config classes cannot express is refused
before anything is written: an attention whose inner width differs from its channels, a VAE encoder
that pads its downsampling on every side.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel

from minildm.checkpoints import write_json
from minildm.nn import UNetModel
from minildm.stable_diffusion import weights as W
from minildm.stable_diffusion.configs import unet_config_to_diffusers, vae_config_to_diffusers
from minildm.stable_diffusion.loading import MODEL_INDEX, WEIGHTS
from minildm.stable_diffusion.scheduler import scheduler_to_diffusers
from minildm.stable_diffusion.text import SDTextEncoder
from minildm.text import TextEncoder, is_word_level
from minildm.text.encoder import _quiet
from minildm.text.tokenizer import save_tokenizer
from minildm.utils import atomic_write

DIFFUSERS_VERSION = "0.42.1"


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
        for k, v in state.items()
    }


def _write_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    atomic_write(path, lambda tmp: save_file(_tensors(state), tmp, metadata={"format": "pt"}))


def text_model_for_diffusers(text_encoder: TextEncoder) -> CLIPTextModel:
    """The CLIP text model whose ``last_hidden_state`` is our encoder's context: the layers that
    ``clip_skip`` leaves out are dropped, and ``use_attention_mask`` says whether it masks padding."""
    model = text_encoder.text_model
    skip = text_encoder.clip_skip
    masks = not isinstance(text_encoder, SDTextEncoder) or text_encoder.use_attention_mask
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.num_hidden_layers = model.config.num_hidden_layers - skip
    config.use_attention_mask = masks
    out = CLIPTextModel(config)
    inner = getattr(out, "text_model", out)
    source = getattr(model, "text_model", model).state_dict()
    keep = {
        k: v
        for k, v in source.items()
        if not (k.startswith("encoder.layers.") and int(k.split(".")[2]) >= config.num_hidden_layers)
    }
    inner.load_state_dict(keep)
    return out.eval()


# long: one block per component folder diffusers expects (unet, vae, text_encoder, tokenizer, scheduler)
def save_pretrained(pipe, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``pipe`` (a :class:`~minildm.pipelines.TextToImagePipeline` with a U-Net) to the folder
    ``path`` in diffusers' layout (module docstring). Everything is written to a temporary folder
    beside ``path`` and renamed into place at the end; an existing ``path`` is replaced only with
    ``overwrite=True``."""
    path = Path(path)
    if not isinstance(pipe.backbone, UNetModel):
        raise ValueError(
            f"only a U-Net pipeline has a diffusers layout; this one's network is a "
            f"{type(pipe.backbone).__name__}"
        )
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty: pass overwrite=True to replace it")
    if pipe.distillation is not None:
        raise ValueError(
            "a distilled student samples with LCM and its guidance in its weights; "
            "StableDiffusionPipeline would guide it again: not exported"
        )
    unet_cfg, vae_cfg = pipe.backbone.config, pipe.vae.config
    # everything diffusers cannot express is refused here, before a file is written
    # diffusers draws at the U-Net's sample_size (in latents): the size our pipeline draws at
    unet_json = {**unet_config_to_diffusers(unet_cfg), "sample_size": pipe.latent_shape[-1]}
    vae_json = vae_config_to_diffusers(vae_cfg, float(pipe.scale_factor))
    scheduler_json = scheduler_to_diffusers(pipe.scheduler)
    tokenizer = pipe.text_encoder.tokenizer
    tokenizer_class = "PreTrainedTokenizerFast" if is_word_level(tokenizer) else "CLIPTokenizer"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write_json(
            tmp / MODEL_INDEX,
            {
                "_class_name": "StableDiffusionPipeline",
                "_diffusers_version": DIFFUSERS_VERSION,
                "feature_extractor": [None, None],
                "image_encoder": [None, None],
                "requires_safety_checker": False,
                "safety_checker": [None, None],
                "scheduler": ["diffusers", scheduler_json["_class_name"]],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", tokenizer_class],
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
            },
        )
        write_json(tmp / "unet" / "config.json", {**unet_json, "_diffusers_version": DIFFUSERS_VERSION})
        _write_weights(tmp / "unet" / WEIGHTS, W.unet_to_diffusers(pipe.backbone.state_dict(), unet_cfg))
        write_json(tmp / "vae" / "config.json", {**vae_json, "_diffusers_version": DIFFUSERS_VERSION})
        _write_weights(tmp / "vae" / WEIGHTS, W.vae_to_diffusers(pipe.vae.state_dict(), vae_cfg))
        with _quiet():
            text_model_for_diffusers(pipe.text_encoder).to("cpu").save_pretrained(str(tmp / "text_encoder"))
        save_tokenizer(tokenizer, tmp / "tokenizer")
        write_json(
            tmp / "scheduler" / "scheduler_config.json",
            {**scheduler_json, "_diffusers_version": DIFFUSERS_VERSION},
        )
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
