"""Sampling: the DDPM scheduler (reverse process) and the loop that drives any scheduler.

Two parts, kept apart as in Hugging Face diffusers:

* a *scheduler* (:class:`DDPMScheduler`) knows the noise schedule and how to go from $x_t$ to
  $x_{t'}$ given the network's output; it knows nothing about networks. Its names, arguments and
  numbers are diffusers' (``set_timesteps``, ``step``, ``add_noise``, ``timesteps``,
  ``alphas_cumprod``), so code written against one runs against the other;
* a *sampler* (:class:`Sampler`) calls the network, does classifier-free guidance once in
  :meth:`Sampler.get_model_output`, and loops over the scheduler's timesteps. DDIM will reuse it
  and differ only in its scheduler's ``step``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from minildm.diffusion import (
    PREDICTION_TYPES,
    add_noise,
    get_velocity,
    posterior_coefficients,
    predict_x0_from_eps,
    predict_x0_from_v,
)
from minildm.schedules import NoiseSchedule
from minildm.utils import progress as progress_bar

VARIANCE_TYPES = ("fixed_small", "fixed_large")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
MIN_VARIANCE = 1e-20  # diffusers clamps the posterior variance here (it is exactly 0 at the last step)


@dataclass
class SchedulerOutput:
    r"""What :meth:`DDPMScheduler.step` returns: the next (less noisy) sample $x_{t'}$ and the
    current prediction of the clean sample $\hat x_0$ (handy to watch while sampling)."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


def _timestep_int(timestep: int | torch.Tensor) -> int:
    if isinstance(timestep, torch.Tensor):
        if timestep.numel() != 1 or timestep.is_floating_point():
            raise ValueError(f"timestep must be a single integer, got {timestep!r}")
        return int(timestep.item())
    if isinstance(timestep, bool) or not isinstance(timestep, (int, np.integer)):
        raise ValueError(f"timestep must be a single integer, got {timestep!r}")
    return int(timestep)


def _check_arguments(
    prediction_type: str, timestep_spacing: str, steps_offset: int, clip_sample_range: float
) -> None:
    """The argument checks the DDPM and DDIM schedulers share."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    if timestep_spacing not in TIMESTEP_SPACINGS:
        raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {timestep_spacing!r}")
    if isinstance(steps_offset, bool) or not isinstance(steps_offset, int) or steps_offset < 0:
        raise ValueError(f"steps_offset must be a non-negative int, got {steps_offset!r}")
    if not clip_sample_range > 0:
        raise ValueError(f"clip_sample_range must be positive, got {clip_sample_range!r}")


def _init_schedule(scheduler) -> None:
    """The state the DDPM and DDIM schedulers share, from their ``config``: the noise schedule
    (betas, alphas, alphas_cumprod), the starting noise scale and every timestep, T-1 first."""
    cfg = scheduler.config
    # the same beta_start / beta_end go to every schedule, as in diffusers (SD passes 0.00085, 0.012)
    schedule = NoiseSchedule(
        cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end, cfg.rescale_betas_zero_snr
    )
    scheduler.betas = schedule.betas
    scheduler.alphas = schedule.alphas
    scheduler.alphas_cumprod = schedule.alphas_cumprod
    scheduler.init_noise_sigma = 1.0  # x_T ~ N(0, I): no extra scaling (unlike the Euler/Karras samplers)
    scheduler.num_inference_steps = None
    scheduler.timesteps = torch.arange(cfg.num_train_timesteps - 1, -1, -1)  # T-1, ..., 0: every step


class DDPMScheduler:
    r"""Ancestral sampling of Ho et al. (2020), with diffusers' ``DDPMScheduler`` API and numbers.

    ``step`` samples $x_{t'} \sim q(x_{t'} \mid x_t, \hat x_0)$, the forward posterior with the
    network's $\hat x_0$ in place of the true $x_0$, where $t'$ is the *next timestep of*
    ``self.timesteps`` (so sampling with a sub-sequence of 50 of the 1000 steps works: the
    posterior formulas hold for any $t' < t$ with $\beta = 1 - \bar\alpha_t / \bar\alpha_{t'}$).
    Before :meth:`set_timesteps` is called, $t' = t - 1$.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        prediction_type: str = "epsilon",
        variance_type: str = "fixed_small",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        timestep_spacing: str = "leading",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
    ) -> None:
        if variance_type not in VARIANCE_TYPES:
            raise ValueError(f"variance_type must be one of {VARIANCE_TYPES}, got {variance_type!r}")
        _check_arguments(prediction_type, timestep_spacing, steps_offset, clip_sample_range)
        self.config = SimpleNamespace(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            prediction_type=prediction_type,
            variance_type=variance_type,
            clip_sample=clip_sample,
            clip_sample_range=clip_sample_range,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
        )
        _init_schedule(self)

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    # ------------------------------------------------------------------ timesteps

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        r"""Choose the ``num_inference_steps`` timesteps to sample at, largest first.

        With T = 1000 and 50 steps (``steps_offset=0``):

        * ``"leading"``: $0, 20, \dots, 980$ reversed: multiples of T // n, plus ``steps_offset``.
          Never visits the noisiest timestep 999, and ends exactly at 0.
        * ``"trailing"``: $999, 979, \dots, 19$: counts back from T in steps of T / n. Starts at
          the noisiest timestep (what a zero-terminal-SNR schedule needs), but ends at 19, not 0.
        * ``"linspace"``: $999, \dots, 0$ rounded from evenly spaced reals: both ends, uneven gaps.
        """
        T = self.config.num_train_timesteps
        n = num_inference_steps
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= T:
            raise ValueError(
                f"num_inference_steps must be an int in [1, {T}] (num_train_timesteps), "
                f"got {num_inference_steps!r}"
            )
        spacing = self.config.timestep_spacing
        # integer bookkeeping in NumPy float64, rounded exactly as diffusers does
        if spacing == "linspace":
            timesteps = np.linspace(0, T - 1, n).round()[::-1].astype(np.int64)
        elif spacing == "leading":
            step_ratio = T // n
            timesteps = (np.arange(n) * step_ratio)[::-1].astype(np.int64) + self.config.steps_offset
        else:  # trailing
            step_ratio = T / n
            # diffusers' np.arange(T, 0, -T/n) sometimes yields an (n+1)-th value ~0 (e.g. n = 61):
            # keep the first n, so that there are exactly n timesteps and none is -1
            timesteps = np.round(np.arange(T, 0, -step_ratio))[:n].astype(np.int64) - 1
        if timesteps.max() > T - 1:
            raise ValueError(
                f"steps_offset={self.config.steps_offset} pushes the largest timestep to {timesteps.max()}, "
                f"past num_train_timesteps - 1 = {T - 1}"
            )
        self.num_inference_steps = n
        self.timesteps = torch.from_numpy(timesteps.copy()).to(device)

    def previous_timestep(self, timestep: int | torch.Tensor) -> int:
        """The timestep $t'$ that :meth:`step` goes to from ``timestep``: the next one in
        ``self.timesteps`` (-1 after the last: "the clean sample")."""
        t = _timestep_int(timestep)
        if self.num_inference_steps is None:
            return t - 1
        matches = (self.timesteps == t).nonzero()
        if len(matches) == 0:
            raise ValueError(
                f"timestep must be one of scheduler.timesteps "
                f"(set by set_timesteps({self.num_inference_steps})), got {t}"
            )
        index = int(matches[0, 0])
        return -1 if index == len(self.timesteps) - 1 else int(self.timesteps[index + 1])

    # ------------------------------------------------------------------ forward process

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        r"""$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$ (see
        :func:`minildm.diffusion.add_noise`)."""
        return add_noise(original_samples, noise, timesteps, self.alphas_cumprod)

    def get_velocity(
        self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        r"""The v-prediction target $v = \sqrt{\bar\alpha_t}\, \epsilon - \sqrt{1 - \bar\alpha_t}\, x_0$
        (``sample`` is $x_0$)."""
        return get_velocity(sample, noise, timesteps, self.alphas_cumprod)

    def scale_model_input(
        self, sample: torch.Tensor, timestep: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """The identity: DDPM and DDIM feed $x_t$ to the network as it is (kept for a common API;
        the Euler samplers scale it)."""
        return sample

    # ------------------------------------------------------------------ reverse process

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> SchedulerOutput:
        """One ancestral step from $x_t$ (``sample``) to $x_{t'}$, $t'$ the next timestep.

        Noise is added only when ``timestep > 0``; it is ``variance_noise`` if given, else drawn
        with ``generator`` on the generator's device (CPU by default) and moved to the sample's,
        as diffusers does, so that a seed gives the same numbers as diffusers."""
        if not isinstance(sample, torch.Tensor) or not isinstance(model_output, torch.Tensor):
            raise ValueError("model_output and sample must be tensors")
        if model_output.shape != sample.shape:
            raise ValueError(
                f"model_output must have the shape of sample, {tuple(sample.shape)}, "
                f"got {tuple(model_output.shape)}"
            )
        t = _timestep_int(timestep)
        T = self.config.num_train_timesteps
        if not 0 <= t <= T - 1:
            raise ValueError(f"timestep must lie in [0, {T - 1}], got {t}")
        prev_t = self.previous_timestep(t)

        # $\bar\alpha_t$ and $\bar\alpha_{t'}$ (1 before the first step)
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0)

        # 1. the network's guess of the clean sample, $\hat x_0$
        prediction_type = self.config.prediction_type
        if prediction_type == "epsilon":
            # $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon_\theta) / \sqrt{\bar\alpha_t}$
            # (infinite at zero terminal SNR, where $\bar\alpha_T = 0$: clipping then saves it)
            pred_x0 = predict_x0_from_eps(sample, model_output, t, self.alphas_cumprod)
        elif prediction_type == "v_prediction":
            # $\hat x_0 = \sqrt{\bar\alpha_t}\, x_t - \sqrt{1 - \bar\alpha_t}\, v_\theta$
            pred_x0 = predict_x0_from_v(sample, model_output, t, self.alphas_cumprod)
        else:  # sample
            pred_x0 = model_output
        if self.config.clip_sample:
            r = self.config.clip_sample_range
            pred_x0 = pred_x0.clamp(-r, r)

        # 2. the posterior $q(x_{t'} \mid x_t, \hat x_0)$: mean and variance (DDPM eq. 6-7)
        coef_x0, coef_xt, posterior_variance = posterior_coefficients(alpha_prod_t, alpha_prod_t_prev)
        # $\tilde\mu = \frac{\sqrt{\bar\alpha_{t'}}\beta}{1 - \bar\alpha_t}\hat x_0
        #   + \frac{\sqrt{\alpha}(1 - \bar\alpha_{t'})}{1 - \bar\alpha_t} x_t$
        prev_sample = coef_x0 * pred_x0 + coef_xt * sample

        # 3. add noise: $x_{t'} = \tilde\mu + \sigma z$, $z \sim \mathcal{N}(0, I)$, except at t = 0
        if t > 0:
            if variance_noise is None:
                draw_on = generator.device if generator is not None else model_output.device
                variance_noise = torch.randn(
                    model_output.shape, generator=generator, device=draw_on, dtype=model_output.dtype
                ).to(model_output.device)
            elif variance_noise.shape != sample.shape:
                raise ValueError(
                    f"variance_noise must have the shape of sample, {tuple(sample.shape)}, "
                    f"got {tuple(variance_noise.shape)}"
                )
            if self.config.variance_type == "fixed_small":
                # $\sigma^2 = \tilde\beta = \frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}\beta$
                variance = torch.clamp(posterior_variance, min=MIN_VARIANCE)
            else:  # fixed_large
                # $\sigma^2 = \beta = 1 - \bar\alpha_t / \bar\alpha_{t'}$
                variance = 1 - alpha_prod_t / alpha_prod_t_prev
            prev_sample = prev_sample + variance**0.5 * variance_noise
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_x0)


# A model is called as model(x, t, context) -> output of x's shape (eps, v or x0, as it was trained)
Model = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class Sampler:
    """The sampling loop shared by every scheduler: call the network (with classifier-free
    guidance), hand its output to ``scheduler.step``, repeat over ``scheduler.timesteps``."""

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
        if not guidance_scale >= 1.0:
            raise ValueError(
                f"guidance_scale must be >= 1 (1 means no guidance; SD uses 7.5), got {guidance_scale!r}"
            )
        batch = x.shape[0]
        t = torch.as_tensor(t, device=x.device).long().reshape(-1).expand(batch)
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
        shape: tuple[int, ...] | torch.Size,
        scheduler: DDPMScheduler,
        num_inference_steps: int,
        generator: torch.Generator | None = None,
        cond: torch.Tensor | None = None,
        uncond: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        device: str | torch.device | None = None,
        progress: bool = True,
        step_kwargs: dict | None = None,
    ) -> torch.Tensor:
        r"""Generate a batch of shape ``shape`` from pure noise $x_T \sim \mathcal{N}(0, I)$.

        The starting noise is drawn on the generator's device (the CPU by default) and then moved
        to ``device`` (default: where the model's parameters are, else the CPU), so a seed gives
        the same samples on every device. ``step_kwargs`` go to ``scheduler.step`` (e.g. DDIM's eta)."""
        if not guidance_scale >= 1.0:
            raise ValueError(
                f"guidance_scale must be >= 1 (1 means no guidance; SD uses 7.5), got {guidance_scale!r}"
            )
        shape = tuple(shape)
        if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"shape must be a tuple of positive ints, e.g. (4, 3, 32, 32), got {shape!r}")
        if device is None:
            params = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
            device = params.device if params is not None else torch.device("cpu")
        device = torch.device(device)

        scheduler.set_timesteps(num_inference_steps, device=device)
        draw_on = generator.device if generator is not None else torch.device("cpu")
        x = torch.randn(shape, generator=generator, device=draw_on).to(device)
        # $x_T \sim \mathcal{N}(0, \sigma_\text{init}^2 I)$
        x = x * scheduler.init_noise_sigma
        for t in progress_bar(scheduler.timesteps, desc="sampling", disable=not progress):
            model_input = scheduler.scale_model_input(x, t)
            output = self.get_model_output(model, model_input, t, cond, uncond, guidance_scale)
            x = scheduler.step(output, t, x, generator=generator, **(step_kwargs or {})).prev_sample
        return x


def __getattr__(name: str):
    """``from minildm.samplers import DDIMSampler`` works: DDIM lives in :mod:`minildm.ddim` (which
    builds on this module), and is looked up there on first use, so neither import comes first."""
    if name in ("DDIMScheduler", "DDIMInverseScheduler", "DDIMSampler"):
        from minildm import ddim

        return getattr(ddim, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
