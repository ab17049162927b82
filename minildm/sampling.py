r"""The sampling loop, one for every scheduler: call the network (with classifier-free guidance,
once, in :meth:`Sampler.get_model_output`), hand its output to ``scheduler.step``, repeat over
``scheduler.timesteps``. DDPM and DDIM differ only in their scheduler's ``step``:

    x_T ~ N(0, I)                                    (or the latents you pass)
    for t in scheduler.timesteps:                    (largest first)
        out = model(x_t, t, c), guided               (eps, v or x0: what it was trained for)
        x_t = scheduler.step(out, t, x_t).prev_sample
    return x_0

:meth:`Sampler.invert` runs the same loop with a :class:`~minildm.schedulers.DDIMInverseScheduler`,
from a clean sample up to the noise that DDIM would turn back into it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from minildm.schedulers import DDIMInverseScheduler, DDIMScheduler, SchedulerMixin
from minildm.schedulers.ddim import check_eta
from minildm.utils import is_real_number
from minildm.utils import progress as progress_bar

# A model is called as model(x, t, context) -> output of x's shape (eps, v or x0, as it was trained)
Model = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
# on_step_end(index of the step, its timestep, the sample after it) -> the sample to continue with
StepCallback = Callable[[int, int, torch.Tensor], torch.Tensor]


def check_guidance_scale(guidance_scale: float) -> None:
    """Classifier-free guidance's scale s: a number >= 1 (1 means no guidance)."""
    if not is_real_number(guidance_scale):  # NumPy's numbers too (np.float32(7.5))
        raise ValueError(f"guidance_scale must be a number >= 1 (SD uses 7.5), got {guidance_scale!r}")
    if not 1.0 <= guidance_scale < float("inf"):
        raise ValueError(
            "guidance_scale must be >= 1 and finite (1 means no guidance; SD uses 7.5), "
            f"got {guidance_scale!r}"
        )


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


def _model_device(model: Model) -> torch.device:
    params = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return params.device if params is not None else torch.device("cpu")


def check_start_index(start_index: int, last: int) -> None:
    """``start_index``: an int in [0, last], the index of the first timestep that runs."""
    if isinstance(start_index, bool) or not isinstance(start_index, int) or not 0 <= start_index <= last:
        raise ValueError(f"start_index must be an int in [0, {last}], got {start_index!r}")


class Sampler:
    """The sampling loop shared by every scheduler (DDPM, DDIM, ...)."""

    def get_model_output(
        self,
        model: Model,
        x: torch.Tensor,
        t: int | torch.Tensor,
        cond: torch.Tensor | None = None,
        uncond: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
    ) -> torch.Tensor:
        """The network's output at $(x, t)$, guided if ``uncond`` is given and the scale is > 1.

        Classifier-free guidance runs the conditional and the unconditional model in one doubled
        batch and extrapolates from the second towards the first (Ho & Salimans, 2022)."""
        check_guidance_scale(guidance_scale)
        batch = x.shape[0]
        t = torch.as_tensor(t, device=x.device)
        # integer timesteps stay integers; the Euler samplers' float ones reach the network as floats
        t = (t if t.is_floating_point() else t.long()).reshape(-1).expand(batch)
        if uncond is None or guidance_scale == 1.0:
            return model(x, t, cond)
        if cond is None:
            raise ValueError("cond must be given along with uncond for classifier-free guidance")
        for name, context in (("cond", cond), ("uncond", uncond)):
            if context.shape[0] not in (1, batch):
                raise ValueError(f"{name} must have batch size 1 or {batch}, got {context.shape[0]}")
        cond = cond.expand(batch, *cond.shape[1:])
        uncond = uncond.expand(batch, *uncond.shape[1:])
        out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([uncond, cond]))
        out_uncond, out_cond = out.chunk(2)
        # $\hat\epsilon = \epsilon_\theta(x_t, \varnothing)
        #   + s\,(\epsilon_\theta(x_t, c) - \epsilon_\theta(x_t, \varnothing))$
        return out_uncond + guidance_scale * (out_cond - out_uncond)

    @torch.no_grad()
    def sample(
        self,
        model: Model,
        shape: tuple[int, ...] | torch.Size | None,
        scheduler: SchedulerMixin,
        num_inference_steps: int,
        generator: torch.Generator | None = None,
        cond: torch.Tensor | None = None,
        uncond: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
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

        The starting noise is drawn on the generator's device (the CPU by default) and then moved
        to ``device`` (default: where the model's parameters are, else the CPU), so a seed gives
        the same samples on every device. ``step_kwargs`` go to ``scheduler.step`` (e.g. DDIM's
        ``eta=0.5``); one it does not take raises a ValueError before any work."""
        check_guidance_scale(guidance_scale)
        check_step_kwargs(scheduler, step_kwargs)
        device = torch.device(device) if device is not None else _model_device(model)
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
            output = self.get_model_output(model, model_input, t, cond, uncond, guidance_scale)
            x = scheduler.step(output, t, x, generator=generator, **step_kwargs).prev_sample
            if on_step_end is not None:
                x = on_step_end(i, int(t), x)  # (the Euler samplers' float t, rounded down)
        return x

    @torch.no_grad()
    def invert(
        self,
        model: Model,
        x0: torch.Tensor,
        scheduler: DDIMScheduler,
        num_inference_steps: int,
        cond: torch.Tensor | None = None,
        uncond: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        progress: bool = True,
        start_index: int = 0,
    ) -> torch.Tensor:
        r"""DDIM inversion: the noise $x_T$ from which deterministic DDIM sampling (``eta=0``,
        same ``scheduler`` settings and ``num_inference_steps``) gives back ``x0``, approximately.

        With ``start_index`` > 0 the inversion stops part-way, at the level where :meth:`sample` with
        the same ``start_index`` begins (``scheduler.timesteps[start_index]``): img2img's inversion start.

        ``scheduler`` is the DDIMScheduler you will sample with (its settings are copied into a
        :class:`DDIMInverseScheduler`), or a DDIMInverseScheduler. The loop runs on ``x0``'s
        device. Guidance works as for sampling, but inversion is usually done with
        ``guidance_scale=1``: with a large scale the inverted noise no longer reconstructs ``x0``
        (the problem null-text inversion solves)."""
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
            output = self.get_model_output(model, model_input, t, cond, uncond, guidance_scale)
            x = inverse.step(output, t, x).prev_sample
        return x


#: CompVis's name for the loop that samples with DDIM: the same loop, given a DDIMScheduler
#: (``DDIMSampler().sample(model, shape, DDIMScheduler(...), 25, eta=0.0)``).
DDIMSampler = Sampler
