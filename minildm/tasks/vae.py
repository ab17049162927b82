"""Lesson 04's recipe: the ``AutoencoderKL`` on shapes-world images (one and two objects), and
the latent scale factor estimated from data once it is trained."""

from __future__ import annotations

import torch

from minildm.tasks.common import DeviceCache, Task, data_config, get_preset, shapes_dataset, train_config
from minildm.training import TrainConfig
from minildm.vae import AutoencoderKL, VAEConfig, estimate_scale_factor, vae_loss
from minildm.validation import check_seed

#: Channels 16, 32, 64 at 32, 16 and 8 pixels: cheap at full resolution, where a CPU spends its time.
VAE_CONFIG = VAEConfig(ch=16, ch_mult=(1, 2, 4), z_channels=4, num_res_blocks=1, image_size=32)
VAE_KL_WEIGHT = 1e-5
VAE_DATA = {"name": "shapes", "size": 20_000, "two_object_fraction": 0.3, "image_size": 32}
VAE_BUDGETS = {
    "quick": TrainConfig(steps=40, batch_size=32, lr=1e-3, warmup_steps=10, checkpoint_every=40),
    "full": TrainConfig(
        steps=2000, batch_size=32, lr=1e-3, warmup_steps=100, checkpoint_every=100, ema_decay=0.999
    ),
    # the full budget on a GPU: the same 2,000 steps at 2x the batch. (500 steps of 256 at lr 1.5e-3,
    # 2x the images too, fell short on an H200: the judge on its reconstructions was under 98%;
    # the VAE needs the steps more than the images.)
    "gpu": TrainConfig(
        steps=2000, batch_size=64, lr=1e-3, warmup_steps=100, checkpoint_every=250, ema_decay=0.999
    ),
}


def vae_task(
    budget: str = "quick", seed: int = 0, data_size: int | None = None, preset: str | None = None
) -> Task:
    """``AutoencoderKL(VAE_CONFIG)`` with the MSE + KL loss; ``preset``: see :func:`get_preset`."""
    preset, seed = get_preset(preset), check_seed("seed", seed)  # NumPy integers too
    data_cfg = data_config(VAE_DATA, seed, data_size)
    images = shapes_dataset(data_cfg).tensors()
    config = {
        "kind": "vae",
        "model": {"vae": VAE_CONFIG.to_dict()},
        "kl_weight": VAE_KL_WEIGHT,
        "data": data_cfg,
        "preset": preset,
    }
    data = DeviceCache(images)

    def loss(
        model: torch.nn.Module, generator: torch.Generator, batch_size: int, shard: slice | None = None
    ) -> torch.Tensor:
        device, on = next(model.parameters()).device, generator.device
        x = data.on(on)[torch.randint(len(images), (batch_size,), generator=generator, device=on)]
        # the posterior noise of the whole global batch (the draw posterior.sample would make), then
        # this rank's part of the batch and of its noise (all of it in one process)
        eps = torch.randn((batch_size, *VAE_CONFIG.latent_shape()), generator=generator, device=on)
        part = slice(None) if shard is None else shard
        x = x[part].to(device)
        reconstruction, posterior = model(x, sample_posterior=True, noise=eps[part])
        return vae_loss(reconstruction, x, posterior, kl_weight=VAE_KL_WEIGHT, with_logs=False)[0]

    def finalize(model: torch.nn.Module) -> dict:
        # SD's 0.18215 was estimated the same way: 1 / std of the latents of training images
        sample = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:4096]]
        device = next(model.parameters()).device
        scale = estimate_scale_factor(
            model.eval(), sample.to(device), generator=torch.Generator().manual_seed(seed)
        )
        return {"scale_factor": scale}

    cfg = train_config(VAE_BUDGETS, budget, seed, preset)
    torch.manual_seed(seed)
    return Task("vae", AutoencoderKL(VAE_CONFIG), loss, config, cfg, finalize)
