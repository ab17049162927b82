r"""Euler samplers in Karras et al.'s (2022) "sigma" parametrisation: deterministic and ancestral.

Divide the noisy sample by $\sqrt{\bar\alpha_t}$: $x = x_0 + \sigma\,\epsilon$ with
$\sigma = \sqrt{(1 - \bar\alpha_t) / \bar\alpha_t}$ (the noise-to-signal ratio). In these
coordinates the probability-flow ODE is simply

$$\frac{dx}{d\sigma} = \frac{x - \hat x_0(x, \sigma)}{\sigma},$$

and **Euler** takes one straight step along it: $x_{\sigma'} = x_\sigma + (\sigma' - \sigma)\,
(x_\sigma - \hat x_0)/\sigma$. **Euler ancestral** steps down further, to $\sigma_\downarrow$, and adds
fresh noise $\sigma_\uparrow z$ so that the total lands on $\sigma'$ with the right variance:

$$\sigma_\uparrow = \sqrt{\sigma'^2 (\sigma^2 - \sigma'^2) / \sigma^2},\qquad
  \sigma_\downarrow = \sqrt{\sigma'^2 - \sigma_\uparrow^2}.$$

The network was trained on $x_t = \sqrt{\bar\alpha_t}\, x$, so :meth:`scale_model_input` divides by
$\sqrt{\sigma^2 + 1}$ before calling it, and sampling starts from $x_T \sim \mathcal{N}(0, \sigma_\max^2 I)$
(``init_noise_sigma``). Names, arguments and numbers are diffusers' ``EulerDiscreteScheduler`` and
``EulerAncestralDiscreteScheduler`` (without "churn"); their timesteps are floats. With
``use_karras_sigmas`` the noise levels follow Karras et al.'s eq. 5 (dense at low noise) and the
timesteps are found from them, by interpolating $\log\sigma$ over the training timesteps.
"""

from __future__ import annotations

import numpy as np
import torch

from minildm.schedulers.base import (
    SchedulerMixin,
    SchedulerOutput,
    check_step_tensors,
    draw_noise,
    refuse_unsupported,
)
from minildm.schedulers.dpmsolver import FINAL_SIGMAS_TYPES
from minildm.schedulers.sigmas import karras_sigmas, sigmas_to_timesteps, vp_sigmas
from minildm.validation import check_bool, check_choice, check_positive_number


class EulerDiscreteScheduler(SchedulerMixin):
    r"""Euler's method on the probability-flow ODE in $\sigma$ (Karras et al., 2022, Algorithm 1
    without churn), with diffusers' ``EulerDiscreteScheduler`` API and numbers.

    Every setting of diffusers' ``EulerDiscreteScheduler`` is accepted. Implemented:
    ``trained_betas``; ``use_karras_sigmas`` (with ``sigma_min`` / ``sigma_max`` overriding the
    range, else the scheduled timesteps' own); ``final_sigmas_type`` (``"zero"``: end on the clean
    sample; ``"sigma_min"``: one step short, at $\bar\alpha_0$). Refused when set:
    ``interpolation_type="log_linear"``, exponential and beta sigmas, continuous timesteps.
    """

    # long: every option of diffusers' scheduler of the same name is taken, each honoured or refused
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        *,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
        trained_betas: list[float] | None = None,
        use_karras_sigmas: bool = False,
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        final_sigmas_type: str = "zero",
        interpolation_type: str = "linear",
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        timestep_type: str = "discrete",
    ) -> None:
        owner = type(self).__name__
        check_bool("use_karras_sigmas", use_karras_sigmas)
        for name, value in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
            if check_positive_number(name, value, optional=True) is not None and not use_karras_sigmas:
                raise ValueError(
                    f"{name}={value!r} sets the range of Karras sigmas: it needs use_karras_sigmas=True"
                )
        check_choice("final_sigmas_type", final_sigmas_type, FINAL_SIGMAS_TYPES)
        refuse_unsupported(owner, "interpolation_type", interpolation_type, ("linear",),
                           "'log_linear' gives n + 1 noise levels for n timesteps, which do not match them")
        other_sigmas = "not implemented; use_karras_sigmas is"
        refuse_unsupported(owner, "use_exponential_sigmas", use_exponential_sigmas, (False,), other_sigmas)
        refuse_unsupported(owner, "use_beta_sigmas", use_beta_sigmas, (False,), other_sigmas)
        refuse_unsupported(owner, "timestep_type", timestep_type, ("discrete",),
                           "the networks here are conditioned on the training timestep, not on log sigma")
        self._init_schedule(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            prediction_type=prediction_type,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
            use_karras_sigmas=use_karras_sigmas,
            sigma_min=sigma_min,
            sigma_max=sigma_max,
            final_sigmas_type=final_sigmas_type,
            interpolation_type=interpolation_type,
            use_exponential_sigmas=use_exponential_sigmas,
            use_beta_sigmas=use_beta_sigmas,
            timestep_type=timestep_type,
            clip_sample=False,
            clip_sample_range=1.0,
        )
        train_sigmas = vp_sigmas(self.alphas_cumprod)
        self.sigmas = torch.from_numpy(np.concatenate([train_sigmas[::-1], [0.0]]).astype(np.float32))
        self.timesteps = self.timesteps.to(torch.float32)
        self._step_index: int | None = None

    @property
    def init_noise_sigma(self) -> torch.Tensor:
        r"""$\sigma_\max$ (trailing and linspace spacing start at $T - 1$), else
        $\sqrt{\sigma_\max^2 + 1}$."""
        top = self.sigmas.max()
        return top if self.config.timestep_spacing in ("linspace", "trailing") else (top**2 + 1) ** 0.5

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        r"""The timesteps (floats), largest first, and their sigmas followed by 0 (or by
        $\sigma_\min$ of the schedule, with ``final_sigmas_type="sigma_min"``).

        With ``use_karras_sigmas``: n sigmas by Karras et al.'s eq. 5 between the scheduled
        timesteps' extreme sigmas (or ``sigma_min`` / ``sigma_max``), and the (fractional) timestep
        of each from its $\log\sigma$."""
        super().set_timesteps(num_inference_steps, device)  # checks; leading and trailing are these
        cfg = self.config
        T, n = cfg.num_train_timesteps, num_inference_steps
        if cfg.timestep_spacing == "linspace":
            timesteps = np.linspace(0, T - 1, n, dtype=np.float32)[::-1].copy()  # not rounded
        else:
            timesteps = self.timesteps.cpu().numpy().astype(np.float32)
        train_sigmas = vp_sigmas(self.alphas_cumprod)
        sigmas = np.interp(timesteps, np.arange(T), train_sigmas)
        if cfg.use_karras_sigmas:
            low = float(sigmas[-1]) if cfg.sigma_min is None else cfg.sigma_min
            high = float(sigmas[0]) if cfg.sigma_max is None else cfg.sigma_max
            sigmas = karras_sigmas(low, high, n)
            # $\log\sigma_t$ of the training timesteps in float32, as diffusers computes them
            log_train = np.log(train_sigmas.astype(np.float32))
            timesteps = sigmas_to_timesteps(sigmas, log_train).astype(np.float32)
        last = 0.0 if cfg.final_sigmas_type == "zero" else train_sigmas[0]
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [last]]).astype(np.float32))
        self.timesteps = torch.from_numpy(timesteps).to(device)
        self._step_index = None

    def scale_model_input(
        self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None
    ) -> torch.Tensor:
        r"""What the network was trained on: $x / \sqrt{\sigma^2 + 1} = \sqrt{\bar\alpha}\, x$."""
        if timestep is None:
            raise ValueError("the Euler samplers need the timestep to scale the model input")
        sigma = self.sigmas[self.index_for_timestep(timestep)].to(sample.device)
        return sample / ((sigma**2 + 1) ** 0.5)

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        r"""$x = x_0 + \sigma_t \epsilon$ at scheduled timesteps (img2img and inpainting start here)."""
        if self.num_inference_steps is None:
            raise ValueError(
                "call set_timesteps before add_noise: the Euler samplers' noise levels are the schedule's"
            )
        sigma = torch.stack([self.sigmas[self.index_for_timestep(t)] for t in timesteps.reshape(-1)])
        sigma = sigma.to(original_samples.device, original_samples.dtype)
        sigma = sigma.reshape(-1, *([1] * (original_samples.ndim - 1)))
        return original_samples + noise * sigma

    def predict_x0(
        self, model_output: torch.Tensor, sample: torch.Tensor, sigma: torch.Tensor
    ) -> torch.Tensor:
        r"""$\hat x_0$ from the network's output at $x = x_0 + \sigma\epsilon$."""
        kind = self.config.prediction_type
        if kind == "epsilon":
            return sample - sigma * model_output  # $\hat x_0 = x - \sigma\hat\epsilon$
        if kind == "v_prediction":
            # $\hat x_0 = -\sigma\hat v / \sqrt{\sigma^2 + 1} + x / (\sigma^2 + 1)$
            return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
        return model_output

    def _begin_step(self, model_output, timestep, sample) -> tuple[int, torch.Tensor, torch.Tensor]:
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step")
        check_step_tensors(model_output, sample)
        index = self.index_for_timestep(timestep)
        sample32 = sample.to(torch.float32)
        return index, sample32, self.predict_x0(model_output, sample32, self.sigmas[index])

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> SchedulerOutput:
        r"""One Euler step from $\sigma$ to the next $\sigma'$. Deterministic (``generator`` unused)."""
        index, x, x0 = self._begin_step(model_output, timestep, sample)
        sigma, sigma_next = self.sigmas[index], self.sigmas[index + 1]
        derivative = (x - x0) / sigma  # $dx/d\sigma = (x - \hat x_0)/\sigma$
        prev = x + derivative * (sigma_next - sigma)
        return SchedulerOutput(prev_sample=prev.to(model_output.dtype), pred_original_sample=x0)


class EulerAncestralDiscreteScheduler(EulerDiscreteScheduler):
    r"""Euler ancestral: an Euler step down to $\sigma_\downarrow$ plus fresh noise $\sigma_\uparrow z$
    (Karras et al.'s reading of Song et al.'s ancestral sampler), with diffusers'
    ``EulerAncestralDiscreteScheduler`` API and numbers. Random: pass a ``generator``."""

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> SchedulerOutput:
        r"""One ancestral step: deterministic to $\sigma_\downarrow$, then $+\,\sigma_\uparrow z$."""
        if variance_noise is not None and generator is not None:
            raise ValueError("pass either generator or variance_noise to step, not both")
        index, x, x0 = self._begin_step(model_output, timestep, sample)
        sigma_from, sigma_to = self.sigmas[index], self.sigmas[index + 1]
        sigma_up = (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
        sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
        derivative = (x - x0) / sigma_from
        prev = x + derivative * (sigma_down - sigma_from)
        noise = draw_noise(model_output, generator, variance_noise)
        prev = prev + noise * sigma_up
        return SchedulerOutput(prev_sample=prev.to(model_output.dtype), pred_original_sample=x0)
