r"""Noise schedules: how much noise the forward process adds at each of the T training steps.

A schedule is a sequence of variances $\beta_1, \dots, \beta_T$. Everything else follows from it:

* $\alpha_t = 1 - \beta_t$, the fraction of signal *variance* one step keeps;
* $\bar\alpha_t = \prod_{s=1}^t \alpha_s$, the fraction kept after t steps, so that
  $q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I)$;
* $\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$, the signal-to-noise ratio of $x_t$.

Index 0 of every tensor here is the paper's $t = 1$ (the least noisy step), index T-1 is $t = T$:
the same convention (and the same names and numbers) as Hugging Face diffusers, whose
``beta_schedule`` strings we reuse: ``"linear"``, ``"scaled_linear"``, ``"squaredcos_cap_v2"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from minildm.validation import check_positive_int

# The default beta range of each schedule, as the papers (and diffusers' configs) use them.
DEFAULT_BETA_RANGE: dict[str, tuple[float, float]] = {
    "linear": (1e-4, 0.02),  # DDPM (Ho et al., 2020)
    "scaled_linear": (0.00085, 0.012),  # Stable Diffusion (Rombach et al., 2022)
}
COSINE_OFFSET = 0.008  # the small offset s of Nichol & Dhariwal (2021), so that beta_1 is not tiny
MAX_BETA = 0.999  # cosine betas are capped below 1, else the last steps would destroy all signal at once
SCHEDULE_NAMES = ("linear", "scaled_linear", "squaredcos_cap_v2", "cosine")


def _check_beta(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a float in (0, 1), got {value!r}")


def cosine_alpha_bar(t: torch.Tensor, s: float = COSINE_OFFSET) -> torch.Tensor:
    r"""The continuous cosine schedule of Nichol & Dhariwal (2021), for ``t`` in [0, 1].

    It is not normalised by $f(0)$: only ratios $\bar\alpha(t_2)/\bar\alpha(t_1)$ are used."""
    # $f(t) = \cos^2\left(\frac{t + s}{1 + s} \cdot \frac{\pi}{2}\right)$
    return torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2


def make_beta_schedule(
    name: str,
    num_train_timesteps: int = 1000,
    beta_start: float | None = None,
    beta_end: float | None = None,
) -> torch.Tensor:
    r"""The betas of a named schedule, a float32 tensor of shape ``[num_train_timesteps]``.

    * ``"linear"``: DDPM's, evenly spaced from ``beta_start`` (1e-4) to ``beta_end`` (0.02).
    * ``"scaled_linear"``: Stable Diffusion's, evenly spaced in $\sqrt\beta$ from
      $\sqrt{0.00085}$ to $\sqrt{0.012}$, then squared.
    * ``"squaredcos_cap_v2"`` (alias ``"cosine"``): Nichol & Dhariwal's cosine schedule, betas
      chosen so that $\bar\alpha_t$ follows $\cos^2$, capped at 0.999. ``beta_start`` and
      ``beta_end`` are ignored (as diffusers does).
    """
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"schedule name must be one of {SCHEDULE_NAMES}, got {name!r}")
    T = check_positive_int("num_train_timesteps", num_train_timesteps)  # (NumPy's ints too)

    if name in ("squaredcos_cap_v2", "cosine"):
        # work in float64 (as Python floats would), round to float32 at the end
        t = torch.arange(T + 1, dtype=torch.float64) / T
        f = cosine_alpha_bar(t)
        # $\beta_t = \min\left(1 - \frac{\bar\alpha(t/T)}{\bar\alpha((t-1)/T)}, 0.999\right)$
        betas = torch.clamp(1 - f[1:] / f[:-1], max=MAX_BETA)
        return betas.to(torch.float32)

    default_start, default_end = DEFAULT_BETA_RANGE[name]
    beta_start = default_start if beta_start is None else beta_start
    beta_end = default_end if beta_end is None else beta_end
    _check_beta("beta_start", beta_start)
    _check_beta("beta_end", beta_end)

    if name == "linear":
        # $\beta_t = \beta_\text{start} + \frac{t-1}{T-1}(\beta_\text{end} - \beta_\text{start})$
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    # scaled_linear: $\sqrt{\beta_t}$ is linear in t
    # $\beta_t = \left(\sqrt{\beta_\text{start}} + \frac{t-1}{T-1}(\sqrt{\beta_\text{end}}
    #   - \sqrt{\beta_\text{start}})\right)^2$
    return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float32) ** 2


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    r"""Rescale ``betas`` so that the last step has zero SNR (Lin et al., 2023, Algorithm 1).

    Common schedules leave a little signal at $t = T$ ($\bar\alpha_T \approx 0.0047$ for SD's),
    so training never sees pure noise, yet sampling starts from it. The fix shifts
    $\sqrt{\bar\alpha_t}$ so that its last value is 0 and scales it so that its first value is
    unchanged. Then $\beta_T = 1$: epsilon-prediction is undefined at $t = T$ (use v-prediction).
    """
    if not isinstance(betas, torch.Tensor) or betas.ndim != 1 or betas.numel() < 2:
        raise ValueError(f"betas must be a 1-D tensor with at least 2 entries, got {betas!r}")
    alphas = 1.0 - betas
    # $\sqrt{\bar\alpha_t}$
    sqrt_abar = torch.cumprod(alphas, dim=0).sqrt()
    first, last = sqrt_abar[0].clone(), sqrt_abar[-1].clone()
    # $\sqrt{\bar\alpha_t}' = (\sqrt{\bar\alpha_t} - \sqrt{\bar\alpha_T})
    #   \cdot \frac{\sqrt{\bar\alpha_1}}{\sqrt{\bar\alpha_1} - \sqrt{\bar\alpha_T}}$
    sqrt_abar = (sqrt_abar - last) * (first / (first - last))
    abar = sqrt_abar**2
    # undo the cumulative product: $\alpha_t = \bar\alpha_t / \bar\alpha_{t-1}$, $\alpha_1 = \bar\alpha_1$
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return 1.0 - alphas


@dataclass
class NoiseSchedule:
    """A named schedule and the tensors derived from it (all float32, shape ``[T]``).

    For example ``NoiseSchedule("scaled_linear").alphas_cumprod[-1]`` is about 0.0047: some
    signal is left at $t = T$; with ``rescale_zero_snr=True`` it is exactly 0.
    """

    name: str = "linear"
    num_train_timesteps: int = 1000
    beta_start: float | None = None
    beta_end: float | None = None
    rescale_zero_snr: bool = False
    betas: torch.Tensor = field(init=False, repr=False)
    alphas: torch.Tensor = field(init=False, repr=False)
    alphas_cumprod: torch.Tensor = field(init=False, repr=False)
    snr: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = make_beta_schedule(self.name, self.num_train_timesteps, self.beta_start, self.beta_end)
        if self.rescale_zero_snr:
            betas = rescale_zero_terminal_snr(betas)
        self.betas = betas
        # $\alpha_t = 1 - \beta_t$
        self.alphas = 1.0 - betas
        # $\bar\alpha_t = \prod_{s=1}^t \alpha_s$
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        # $\mathrm{SNR}(t) = \frac{\bar\alpha_t}{1 - \bar\alpha_t}$
        self.snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    def __len__(self) -> int:
        return self.num_train_timesteps

    def log_snr(self) -> torch.Tensor:
        r"""$\log \mathrm{SNR}(t)$, the usual axis for comparing schedules (``-inf`` at zero SNR)."""
        return torch.log(self.snr)
