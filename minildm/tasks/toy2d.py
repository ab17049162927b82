"""Lesson 02's recipe: the MLP noise predictor on the two-peak ("cats and dogs") 2-D data."""

from __future__ import annotations

import torch

from minildm.data import two_peaks
from minildm.nn.mlp import MLPConfig, MLPDenoiser
from minildm.schedulers import DDPMScheduler
from minildm.tasks.common import Task, diffusion_loss_fn, train_config
from minildm.training import TrainConfig

TOY2D_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
TOY2D_BUDGETS = {
    "quick": TrainConfig(steps=300, batch_size=256, lr=2e-3, warmup_steps=20, checkpoint_every=300),
    "full": TrainConfig(steps=4000, batch_size=512, lr=2e-3, warmup_steps=100, checkpoint_every=1000),
}


def toy2d_task(budget: str = "quick", seed: int = 0) -> Task:
    points, _ = two_peaks(20_000, seed=seed)
    mlp = MLPConfig()
    scheduler = DDPMScheduler(**TOY2D_SCHEDULER)
    config = {
        "kind": "toy2d",
        "model": {"mlp": mlp.to_dict()},
        "scheduler": TOY2D_SCHEDULER,
        "data": {"name": "two_peaks", "n": 20_000, "seed": seed},
    }
    cfg = train_config(TOY2D_BUDGETS, budget, seed)
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    loss = diffusion_loss_fn(len(points), lambda idx, generator: points[idx], scheduler)
    return Task("toy2d", MLPDenoiser(mlp), loss, config, cfg)
