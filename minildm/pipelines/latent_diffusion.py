"""Latent diffusion, wired together: a U-Net that denoises latents, its scheduler, and the VAE
that maps latents to images (lesson 05). :class:`~minildm.pipelines.TextToImagePipeline` adds
the text encoder (lesson 06).

    z_T ~ N(0, I)  --(U-Net + scheduler, T steps)-->  z_0  --(/ scale_factor, VAE decoder)-->  image

The U-Net never sees a pixel: it is trained on ``scale_factor * z`` with ``z ~ q(z | x)`` from
the frozen VAE encoder, and its samples are decoded once, at the end.

A pipeline holds one ``scheduler``; swap it diffusers-style, keeping the trained schedule:
``pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)``. Its noise network sits in the
``backbone`` slot (a U-Net, or lesson 11's DiT; ``pipe.unet`` is the same slot under diffusers' name),
and a call returns a :class:`PipelineOutput`: ``pipe(...).images``, as in diffusers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from minildm.checkpoint_config import CheckpointConfig, VAERef
from minildm.checkpoints import checkpoint_folder, load_pretrained, load_vae
from minildm.guidance import Denoiser
from minildm.sampling import Sampler
from minildm.schedulers import SchedulerMixin
from minildm.utils import check_finite, check_positive_int, get_device
from minildm.vae import AutoencoderKL
from minildm.validation import check_positive_number, check_seed


def check_images(images: object, size: int | None = None, name: str = "images") -> None:
    """Images for the VAE: a float tensor (B, 3, H, W) with values in [-1, 1], B >= 1, and H = W =
    ``size`` when it is given (the size the model works at)."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(
            f"images must be a torch tensor (B, 3, H, W) in [-1, 1], got {type(images).__name__} "
            "(minildm.utils.from_uint8 converts uint8 arrays)"
        )
    if not images.is_floating_point():
        raise ValueError(
            f"images must be a float tensor in [-1, 1], got dtype {images.dtype} "
            "(minildm.utils.from_uint8 converts uint8 images)"
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch, shape {tuple(images.shape)}: give at least one image")
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        raise ValueError(
            f"{name} is {images.shape[-1]} x {images.shape[-2]} (W x H); this model works at {size} x {size}"
        )
    check_finite(images, "the images")
    low, high = images.min().item(), images.max().item()
    if low < -1.001 or high > 1.001:
        raise ValueError(
            f"images must have values in [-1, 1], got values from {low:g} to {high:g} "
            "(from 0..255 or 0..1, use x / 127.5 - 1 or 2 * x - 1)"
        )


@dataclass
class PipelineOutput:
    """What a pipeline call returns: ``images`` (B, 3, H, W) in [-1, 1], and the scaled ``latents``
    they were decoded from (for DDIM inversion, or to decode again)."""

    images: torch.Tensor
    latents: torch.Tensor | None = None


class LatentDiffusionPipeline:
    """Unconditional latent diffusion: ``pipe(batch_size, num_inference_steps, seed)`` -> images.

    Build it from the shipped checkpoints with :meth:`from_pretrained`, or from parts. ``config``
    is the U-Net checkpoint's ``config.json`` (empty when built from parts)."""

    #: the checkpoint kind :meth:`from_pretrained` loads
    checkpoint_kind = "latent_ddpm"

    def __init__(
        self,
        backbone: torch.nn.Module,
        scheduler: SchedulerMixin,
        vae: AutoencoderKL,
        scale_factor: float,
        config: dict | None = None,
    ) -> None:
        check_positive_number("scale_factor", scale_factor)
        #: the noise network: a U-Net (lessons 05-10, Stable Diffusion) or a DiT (lesson 11)
        self.backbone = backbone
        self.scheduler, self.vae, self.scale_factor = scheduler, vae, scale_factor
        self.config = dict(config or {})
        self.sampler = Sampler()  # the loop, the same for every scheduler

    @property
    def unet(self) -> torch.nn.Module:
        """The :attr:`backbone`, under diffusers' name (``pipe.unet = ...`` replaces it too)."""
        return self.backbone

    @unet.setter
    def unet(self, net: torch.nn.Module) -> None:
        self.backbone = net

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        vae_path: str | Path | None = None,
        device: str | torch.device | None = None,
    ) -> LatentDiffusionPipeline:
        """Load ``data/checkpoints/latent_ddpm`` and ``data/checkpoints/vae`` (or the given folders).

        The U-Net's config records the VAE it was trained with; a different VAE is refused."""
        device = get_device(device)
        backbone, scheduler, config = load_pretrained(cls.checkpoint_kind, path, device=device)
        folder = checkpoint_folder(cls.checkpoint_kind, path)
        trained_on = CheckpointConfig.from_dict(config, folder).require("vae", folder=folder).vae
        vae = cls.load_matching_vae(trained_on, vae_path, device)
        return cls(backbone, scheduler, vae, trained_on.scale_factor, config=config)

    @staticmethod
    def load_matching_vae(
        trained_on: VAERef, vae_path: str | Path | None, device: str | torch.device | None
    ) -> AutoencoderKL:
        """The VAE in ``vae_path`` (default the shipped one), refused if it is not the VAE that the
        noise predictor was trained on (``trained_on``: its config's record of it)."""
        expected = trained_on.model
        vae, vae_config = load_vae(vae_path, device=device)
        if vae_config["model"] != expected:
            raise ValueError(
                f"the VAE checkpoint {str(checkpoint_folder('vae', vae_path))!r} is not the one this U-Net "
                f"was trained with: expected VAE config {expected}, got {vae_config['model']}"
            )
        return vae

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one latent (ours 4 x 8 x 8; SD 4 x 64 x 64)."""
        return self.vae.config.latent_shape()

    @property
    def image_size(self) -> int | None:
        """The side in pixels of the images this pipeline makes and edits (ours 32; SD 512)."""
        return getattr(self.vae.config, "image_size", None)

    @property
    def any_size(self) -> bool:
        """True for Stable Diffusion, which draws and edits any size that :attr:`size_multiple` divides;
        the course's models work at :attr:`image_size` only (the size they were trained at)."""
        return self.config.get("kind") == "stable_diffusion"

    @property
    def size_multiple(self) -> int:
        """What a picture's height and width must be a multiple of: the VAE's factor f times the
        U-Net's own downsampling (SD 1.5: 8 x 8 = 64; ours: 4 x 4 = 16)."""
        unet = getattr(getattr(self.backbone, "config", None), "downsample_factor", 1)
        return self.vae.config.downsample_factor * unet

    def latent_shape_at(self, height: int | None = None, width: int | None = None) -> tuple[int, int, int]:
        """The latent (channels, height / f, width / f) of a ``height`` x ``width`` picture (None: the
        model's :attr:`image_size`); a size the networks cannot take is refused, naming it."""
        size = self.image_size
        height, width = size if height is None else height, size if width is None else width
        multiple, f = self.size_multiple, self.vae.config.downsample_factor
        for name, value in (("height", height), ("width", width)):
            check_positive_int(name, value)
            if value % multiple:
                raise ValueError(f"{name} must be a multiple of {multiple} (the VAE shrinks by {f}, "
                                 f"the U-Net by {multiple // f} more), got {value}")
        if not self.any_size and (height, width) != (size, size):
            raise ValueError(f"this model draws {size} x {size} only (its training size), "
                             f"got {width} x {height}")
        return self.vae.config.latent_shape((self.vae.config.in_channels, height, width))

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], (B, 3, H, W) -> scaled latents ``f * mode(q(z | x))`` (the posterior's
        mean times ``scale_factor``) on the VAE's device, the inverse of :meth:`decode` (for DDIM
        inversion, img2img and inpainting)."""
        check_images(images)
        vae_param = next(self.vae.parameters())
        return self.scale_factor * self.vae.encode(images.to(vae_param.device, vae_param.dtype)).mode()

    encode = encode_image  # lesson 05's name

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1]."""
        return self.vae.decode(latents / self.scale_factor).clamp(-1, 1)

    @torch.no_grad()
    def _generate(
        self,
        batch_size: int,
        num_inference_steps: int,
        seed: int,
        progress: bool,
        denoiser: Denoiser | None = None,
        latent_shape: tuple[int, ...] | None = None,
        guidance: float = 1.0,
        **step_kwargs,
    ) -> PipelineOutput:
        """Sample ``batch_size`` latents with the pipeline's scheduler and ``denoiser`` (default: the
        backbone, unconditional) and decode them; the noise is drawn on the CPU from ``seed``.
        ``step_kwargs`` go to the scheduler's step. (The numbers are checked by the caller, the entry.)"""
        latents = self.sampler.sample(
            self.backbone if denoiser is None else denoiser,
            (batch_size, *(latent_shape or self.latent_shape)),  # (SD: any size)
            self.scheduler,
            num_inference_steps,
            generator=torch.Generator().manual_seed(seed),
            progress=progress,
            **step_kwargs,
        )
        return self._finish(latents, guidance)

    def _finish(self, latents: torch.Tensor, guidance: float = 1.0) -> PipelineOutput:
        """Decode sampled latents, refusing non-finite ones (they would decode to black pictures)."""
        check_finite(latents, f"the sampled latents (guidance_scale {guidance:g}; a damaged U-Net or a "
                     "guidance scale too large for float32?)")
        return PipelineOutput(images=self.decode(latents), latents=latents)

    def __call__(
        self,
        batch_size: int = 8,
        num_inference_steps: int = 100,
        seed: int = 0,
        progress: bool = True,
    ) -> PipelineOutput:
        """Sample ``batch_size`` images (``.images``: float, (B, 3, H, W) in [-1, 1]; ``.latents``: what
        they were decoded from); the same ``seed`` gives the same images on every device (the starting
        noise is drawn on the CPU)."""
        batch_size = check_positive_int("batch_size", batch_size)
        num_inference_steps = check_positive_int("num_inference_steps", num_inference_steps)
        return self._generate(batch_size, num_inference_steps, check_seed("seed", seed), progress)
