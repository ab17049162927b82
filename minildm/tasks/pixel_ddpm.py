"""Lesson 03's recipe: the U-Net as a pixel-space DDPM on one-object shapes-world images."""

from __future__ import annotations

import torch

from minildm.nn import UNetConfig, UNetModel
from minildm.schedulers import DDPMScheduler
from minildm.tasks.common import (
    Task,
    data_config,
    diffusion_loss_fn,
    get_preset,
    row_sampler,
    shapes_dataset,
    train_config,
)
from minildm.training import TrainConfig

#: Cosine schedule and v-prediction: the network's target stays well scaled at high noise,
#: where an eps-predicting pixel model goes wrong (see lesson 03 and the course design notes).
PIXEL_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_schedule="squaredcos_cap_v2",
    prediction_type="v_prediction",
    clip_sample=True,
    timestep_spacing="trailing",
)
PIXEL_UNET = UNetConfig(
    in_channels=3,
    out_channels=3,
    model_channels=32,
    channel_mult=(1, 2, 2),
    num_res_blocks=1,
    attention_levels=(2,),
    image_size=32,
)
PIXEL_DATA = {"name": "shapes", "size": 20_000, "two_object_fraction": 0.0, "image_size": 32}
PIXEL_BUDGETS = {
    "quick": TrainConfig(steps=40, batch_size=32, lr=3e-4, warmup_steps=10, checkpoint_every=40),
    "full": TrainConfig(
        steps=2000, batch_size=64, lr=3e-4, warmup_steps=100, checkpoint_every=100, ema_decay=0.999
    ),
    # the full budget on a GPU: 8x the batch, 600 steps (2.4x the images seen)
    "gpu": TrainConfig(steps=600, batch_size=512, lr=6e-4, warmup_steps=50, checkpoint_every=100),
}


def pixel_ddpm_task(
    budget: str = "quick", seed: int = 0, data_size: int | None = None, preset: str | None = None
) -> Task:
    """The pixel-space U-Net of lesson 03; ``preset``: see :func:`get_preset`."""
    preset = get_preset(preset)
    data_cfg = data_config(PIXEL_DATA, seed, data_size)
    images = shapes_dataset(data_cfg).tensors()
    scheduler = DDPMScheduler(**PIXEL_SCHEDULER)
    config = {
        "kind": "pixel_ddpm",
        "model": {"unet": PIXEL_UNET.to_dict()},
        "scheduler": PIXEL_SCHEDULER,
        "data": data_cfg,
        "preset": preset,
    }
    cfg = train_config(PIXEL_BUDGETS, budget, seed, preset)
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    loss = diffusion_loss_fn(len(images), row_sampler(images), scheduler)
    return Task("pixel_ddpm", UNetModel(PIXEL_UNET), loss, config, cfg)
