"""Lesson 06's training tasks: the mini CLIP, and the U-Net that listens to it.

As in Stable Diffusion the three networks are trained separately: the VAE (lesson 04), then the
text encoder, contrastively, as CLIP was (``python -m minildm train clip``), then the U-Net on
the VAE's latents with both of them frozen (``python -m minildm train text2img``):

- ``clip``: a tiny ``transformers.CLIPModel`` on shapes-world images and their captions, with
  the symmetric contrastive (InfoNCE) loss;
- ``text2img``: the latent U-Net of lesson 05 with cross-attention to the frozen text encoder's
  last hidden state ``[B, tokens, width]``; the caption is replaced by the empty prompt 10% of
  the time, so the same network also learns the unconditional model that classifier-free
  guidance needs.

The tokenizer is not trained: it is built from the caption grammar (``minildm.text``) and
shipped in ``data/tokenizer``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from minildm.data import ShapesDataset
from minildm.nn import UNetModel
from minildm.samplers import DDPMScheduler
from minildm.tasks import (
    LATENT_SCHEDULER,
    LATENT_UNET,
    Task,
    _check_budget,
    _with_seed,
    encode_dataset,
    latent_diffusion_loss,
    load_vae,
)
from minildm.text import MiniCLIPConfig, TextEncoder, build_clip, clip_loss, load_tokenizer, tokenize
from minildm.training import TrainConfig

# ------------------------------------------------------------------------------------ clip

CLIP_DATA = {
    "name": "shapes",
    "size": 40_000,
    "two_object_fraction": 0.5,
    "omit_prob": 0.3,
    "image_size": 32,
}
CLIP_BUDGETS = {
    "quick": TrainConfig(steps=30, batch_size=64, lr=1e-3, warmup_steps=5, checkpoint_every=30),
    "full": TrainConfig(steps=2_000, batch_size=256, lr=1e-3, warmup_steps=100, checkpoint_every=250),
}


def _shapes(data_cfg: dict) -> ShapesDataset:
    return ShapesDataset(
        data_cfg["size"],
        seed=data_cfg["seed"],
        image_size=data_cfg["image_size"],
        two_object_fraction=data_cfg["two_object_fraction"],
        omit_prob=data_cfg["omit_prob"],
    )


def clip_task(budget: str = "quick", seed: int = 0, data_size: int | None = None) -> Task:
    """Contrastive training of the mini CLIP on captioned shapes-world images (one and two objects,
    held-out colour-shape pairs excluded)."""
    tokenizer = load_tokenizer()
    data_cfg = dict(CLIP_DATA, seed=seed, size=data_size or CLIP_DATA["size"])
    dataset = _shapes(data_cfg)
    images = dataset.tensors()
    tokens = tokenize(tokenizer, dataset.captions)
    clip_config = MiniCLIPConfig(vocab_size=len(tokenizer))
    config = {"kind": "clip", "model": {"clip": clip_config.to_dict()}, "data": data_cfg}

    def loss(model: torch.nn.Module, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        device = next(model.parameters()).device
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        ids, mask = tokens["input_ids"][idx].to(device), tokens["attention_mask"][idx].to(device)
        # the symmetric InfoNCE loss: image i should pick caption i among the batch's, and back
        return clip_loss(model, images[idx].to(device), ids, mask)

    cfg = _with_seed(CLIP_BUDGETS[_check_budget(budget)], seed)
    torch.manual_seed(seed)
    return Task("clip", build_clip(clip_config, tokenizer), loss, config, cfg)


def load_text_encoder(
    path: str | Path | None = None, device: str | torch.device | None = None
) -> tuple[TextEncoder, dict]:
    """The frozen text side of a trained mini CLIP (``data/checkpoints/clip`` by default), with
    the shipped tokenizer: ``(TextEncoder, clip checkpoint config)``."""
    from minildm.tasks import load_pretrained

    clip, _, config = load_pretrained("clip", path, device=device)
    return TextEncoder.from_clip(clip, load_tokenizer()), config


# -------------------------------------------------------------------------------- text2img

#: Lesson 05's latent U-Net, now with cross-attention (``context_dim`` = the text encoder's
#: width) at both levels, 8 x 8 and 4 x 4: where an object goes is decided at 8 x 8.
TEXT2IMG_UNET = replace(LATENT_UNET, context_dim=64, attention_levels=(0, 1))
TEXT2IMG_DATA = {
    "name": "shapes",
    "size": 40_000,
    "two_object_fraction": 0.5,
    "omit_prob": 0.3,
    "image_size": 32,
}
CAPTION_DROPOUT = 0.1
TEXT2IMG_BUDGETS = {
    "quick": TrainConfig(steps=40, batch_size=64, lr=3e-4, warmup_steps=10, checkpoint_every=40),
    "full": TrainConfig(steps=12_000, batch_size=64, lr=3e-4, warmup_steps=200, checkpoint_every=250),
}


@torch.no_grad()
def encode_captions(text_encoder: TextEncoder, captions: list[str], batch_size: int = 512):
    """Encode each distinct caption once: ``(contexts [U, tokens, width], index [N])`` with
    ``contexts[index[i]]`` the context of ``captions[i]`` (the encoder is frozen, so this is exact)."""
    unique = sorted(set(captions))
    position = {c: i for i, c in enumerate(unique)}
    batches = [unique[i : i + batch_size] for i in range(0, len(unique), batch_size)]
    contexts = torch.cat([text_encoder(batch).cpu() for batch in batches])
    return contexts, torch.tensor([position[c] for c in captions])


def text2img_task(
    budget: str = "quick",
    seed: int = 0,
    data_size: int | None = None,
    vae_path: str | Path | None = None,
    text_encoder_path: str | Path | None = None,
) -> Task:
    """The text-conditioned latent DDPM: scaled VAE latents of captioned shapes-world images, the
    frozen text encoder's context, the caption dropped ``CAPTION_DROPOUT`` of the time.

    ``text_encoder_path``: our mini CLIP (default ``data/checkpoints/clip``) or any folder that
    ``TextEncoder.from_pretrained`` reads (a transformers CLIP model with its tokenizer)."""
    vae, vae_config = load_vae(vae_path)
    scale = vae_config["scale_factor"]
    if text_encoder_path is None or _is_our_clip(Path(text_encoder_path)):
        text_encoder, clip_config = load_text_encoder(text_encoder_path)
        encoder_cfg = {"kind": "clip", "model": clip_config["model"]}
    else:
        text_encoder = TextEncoder.from_pretrained(text_encoder_path)
        encoder_cfg = {"kind": "transformers", "path": str(Path(text_encoder_path).resolve())}
    encoder_cfg.update(width=text_encoder.width, max_length=text_encoder.max_length)

    data_cfg = dict(TEXT2IMG_DATA, seed=seed, size=data_size or TEXT2IMG_DATA["size"])
    dataset = _shapes(data_cfg)
    mean, std = encode_dataset(vae, dataset.tensors())
    contexts, caption_index = encode_captions(text_encoder, dataset.captions)
    uncond = text_encoder([""]).cpu()  # the empty prompt: [BOS, EOS, PAD, ...]
    unet_config = replace(TEXT2IMG_UNET, context_dim=text_encoder.width)
    scheduler = DDPMScheduler(**LATENT_SCHEDULER)
    config = {
        "kind": "text2img",
        "model": {"unet": unet_config.to_dict()},
        "scheduler": LATENT_SCHEDULER,
        "data": data_cfg,
        "vae": {"model": vae_config["model"], "scale_factor": scale},
        "text_encoder": encoder_cfg,
        "caption_dropout": CAPTION_DROPOUT,
    }

    def pick_context(idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # drop the caption 10% of the time: the same network learns eps(z_t, empty prompt)
        drop = torch.rand(len(idx), generator=generator) < CAPTION_DROPOUT
        return torch.where(drop[:, None, None], uncond, contexts[caption_index[idx]])

    loss = latent_diffusion_loss(mean, std, scale, scheduler, pick_context)
    cfg = _with_seed(TEXT2IMG_BUDGETS[_check_budget(budget)], seed)
    torch.manual_seed(seed)
    return Task("text2img", UNetModel(unet_config), loss, config, cfg)


def _is_our_clip(folder: Path) -> bool:
    """A checkpoint of ``python -m minildm train clip`` (not a transformers CLIP folder)."""
    import json

    config = folder / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("kind") == "clip"


__all__ = [
    "CAPTION_DROPOUT",
    "CLIP_BUDGETS",
    "TEXT2IMG_BUDGETS",
    "TEXT2IMG_UNET",
    "clip_task",
    "encode_captions",
    "load_text_encoder",
    "text2img_task",
]
