"""Lesson 04's recipe: the ``AutoencoderKL`` on shapes-world images (one and two objects), and
the latent scale factor estimated from data once it is trained."""

from __future__ import annotations

import torch

from minildm.tasks.common import Task, data_config, shapes_dataset, train_config
from minildm.training import TrainConfig
from minildm.vae import AutoencoderKL, VAEConfig, estimate_scale_factor, vae_loss

#: Channels 16, 32, 64 at 32, 16 and 8 pixels: cheap at full resolution, where a CPU spends its time.
VAE_CONFIG = VAEConfig(ch=16, ch_mult=(1, 2, 4), z_channels=4, num_res_blocks=1, image_size=32)
VAE_KL_WEIGHT = 1e-5
VAE_DATA = {"name": "shapes", "size": 20_000, "two_object_fraction": 0.3, "image_size": 32}
VAE_BUDGETS = {
    "quick": TrainConfig(steps=40, batch_size=32, lr=1e-3, warmup_steps=10, checkpoint_every=40),
    "full": TrainConfig(
        steps=2000, batch_size=32, lr=1e-3, warmup_steps=100, checkpoint_every=100, ema_decay=0.999
    ),
}


def vae_task(budget: str = "quick", seed: int = 0, data_size: int | None = None) -> Task:
    data_cfg = data_config(VAE_DATA, seed, data_size)
    images = shapes_dataset(data_cfg).tensors()
    config = {
        "kind": "vae",
        "model": {"vae": VAE_CONFIG.to_dict()},
        "kl_weight": VAE_KL_WEIGHT,
        "data": data_cfg,
    }

    def loss(model: torch.nn.Module, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        device = next(model.parameters()).device
        x = images[torch.randint(len(images), (batch_size,), generator=generator)].to(device)
        reconstruction, posterior = model(x, sample_posterior=True, generator=generator)
        return vae_loss(reconstruction, x, posterior, kl_weight=VAE_KL_WEIGHT)[0]

    def finalize(model: torch.nn.Module) -> dict:
        # SD's 0.18215 was estimated the same way: 1 / std of the latents of training images
        sample = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:4096]]
        device = next(model.parameters()).device
        scale = estimate_scale_factor(
            model.eval(), sample.to(device), generator=torch.Generator().manual_seed(seed)
        )
        return {"scale_factor": scale}

    cfg = train_config(VAE_BUDGETS, budget, seed)
    torch.manual_seed(seed)
    return Task("vae", AutoencoderKL(VAE_CONFIG), loss, config, cfg, finalize)
