"""Latent diffusion, wired together: a U-Net that denoises latents, its scheduler, and the VAE
that maps latents to images (lesson 05). Later lessons add the text encoder.

    z_T ~ N(0, I)  --(U-Net + scheduler, T steps)-->  z_0  --(/ scale_factor, VAE decoder)-->  image

The U-Net never sees a pixel: it is trained on ``scale_factor * z`` with ``z ~ q(z | x)`` from
the frozen VAE encoder, and its samples are decoded once, at the end.
"""

from __future__ import annotations

from pathlib import Path

import torch

from minildm.samplers import DDPMScheduler, Sampler
from minildm.tasks import load_pretrained, load_vae
from minildm.utils import get_device
from minildm.vae import AutoencoderKL


class LatentDiffusionPipeline:
    """Unconditional latent diffusion: ``pipe(batch_size, num_inference_steps, seed)`` -> images.

    Build it from the shipped checkpoints with :meth:`from_pretrained`, or from parts."""

    def __init__(
        self, unet: torch.nn.Module, scheduler: DDPMScheduler, vae: AutoencoderKL, scale_factor: float
    ) -> None:
        if not scale_factor > 0:
            raise ValueError(f"scale_factor must be positive, got {scale_factor!r}")
        self.unet, self.scheduler, self.vae, self.scale_factor = unet, scheduler, vae, scale_factor
        self.sampler = Sampler()

    @classmethod
    def from_pretrained(
        cls,
        unet_path: str | Path | None = None,
        vae_path: str | Path | None = None,
        device: str | torch.device | None = None,
    ) -> LatentDiffusionPipeline:
        """Load ``data/checkpoints/latent_ddpm`` and ``data/checkpoints/vae`` (or the given folders).

        The U-Net's config records the VAE it was trained with; a different VAE is refused."""
        device = get_device(device)
        unet, scheduler, config = load_pretrained("latent_ddpm", unet_path, device=device)
        vae, vae_config = load_vae(vae_path, device=device)
        if vae_config["model"] != config["vae"]["model"]:
            raise ValueError(
                "the VAE checkpoint is not the one this U-Net was trained with: "
                f"expected VAE config {config['vae']['model']}, got {vae_config['model']}"
            )
        return cls(unet, scheduler, vae, config["vae"]["scale_factor"])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.vae.config.latent_shape()

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], (B, 3, H, W) -> scaled latents ``f * mode(q(z | x))`` (the posterior's
        mean times ``scale_factor``) on the VAE's device, the inverse of :meth:`decode`."""
        device = next(self.vae.parameters()).device
        return self.scale_factor * self.vae.encode(images.to(device)).mode()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1]."""
        return self.vae.decode(latents / self.scale_factor).clamp(-1, 1)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 8,
        num_inference_steps: int = 100,
        seed: int = 0,
        progress: bool = True,
        return_latents: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Sample ``batch_size`` images (float, (B, 3, H, W) in [-1, 1]); the same ``seed`` gives the
        same images on every device (the starting noise is drawn on the CPU)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive int, got {num_inference_steps!r}")
        generator = torch.Generator().manual_seed(seed)
        latents = self.sampler.sample(
            self.unet,
            (batch_size, *self.latent_shape),
            self.scheduler,
            num_inference_steps,
            generator=generator,
            progress=progress,
        )
        images = self.decode(latents)
        return (images, latents) if return_latents else images
