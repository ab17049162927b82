"""Lesson 06's second recipe: the latent U-Net of lesson 05 with cross-attention to the frozen
text encoder's last hidden state ``[B, tokens, width]``; the caption is replaced by the empty
prompt 10% of the time, so the same network also learns the unconditional model that
classifier-free guidance needs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from minildm.backbones import build_backbone
from minildm.checkpoint_config import CheckpointConfig, TextEncoderRef, VAERef
from minildm.checkpoints import CONFIG_NAME, load_text_encoder, read_config
from minildm.names import BACKBONES
from minildm.nn import DiTConfig
from minildm.schedulers import DDPMScheduler
from minildm.tasks.common import DeviceCache, Task, data_config, get_preset, latent_data, train_config
from minildm.tasks.latent_ddpm import LATENT_SCHEDULER, LATENT_UNET
from minildm.text import TextEncoder
from minildm.training import TrainConfig

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
#: Lesson 11's transformer backbone at the U-Net's size (3.21M parameters each): 16 tokens of 2 x 2
#: latent patches, 4 blocks of width 192.
TEXT2IMG_DIT = DiTConfig(in_channels=4, out_channels=4, image_size=8, patch_size=2, hidden_size=192, depth=4)
CAPTION_DROPOUT = 0.1
TEXT2IMG_BUDGETS = {
    "quick": TrainConfig(steps=40, batch_size=64, lr=3e-4, warmup_steps=10, checkpoint_every=40),
    "full": TrainConfig(steps=12_000, batch_size=64, lr=3e-4, warmup_steps=200, checkpoint_every=250),
    # the full budget on a GPU: 16x the batch, 1,500 steps (2x the images seen)
    "gpu": TrainConfig(steps=1_500, batch_size=1024, lr=8e-4, warmup_steps=100, checkpoint_every=250),
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


def _load_text_encoder(path: str | Path | None, clip_skip: int = 0) -> tuple[TextEncoder, TextEncoderRef]:
    """Our mini CLIP (default ``data/checkpoints/clip``) or a transformers CLIP folder, with the
    record of which (the ``text_encoder`` section of the config, ``clip_skip`` included)."""
    if path is None or _is_our_clip(Path(path)):
        text_encoder, clip_config = load_text_encoder(path)
        model, where = clip_config["model"], None
    else:
        text_encoder = TextEncoder.from_pretrained(path)
        model, where = None, str(Path(path).resolve())
    text_encoder.clip_skip = clip_skip
    ref = TextEncoderRef(kind="clip" if where is None else "transformers", model=model, path=where,
                         width=text_encoder.width, max_length=text_encoder.max_length, clip_skip=clip_skip)
    return text_encoder, ref


def _is_our_clip(folder: Path) -> bool:
    """A checkpoint of ``python -m minildm train clip`` (not a transformers CLIP folder, whose
    config.json has no ``kind``)."""
    return (folder / CONFIG_NAME).is_file() and read_config(folder).get("kind") == "clip"


def text2img_task(
    budget: str = "quick",
    seed: int = 0,
    data_size: int | None = None,
    vae_path: str | Path | None = None,
    text_encoder_path: str | Path | None = None,
    backbone: str = "unet",
    preset: str | None = None,
    two_object_fraction: float | None = None,
    clip_skip: int = 0,
) -> Task:
    """The text-conditioned latent DDPM: scaled VAE latents of captioned shapes-world images, the
    frozen text encoder's context, the caption dropped ``CAPTION_DROPOUT`` of the time.
    ``backbone``: ``"unet"`` (lesson 06) or ``"dit"`` (lesson 11's transformer, same size).

    ``text_encoder_path``: our mini CLIP (default ``data/checkpoints/clip``) or any folder that
    ``TextEncoder.from_pretrained`` reads (a transformers CLIP model with its tokenizer).
    ``preset``: see :func:`get_preset`. ``two_object_fraction``: the share of two-object scenes in the
    training images (default 0.5; lesson 10's data lever). ``clip_skip``: condition on an earlier layer
    of the text encoder (:mod:`minildm.text.encoder`; lesson 10's text lever)."""
    preset = get_preset(preset)
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    data_cfg = data_config(TEXT2IMG_DATA, seed, data_size, two_object_fraction)
    text_encoder, encoder_cfg = _load_text_encoder(text_encoder_path, clip_skip)  # (checks clip_skip)
    data = latent_data(data_cfg, vae_path)
    contexts, caption_index = encode_captions(text_encoder, data.dataset.captions)
    uncond = text_encoder([""]).cpu()  # the empty prompt: [BOS, EOS, PAD, ...]
    default = {"unet": TEXT2IMG_UNET, "dit": TEXT2IMG_DIT}[backbone]
    net_config = replace(default, context_dim=text_encoder.width)
    scheduler = DDPMScheduler(**LATENT_SCHEDULER)
    config = CheckpointConfig(
        kind="text2img", backbone=backbone, model=net_config.to_dict(), scheduler=LATENT_SCHEDULER,
        vae=VAERef(**data.vae_section()), text_encoder=encoder_cfg,
        extra={"data": data_cfg, "caption_dropout": CAPTION_DROPOUT, "preset": preset},
    ).to_dict()
    uncond, contexts, caption_index = DeviceCache(uncond), DeviceCache(contexts), DeviceCache(caption_index)

    def pick_context(idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # drop the caption 10% of the time: the same network learns eps(z_t, empty prompt)
        on = generator.device
        drop = torch.rand(len(idx), generator=generator, device=on) < CAPTION_DROPOUT
        return torch.where(drop[:, None, None], uncond.on(on), contexts.on(on)[caption_index.on(on)[idx]])

    loss = data.loss(scheduler, pick_context)
    cfg = train_config(TEXT2IMG_BUDGETS, budget, seed, preset)
    torch.manual_seed(seed)
    model = build_backbone(backbone, net_config)
    return Task("text2img", model, loss, config, cfg)
