r"""Inpainting: repaint the masked part of an image, keep the rest.

With a network trained only on whole images (ours, and SD's base model), inpainting works by
re-imposing the known region at every step (as in RePaint's simplest form and diffusers'
legacy inpainting): after each step to $t'$, where the mask $m$ says "keep",

$$z_{t'} \leftarrow m \odot z_{t'} + (1 - m) \odot \left(\sqrt{\bar\alpha_{t'}}\, z_0
  + \sqrt{1 - \bar\alpha_{t'}}\,\epsilon\right),$$

the original latent noised to the level the sample is now at ($m = 1$: repaint). The network sees
a consistent noisy image at every step and fills the hole to match its surroundings and the prompt.
The mask is given in pixels and taken to the latent grid by max-pooling over each latent cell: a
latent is repainted when any of its pixels is.

Re-imposing alone leaves the two parts to meet only through the network's next look; RePaint
(Lugmayr et al., 2022) **resamples**: each step is taken ``resample_steps`` ($U$) times, and
between tries the result is noised back from $t'$ to $t$ with the forward process,

$$z_t = \sqrt{\bar\alpha_t / \bar\alpha_{t'}}\, z_{t'}
      + \sqrt{1 - \bar\alpha_t / \bar\alpha_{t'}}\,\epsilon,$$

so the generated part is denoised again in the light of the known part: better-fitting fills for
$U$ times the network calls. It needs a one-step scheduler (DDIM, DDPM): a multistep solver's
memory would not survive the jumps back. ``DEFAULT_RESAMPLE`` ($U = 3$) is the default with those
schedulers (lesson 08 measures what it gains; the figures are in docs/results.md), and $U = 1$ with
the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minildm import names
from minildm.imageio import mask_tensor
from minildm.pipelines.img2img import batch_images
from minildm.pipelines.latent_diffusion import PipelineOutput
from minildm.pipelines.text_to_image import SamplingPlan, TextToImagePipeline
from minildm.sampling import check_step_kwargs, timestep_batch
from minildm.schedulers import DDIMScheduler, DDPMScheduler
from minildm.utils import check_positive_int
from minildm.utils import progress as progress_bar

#: RePaint's resamplings per step when the scheduler allows them (see the module docstring)
DEFAULT_RESAMPLE = names.DEFAULT_RESAMPLE  # 3


class InpaintPipeline(TextToImagePipeline):
    """``pipe(prompts, image, mask)`` -> images in [-1, 1]: the masked part repainted to the prompt."""

    def latent_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """A pixel mask (B, 1, H, W) of 0/1 on the latent grid (B, 1, h, w): max over each cell."""
        factor = self.vae.config.downsample_factor
        return F.max_pool2d(mask, kernel_size=factor)

    def check_resample(self, resample_steps: int | None) -> int:
        """RePaint's resamplings per step: ``None`` -> ``DEFAULT_RESAMPLE`` with a one-step scheduler
        (DDIM, DDPM), 1 with others; more than 1 with a multistep solver is refused."""
        one_step = isinstance(self.scheduler, (DDIMScheduler, DDPMScheduler))
        if resample_steps is None:
            return DEFAULT_RESAMPLE if one_step else 1
        resample_steps = check_positive_int("resample_steps", resample_steps)
        if resample_steps > 1 and not one_step:
            raise ValueError(
                f"resample_steps > 1 needs a one-step scheduler (DDIM or DDPM), "
                f"not {type(self.scheduler).__name__}"
            )
        return resample_steps

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        prompts: str | list[str],
        image: torch.Tensor,
        mask: torch.Tensor,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        progress: bool = True,
        eta: float = 0.0,
        resample_steps: int | None = None,
    ) -> PipelineOutput:
        """Repaint where ``mask`` (H, W) or (B, 1, H, W) is 1, keep the rest of ``image`` (3, H, W)
        or (B, 3, H, W) in [-1, 1]; each prompt describes the whole picture wanted.
        ``resample_steps`` > 1 takes each step that many times (RePaint), for as many times the cost;
        ``None``: ``DEFAULT_RESAMPLE`` with DDIM or DDPM, 1 with other schedulers. Steps and guidance
        default as for text to image (a distilled student's own)."""
        resample_steps = self.check_resample(resample_steps)
        plan = self.prepare(prompts, num_inference_steps, guidance_scale, seed, eta)
        prompts, num_inference_steps = plan.prompts, plan.num_inference_steps
        images = batch_images(image, len(prompts), size=None if self.any_size else self.image_size)
        mask = mask_tensor(mask)
        if mask.shape[-2:] != images.shape[-2:]:
            raise ValueError(f"mask is {tuple(mask.shape[-2:])} but the image is {tuple(images.shape[-2:])} "
                             "(H, W): give a mask of the image's size")
        if mask.shape[0] not in (1, len(prompts)):
            raise ValueError(f"give one mask or one per prompt ({len(prompts)}), got {mask.shape[0]}")
        z0 = self.encode_image(images).to(self.device)
        m = self.latent_mask(mask).to(z0.device).expand(len(prompts), 1, *z0.shape[-2:])
        generator = torch.Generator().manual_seed(plan.seed)
        noise = torch.randn(z0.shape, generator=generator).to(z0.device)
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps = self.scheduler.timesteps.tolist()

        def known_at(index: int) -> torch.Tensor:
            """The original latent at the level of ``timesteps[index]`` (clean after the last)."""
            if index >= len(timesteps):
                return z0
            return self.scheduler.add_noise(z0, noise, torch.tensor([timesteps[index]], device=z0.device))

        def reimpose(i: int, t: int, z: torch.Tensor) -> torch.Tensor:
            # $z_{t'} \leftarrow m \odot z_{t'} + (1 - m) \odot q(z_{t'} \mid z_0)$
            return m * z + (1 - m) * known_at(i + 1)

        start = m * noise + (1 - m) * known_at(0)
        if resample_steps == 1:
            latents = self.sampler.sample(
                plan.denoiser, None, self.scheduler, num_inference_steps, generator=generator,
                progress=progress, latents=start, on_step_end=reimpose, **plan.step_kwargs,
            )
        else:
            latents = self._resample_loop(start, timesteps, reimpose, resample_steps, generator, plan,
                                          progress)
        return self._finish(latents, plan.guidance_scale)

    def _resample_loop(
        self, z, timesteps, reimpose, resample_steps, generator, plan: SamplingPlan, progress
    ) -> torch.Tensor:
        """RePaint's loop: each step ``resample_steps`` times, noised back from t' to t in between."""
        step_kwargs = plan.step_kwargs
        check_step_kwargs(self.scheduler, step_kwargs)
        abar = self.scheduler.alphas_cumprod
        bar = progress_bar(timesteps, desc=f"inpainting (x{resample_steps})", disable=not progress)
        for i, t in enumerate(bar):
            for u in range(resample_steps):
                output = plan.denoiser(z, timestep_batch(t, z))
                z_prev = self.scheduler.step(output, t, z, generator=generator, **step_kwargs).prev_sample
                z_prev = reimpose(i, t, z_prev)
                if u == resample_steps - 1 or i == len(timesteps) - 1:  # (no jump back from the clean end)
                    z = z_prev
                    break
                # $z_t = \sqrt{\bar\alpha_t/\bar\alpha_{t'}}\, z_{t'}
                #   + \sqrt{1 - \bar\alpha_t/\bar\alpha_{t'}}\,\epsilon$
                ratio = abar[t] / abar[timesteps[i + 1]]
                fresh = torch.randn(z.shape, generator=generator).to(z.device)
                z = ratio.sqrt().to(z.device) * z_prev + (1 - ratio).sqrt().to(z.device) * fresh
        return z
