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

**Where to step.** By default the timesteps are spaced evenly and $\sigma$ follows them. Two
other choices space the noise levels themselves and map each back to a (rounded) timestep by
interpolating $\log\sigma$ over the training timesteps: ``use_karras_sigmas`` (Karras et al.,
2022, eq. 5), dense at low noise, and ``use_lu_lambdas`` (Lu et al., 2022), evenly spaced in
$\lambda$.

Names, arguments and numbers are diffusers' ``DPMSolverMultistepScheduler`` with
``algorithm_type="dpmsolver++"`` (the variant for guided sampling); orders 1 and 2.
"""

from __future__ import annotations

import numpy as np
import torch

from minildm.schedulers.base import (
    SchedulerMixin,
    SchedulerOutput,
    check_step_tensors,
    dynamic_threshold,
    refuse_unsupported,
    timestep_int,
)
from minildm.schedulers.sigmas import (
    ZERO_SNR_ALPHA_CUMPROD,
    karras_sigmas,
    lu_sigmas,
    sigmas_to_timesteps,
    vp_sigmas,
)
from minildm.validation import check_bool, check_choice, check_int, check_number

SOLVER_TYPES = ("midpoint", "heun")
FINAL_SIGMAS_TYPES = ("zero", "sigma_min")
LEARNED_VARIANCES = ("learned", "learned_range")  # the network outputs its variance too
# DDPM's fixed variances set the noise of a random step: nothing to this deterministic solver
FIXED_VARIANCES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log")
VARIANCE_TYPES = (None, *LEARNED_VARIANCES, *FIXED_VARIANCES)
class DPMSolverMultistepScheduler(SchedulerMixin):
    r"""DPM-Solver++ (multistep, order 1 or 2) with diffusers' API and numbers.

    ``step`` must be called on ``self.timesteps`` in order: a multistep solver remembers the last
    $\hat x_0$. The first step is first order (there is no earlier $\hat x_0$ yet), and so is the
    last when it goes to $\sigma = 0$ or, with ``lower_order_final``, when there are under 15
    steps: more stable with very few steps. ``final_sigmas_type="zero"`` ends on the
    clean sample; ``"sigma_min"`` one step short of it, at $\bar\alpha_0$.

    Every setting of diffusers' ``DPMSolverMultistepScheduler`` is accepted. Implemented:
    ``trained_betas``; ``thresholding`` (Imagen's dynamic thresholding of $\hat x_0$, with
    ``dynamic_thresholding_ratio`` and ``sample_max_value``); ``euler_at_final`` (the last step
    first order); ``lambda_min_clipped`` (no timestep whose $\lambda$ lies below it);
    ``use_karras_sigmas``; ``use_lu_lambdas``; ``variance_type="learned"`` or ``"learned_range"``
    (the network outputs twice the channels, its variance second; an ODE solver reads the first
    half; DDPM's fixed variance types, which only set the noise of a random step, change
    nothing). Refused when set: third order, the other algorithm types, exponential, beta and flow
    sigmas, and dynamic shifting.
    """

    # long: every option of diffusers' scheduler of the same name is taken, each honoured or refused
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
        trained_betas: list[float] | None = None,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        euler_at_final: bool = False,
        use_karras_sigmas: bool = False,
        use_lu_lambdas: bool = False,
        lambda_min_clipped: float = -float("inf"),
        variance_type: str | None = None,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        use_dynamic_shifting: bool = False,
        time_shift_type: str = "exponential",
    ) -> None:
        if solver_order not in (1, 2):
            raise ValueError(
                f"solver_order must be 1 or 2 (third order is not implemented), got {solver_order!r}"
            )
        if algorithm_type != "dpmsolver++":
            raise ValueError(
                f"algorithm_type must be 'dpmsolver++' (the only one implemented), got {algorithm_type!r}"
            )
        check_choice("solver_type", solver_type, SOLVER_TYPES)
        check_choice("final_sigmas_type", final_sigmas_type, FINAL_SIGMAS_TYPES)
        check_bool("lower_order_final", lower_order_final)
        check_bool("euler_at_final", euler_at_final)
        check_bool("use_karras_sigmas", use_karras_sigmas)
        check_bool("use_lu_lambdas", use_lu_lambdas)
        if use_karras_sigmas and use_lu_lambdas:
            raise ValueError("use_karras_sigmas and use_lu_lambdas each choose the noise levels: set one")
        check_number("lambda_min_clipped", lambda_min_clipped, finite=False, hint="-inf: no clipping")
        owner = type(self).__name__
        refuse_unsupported(owner, "variance_type", variance_type, VARIANCE_TYPES, "an unknown variance type")
        other_sigmas = "not implemented; use_karras_sigmas and use_lu_lambdas are"
        refuse_unsupported(owner, "use_exponential_sigmas", use_exponential_sigmas, (False,), other_sigmas)
        refuse_unsupported(owner, "use_beta_sigmas", use_beta_sigmas, (False,), other_sigmas)
        no_flow = "flow matching is not implemented, only diffusion (variance-preserving) schedules"
        refuse_unsupported(owner, "use_flow_sigmas", use_flow_sigmas, (False,), no_flow)
        refuse_unsupported(owner, "flow_shift", flow_shift, (1.0,), no_flow)
        refuse_unsupported(owner, "use_dynamic_shifting", use_dynamic_shifting, (False,), no_flow)
        refuse_unsupported(owner, "time_shift_type", time_shift_type, ("exponential",), no_flow)
        self._init_schedule(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            solver_order=solver_order,
            prediction_type=prediction_type,
            algorithm_type=algorithm_type,
            solver_type=solver_type,
            lower_order_final=lower_order_final,
            final_sigmas_type=final_sigmas_type,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            sample_max_value=sample_max_value,
            euler_at_final=euler_at_final,
            use_karras_sigmas=use_karras_sigmas,
            use_lu_lambdas=use_lu_lambdas,
            lambda_min_clipped=lambda_min_clipped,
            variance_type=variance_type,
            use_exponential_sigmas=use_exponential_sigmas,
            use_beta_sigmas=use_beta_sigmas,
            use_flow_sigmas=use_flow_sigmas,
            flow_shift=flow_shift,
            use_dynamic_shifting=use_dynamic_shifting,
            time_shift_type=time_shift_type,
            clip_sample=False,  # DPM-Solver does not clip x0 (dynamic thresholding may bound it)
            clip_sample_range=1.0,
        )
        self.sigmas = torch.from_numpy(vp_sigmas(self.alphas_cumprod)[::-1].astype(np.float32).copy())
        self._reset_history()

    def _reset_history(self) -> None:
        self.model_outputs: list[torch.Tensor] = []  # the last solver_order values of $\hat x_0$
        self.lower_order_nums = 0
        self._step_index: int | None = None

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start the next run at position ``begin_index`` of ``self.timesteps`` (diffusers' API):
        img2img starting part-way names its first step by position, which is unambiguous where
        Karras or Lu timesteps repeat. Call it after :meth:`set_timesteps`."""
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before set_begin_index")
        n = len(self.timesteps)
        begin_index = check_int("begin_index", begin_index, low=0, high=n - 1)
        self._reset_history()
        self._step_index = begin_index

    def _last_timestep(self) -> int:
        r"""One past the noisiest timestep to use: T, less the timesteps whose
        $\lambda_t = \log\sqrt{\bar\alpha_t} - \log\sqrt{1 - \bar\alpha_t}$ lies below
        ``lambda_min_clipped`` (numerical safety near zero SNR, e.g. for the cosine schedule)."""
        T = self.config.num_train_timesteps
        if self.config.lambda_min_clipped == -float("inf"):
            return T
        abar = self.alphas_cumprod.to(torch.float32).clone()
        abar[abar == 0] = ZERO_SNR_ALPHA_CUMPROD
        lambda_t = torch.log(abar.sqrt()) - torch.log((1 - abar).sqrt())  # decreasing in t
        clipped = torch.searchsorted(lambda_t.flip(0), torch.tensor([float(self.config.lambda_min_clipped)]))
        return T - int(clipped)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        r"""Choose the timesteps, largest first, and their sigmas (and a final one: 0 or
        $\sigma_\text{min}$).

        Trailing spacing is DDIM's; ``"linspace"`` and ``"leading"`` take ``n + 1`` points and drop
        the last (clean) one, as diffusers' DPM-Solver does. ``lambda_min_clipped`` shortens the
        range the timesteps are spread over (trailing spacing then gives fewer than n steps). With
        ``use_karras_sigmas`` or ``use_lu_lambdas`` the n noise levels come first and the
        timesteps from them (rounded, except for the cosine schedule; two may coincide)."""
        n = num_inference_steps
        super().set_timesteps(n, device)  # checks n and steps_offset; trailing is the same for every solver
        cfg = self.config
        T, last_t = cfg.num_train_timesteps, self._last_timestep()
        if cfg.timestep_spacing == "trailing":
            if last_t == T:
                timesteps = self.timesteps.cpu().numpy()
            else:  # counts back from last_t in steps of T / n
                timesteps = np.round(np.arange(last_t, 0, -T / n))[:n].astype(np.int64) - 1
        elif cfg.timestep_spacing == "linspace":
            timesteps = np.linspace(0, last_t - 1, n + 1).round()[::-1][:-1].astype(np.int64)
        else:  # leading
            timesteps = (np.arange(n + 1) * (last_t // (n + 1))).round()[::-1][:-1].astype(np.int64)
            timesteps = timesteps + cfg.steps_offset
        train_sigmas = vp_sigmas(self.alphas_cumprod)
        if cfg.use_karras_sigmas or cfg.use_lu_lambdas:
            train32 = train_sigmas.astype(np.float32)
            log_train = np.log(train32)  # $\log\sigma_t$ in float32, as diffusers
            # from $\sigma$ of the least noisy training timestep to that of the noisiest
            if cfg.use_karras_sigmas:
                sigmas = karras_sigmas(float(train32[0]), float(train32[-1]), n)
            else:
                sigmas = lu_sigmas(float(log_train[0]), float(log_train[-1]), n)
            fractional = sigmas_to_timesteps(sigmas, log_train)
            # rounded to integers, except with the cosine schedule (truncated there, as in diffusers)
            cosine = cfg.beta_schedule == "squaredcos_cap_v2"
            timesteps = (fractional if cosine else fractional.round()).astype(np.int64)
        else:
            sigmas = np.interp(timesteps, np.arange(T), train_sigmas)
        last = 0.0 if cfg.final_sigmas_type == "zero" else train_sigmas[0]
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [last]]).astype(np.float32))
        self.timesteps = torch.from_numpy(timesteps.copy()).to(device)
        self.num_inference_steps = len(timesteps)
        self._reset_history()

    @staticmethod
    def _alpha_sigma(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""From $\sigma^\text{VE}$ to the VP pair: $\alpha_t = 1/\sqrt{1 + \sigma^2}$,
        $\sigma_t = \sigma\,\alpha_t$ (so $\alpha_t^2 + \sigma_t^2 = 1$)."""
        alpha_t = 1 / (sigma**2 + 1) ** 0.5
        return alpha_t, sigma * alpha_t

    def convert_model_output(self, model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        r"""The network's $\hat x_0$ at the current step, whatever it predicts (dynamically
        thresholded if ``thresholding``)."""
        alpha_t, sigma_t = self._alpha_sigma(self.sigmas[self._step_index])
        kind = self.config.prediction_type
        if kind == "epsilon":
            # $\hat x_0 = (x_t - \sigma_t \hat\epsilon)/\alpha_t$
            x0 = (sample - sigma_t * model_output) / alpha_t
        elif kind == "v_prediction":
            x0 = alpha_t * sample - sigma_t * model_output  # $\hat x_0 = \alpha_t x_t - \sigma_t \hat v$
        else:
            x0 = model_output
        if self.config.thresholding:
            x0 = dynamic_threshold(x0, self.config.dynamic_thresholding_ratio, self.config.sample_max_value)
        return x0

    def _mean_output(self, model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """With a learned variance the network outputs its prediction and then its variance along
        the channels: keep the prediction (an ODE solver has no use for the variance)."""
        if self.config.variance_type not in LEARNED_VARIANCES:
            return model_output
        channels = sample.shape[1] if sample.ndim > 1 else 0
        if model_output.ndim != sample.ndim or model_output.shape[1] != 2 * channels:
            raise ValueError(
                f"variance_type={self.config.variance_type!r}: model_output must have twice the "
                f"channels of sample ({2 * channels}: the prediction, then the variance), "
                f"got {tuple(model_output.shape)}"
            )
        return model_output[:, :channels]

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
        if isinstance(model_output, torch.Tensor) and isinstance(sample, torch.Tensor):
            model_output = self._mean_output(model_output, sample)
        check_step_tensors(model_output, sample)
        t = timestep_int(timestep)
        if self._step_index is not None and self._step_index < len(self.timesteps) and (
            int(self.timesteps[self._step_index]) == t
        ):
            index = self._step_index  # (Karras or Lu timesteps may repeat: the position counts)
        else:
            index = self.index_for_timestep(t)
        if self._step_index is None:
            self._step_index = index  # the first step may be any (img2img starts part-way)
        elif index != self._step_index:
            expected = (
                int(self.timesteps[self._step_index]) if self._step_index < len(self.timesteps) else "none"
            )
            raise ValueError(
                f"DPM-Solver++ is multistep: call step on scheduler.timesteps in order; expected timestep "
                f"{expected}, got {int(self.timesteps[index])}"
            )
        last = len(self.timesteps) - 1
        lower_order_final = index == last and (
            self.config.euler_at_final
            or (self.config.lower_order_final and len(self.timesteps) < 15)
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
