r"""The sampling loop, one for every scheduler: call the denoiser at $(x_t, t)$ (a noise network, or
one wrapped with its conditioning and classifier-free guidance in a :class:`~minildm.guidance.CFGDenoiser`),
hand its output to ``scheduler.step``, repeat over ``scheduler.timesteps``. DDPM and DDIM differ
only in their scheduler's ``step``:

    x_T ~ N(0, I)                                    (or the latents you pass)
    for t in scheduler.timesteps:                    (largest first)
        out = denoiser(x_t, t)                       (eps, v or x0: what it was trained for)
        x_t = scheduler.step(out, t, x_t).prev_sample
    return x_0

:meth:`Sampler.invert` runs the same loop with a :class:`~minildm.schedulers.DDIMInverseScheduler`,
from a clean sample up to the noise that DDIM would turn back into it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from minildm.guidance import CFGDenoiser, Denoiser, check_guidance_scale
from minildm.schedulers import DDIMInverseScheduler, DDIMScheduler, SchedulerMixin
from minildm.schedulers.ddim import check_eta
from minildm.utils import progress as progress_bar
from minildm.validation import check_int

__all__ = ["CFGDenoiser", "DDIMSampler", "Denoiser", "Sampler", "check_guidance_scale", "check_start_index",
           "check_step_kwargs", "timestep_batch"]
# on_step_end(index of the step, its timestep, the sample after it) -> the sample to continue with
StepCallback = Callable[[int, int, torch.Tensor], torch.Tensor]


def check_step_kwargs(scheduler: SchedulerMixin, step_kwargs: dict) -> None:
    """Refuse, before any work, a scheduler that does not sample and an option its ``step`` does
    not take (DDPM has no eta) or a bad value of DDIM's eta."""
    if not isinstance(scheduler, SchedulerMixin) or isinstance(scheduler, DDIMInverseScheduler):
        raise ValueError(
            "scheduler must be a sampling scheduler (one of minildm.schedulers.SCHEDULERS), got "
            f"{type(scheduler).__name__} (a DDIMInverseScheduler goes from data to noise: use Sampler.invert)"
        )
    if "eta" in step_kwargs:
        check_eta(step_kwargs["eta"])
    accepted = inspect.signature(scheduler.step).parameters
    for name in step_kwargs:
        if name not in accepted or name in ("model_output", "timestep", "sample", "generator"):
            raise ValueError(
                f"{type(scheduler).__name__}.step takes no {name!r} "
                f"(e.g. eta is DDIM's noise level: use a DDIMScheduler)"
            )


def _starting_sample(
    shape: tuple[int, ...] | torch.Size | None,
    latents: torch.Tensor | None,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """``latents`` on ``device``, or noise of ``shape`` drawn on the generator's device (the CPU
    by default, so a seed gives the same noise everywhere)."""
    if latents is not None:
        if not isinstance(latents, torch.Tensor) or latents.ndim == 0:
            raise ValueError(f"latents must be a batch tensor, got {type(latents).__name__}")
        if shape is not None and tuple(shape) != tuple(latents.shape):
            raise ValueError(f"latents have shape {tuple(latents.shape)}, but shape={tuple(shape)}")
        return latents.to(device)
    shape = tuple(shape) if shape is not None else ()
    if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"shape must be a tuple of positive ints, e.g. (4, 3, 32, 32), got {shape!r}")
    draw_on = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=draw_on).to(device)


def _model_device(denoiser: Denoiser) -> torch.device:
    params = next(denoiser.parameters(), None) if isinstance(denoiser, torch.nn.Module) else None
    return params.device if params is not None else torch.device("cpu")


def timestep_batch(t: int | float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The timestep ``t`` as a tensor [B] on x's device, one per sample of ``x`` (what a denoiser is
    called with): integer timesteps stay integers, the Euler samplers' float ones stay floats."""
    t = torch.as_tensor(t, device=x.device)
    return (t if t.is_floating_point() else t.long()).reshape(-1).expand(x.shape[0])


def check_start_index(start_index: int, last: int) -> None:
    """``start_index``: an int in [0, last], the index of the first timestep that runs."""
    check_int("start_index", start_index, low=0, high=last)


class Sampler:
    """The sampling loop shared by every scheduler (DDPM, DDIM, ...)."""

    @torch.no_grad()
    def sample(
        self,
        denoiser: Denoiser,
        shape: tuple[int, ...] | torch.Size | None,
        scheduler: SchedulerMixin,
        num_inference_steps: int,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
        progress: bool = True,
        latents: torch.Tensor | None = None,
        start_index: int = 0,
        on_step_end: StepCallback | None = None,
        **step_kwargs,
    ) -> torch.Tensor:
        r"""Generate a batch of shape ``shape`` from pure noise $x_T \sim \mathcal{N}(0, I)$, or from
        ``latents`` if given (then ``shape`` may be None): e.g. the noise DDIM inversion found.

        ``start_index`` skips the first timesteps: the loop starts at ``scheduler.timesteps[start_index]``
        from ``latents`` noised to that level (img2img, SDEdit). ``on_step_end(i, t, x)`` is called
        after step ``i`` (timestep ``t``) and returns the sample to continue with (inpainting
        re-imposes the known region there).

        ``denoiser(x_t, t)`` is a noise network (unconditional: its context stays None) or a
        :class:`~minildm.guidance.CFGDenoiser` (conditioned, guided). The starting noise is drawn on
        the generator's device (the CPU by default) and then moved to ``device`` (default: where the
        denoiser's parameters are, else the CPU), so a seed gives the same samples on every device.
        ``step_kwargs`` go to ``scheduler.step`` (e.g. DDIM's ``eta=0.5``); one it does not take raises
        a ValueError before any work."""
        check_step_kwargs(scheduler, step_kwargs)
        device = torch.device(device) if device is not None else _model_device(denoiser)
        x = _starting_sample(shape, latents, generator, device)
        scheduler.set_timesteps(num_inference_steps, device=device)
        last = len(scheduler.timesteps) - 1
        check_start_index(start_index, last)
        if start_index == 0:
            # $x_T \sim \mathcal{N}(0, \sigma_\text{init}^2 I)$
            x = x * scheduler.init_noise_sigma
        timesteps = progress_bar(scheduler.timesteps[start_index:], desc="sampling", disable=not progress)
        for i, t in enumerate(timesteps, start=start_index):
            model_input = scheduler.scale_model_input(x, t)
            output = denoiser(model_input, timestep_batch(t, model_input))
            x = scheduler.step(output, t, x, generator=generator, **step_kwargs).prev_sample
            if on_step_end is not None:
                x = on_step_end(i, int(t), x)  # (the Euler samplers' float t, rounded down)
        return x

    @torch.no_grad()
    def invert(
        self,
        denoiser: Denoiser,
        x0: torch.Tensor,
        scheduler: DDIMScheduler,
        num_inference_steps: int,
        progress: bool = True,
        start_index: int = 0,
    ) -> torch.Tensor:
        r"""DDIM inversion: the noise $x_T$ from which deterministic DDIM sampling (``eta=0``,
        same ``scheduler`` settings and ``num_inference_steps``) gives back ``x0``, approximately.

        With ``start_index`` > 0 the inversion stops part-way, at the level where :meth:`sample` with
        the same ``start_index`` begins (``scheduler.timesteps[start_index]``): img2img's inversion start.

        ``scheduler`` is the DDIMScheduler you will sample with (its settings are copied into a
        :class:`DDIMInverseScheduler`), or a DDIMInverseScheduler. The loop runs on ``x0``'s
        device. ``denoiser`` is as for :meth:`sample`; inversion is usually done with a guidance
        scale of 1 (e.g. the network under the empty prompt): with a large scale the inverted noise
        no longer reconstructs ``x0`` (the problem null-text inversion solves)."""
        if not isinstance(scheduler, DDIMScheduler):
            raise ValueError(
                f"scheduler must be a DDIMScheduler or a DDIMInverseScheduler, got {type(scheduler).__name__}"
            )
        if not isinstance(x0, torch.Tensor) or x0.ndim == 0:
            raise ValueError(f"x0 must be a batch of clean samples (a tensor with a batch dim), got {x0!r}")
        inverse = (
            scheduler
            if isinstance(scheduler, DDIMInverseScheduler)
            else DDIMInverseScheduler.from_config(scheduler.config)
        )
        inverse.set_timesteps(num_inference_steps, device=x0.device)
        last = len(inverse.timesteps) - 1
        check_start_index(start_index, last)
        # sampling runs timesteps[start_index:] downwards; inversion runs the same ones upwards
        timesteps = inverse.timesteps[: len(inverse.timesteps) - start_index]
        x = x0
        for t in progress_bar(timesteps, desc="inverting", disable=not progress):
            model_input = inverse.scale_model_input(x, t)
            # the network at the sample we have ($x_{t'}$) and the timestep we go to ($t$)
            output = denoiser(model_input, timestep_batch(t, model_input))
            x = inverse.step(output, t, x).prev_sample
        return x


#: CompVis's name for the loop that samples with DDIM: the same loop, given a DDIMScheduler
#: (``DDIMSampler().sample(model, shape, DDIMScheduler(...), 25, eta=0.0)``).
DDIMSampler = Sampler
