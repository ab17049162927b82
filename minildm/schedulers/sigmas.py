r"""Where to step: the noise levels $\sigma$ a sampler visits, and the timesteps they map back to.

By default a scheduler spaces its timesteps evenly and $\sigma$ follows them. Two other choices
space the noise levels themselves and map each back to a (fractional) training timestep by
interpolating $\log\sigma$: Karras et al. (2022, eq. 5), dense at low noise, and Lu et al. (2022),
evenly spaced in the half log-SNR $\lambda$. Euler and DPM-Solver++ share these.
"""

from __future__ import annotations

import numpy as np
import torch

ZERO_SNR_ALPHA_CUMPROD = 2.0**-24  # what diffusers puts in place of alphabar_T = 0 (sigma would be infinite)
KARRAS_RHO = 7.0  # Karras et al. (2022): rho = 7 spaced the noise levels best in their experiments


def vp_sigmas(alphas_cumprod: torch.Tensor) -> np.ndarray:
    r"""The noise-to-signal ratio $\sigma^\text{VE} = \sqrt{(1 - \bar\alpha) / \bar\alpha}$ of every
    training timestep: the "sigma" of Karras et al. and of diffusers' solvers (computed in float32
    as diffusers does). A zero-terminal-SNR schedule's $\bar\alpha_T = 0$ becomes $2^{-24}$."""
    abar = alphas_cumprod.to(torch.float32).clone()
    abar[abar == 0] = ZERO_SNR_ALPHA_CUMPROD
    return (((1 - abar) / abar) ** 0.5).numpy().astype(np.float64)


def karras_sigmas(sigma_min: float, sigma_max: float, n: int) -> np.ndarray:
    r"""The n noise levels of Karras et al. (2022, eq. 5), largest first:
    $\sigma_i = \left(\sigma_\max^{1/\rho} + \tfrac{i}{n-1}\left(\sigma_\min^{1/\rho}
    - \sigma_\max^{1/\rho}\right)\right)^\rho$ with $\rho = 7$: evenly spaced in $\sigma^{1/7}$, so
    the steps crowd towards low noise, where the details are drawn."""
    ramp = np.linspace(0, 1, n)  # $i / (n - 1)$
    max_inv_rho, min_inv_rho = sigma_max ** (1 / KARRAS_RHO), sigma_min ** (1 / KARRAS_RHO)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** KARRAS_RHO


def lu_sigmas(log_sigma_min: float, log_sigma_max: float, n: int) -> np.ndarray:
    r"""The n noise levels of Lu et al. (2022), largest first, evenly spaced in the half
    log-SNR $\lambda = -\log\sigma$: $\log\sigma_i = \log\sigma_\max + \tfrac{i}{n-1}
    (\log\sigma_\min - \log\sigma_\max)$."""
    ramp = np.linspace(0, 1, n)  # $i / (n - 1)$
    return np.exp(log_sigma_max + ramp * (log_sigma_min - log_sigma_max))


def sigmas_to_timesteps(sigmas: np.ndarray, log_train_sigmas: np.ndarray) -> np.ndarray:
    r"""The (fractional) training timestep of each noise level: $\log\sigma$ interpolated linearly
    between the two training timesteps that bracket it (``log_train_sigmas``: $\log\sigma_t$ of
    every training timestep, increasing with t), clamped to $[0, T - 1]$."""
    log_sigma = np.log(np.maximum(sigmas, 1e-10))
    T = len(log_train_sigmas)
    # $t_0$: the last training timestep with $\log\sigma_{t_0} \le \log\sigma$ (at most T - 2)
    low = np.clip(np.searchsorted(log_train_sigmas, log_sigma, side="right") - 1, 0, T - 2)
    lo, hi = log_train_sigmas[low], log_train_sigmas[low + 1]
    # $w = (\log\sigma_{t_0} - \log\sigma) / (\log\sigma_{t_0} - \log\sigma_{t_0 + 1})$, kept in [0, 1]
    w = np.clip((lo - log_sigma) / (lo - hi), 0, 1)
    return (1 - w) * low + w * (low + 1)  # $t = (1 - w)\, t_0 + w\, (t_0 + 1)$
