"""Lesson 05's recipe: a DDPM on the frozen VAE's scaled latents of one-object images."""

from __future__ import annotations

from pathlib import Path

import torch

from minildm.nn import UNetConfig, UNetModel
from minildm.schedulers import DDPMScheduler
from minildm.tasks.common import Task, data_config, get_preset, latent_data, train_config
from minildm.tasks.pixel_ddpm import PIXEL_SCHEDULER
from minildm.training import TrainConfig

LATENT_UNET = UNetConfig(
    in_channels=4,
    out_channels=4,
    model_channels=64,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_levels=(1,),
    image_size=8,
)
#: Lesson 03's schedule, but no clipping of the predicted z_0 to [-1, 1]: pixels live in [-1, 1],
#: latents do not (their mean is about -1 and the background's code is below -2 in one channel),
#: so clipping would pull every sample toward the wrong colours (as in Stable Diffusion, whose
#: schedulers use ``clip_sample=False``).
LATENT_SCHEDULER = dict(PIXEL_SCHEDULER, clip_sample=False)
LATENT_DATA = {"name": "shapes", "size": 20_000, "two_object_fraction": 0.0, "image_size": 32}
LATENT_BUDGETS = {
    "quick": TrainConfig(steps=40, batch_size=64, lr=3e-4, warmup_steps=10, checkpoint_every=40),
    "full": TrainConfig(
        steps=2500, batch_size=64, lr=3e-4, warmup_steps=100, checkpoint_every=100, ema_decay=0.999
    ),
    # the full budget on a GPU: 8x the batch, 600 steps (1.9x the latents seen)
    "gpu": TrainConfig(steps=600, batch_size=512, lr=6e-4, warmup_steps=50, checkpoint_every=100),
}


def latent_ddpm_task(
    budget: str = "quick",
    seed: int = 0,
    data_size: int | None = None,
    vae_path: str | Path | None = None,
    preset: str | None = None,
) -> Task:
    """DDPM on ``scale_factor * z`` with ``z ~ q(z | x)`` from the shipped (frozen) VAE;
    ``preset``: see :func:`get_preset`."""
    preset = get_preset(preset)
    data_cfg = data_config(LATENT_DATA, seed, data_size)
    data = latent_data(data_cfg, vae_path)
    scheduler = DDPMScheduler(**LATENT_SCHEDULER)
    config = {
        "kind": "latent_ddpm",
        "model": {"unet": LATENT_UNET.to_dict()},
        "scheduler": LATENT_SCHEDULER,
        "data": data_cfg,
        "vae": data.vae_section(),
        "preset": preset,
    }
    loss = data.loss(scheduler)
    cfg = train_config(LATENT_BUDGETS, budget, seed, preset)
    torch.manual_seed(seed)
    return Task("latent_ddpm", UNetModel(LATENT_UNET), loss, config, cfg)
