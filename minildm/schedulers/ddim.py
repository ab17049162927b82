r"""DDIM (Song, Meng & Ermon, 2021): the same trained network, sampled with far fewer steps.

DDPM's reverse step is random, and it needs many small steps. DDIM notices that training only
ever looks at the marginals $q(x_t \mid x_0)$, so any process with those marginals will do. It
picks a family indexed by $\eta$; a step from $t$ to an earlier $t'$ is (DDIM eq. 12)

$$x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0
  + \sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\,\hat\epsilon + \sigma_t z,\qquad
  \sigma_t(\eta) = \eta\sqrt{\frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}}
                        \sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}}:$$

"where the network thinks the clean sample is" plus "the direction pointing to $x_t$" plus fresh
noise. $\eta = 1$ is DDPM's posterior variance; $\eta = 0$ adds no noise at all, so sampling is a
deterministic map from $x_T$ to $x_0$ (a discretised ODE). A deterministic map can be run
backwards: :class:`DDIMInverseScheduler` takes a clean latent to the noise that DDIM would turn
back into it ("DDIM inversion", the starting point of image editing such as Mokady et al.'s
null-text inversion, 2022).

The schedulers know nothing about networks (their names, arguments and numbers are diffusers'
``DDIMScheduler`` and ``DDIMInverseScheduler``); the loop that calls the network, with
classifier-free guidance, is the same for every scheduler (:class:`minildm.sampling.Sampler`,
whose ``sample(..., eta=0.3)`` hands ``eta`` to this ``step`` and whose ``invert`` runs
:class:`DDIMInverseScheduler`).
"""

from __future__ import annotations

import torch

from minildm.schedulers.base import (
    SchedulerMixin,
    SchedulerOutput,
    check_step_tensors,
    draw_noise,
    timestep_int,
)
from minildm.validation import check_number


def check_eta(eta: float) -> float:
    r"""DDIM's $\eta$ as a float: a number in [0, 1] (NumPy's numbers too)."""
    hint = "0: deterministic DDIM, 1: DDPM's amount of noise"
    return check_number("eta", eta, low=0, high=1, noun="float", hint=hint)


class DDIMScheduler(SchedulerMixin):
    r"""DDIM sampling (Song et al., 2021), with diffusers' ``DDIMScheduler`` API and numbers.

    ``step`` goes from $x_t$ to $x_{t'}$, $t'$ the next (smaller) timestep of ``self.timesteps``,
    by DDIM eq. 12; ``eta`` sets how much fresh noise each step adds (0: none). After the last
    timestep it goes to $\bar\alpha = 1$, the clean sample, or to $\bar\alpha_0$ (one step short
    of it) if ``set_alpha_to_one=False``: that value is ``final_alpha_cumprod``.

    The schedule, the timesteps (:meth:`set_timesteps`) and the forward process are DDPM's. Unlike
    :class:`~minildm.schedulers.DDPMScheduler`, :meth:`set_timesteps` must be called before
    :meth:`step`. Everything after ``beta_schedule`` is keyword-only (diffusers' fifth positional
    argument is ``trained_betas``, ours a keyword). Every setting of diffusers' ``DDIMScheduler``
    is accepted: ``trained_betas`` gives the betas value by value, and ``thresholding`` applies
    Imagen's dynamic thresholding to $\hat x_0$ instead of clipping it.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        *,
        prediction_type: str = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        timestep_spacing: str = "leading",
        rescale_betas_zero_snr: bool = False,
        trained_betas: list[float] | None = None,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
    ) -> None:
        # DDPM's schedule, x_T ~ N(0, I) and every timestep, as for DDPM
        self._init_schedule(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            prediction_type=prediction_type,
            clip_sample=clip_sample,
            clip_sample_range=clip_sample_range,
            set_alpha_to_one=set_alpha_to_one,
            steps_offset=steps_offset,
            timestep_spacing=timestep_spacing,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            sample_max_value=sample_max_value,
        )
        # $\bar\alpha$ after the last step: 1 (the clean sample) or $\bar\alpha_0$ (the paper's t = 1)
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]

    # set_timesteps, previous_timestep, add_noise, get_velocity, scale_model_input and
    # from_config are SchedulerMixin's: DDPM's timesteps and forward process (diffusers computes
    # them identically for both)

    def _alpha_prod(self, timestep: int) -> torch.Tensor:
        r"""$\bar\alpha_t$, with $t = -1$ meaning "after the last step" (``final_alpha_cumprod``)."""
        return self.alphas_cumprod[timestep] if timestep >= 0 else self.final_alpha_cumprod

    # ------------------------------------------------------------------ reverse process

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> SchedulerOutput:
        r"""One DDIM step from $x_t$ (``sample``) to $x_{t'}$, $t'$ the next timestep (eq. 12).

        ``eta`` in [0, 1] scales the noise: 0 adds none (deterministic), 1 adds DDPM's posterior
        variance. With ``use_clipped_model_output``, $\hat\epsilon$ is recomputed from the clipped
        $\hat x_0$ (GLIDE's choice), so that the two stay consistent. Noise is drawn only when
        ``eta > 0``: it is ``variance_noise`` if given, else drawn with ``generator`` on the
        generator's device (CPU by default) and moved to the sample's, as diffusers does."""
        if self.num_inference_steps is None:
            raise ValueError(
                "call set_timesteps(num_inference_steps) before step: DDIM needs to know which "
                "timestep comes next"
            )
        check_step_tensors(model_output, sample)
        check_eta(eta)
        if variance_noise is not None and generator is not None:
            raise ValueError("pass either generator or variance_noise to step, not both")
        t = timestep_int(timestep)
        prev_t = self.previous_timestep(t)

        # $\bar\alpha_t$ and $\bar\alpha_{t'}$ (``final_alpha_cumprod`` after the last step)
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self._alpha_prod(prev_t)

        # 1. "predicted x_0" and the noise it implies: $\hat x_0$, $\hat\epsilon$
        pred_x0, pred_eps = self.predict_x0_and_eps(model_output, sample, alpha_prod_t)

        # 2. the noise scale (eq. 16):
        # $\sigma_t(\eta) = \eta \sqrt{\frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}}
        #   \sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}}$
        variance = (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)
        std_dev_t = eta * variance**0.5

        if use_clipped_model_output:
            # $\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\hat x_0) / \sqrt{1 - \bar\alpha_t}$, clipped x0
            pred_eps = (sample - alpha_prod_t**0.5 * pred_x0) / (1 - alpha_prod_t) ** 0.5

        # 3. "direction pointing to x_t": $\sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\,\hat\epsilon$
        # (>= 0 for eta <= 1; clamped against rounding, where diffusers would give NaN)
        direction = (1 - alpha_prod_t_prev - std_dev_t**2).clamp(min=0) ** 0.5 * pred_eps

        # 4. $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0
        #   + \sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\,\hat\epsilon + \sigma_t z$, $z \sim \mathcal{N}(0, I)$
        prev_sample = alpha_prod_t_prev**0.5 * pred_x0 + direction
        if eta > 0:
            prev_sample = prev_sample + std_dev_t * draw_noise(model_output, generator, variance_noise)
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_x0)


class DDIMInverseScheduler(DDIMScheduler):
    r"""DDIM run backwards, from a clean sample to noise, with diffusers' ``DDIMInverseScheduler``
    API and numbers: ``timesteps`` increase, and :meth:`step` goes *up* from the previous
    timestep $t'$ (or from $\bar\alpha = 1$, the clean sample, before the first) to ``timestep``.

    It is eq. 12 with $\eta = 0$ with the roles of $t$ and $t'$ swapped:
    $x_t = \sqrt{\bar\alpha_t}\,\hat x_0 + \sqrt{1 - \bar\alpha_t}\,\hat\epsilon$, where
    $\hat x_0, \hat\epsilon$ come from the network's output read at the noise level of $x_{t'}$.
    That output should be $\epsilon_\theta(x_t, t)$, but $x_t$ is what we are computing; like
    Mokady et al. (and the diffusers pipelines), the caller evaluates the network on the sample it
    has, $x_{t'}$, at the timestep it goes to, $t$ (so that the first step, from the clean sample,
    has a timestep too). The error of that approximation shrinks with the step size, so inversion
    reconstructs well only with enough steps.

    The settings are DDIMScheduler's; ``initial_alpha_cumprod`` (1, or $\bar\alpha_0$ if
    ``set_alpha_to_one=False``) is the level it starts from, the forward ``final_alpha_cumprod``.
    ``prediction_type="sample"`` is not supported: an $x_0$-predicting network says nothing about
    the noise of a clean sample, so $\hat\epsilon$ would be $0/0$ at the first step.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.config.prediction_type == "sample":
            raise ValueError(
                "prediction_type must be 'epsilon' or 'v_prediction' for DDIM inversion, got 'sample'"
            )
        self.initial_alpha_cumprod = self.final_alpha_cumprod
        self.timesteps = self.timesteps.flip(0)  # 0, ..., T-1

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """DDIMScheduler's timesteps in increasing order (e.g. 0, 20, ..., 980 for 50 steps)."""
        super().set_timesteps(num_inference_steps, device)
        self.timesteps = self.timesteps.flip(0)

    def _alpha_prod(self, timestep: int) -> torch.Tensor:
        r"""$\bar\alpha_t$, with $t = -1$ meaning "before the first step" (``initial_alpha_cumprod``)."""
        return self.alphas_cumprod[timestep] if timestep >= 0 else self.initial_alpha_cumprod

    def step(
        self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor
    ) -> SchedulerOutput:
        r"""One inverse step from $x_{t'}$ (``sample``, at the previous timestep) up to $x_t$,
        ``timestep``. ``pred_original_sample`` is $\hat x_0$, read at the level of $x_{t'}$."""
        if self.num_inference_steps is None:
            raise ValueError(
                "call set_timesteps(num_inference_steps) before step: DDIM inversion needs to know "
                "which timestep it comes from"
            )
        check_step_tensors(model_output, sample)
        t = timestep_int(timestep)
        prev_t = self.previous_timestep(t)

        # $\bar\alpha_{t'}$ (``initial_alpha_cumprod`` at the first step) and $\bar\alpha_t$
        alpha_prod_t_prev = self._alpha_prod(prev_t)
        alpha_prod_t = self.alphas_cumprod[t]

        # 1. $\hat x_0$ and $\hat\epsilon$ at the level of the sample we have, $x_{t'}$
        pred_x0, pred_eps = self.predict_x0_and_eps(model_output, sample, alpha_prod_t_prev)

        # 2. eq. 12 with $\sigma = 0$, from $t'$ up to $t$:
        # $x_t = \sqrt{\bar\alpha_t}\,\hat x_0 + \sqrt{1 - \bar\alpha_t}\,\hat\epsilon$
        next_sample = alpha_prod_t**0.5 * pred_x0 + (1 - alpha_prod_t) ** 0.5 * pred_eps
        return SchedulerOutput(prev_sample=next_sample, pred_original_sample=pred_x0)
