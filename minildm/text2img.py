"""Text to image (lesson 06): the latent pipeline of lesson 05 plus a frozen text encoder and
classifier-free guidance.

    prompt --tokenizer--> ids --text encoder--> context c  [B, tokens, width]
    z_T ~ N(0, I) --(U-Net(z_t, t, c) with guidance, T steps)--> z_0 --(/ f, VAE decoder)--> image

Classifier-free guidance (Ho & Salimans, 2022) runs the U-Net twice per step, with the prompt's
context and with the empty prompt's, and extrapolates:
    eps_hat = eps(z_t, empty) + s * (eps(z_t, c) - eps(z_t, empty)).
``guidance_scale`` s = 1 is the plain conditional model; larger s follows the prompt harder.
(The same formula applies to a v-prediction: v is linear in eps for a given z_t.)

``sampler`` picks the reverse process: "ddpm" (lesson 03's ancestral sampler) or "ddim" (lesson
07: deterministic with ``eta=0``, good in fewer steps). Both use the checkpoint's noise schedule and
the same guidance code (``Sampler.get_model_output``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from minildm.ddim import DDIMSampler, DDIMScheduler
from minildm.pipeline import LatentDiffusionPipeline
from minildm.samplers import DDPMScheduler, Sampler
from minildm.tasks import checkpoint_dir, load_pretrained, load_vae
from minildm.text import TextEncoder
from minildm.utils import get_device
from minildm.vae import AutoencoderKL

#: Defaults of ``TextToImagePipeline.__call__``, chosen by ``bench/text_to_image.py`` (guidance)
#: and ``bench/ddim.py`` (DDIM in 25 steps judged as good as DDPM in 1000, 40x faster).
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 3.0
DEFAULT_SAMPLER = "ddim"
SAMPLERS = ("ddpm", "ddim")


class TextToImagePipeline:
    """``pipe(prompts, num_inference_steps, guidance_scale, seed)`` -> images in [-1, 1].

    Build it from the shipped checkpoints with :meth:`from_pretrained`, or from parts."""

    def __init__(
        self,
        unet: torch.nn.Module,
        scheduler: DDPMScheduler,
        vae: AutoencoderKL,
        scale_factor: float,
        text_encoder: TextEncoder,
    ) -> None:
        if not scale_factor > 0:
            raise ValueError(f"scale_factor must be positive, got {scale_factor!r}")
        width = getattr(getattr(unet, "config", None), "context_dim", None)
        if width is not None and width != text_encoder.width:
            raise ValueError(
                f"the U-Net expects a context of width {width}, the text encoder gives {text_encoder.width}"
            )
        self.unet, self.scheduler, self.vae = unet, scheduler, vae
        self.scale_factor, self.text_encoder = scale_factor, text_encoder
        self.sampler = Sampler()  # DDPM; its get_model_output is the guidance of every sampler
        # DDIM reuses the checkpoint's schedule (betas, prediction type, clipping, spacing)
        self.ddim_sampler = DDIMSampler()
        self.ddim_scheduler = DDIMScheduler.from_config(scheduler.config)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        vae_path: str | Path | None = None,
        text_encoder_path: str | Path | None = None,
        device: str | torch.device | None = None,
    ) -> TextToImagePipeline:
        """Load the U-Net in ``path`` (default ``data/checkpoints/text2img``), the VAE and the text
        encoder it was trained with (their default places, or the given folders)."""
        from minildm.text_tasks import load_text_encoder

        device = get_device(device)
        unet, scheduler, config = load_pretrained("text2img", path, device=device)
        vae, vae_config = load_vae(vae_path, device=device)
        if vae_config["model"] != config["vae"]["model"]:
            raise ValueError(
                "the VAE checkpoint is not the one this U-Net was trained with: "
                f"expected VAE config {config['vae']['model']}, got {vae_config['model']}"
            )
        encoder_cfg = config["text_encoder"]
        if encoder_cfg["kind"] == "clip":
            text_encoder, clip_config = load_text_encoder(text_encoder_path, device=device)
            if clip_config["model"] != encoder_cfg["model"]:
                raise ValueError(
                    "the text encoder checkpoint is not the one this U-Net was trained with: expected "
                    f"CLIP config {encoder_cfg['model']}, got {clip_config['model']}"
                )
        else:  # a transformers CLIP text model, e.g. one downloaded by a user online
            text_encoder = TextEncoder.from_pretrained(text_encoder_path or encoder_cfg["path"]).to(device)
        return cls(unet, scheduler, vae, config["vae"]["scale_factor"], text_encoder)

    # the VAE side is lesson 05's: the same latent shape, encoder and decoder
    latent_shape = LatentDiffusionPipeline.latent_shape
    encode_image = LatentDiffusionPipeline.encode  # for DDIM inversion, img2img and inpainting
    decode = LatentDiffusionPipeline.decode

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> context ``[B, tokens, width]``; an unknown word raises a ValueError naming it."""
        return self.text_encoder(prompts)

    @torch.no_grad()
    def __call__(
        self,
        prompts: str | list[str],
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        seed: int = 0,
        progress: bool = True,
        return_latents: bool = False,
        sampler: str = DEFAULT_SAMPLER,
        eta: float = 0.0,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """One image per prompt (float, (B, 3, H, W) in [-1, 1]); the same ``seed`` gives the same
        images on every device (the noise is drawn on the CPU).

        The empty prompt ``""`` asks explicitly for the unconditional model (no guidance applies).
        ``sampler`` is "ddpm" or "ddim"; ``eta`` (DDIM only) is its noise, 0 = deterministic."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts must be a str or a non-empty list of str, got {prompts!r}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive int, got {num_inference_steps!r}")
        # (guidance_scale is checked by Sampler.sample, for every sampler)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler == "ddpm" and eta != 0.0:
            raise ValueError(f"eta is DDIM's noise level; with sampler='ddpm' leave it 0, got {eta!r}")
        cond = self.encode_prompt(prompts)
        uncond = self.encode_prompt([""])
        common = dict(
            generator=torch.Generator().manual_seed(seed),
            cond=cond,
            uncond=uncond,
            guidance_scale=guidance_scale,
            progress=progress,
        )
        shape = (len(prompts), *self.latent_shape)
        if sampler == "ddim":
            latents = self.ddim_sampler.sample(
                self.unet, shape, self.ddim_scheduler, num_inference_steps, eta=eta, **common
            )
        else:
            latents = self.sampler.sample(self.unet, shape, self.scheduler, num_inference_steps, **common)
        images = self.decode(latents)
        return (images, latents) if return_latents else images


def default_path() -> Path:
    return checkpoint_dir() / "text2img"
