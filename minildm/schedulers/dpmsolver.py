r"""DPM-Solver++ (Lu et al., 2022): a second-order ODE solver that samples well in 10-20 steps.

DDIM (lesson 07) is a first-order solver of the probability-flow ODE. Write the noise level as
$\sigma_t = \sqrt{1 - \bar\alpha_t}$, the signal as $\alpha_t = \sqrt{\bar\alpha_t}$, and time as the
half log signal-to-noise ratio $\lambda_t = \log(\alpha_t / \sigma_t)$. With the network's
$\hat x_0$, the exact solution from $s$ to $t$ ($h = \lambda_t - \lambda_s > 0$) is

$$x_t = \frac{\sigma_t}{\sigma_s} x_s + \sigma_t \int_{\lambda_s}^{\lambda_t} e^{\lambda}\,
        \hat x_0(\lambda)\, d\lambda .$$

Holding $\hat x_0$ constant over the step gives the first-order update (DPM-Solver++ 1 = DDIM):

$$x_t = \frac{\sigma_t}{\sigma_s} x_s - \alpha_t \left(e^{-h} - 1\right) \hat x_0(s).$$

*Multistep* second order (2M) reuses the previous step's $\hat x_0$ to estimate its slope in
$\lambda$, at no extra network call: with $r = h_{\text{prev}} / h$,
$D_0 = \hat x_0(s)$, $D_1 = (\hat x_0(s) - \hat x_0(s_\text{prev})) / r$,

$$x_t = \frac{\sigma_t}{\sigma_s} x_s - \alpha_t (e^{-h} - 1) D_0
        - \tfrac12 \alpha_t (e^{-h} - 1) D_1 \quad\text{(midpoint)}.$$

Names, arguments and numbers are diffusers' ``DPMSolverMultistepScheduler`` with
``algorithm_type="dpmsolver++"`` (the variant for guided sampling); orders 1 and 2.
"""

from __future__ import annotations

import numpy as np
import torch

from minildm.schedulers.base import SchedulerMixin, SchedulerOutput, check_step_tensors, timestep_int

SOLVER_TYPES = ("midpoint", "heun")
FINAL_SIGMAS_TYPES = ("zero", "sigma_min")
ZERO_SNR_ALPHA_CUMPROD = 2.0**-24  # what diffusers puts in place of alphabar_T = 0 (sigma would be infinite)


def vp_sigmas(alphas_cumprod: torch.Tensor) -> np.ndarray:
    r"""The noise-to-signal ratio $\sigma^\text{VE} = \sqrt{(1 - \bar\alpha) / \bar\alpha}$ of every
    training timestep: the "sigma" of Karras et al. and of diffusers' solvers (computed in float32
    as diffusers does). A zero-terminal-SNR schedule's $\bar\alpha_T = 0$ becomes $2^{-24}$."""
    abar = alphas_cumprod.to(torch.float32).clone()
    abar[abar == 0] = ZERO_SNR_ALPHA_CUMPROD
    return (((1 - abar) / abar) ** 0.5).numpy().astype(np.float64)


class DPMSolverMultistepScheduler(SchedulerMixin):
    r"""DPM-Solver++ (multistep, order 1 or 2) with diffusers' API and numbers.

    ``step`` must be called on ``self.timesteps`` in order: a multistep solver remembers the last
    $\hat x_0$. The first step is first order (there is no earlier $\hat x_0$ yet), and so is the
    last when it goes to $\sigma = 0$ or, with ``lower_order_final``, when there are under 15
    steps: more stable with very few steps. ``final_sigmas_type="zero"`` ends on the
    clean sample; ``"sigma_min"`` one step short of it, at $\bar\alpha_0$.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        *,
        solver_order: int = 2,
        prediction_type: str = "epsilon",
        algorithm_type: str = "dpmsolver++",
        solver_type: str = "midpoint",
        lower_order_final: bool = True,
        final_sigmas_type: str = "zero",
        timestep_spacing: str = "linspace",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
    ) -> None:
        if solver_order not in (1, 2):
            raise ValueError(
                f"solver_order must be 1 or 2 (third order is not implemented), got {solver_order!r}"
            )
        if algorithm_type != "dpmsolver++":
            raise ValueError(
                f"algorithm_type must be 'dpmsolver++' (the only one implemented), got {algorithm_type!r}"
            )
        if solver_type not in SOLVER_TYPES:
            raise ValueError(f"solver_type must be one of {SOLVER_TYPES}, got {solver_type!r}")
        if final_sigmas_type not in FINAL_SIGMAS_TYPES:
            raise ValueError(
                f"final_sigmas_type must be one of {FINAL_SIGMAS_TYPES}, got {final_sigmas_type!r}"
            )
        self._init_schedule(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            solver_order=solver_order,
            prediction_type=prediction_type,
            algorithm_type=algorithm_type,
            solver_type=solver_type,
            lower_order_final=lower_order_final,
            final_sigmas_type=final_sigmas_type,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
            clip_sample=False,  # DPM-Solver does not clip x0 (diffusers offers dynamic thresholding)
            clip_sample_range=1.0,
        )
        self.sigmas = torch.from_numpy(vp_sigmas(self.alphas_cumprod)[::-1].astype(np.float32).copy())
        self._reset_history()

    def _reset_history(self) -> None:
        self.model_outputs: list[torch.Tensor] = []  # the last solver_order values of $\hat x_0$
        self.lower_order_nums = 0
        self._step_index: int | None = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        r"""Choose the timesteps, largest first, and their sigmas (and a final one: 0 or
        $\sigma_\text{min}$).

        Trailing spacing is DDIM's; ``"linspace"`` and ``"leading"`` take ``n + 1`` points and drop
        the last (clean) one, as diffusers' DPM-Solver does."""
        T = self.config.num_train_timesteps
        n = num_inference_steps
        super().set_timesteps(n, device)  # checks n and steps_offset; trailing is the same for every solver
        if self.config.timestep_spacing == "trailing":
            timesteps = self.timesteps.cpu().numpy()
        elif self.config.timestep_spacing == "linspace":
            timesteps = np.linspace(0, T - 1, n + 1).round()[::-1][:-1].astype(np.int64)
        else:  # leading
            timesteps = (np.arange(n + 1) * (T // (n + 1))).round()[::-1][:-1].astype(np.int64)
            timesteps = timesteps + self.config.steps_offset
        train_sigmas = vp_sigmas(self.alphas_cumprod)
        sigmas = np.interp(timesteps, np.arange(T), train_sigmas)
        last = 0.0 if self.config.final_sigmas_type == "zero" else train_sigmas[0]
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [last]]).astype(np.float32))
        self.timesteps = torch.from_numpy(timesteps.copy()).to(device)
        self.num_inference_steps = n
        self._reset_history()

    @staticmethod
    def _alpha_sigma(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""From $\sigma^\text{VE}$ to the VP pair: $\alpha_t = 1/\sqrt{1 + \sigma^2}$,
        $\sigma_t = \sigma\,\alpha_t$ (so $\alpha_t^2 + \sigma_t^2 = 1$)."""
        alpha_t = 1 / (sigma**2 + 1) ** 0.5
        return alpha_t, sigma * alpha_t

    def convert_model_output(self, model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        r"""The network's $\hat x_0$ at the current step, whatever it predicts."""
        alpha_t, sigma_t = self._alpha_sigma(self.sigmas[self._step_index])
        kind = self.config.prediction_type
        if kind == "epsilon":
            return (
                sample - sigma_t * model_output
            ) / alpha_t  # $\hat x_0 = (x_t - \sigma_t \hat\epsilon)/\alpha_t$
        if kind == "v_prediction":
            return alpha_t * sample - sigma_t * model_output  # $\hat x_0 = \alpha_t x_t - \sigma_t \hat v$
        return model_output

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> SchedulerOutput:
        r"""One DPM-Solver++ step from $x_s$ (``sample`` at ``timestep``) to the next timestep.
        Deterministic: ``generator`` and ``variance_noise`` are accepted for a common API and unused."""
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step")
        check_step_tensors(model_output, sample)
        index = self.index_for_timestep(timestep_int(timestep))
        if self._step_index is None:
            self._step_index = index  # the first step may be any (img2img starts part-way)
        elif index != self._step_index:
            raise ValueError(
                f"DPM-Solver++ is multistep: call step on scheduler.timesteps in order; expected timestep "
                f"{int(self.timesteps[self._step_index])}, got {int(self.timesteps[index])}"
            )
        last = len(self.timesteps) - 1
        lower_order_final = index == last and (
            (self.config.lower_order_final and len(self.timesteps) < 15)
            or self.config.final_sigmas_type == "zero"
        )
        x0 = self.convert_model_output(model_output, sample)
        self.model_outputs = (self.model_outputs + [x0])[-self.config.solver_order :]
        sample32 = sample.to(torch.float32)
        if self.config.solver_order == 1 or self.lower_order_nums < 1 or lower_order_final:
            prev = self._first_order_update(x0, sample32, index)
        else:
            prev = self._second_order_update(self.model_outputs, sample32, index)
        self.lower_order_nums = min(self.lower_order_nums + 1, self.config.solver_order)
        self._step_index = index + 1
        return SchedulerOutput(prev_sample=prev.to(model_output.dtype), pred_original_sample=x0)

    def _lambdas(self, *indices: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        r"""$(\alpha, \sigma, \lambda = \log\alpha - \log\sigma)$ at each index of ``self.sigmas``."""
        out = []
        for i in indices:
            alpha, sigma = self._alpha_sigma(self.sigmas[i])
            out.append((alpha, sigma, torch.log(alpha) - torch.log(sigma)))
        return out

    def _first_order_update(self, x0: torch.Tensor, sample: torch.Tensor, index: int) -> torch.Tensor:
        (alpha_t, sigma_t, lambda_t), (_, sigma_s, lambda_s) = self._lambdas(index + 1, index)
        h = lambda_t - lambda_s
        # $x_t = (\sigma_t/\sigma_s)\, x_s - \alpha_t (e^{-h} - 1)\, \hat x_0$
        return (sigma_t / sigma_s) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * x0

    def _second_order_update(self, x0s: list[torch.Tensor], sample: torch.Tensor, index: int) -> torch.Tensor:
        (alpha_t, sigma_t, lambda_t), (_, sigma_s0, lambda_s0), (_, _, lambda_s1) = self._lambdas(
            index + 1, index, index - 1
        )
        m0, m1 = x0s[-1], x0s[-2]
        h, h_0 = lambda_t - lambda_s0, lambda_s0 - lambda_s1
        r0 = h_0 / h
        d0, d1 = m0, (1.0 / r0) * (m0 - m1)  # $D_0$, and the slope term $D_1 = (m_0 - m_1)/r$
        x = (sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * d0
        if self.config.solver_type == "midpoint":
            return x - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * d1
        return x + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * d1
