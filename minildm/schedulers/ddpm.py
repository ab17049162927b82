r"""DDPM (Ho, Jain & Abbeel, 2020): ancestral sampling, one random step at a time."""

from __future__ import annotations

import torch

from minildm.diffusion import posterior_coefficients
from minildm.schedulers.base import (
    SchedulerMixin,
    SchedulerOutput,
    check_step_tensors,
    draw_noise,
    refuse_unsupported,
    timestep_int,
)
from minildm.validation import check_choice

VARIANCE_TYPES = ("fixed_small", "fixed_large", "fixed_small_log")
MIN_VARIANCE = 1e-20  # diffusers clamps the posterior variance here (it is exactly 0 at the last step)


class DDPMScheduler(SchedulerMixin):
    r"""Ancestral sampling of Ho et al. (2020), with diffusers' ``DDPMScheduler`` API and numbers.

    ``step`` samples $x_{t'} \sim q(x_{t'} \mid x_t, \hat x_0)$, the forward posterior with the
    network's $\hat x_0$ in place of the true $x_0$, where $t'$ is the *next timestep of*
    ``self.timesteps`` (so sampling with a sub-sequence of 50 of the 1000 steps works: the
    posterior formulas hold for any $t' < t$ with $\beta = 1 - \bar\alpha_t / \bar\alpha_{t'}$).
    Before :meth:`set_timesteps` is called, $t' = t - 1$.

    Every setting of diffusers' ``DDPMScheduler`` is accepted (the ones after
    ``rescale_betas_zero_snr`` by keyword): ``trained_betas`` gives the betas value by value;
    ``thresholding`` applies Imagen's dynamic thresholding to $\hat x_0$ instead of clipping; the
    variance types of networks that predict their own variance (``"learned"``,
    ``"learned_range"``) are refused, and so is ``"fixed_large_log"``.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        prediction_type: str = "epsilon",
        variance_type: str | None = "fixed_small",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        timestep_spacing: str = "leading",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
        *,
        trained_betas: list[float] | None = None,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
    ) -> None:
        if variance_type is None:  # (a DPM-Solver config's "no learned variance"): the default
            variance_type = "fixed_small"
        if variance_type in ("learned", "learned_range", "fixed_large_log"):
            refuse_unsupported(
                "DDPMScheduler",
                "variance_type",
                variance_type,
                VARIANCE_TYPES,
                "the networks here predict no variance; "
                "'fixed_large_log' would take the square root of log(beta) < 0",
            )
        check_choice("variance_type", variance_type, VARIANCE_TYPES)
        self._init_schedule(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            prediction_type=prediction_type,
            variance_type=variance_type,
            clip_sample=clip_sample,
            clip_sample_range=clip_sample_range,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            sample_max_value=sample_max_value,
        )

    def previous_timestep(self, timestep: int | torch.Tensor) -> int:
        """The timestep $t'$ that :meth:`step` goes to from ``timestep``: the next one in
        ``self.timesteps`` (-1 after the last: "the clean sample"); $t - 1$ before
        :meth:`set_timesteps` is called."""
        if self.num_inference_steps is None:
            return timestep_int(timestep) - 1
        return super().previous_timestep(timestep)

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
        check_step_tensors(model_output, sample)
        t = timestep_int(timestep)
        T = self.config.num_train_timesteps
        if not 0 <= t <= T - 1:
            raise ValueError(f"timestep must lie in [0, {T - 1}], got {t}")
        prev_t = self.previous_timestep(t)

        # $\bar\alpha_t$ and $\bar\alpha_{t'}$ (1 before the first step)
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0)

        # 1. the network's guess of the clean sample, $\hat x_0$ (clipped if ``clip_sample``)
        pred_x0, _ = self.predict_x0_and_eps(model_output, sample, alpha_prod_t)

        # 2. the posterior $q(x_{t'} \mid x_t, \hat x_0)$: mean and variance (DDPM eq. 6-7)
        coef_x0, coef_xt, posterior_variance = posterior_coefficients(alpha_prod_t, alpha_prod_t_prev)
        # $\tilde\mu = \frac{\sqrt{\bar\alpha_{t'}}\beta}{1 - \bar\alpha_t}\hat x_0
        #   + \frac{\sqrt{\alpha}(1 - \bar\alpha_{t'})}{1 - \bar\alpha_t} x_t$
        prev_sample = coef_x0 * pred_x0 + coef_xt * sample

        # 3. add noise: $x_{t'} = \tilde\mu + \sigma z$, $z \sim \mathcal{N}(0, I)$, except at t = 0
        if t > 0:
            noise = draw_noise(model_output, generator, variance_noise)
            if self.config.variance_type == "fixed_small":
                # $\sigma^2 = \tilde\beta = \frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}\beta$
                std = torch.clamp(posterior_variance, min=MIN_VARIANCE) ** 0.5
            elif self.config.variance_type == "fixed_small_log":
                # the same $\sigma = \exp(\tfrac12 \log\tilde\beta)$, computed through the log
                std = torch.exp(0.5 * torch.log(torch.clamp(posterior_variance, min=MIN_VARIANCE)))
            else:  # fixed_large
                # $\sigma^2 = \beta = 1 - \bar\alpha_t / \bar\alpha_{t'}$
                std = (1 - alpha_prod_t / alpha_prod_t_prev) ** 0.5
            prev_sample = prev_sample + std * noise
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_x0)
