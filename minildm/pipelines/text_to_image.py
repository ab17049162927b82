"""Text to image (lesson 06): the latent pipeline of lesson 05 plus a frozen text encoder and
classifier-free guidance.

    prompt --tokenizer--> ids --text encoder--> context c  [B, tokens, width]
    z_T ~ N(0, I) --(U-Net(z_t, t, c) with guidance, T steps)--> z_0 --(/ f, VAE decoder)--> image

Classifier-free guidance (Ho & Salimans, 2022) runs the U-Net twice per step, with the prompt's
context and with the empty prompt's, and extrapolates:
    eps_hat = eps(z_t, empty) + s * (eps(z_t, c) - eps(z_t, empty)).
``guidance_scale`` s = 1 is the plain conditional model; larger s follows the prompt harder.
(The same formula applies to a v-prediction: v is linear in eps for a given z_t.)

:meth:`TextToImagePipeline.from_pretrained` samples with DDIM (lesson 07: deterministic with
``eta=0``, good in 25 steps) on the checkpoint's noise schedule; for lesson 03's DDPM, swap the
scheduler: ``pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from minildm import names
from minildm.checkpoint_config import CheckpointConfig, Distillation, read_distillation
from minildm.checkpoints import checkpoint_folder, load_pretrained, load_text_encoder
from minildm.guidance import CFGDenoiser
from minildm.pipelines.composable import ComposableGuidance, check_phrase_scale, phrase_contexts
from minildm.pipelines.latent_diffusion import LatentDiffusionPipeline, PipelineOutput
from minildm.schedulers import SCHEDULERS, LCMScheduler, SchedulerMixin
from minildm.text import TextEncoder, check_prompts, is_word_level
from minildm.utils import check_positive_int, get_device
from minildm.vae import AutoencoderKL
from minildm.validation import check_seed

#: Defaults of ``TextToImagePipeline``, chosen by ``bench/text_to_image.py`` (guidance)
#: and ``bench/ddim.py`` (DDIM in 25 steps judged as good as DDPM in 1000, 40x faster).
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 3.0
DEFAULT_SAMPLER = names.DEFAULT_SAMPLER  # "ddim"
#: a distilled student's (lesson 11): 4 LCM steps, its guidance already in its weights
STUDENT_STEPS = 4


def prompt_list(prompts: str | list[str]) -> list[str]:
    """One prompt or a non-empty list of them, as a list."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts must be a str or a non-empty list of str, got {prompts!r}")
    return prompts


@dataclass
class SamplingPlan:
    """What every text pipeline's call starts from, made once by :meth:`TextToImagePipeline.prepare`:
    the prompts, the checked step count, guidance scale and seed, the prompts' contexts, the guided
    ``denoiser`` the sampling loop calls, and the scheduler's ``step_kwargs`` (DDIM's eta)."""

    prompts: list[str]
    num_inference_steps: int
    guidance_scale: float
    seed: int
    cond: torch.Tensor
    uncond: torch.Tensor
    denoiser: CFGDenoiser
    step_kwargs: dict = field(default_factory=dict)


class TextToImagePipeline(LatentDiffusionPipeline):
    """``pipe(prompts, num_inference_steps, guidance_scale, seed)`` -> images in [-1, 1].

    Build it from the shipped checkpoints with :meth:`from_pretrained`, or from parts."""

    checkpoint_kind = "text2img"

    def __init__(
        self,
        backbone: torch.nn.Module,
        scheduler: SchedulerMixin,
        vae: AutoencoderKL,
        scale_factor: float,
        text_encoder: TextEncoder,
        config: dict | None = None,
        strict: bool = True,
    ) -> None:
        super().__init__(backbone, scheduler, vae, scale_factor, config)
        width = getattr(getattr(backbone, "config", None), "context_dim", None)
        if width is not None and width != text_encoder.width:
            raise ValueError(
                f"the U-Net expects a context of width {width}, the text encoder gives {text_encoder.width}"
            )
        self.text_encoder = text_encoder
        #: refuse prompts outside the shapes-world grammar (with a word-level tokenizer, ours)
        self.strict = strict
        #: a distilled student's settings (lesson 11): guidance folded in, sampled in a few steps
        self.distillation: Distillation | None = read_distillation(config or {})

    @property
    def default_steps(self) -> int:
        """25 DDIM steps; 4 for a distilled student."""
        return DEFAULT_STEPS if self.distillation is None else STUDENT_STEPS

    @property
    def default_guidance(self) -> float:
        """3; 1 for a student, whose guidance is in its weights (one network call per step)."""
        return DEFAULT_GUIDANCE if self.distillation is None else 1.0

    @property
    def default_sampler(self) -> str:
        return DEFAULT_SAMPLER if self.distillation is None else "lcm"

    def check_sampling(self, num_inference_steps: int) -> int:
        """Refuse a step count that is not a positive int, and the LCM sampler on a model that was not
        distilled for it; warn when a student is sampled with a step count it was not measured at.
        Returns the step count as a Python int (NumPy's integers are accepted)."""
        num_inference_steps = check_positive_int("num_inference_steps", num_inference_steps)
        if isinstance(self.scheduler, LCMScheduler) and self.distillation is None:
            raise ValueError("the lcm sampler needs a distilled student checkpoint (train lcm); "
                             "this checkpoint is a plain text2img model: use ddim, dpm++, euler or euler_a")
        if self.distillation is None:
            return num_inference_steps
        measured, most = self.distillation.steps, self.distillation.original_inference_steps
        if num_inference_steps not in measured and 0 < num_inference_steps <= most:  # (others: refused)
            warnings.warn(f"this student was distilled for {list(measured)} steps; "
                          f"{num_inference_steps} steps is allowed but unmeasured", stacklevel=4)
        return num_inference_steps

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        vae_path: str | Path | None = None,
        text_encoder_path: str | Path | None = None,
        device: str | torch.device | None = None,
    ) -> TextToImagePipeline:
        """Load the noise predictor in ``path`` (default ``data/checkpoints/text2img``, lesson 11's DiT;
        ``data/checkpoints/text2img_unet`` is the U-Net of lessons 06-09), the VAE and the text encoder it
        was trained with (their default places, or the given folders), with a DDIM scheduler on the
        checkpoint's noise schedule."""
        from minildm.stable_diffusion import is_stable_diffusion, load_components

        if path is not None and is_stable_diffusion(path):  # SD: a diffusers folder or a .safetensors file
            return cls(**load_components(path, text_encoder_path, device))
        device = get_device(device)
        backbone, scheduler, config = load_pretrained(cls.checkpoint_kind, path, device=device)
        folder = checkpoint_folder(cls.checkpoint_kind, path)
        # every entry this needs, read (and type-checked) before the VAE or the text encoder loads
        typed = CheckpointConfig.from_dict(config, folder).require("vae", "text_encoder", folder=folder)
        encoder = typed.text_encoder
        vae = cls.load_matching_vae(typed.vae, vae_path, device)
        if encoder.kind == "clip":
            text_encoder, clip_config = load_text_encoder(text_encoder_path, device=device)
            if clip_config["model"] != encoder.model:
                raise ValueError(
                    "the text encoder checkpoint is not the one this U-Net was trained with: expected "
                    f"CLIP config {encoder.model}, got {clip_config['model']}"
                )
        else:  # a transformers CLIP text model, e.g. one downloaded by a user online
            encoder_folder = Path(text_encoder_path or encoder.path)
            if not encoder_folder.is_dir():  # fail fast, offline: never reach for the network here
                raise FileNotFoundError(
                    f"the text encoder this U-Net was trained with, {str(encoder_folder)!r}, is not on this "
                    "machine; pass text_encoder_path (--text-encoder) to a local copy"
                )
            text_encoder = TextEncoder.from_pretrained(encoder_folder).to(device)
        text_encoder.clip_skip = encoder.clip_skip  # the layer the U-Net was trained on
        distillation = typed.distillation
        if distillation is None:
            scheduler = SCHEDULERS[DEFAULT_SAMPLER].from_config(scheduler.config)
        else:  # a few-step student (lesson 11): its own sampler, on its distillation schedule
            scheduler = LCMScheduler.from_config(dict(
                vars(scheduler.config), original_inference_steps=distillation.original_inference_steps,
                timestep_scaling=distillation.timestep_scaling))
        return cls(backbone, scheduler, vae, typed.vae.scale_factor, text_encoder, config=config)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> context ``[B, tokens, width]``; an unknown word raises a ValueError naming it,
        and so does a prompt outside the caption grammar while ``strict`` (our tokenizer only)."""
        if self.strict and is_word_level(self.text_encoder.tokenizer):
            check_prompts([prompts] if isinstance(prompts, str) else prompts)
        return self.text_encoder(prompts)

    def prepare(
        self,
        prompts: str | list[str],
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        eta: float = 0.0,
        phrase_guidance: float = 0.0,
    ) -> SamplingPlan:
        """The step every text pipeline's call starts with: the prompts as a list, the step count and
        the guidance scale (None: :attr:`default_steps` and :attr:`default_guidance`, a distilled
        student's own), each checked here, once; the prompts' and the empty prompt's contexts, and the
        :class:`~minildm.guidance.CFGDenoiser` that guides with them (with ``phrase_guidance`` > 0, a
        :class:`ComposableGuidance`, lesson 10). ``eta`` (DDIM's noise) is checked with the scheduler
        before the first step."""
        prompts = prompt_list(prompts)
        num_inference_steps = self.default_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = self.default_guidance if guidance_scale is None else guidance_scale
        num_inference_steps = self.check_sampling(num_inference_steps)
        seed = check_seed("seed", seed)
        phrase_guidance = check_phrase_scale(phrase_guidance)
        cond, uncond = self.encode_prompt(prompts), self.encode_prompt([""])
        if phrase_guidance > 0.0:
            phrases, weights = phrase_contexts(self.encode_prompt, prompts, uncond)
            denoiser: CFGDenoiser = ComposableGuidance(
                self.backbone, cond, uncond, phrases, weights, guidance_scale, phrase_guidance)
        else:  # (the guidance scale is checked here, once)
            denoiser = CFGDenoiser(self.backbone, cond, uncond, guidance_scale)
        if self.distillation is not None and denoiser.scale != 1.0:
            folded = self.distillation.guidance_scale
            warnings.warn(f"this student has guidance {folded:g} in its weights; guidance_scale "
                          f"{denoiser.scale:g} guides again (two network calls per step)", stacklevel=3)
        step_kwargs = {"eta": eta} if eta != 0.0 else {}
        return SamplingPlan(prompts, num_inference_steps, denoiser.scale, seed, cond, uncond, denoiser,
                            step_kwargs)

    def __call__(
        self,
        prompts: str | list[str],
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        progress: bool = True,
        eta: float = 0.0,
        phrase_guidance: float = 0.0,
        height: int | None = None,
        width: int | None = None,
    ) -> PipelineOutput:
        """One image per prompt: ``.images`` (float, (B, 3, H, W) in [-1, 1]) and the ``.latents`` they
        were decoded from; the same ``seed`` gives the same images on every device (the noise is drawn
        on the CPU).

        ``num_inference_steps`` and ``guidance_scale`` default to :attr:`default_steps` and
        :attr:`default_guidance` (25 and 3; 4 and 1 for a distilled student).
        The empty prompt ``""`` asks explicitly for the unconditional model (no guidance applies).
        ``eta`` is DDIM's noise (0 = deterministic); a scheduler without it (DDPM) refuses eta > 0.
        ``phrase_guidance`` > 0 adds composable guidance, one term per object of a two-object
        prompt (:mod:`minildm.pipelines.composable`; lesson 10). ``height`` and ``width`` in pixels
        (Stable Diffusion only; default the model's :attr:`image_size`) must be multiples of
        :attr:`size_multiple`."""
        shape = None if height is None and width is None else self.latent_shape_at(height, width)
        plan = self.prepare(prompts, num_inference_steps, guidance_scale, seed, eta, phrase_guidance)
        return self._generate(len(plan.prompts), plan.num_inference_steps, plan.seed, progress, plan.denoiser,
                              shape, plan.guidance_scale, **plan.step_kwargs)
