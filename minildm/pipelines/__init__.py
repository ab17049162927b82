"""Pipelines: trained parts wired together, from noise (and a prompt) to an image.

- :class:`LatentDiffusionPipeline`: U-Net + scheduler + VAE (lesson 05);
- :class:`TextToImagePipeline`: the same plus a frozen text encoder and classifier-free guidance
  (lesson 06), sampling with DDIM by default (lesson 07);
- :class:`Img2ImgPipeline` and :class:`InpaintPipeline`: the text-to-image model started from a
  real image, or repainting a masked part of one (lesson 08).

Every call returns a :class:`PipelineOutput` (``.images``, ``.latents``); the text pipelines start from
one shared :meth:`TextToImagePipeline.prepare` (prompts, steps, guidance: a distilled student's defaults).
"""

from minildm.pipelines.img2img import DEFAULT_STRENGTH, Img2ImgPipeline
from minildm.pipelines.inpaint import InpaintPipeline
from minildm.pipelines.latent_diffusion import LatentDiffusionPipeline, PipelineOutput
from minildm.pipelines.text_to_image import (
    DEFAULT_GUIDANCE,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    SamplingPlan,
    TextToImagePipeline,
)

__all__ = [
    "DEFAULT_GUIDANCE",
    "DEFAULT_SAMPLER",
    "DEFAULT_STEPS",
    "DEFAULT_STRENGTH",
    "Img2ImgPipeline",
    "InpaintPipeline",
    "LatentDiffusionPipeline",
    "PipelineOutput",
    "SamplingPlan",
    "TextToImagePipeline",
]
