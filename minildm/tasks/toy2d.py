"""Lesson 02's recipe: the MLP noise predictor on the two-peak ("cats and dogs") 2-D data."""

from __future__ import annotations

import torch

from minildm.data import two_peaks
from minildm.nn.mlp import MLPConfig, MLPDenoiser
from minildm.schedulers import DDPMScheduler
from minildm.tasks.common import Task, diffusion_loss_fn, get_preset, row_sampler, train_config
from minildm.training import TrainConfig

TOY2D_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
TOY2D_BUDGETS = {
    "quick": TrainConfig(steps=300, batch_size=256, lr=2e-3, warmup_steps=20, checkpoint_every=300),
    "full": TrainConfig(steps=4000, batch_size=512, lr=2e-3, warmup_steps=100, checkpoint_every=1000),
    # the full budget on a GPU: 8x the batch, a quarter of the steps (2x the points seen)
    "gpu": TrainConfig(steps=1000, batch_size=4096, lr=3e-3, warmup_steps=50, checkpoint_every=250),
}


def toy2d_task(budget: str = "quick", seed: int = 0, preset: str | None = None) -> Task:
    """The MLP of lesson 02 on 20,000 two-peak points; ``preset``: see :func:`get_preset`."""
    preset = get_preset(preset)
    points, _ = two_peaks(20_000, seed=seed)
    mlp = MLPConfig()
    scheduler = DDPMScheduler(**TOY2D_SCHEDULER)
    config = {
        "kind": "toy2d",
        "model": {"mlp": mlp.to_dict()},
        "scheduler": TOY2D_SCHEDULER,
        "data": {"name": "two_peaks", "n": 20_000, "seed": seed},
        "preset": preset,
    }
    cfg = train_config(TOY2D_BUDGETS, budget, seed, preset)
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    loss = diffusion_loss_fn(len(points), row_sampler(points), scheduler)
    return Task("toy2d", MLPDenoiser(mlp), loss, config, cfg)
