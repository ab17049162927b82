r"""Image to image (SDEdit, Meng et al. 2022): start from a real image instead of pure noise.

Encode the image, noise its latent to an intermediate level with the forward process, and run
the same reverse process from there under a (new) prompt:

    image --VAE--> z_0 --q(z_t | z_0), t = strength * T--> z_t --(U-Net + scheduler, guided)--> z'_0 --> image

``strength`` in (0, 1] sets how far: with $n$ sampling steps, the first
$n - \lfloor n \cdot \text{strength} \rfloor$ timesteps are skipped and the loop starts at the
next one, $t_s$, from $z_{t_s} = \sqrt{\bar\alpha_{t_s}}\, z_0 + \sqrt{1 - \bar\alpha_{t_s}}\,\epsilon$.
Low strength keeps the layout (position, size, most of the colour); strength 1 is text-to-image.

``init`` picks how $z_{t_s}$ is made:

- ``"noise"``: SDEdit as above, fresh Gaussian noise from ``seed``;
- ``"inversion"`` (the default with the DDIM sampler): DDIM inversion (lesson 07) of $z_0$ under the
  empty prompt, run up to $t_s$ only. The noise it finds is the one that deterministic DDIM would turn
  back into *this* image, so the layout survives a strength at which random noise has redrawn it; the
  guided steps from $t_s$ change what the prompt asks for. Lesson 08 measures both (``bench/img2img.py``;
  the figures are in docs/results.md). It costs one unguided network call per inverted step, and with
  ``eta=0`` the result no longer depends on ``seed``.
"""

from __future__ import annotations

import torch

from minildm import names
from minildm.guidance import CFGDenoiser
from minildm.pipelines.latent_diffusion import PipelineOutput, check_images
from minildm.pipelines.text_to_image import TextToImagePipeline
from minildm.schedulers import DDIMScheduler, SchedulerMixin
from minildm.validation import check_number

#: chosen in lesson 08 (notebooks/08_img2img_and_inpainting.ipynb): the strength that recolours an
#: object reliably while its position and size survive
DEFAULT_STRENGTH = names.DEFAULT_STRENGTH

#: how the starting latent is made (see the module docstring); lesson 08 compares the two
INITS = names.IMG2IMG_INITS


def default_init(scheduler: SchedulerMixin) -> str:
    """"inversion" with the DDIM sampler (the pipelines' default), "noise" with the others: inversion
    runs DDIM backwards, so it starts exactly where a DDIM loop can continue."""
    return "inversion" if type(scheduler) is DDIMScheduler else "noise"


def check_strength(strength: float) -> float:
    """img2img's strength: a number in (0, 1]."""
    return check_number("strength", strength, low=0.0, high=1.0, low_open=True, hint="1 = ignore the image")


def check_init(init: str | None, scheduler: SchedulerMixin) -> str:
    """img2img's ``init``: one of :data:`INITS`, or None for :func:`default_init`; "inversion" only
    with the DDIM sampler."""
    if init is None:
        return default_init(scheduler)
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}, got {init!r}")
    if init == "inversion" and type(scheduler) is not DDIMScheduler:
        raise ValueError(
            f"init 'inversion' runs DDIM backwards and needs the DDIM sampler, but this pipeline samples "
            f"with {type(scheduler).__name__}: pass init='noise' (SDEdit's random start)"
        )
    return init


def batch_images(images: torch.Tensor, n: int, name: str = "image", size: int | None = None) -> torch.Tensor:
    """``images`` (3, H, W) or (B, 3, H, W), checked (of ``size`` x ``size`` when given), as a batch of
    ``n`` (one image is repeated)."""
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = images.unsqueeze(0)
    check_images(images, size, name)
    if images.shape[0] not in (1, n):
        raise ValueError(f"give one {name} or one per prompt ({n}), got {images.shape[0]}")
    return images.expand(n, -1, -1, -1)


class Img2ImgPipeline(TextToImagePipeline):
    """``pipe(prompts, image, strength)`` -> images in [-1, 1]: the image edited toward the prompt."""

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        prompts: str | list[str],
        image: torch.Tensor,
        strength: float = DEFAULT_STRENGTH,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        progress: bool = True,
        eta: float = 0.0,
        init: str | None = None,
    ) -> PipelineOutput:
        """Edit ``image`` (3, H, W) or (B, 3, H, W) in [-1, 1] toward each prompt, from a start made by
        ``init``: "inversion" or "noise" (see the module docstring; default: inversion with the DDIM
        sampler, noise with the others). Steps and guidance default as for text to image (a distilled
        student's own). The same ``seed`` gives the same images (the noise is drawn on the CPU)."""
        strength = check_strength(strength)
        init = check_init(init, self.scheduler)
        plan = self.prepare(prompts, num_inference_steps, guidance_scale, seed, eta)
        prompts, num_inference_steps = plan.prompts, plan.num_inference_steps
        images = batch_images(image, len(prompts), size=None if self.any_size else self.image_size)
        z0 = self.encode_image(images).to(self.device)
        # which timesteps run: the last floor(n * strength) of the n
        self.scheduler.set_timesteps(num_inference_steps)
        denoising_steps = int(num_inference_steps * strength)
        if denoising_steps == 0:
            raise ValueError(
                f"strength {strength:g} x {num_inference_steps} steps leaves no denoising step: "
                "raise the strength or the number of steps"
            )
        start = num_inference_steps - denoising_steps
        generator = torch.Generator().manual_seed(plan.seed)
        if init == "inversion":
            # DDIM run backwards from z_0 up to t_s, under the empty prompt (no guidance)
            unconditional = CFGDenoiser(self.backbone, plan.uncond.expand(len(prompts), -1, -1))
            z_t = self.sampler.invert(
                unconditional, z0, self.scheduler, num_inference_steps, progress=progress, start_index=start,
            )
        else:
            noise = torch.randn(z0.shape, generator=generator).to(z0.device)
            t_start = self.scheduler.timesteps[start].reshape(1).to(z0.device)
            # $z_{t_s} = \sqrt{\bar\alpha_{t_s}}\, z_0 + \sqrt{1 - \bar\alpha_{t_s}}\, \epsilon$
            z_t = self.scheduler.add_noise(z0, noise, t_start)
        latents = self.sampler.sample(
            plan.denoiser, None, self.scheduler, num_inference_steps, generator=generator, progress=progress,
            latents=z_t, start_index=start, **plan.step_kwargs,
        )
        return self._finish(latents, plan.guidance_scale)
