r"""What every scheduler shares: the noise schedule, the timesteps, the forward process and the
conversions between what a network may predict ($\epsilon$, $v$ or $x_0$).

A *scheduler* knows the noise schedule and how to go from $x_t$ to a less noisy $x_{t'}$ given
the network's output; it knows nothing about networks (the loop that calls the network is
:mod:`minildm.sampling`). Names, arguments and numbers are diffusers' (``set_timesteps``,
``step``, ``add_noise``, ``timesteps``, ``alphas_cumprod``, ``from_config``), so code written
against one runs against the other. A concrete scheduler (:class:`~minildm.schedulers.DDPMScheduler`,
:class:`~minildm.schedulers.DDIMScheduler`) adds only its ``step``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from minildm.diffusion import (
    PREDICTION_TYPES,
    add_noise,
    get_velocity,
    predict_eps_from_v,
    predict_eps_from_x0,
    predict_x0_from_eps,
    predict_x0_from_v,
)
from minildm.schedules import NoiseSchedule, rescale_zero_terminal_snr
from minildm.validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_probability,
    is_int,
)

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


@dataclass
class SchedulerOutput:
    r"""What ``step`` returns: the next (less noisy) sample $x_{t'}$ and the current prediction
    of the clean sample $\hat x_0$ (handy to watch while sampling)."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


def timestep_int(timestep: int | torch.Tensor) -> int:
    """A single integer timestep, from an int or a one-element integer tensor."""
    if isinstance(timestep, torch.Tensor):
        if timestep.numel() != 1 or timestep.is_floating_point():
            raise ValueError(f"timestep must be a single integer, got {timestep!r}")
        return int(timestep.item())
    if not is_int(timestep):
        raise ValueError(f"timestep must be a single integer, got {timestep!r}")
    return int(timestep)


def check_step_tensors(model_output: torch.Tensor, sample: torch.Tensor) -> None:
    """``step``'s two tensors: both tensors, of one shape."""
    if not isinstance(sample, torch.Tensor) or not isinstance(model_output, torch.Tensor):
        raise ValueError("model_output and sample must be tensors")
    if model_output.shape != sample.shape:
        raise ValueError(
            f"model_output must have the shape of sample, {tuple(sample.shape)}, "
            f"got {tuple(model_output.shape)}"
        )


def draw_noise(
    like: torch.Tensor, generator: torch.Generator | None, variance_noise: torch.Tensor | None
) -> torch.Tensor:
    """The fresh noise $z \\sim \\mathcal{N}(0, I)$ of a random step: ``variance_noise`` if given
    (of ``like``'s shape), else drawn with ``generator`` on the generator's device (the CPU by
    default) and moved to ``like``'s, as diffusers does, so a seed gives diffusers' numbers."""
    if variance_noise is not None:
        if variance_noise.shape != like.shape:
            raise ValueError(
                f"variance_noise must have the shape of sample, {tuple(like.shape)}, "
                f"got {tuple(variance_noise.shape)}"
            )
        return variance_noise
    draw_on = generator.device if generator is not None else like.device
    return torch.randn(like.shape, generator=generator, device=draw_on, dtype=like.dtype).to(like.device)


def _same_option(value: object, supported: object) -> bool:
    """``value == supported`` where a bool and a number never match (``1`` is not ``True``)."""
    if isinstance(value, bool) != isinstance(supported, bool):
        return False
    try:
        return bool(value == supported)
    except (TypeError, ValueError):  # e.g. an array compared with a str
        return False


def refuse_unsupported(owner: str, name: str, value: object, supported: tuple, reason: str) -> None:
    """An option of diffusers' configs that ``owner`` accepts, so that their configs load, but
    implements only for the values in ``supported``: any other value is refused before any work,
    naming the option, the value, what is supported and why."""
    if not any(_same_option(value, s) for s in supported):
        allowed = " or ".join(repr(s) for s in supported)
        raise ValueError(f"{owner}: {name}={value!r} is not supported ({reason}); supported: {allowed}")


def dynamic_threshold(x0: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    r"""Imagen's dynamic thresholding (Saharia et al., 2022, sec. 2.3) of a predicted clean sample.

    Per sample, $s$ is the ``ratio`` quantile of $|\hat x_0|$ over all its values, kept in
    $[1, \text{max\_value}]$ (when ``max_value < 1``, $s$ = ``max_value``); then
    $\hat x_0 \leftarrow \operatorname{clip}(\hat x_0, -s, s) / s$. With $s = 1$ this is plain clipping
    to $[-1, 1]$; a larger $s$ pulls saturated values inwards instead of flattening them. Computed in
    float32 for half-precision input (the quantile needs it) and returned in the input's dtype."""
    dtype = x0.dtype
    flat = x0.reshape(x0.shape[0], -1)
    if dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    # $s = \min(\max(\operatorname{quantile}(|\hat x_0|, r), 1), \text{max\_value})$
    s = torch.quantile(flat.abs(), ratio, dim=1)
    s = torch.clamp(s, min=1, max=max_value).unsqueeze(1)
    # $\hat x_0 \leftarrow \operatorname{clip}(\hat x_0, -s, s) / s$
    flat = torch.clamp(flat, -s, s) / s
    return flat.reshape(x0.shape).to(dtype)


def betas_from_config(trained_betas: object, num_train_timesteps: int) -> torch.Tensor:
    """``trained_betas`` (diffusers' key for a schedule given value by value) as float32 betas, one
    per training timestep, each in (0, 1]."""
    try:
        betas = torch.tensor(np.asarray(trained_betas, dtype=np.float64), dtype=torch.float32)
    except (TypeError, ValueError):
        raise ValueError(f"trained_betas must be a list of numbers, got {trained_betas!r}") from None
    if betas.ndim != 1 or len(betas) != num_train_timesteps:
        raise ValueError(
            f"trained_betas must hold num_train_timesteps = {num_train_timesteps} betas, "
            f"got shape {tuple(betas.shape)}"
        )
    if not bool(((betas > 0) & (betas <= 1)).all()):
        raise ValueError("trained_betas must each lie in (0, 1]")
    return betas


class SchedulerMixin:
    r"""The schedule, timesteps and forward process of a scheduler whose ``config`` holds
    ``num_train_timesteps``, ``beta_start``, ``beta_end``, ``beta_schedule``,
    ``rescale_betas_zero_snr``, ``prediction_type``, ``clip_sample``, ``clip_sample_range``,
    ``timestep_spacing`` and ``steps_offset`` (and, if they take them, ``trained_betas`` and the
    dynamic thresholding settings). Subclasses set ``self.config`` (a namespace of
    their ``__init__`` arguments, as diffusers' ``register_to_config`` does), call
    :meth:`_init_schedule`, and write ``step``."""

    config: SimpleNamespace

    # ------------------------------------------------------------------ construction

    def _init_schedule(self, **config) -> None:
        """Check the shared arguments, store ``config`` and build the schedule from it: betas,
        alphas, alphas_cumprod, the starting noise scale and every timestep, T-1 first."""
        check_choice("prediction_type", config["prediction_type"], PREDICTION_TYPES)
        check_choice("timestep_spacing", config["timestep_spacing"], TIMESTEP_SPACINGS)
        check_int("steps_offset", config["steps_offset"], low=0)
        check_number("clip_sample_range", config["clip_sample_range"], low=0, low_open=True, finite=False)
        if "thresholding" in config:  # dynamic thresholding: a bool, a quantile, a positive bound
            check_bool("thresholding", config["thresholding"])
            ratio = config["dynamic_thresholding_ratio"]
            check_probability("dynamic_thresholding_ratio", ratio, hint="a quantile")
            check_number("sample_max_value", config["sample_max_value"], low=0, low_open=True, finite=False)
        self.config = cfg = SimpleNamespace(**config)
        if config.get("trained_betas") is not None:
            # a schedule given value by value: beta_schedule, beta_start and beta_end are unused
            betas = betas_from_config(cfg.trained_betas, cfg.num_train_timesteps)
            if cfg.rescale_betas_zero_snr:
                betas = rescale_zero_terminal_snr(betas)
            self.betas = betas
            self.alphas = 1.0 - betas  # $\alpha_t = 1 - \beta_t$
            # $\bar\alpha_t = \prod_{s \le t} \alpha_s$
            self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        else:
            # the same beta_start / beta_end go to every schedule, as in diffusers (SD: 0.00085, 0.012)
            schedule = NoiseSchedule(
                cfg.beta_schedule,
                cfg.num_train_timesteps,
                cfg.beta_start,
                cfg.beta_end,
                cfg.rescale_betas_zero_snr,
            )
            self.betas = schedule.betas
            self.alphas = schedule.alphas
            # $\bar\alpha_t = \prod_{s \le t} \alpha_s$
            self.alphas_cumprod = schedule.alphas_cumprod
        self.num_inference_steps: int | None = None
        self.timesteps = torch.arange(cfg.num_train_timesteps - 1, -1, -1)  # T-1, ..., 0: every step

    @property
    def init_noise_sigma(self) -> float | torch.Tensor:
        """The standard deviation of $x_T$: 1 for DDPM, DDIM and DPM-Solver ($x_T \\sim \\mathcal{N}(0, I)$);
        the Euler samplers work with $x / \\sqrt{\\bar\\alpha}$ and start from a larger one."""
        return 1.0

    @classmethod
    def from_config(cls, config: SimpleNamespace | Mapping, return_unused_kwargs: bool = False, **overrides):
        """A scheduler with another one's settings (diffusers' idiom), e.g.
        ``pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)`` or a diffusers
        ``scheduler_config.json`` read as a dict; ``overrides`` replace settings
        (``from_config(config, timestep_spacing="trailing")``).

        Only the arguments this class takes are read: DDPM's ``variance_type`` means nothing to
        DDIM, PNDM's ``skip_prk_steps`` nothing to any of these, and diffusers' bookkeeping keys
        (``_class_name``, ``_diffusers_version``) are skipped. With ``return_unused_kwargs`` the
        result is ``(scheduler, unused)``, ``unused`` the settings left out (bookkeeping keys
        aside). A value this class does not implement is refused with a ValueError naming it."""
        config = dict(vars(config) if isinstance(config, SimpleNamespace) else config)
        config.update(overrides)
        names = cls._config_names()
        scheduler = cls(**{name: value for name, value in config.items() if name in names})
        if not return_unused_kwargs:
            return scheduler
        unused = {k: v for k, v in config.items() if k not in names and not k.startswith("_")}
        return scheduler, unused

    @classmethod
    def _config_names(cls) -> set[str]:
        """The named arguments of the nearest ``__init__`` that lists them (a subclass may take
        ``*args, **kwargs`` and pass them on)."""
        for klass in cls.__mro__:
            if "__init__" in vars(klass):
                params = inspect.signature(vars(klass)["__init__"]).parameters.values()
                if not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
                    return {p.name for p in params} - {"self"}
        return set()

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
        n = check_int("num_inference_steps", num_inference_steps, low=1, high=T, hint="num_train_timesteps")
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

    def index_for_timestep(self, timestep: int | float | torch.Tensor) -> int:
        """The position of ``timestep`` in ``self.timesteps`` (the first, if it appears twice)."""
        t = timestep.item() if isinstance(timestep, torch.Tensor) else timestep
        where = (self.timesteps.cpu() == t).nonzero()
        if len(where) == 0:
            raise ValueError(
                "timestep must be one of scheduler.timesteps "
                f"(set by set_timesteps({self.num_inference_steps})), got {t}"
            )
        return int(where[0])

    def previous_timestep(self, timestep: int | torch.Tensor) -> int:
        r"""The less noisy neighbour $t'$ of ``timestep`` in ``self.timesteps``: the largest
        scheduled timestep below it, or -1 ("the clean sample") below the smallest.

        ``step`` goes from ``timestep`` down to it (an inverse scheduler goes up from it).
        diffusers' DDIM uses ``timestep - T // num_inference_steps`` instead, which is the same
        except for ``"linspace"`` spacing and ``"trailing"`` with n not dividing T, where it
        steps to timesteps that are not in ``self.timesteps``."""
        t = timestep_int(timestep)
        if not (self.timesteps == t).any():
            raise ValueError(
                f"timestep must be one of scheduler.timesteps "
                f"(set by set_timesteps({self.num_inference_steps})), got {t}"
            )
        lower = self.timesteps[self.timesteps < t]
        return int(lower.max()) if len(lower) else -1

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

    # ------------------------------------------------------------------ reading the network

    def predict_x0_and_eps(
        self, model_output: torch.Tensor, sample: torch.Tensor, alpha_prod_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The network's guesses $(\hat x_0, \hat\epsilon)$ at the noise level $\bar\alpha_t$ of
        ``sample``, whatever it predicts; $\hat x_0$ is clipped if ``clip_sample``, $\hat\epsilon$
        is not (as in diffusers); with ``thresholding``, dynamic thresholding replaces the clipping.
        ``alpha_prod_t``: one $\bar\alpha_t$ for the whole batch, or one per
        sample (shape ``[B]``, for a batch drawn at several timesteps, as distillation does)."""
        # the minildm.diffusion helpers look t up in a table of $\bar\alpha$s: here, a table of the
        # given ones, sample i reading entry i (or all reading the only one)
        table = alpha_prod_t.reshape(-1)
        t = 0 if table.numel() == 1 else torch.arange(table.numel(), device=table.device)
        prediction_type = self.config.prediction_type
        if prediction_type == "epsilon":
            # $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon_\theta) / \sqrt{\bar\alpha_t}$
            # (infinite at zero terminal SNR, where $\bar\alpha_T = 0$: clipping then saves it)
            pred_x0 = predict_x0_from_eps(sample, model_output, t, table)
            pred_eps = model_output
        elif prediction_type == "v_prediction":
            # $\hat x_0 = \sqrt{\bar\alpha_t}\, x_t - \sqrt{1 - \bar\alpha_t}\, v_\theta$
            pred_x0 = predict_x0_from_v(sample, model_output, t, table)
            # $\hat\epsilon = \sqrt{\bar\alpha_t}\, v_\theta + \sqrt{1 - \bar\alpha_t}\, x_t$
            pred_eps = predict_eps_from_v(sample, model_output, t, table)
        else:  # sample
            pred_x0 = model_output
            # $\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\hat x_0) / \sqrt{1 - \bar\alpha_t}$
            pred_eps = predict_eps_from_x0(sample, pred_x0, t, table)
        if getattr(self.config, "thresholding", False):  # Imagen's dynamic thresholding, before clipping
            pred_x0 = dynamic_threshold(
                pred_x0, self.config.dynamic_thresholding_ratio, self.config.sample_max_value
            )
        elif self.config.clip_sample:
            r = self.config.clip_sample_range
            pred_x0 = pred_x0.clamp(-r, r)
        return pred_x0, pred_eps
