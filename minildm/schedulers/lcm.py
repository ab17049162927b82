r"""Latent consistency models (Luo et al., 2023): sampling a distilled *student* in 1 to 8 steps.

A consistency function $f_\theta(x_t, t)$ maps every point of one probability-flow ODE trajectory to
the trajectory's origin $x_0$ (Song et al., 2023). Its **boundary condition** $f_\theta(x, 0) = x$ is
built in by writing it as

$$f_\theta(x_t, t) = c_\text{skip}(t)\, x_t + c_\text{out}(t)\, \hat x_0(x_t, t),\qquad
  c_\text{skip}(t) = \frac{\sigma_d^2}{(st)^2 + \sigma_d^2},\quad
  c_\text{out}(t) = \frac{st}{\sqrt{(st)^2 + \sigma_d^2}},$$

with $\hat x_0$ read from the network's output as for any scheduler, $\sigma_d = 0.5$ and the
timestep scaling $s = 10$: at $t = 0$, $c_\text{skip} = 1$ and $c_\text{out} = 0$; from $t \approx 20$
on, $f_\theta$ is the network's $\hat x_0$.

**Multistep sampling.** One evaluation already gives a sample, $x_0 = f_\theta(x_T, T)$. With more
steps, noise the estimate back to the next, smaller timestep and apply $f_\theta$ again:
$x_{t'} = \sqrt{\bar\alpha_{t'}}\, f_\theta(x_t, t) + \sqrt{1 - \bar\alpha_{t'}}\, z$. The timesteps are
taken from the ``original_inference_steps`` (50) the student was distilled on: with $k = T / 50 = 20$
those are $19, 39, \dots, 999$, and ``set_timesteps(4)`` picks 999, 759, 499, 259 from them.

Names, arguments and numbers are diffusers' ``LCMScheduler`` (parity-tested); its ``step`` returns
the next sample and, as ``pred_original_sample`` (diffusers: ``denoised``), $f_\theta(x_t, t)$.
"""

from __future__ import annotations

import numpy as np
import torch

from minildm.schedulers.base import (
    SchedulerMixin,
    SchedulerOutput,
    check_step_tensors,
    draw_noise,
    timestep_int,
)
from minildm.validation import check_int, check_number

SIGMA_DATA = 0.5  # $\sigma_d$ of the boundary-condition scalings, as in the LCM code


class LCMScheduler(SchedulerMixin):
    r"""Multistep consistency sampling (Luo et al., 2023) with diffusers' ``LCMScheduler`` API and
    numbers. The schedule and the forward process are DDPM's; :meth:`set_timesteps` must be called
    before :meth:`step`, and picks its timesteps from the distillation's skipping-step schedule.
    Every setting of diffusers' ``LCMScheduler`` is accepted (``trained_betas``; ``thresholding``:
    Imagen's dynamic thresholding of $\hat x_0$ instead of clipping)."""

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        beta_schedule: str = "scaled_linear",
        *,
        original_inference_steps: int = 50,
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "leading",
        timestep_scaling: float = 10.0,
        rescale_betas_zero_snr: bool = False,
        trained_betas: list[float] | None = None,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
    ) -> None:
        self._init_schedule(
            num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
            beta_schedule=beta_schedule, clip_sample=clip_sample, clip_sample_range=clip_sample_range,
            set_alpha_to_one=set_alpha_to_one, steps_offset=steps_offset, prediction_type=prediction_type,
            timestep_spacing=timestep_spacing, rescale_betas_zero_snr=rescale_betas_zero_snr,
            trained_betas=trained_betas, thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio, sample_max_value=sample_max_value,
        )
        check_int("original_inference_steps", original_inference_steps, low=1, high=num_train_timesteps,
                  hint="num_train_timesteps")
        check_number("timestep_scaling", timestep_scaling, low=0, low_open=True, finite=False)
        self.config.original_inference_steps = original_inference_steps
        self.config.timestep_scaling = timestep_scaling
        # after the last step: the clean sample ($\bar\alpha = 1$), or $\bar\alpha_0$
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]

    def origin_timesteps(self, original_inference_steps: int | None = None) -> np.ndarray:
        r"""The skipping-step schedule of the distillation, smallest first: $t_n = n k - 1$,
        $n = 1, \dots, N$, with $k = T // N$ (N = 50: 19, 39, ..., 999)."""
        T = self.config.num_train_timesteps
        n = original_inference_steps or self.config.original_inference_steps
        n = check_int("original_inference_steps", n, low=1, high=T, hint="num_train_timesteps")
        k = self.config.num_train_timesteps // n
        return np.arange(1, n + 1) * k - 1

    def set_timesteps(
        self,
        num_inference_steps: int,
        device: str | torch.device | None = None,
        original_inference_steps: int | None = None,
    ) -> None:
        """``num_inference_steps`` timesteps, largest first, evenly spaced over the skipping-step
        schedule: indices ``floor(linspace(0, N, n, endpoint=False))`` of it, reversed."""
        origin = self.origin_timesteps(original_inference_steps)[::-1]
        hint = "the original_inference_steps the student was distilled on"
        n = check_int("num_inference_steps", num_inference_steps, low=1, high=len(origin), hint=hint)
        index = np.floor(np.linspace(0, len(origin), num=n, endpoint=False)).astype(np.int64)
        self.num_inference_steps = n
        self.timesteps = torch.from_numpy(origin[index].copy()).to(device)

    def get_scalings_for_boundary_condition_discrete(self, timestep: int | torch.Tensor):
        r"""$(c_\text{skip}(t), c_\text{out}(t))$; ``timestep`` may be a tensor of timesteps."""
        scaled = timestep * self.config.timestep_scaling
        c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
        c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
        return c_skip, c_out

    def consistency_function(
        self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor
    ) -> torch.Tensor:
        r"""$f_\theta(x_t, t) = c_\text{skip}(t)\, x_t + c_\text{out}(t)\, \hat x_0$ for a batch with
        one timestep per sample (``timestep`` of shape ``[B]``): what the student is trained to
        make consistent along a trajectory (:mod:`minildm.tasks.lcm`), and what :meth:`step` uses."""
        t = timestep.to(sample.device).long()
        # $\hat x_0$ as every scheduler reads it (clipped if ``clip_sample``), at each sample's $\bar\alpha_t$
        pred_x0, _ = self.predict_x0_and_eps(model_output, sample, self.alphas_cumprod.to(sample.device)[t])
        t_col = t.to(sample.dtype).reshape((-1,) + (1,) * (sample.ndim - 1))
        c_skip, c_out = self.get_scalings_for_boundary_condition_discrete(t_col)
        return c_out * pred_x0 + c_skip * sample

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> SchedulerOutput:
        r"""$x_0^{(t)} = f_\theta(x_t, t)$; unless this is the last timestep, noise it to the next one:
        $x_{t'} = \sqrt{\bar\alpha_{t'}}\, x_0^{(t)} + \sqrt{1 - \bar\alpha_{t'}}\, z$ (the noise
        drawn as diffusers does, on the generator's device, the CPU by default)."""
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step()")
        check_step_tensors(model_output, sample)
        t = timestep_int(timestep)
        index = self.index_for_timestep(t)
        batch_t = torch.full((sample.shape[0],), t, dtype=torch.long)
        denoised = self.consistency_function(model_output, batch_t, sample)
        if index == len(self.timesteps) - 1:  # the last step: no noise (and none for 1 step)
            return SchedulerOutput(prev_sample=denoised, pred_original_sample=denoised)
        t_next = int(self.timesteps[index + 1])
        alpha_prod_next = self.alphas_cumprod[t_next].to(sample.device, sample.dtype)
        z = draw_noise(denoised, generator, variance_noise)
        prev = alpha_prod_next.sqrt() * denoised + (1 - alpha_prod_next).sqrt() * z
        return SchedulerOutput(prev_sample=prev, pred_original_sample=denoised)
