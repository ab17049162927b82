r"""The forward process $q(x_t \mid x_0)$, its posterior, and the training objective.

Plain functions of tensors: they know the schedule (through ``alphas_cumprod``, the tensor
$\bar\alpha$ of :mod:`minildm.schedules`) but nothing about networks. ``timesteps`` are integer
indices into that tensor, 0 to T-1 (index 0 is the paper's $t = 1$), either one per sample
(shape ``[batch]``) or a single one for the whole batch. Coefficients are looked up, cast to the
dtype and device of the data, and broadcast over all trailing dims, so the same code serves 2-D
toy points (``[B, 2]``), images (``[B, C, H, W]``) and latents.

Three equivalent ways to say what the network predicts, all linked by
$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$:
the noise $\epsilon$, the clean sample $x_0$, or the velocity
$v = \sqrt{\bar\alpha_t}\, \epsilon - \sqrt{1 - \bar\alpha_t}\, x_0$ (Salimans & Ho, 2022).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from minildm.validation import check_positive_int, is_int

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


# ------------------------------------------------------------------ looking up coefficients


def _check_alphas_cumprod(alphas_cumprod: Any) -> torch.Tensor:
    if not isinstance(alphas_cumprod, torch.Tensor) or alphas_cumprod.ndim != 1:
        raise ValueError(
            f"alphas_cumprod must be a 1-D tensor of length T, got "
            f"{type(alphas_cumprod).__name__}{getattr(alphas_cumprod, 'shape', '')}"
        )
    return alphas_cumprod


def check_timesteps(timesteps: int | torch.Tensor, batch: int, num_train_timesteps: int) -> torch.Tensor:
    """``timesteps`` as a long tensor, after checking that it holds integers in [0, T-1] and is
    either a single timestep or one per sample (shape ``[batch]``)."""
    if is_int(timesteps):  # (NumPy's integers too; a bool is refused below)
        timesteps = torch.tensor(int(timesteps))
    if not isinstance(timesteps, torch.Tensor) or timesteps.is_floating_point() or timesteps.is_complex():
        raise ValueError(f"timesteps must be an int or an integer tensor, got {timesteps!r}")
    if timesteps.ndim > 1 or (timesteps.ndim == 1 and timesteps.shape[0] not in (1, batch)):
        raise ValueError(
            f"timesteps must be a scalar or have shape [{batch}] (one per sample), "
            f"got {tuple(timesteps.shape)}"
        )
    if timesteps.numel() and timesteps.device.type != "cpu":
        # on a GPU, reading the values back would stall the device every training step: the
        # check runs there, asynchronously (a violation fails the next synchronising call)
        torch._assert_async(
            (timesteps.min() >= 0) & (timesteps.max() <= num_train_timesteps - 1),
            f"timesteps must lie in [0, {num_train_timesteps - 1}]",
        )
    elif timesteps.numel() and (timesteps.min() < 0 or timesteps.max() > num_train_timesteps - 1):
        raise ValueError(
            f"timesteps must lie in [0, {num_train_timesteps - 1}] (num_train_timesteps = "
            f"{num_train_timesteps}), got values from {timesteps.min().item()} to {timesteps.max().item()}"
        )
    return timesteps.long()


def extract(values: torch.Tensor, timesteps: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[timesteps]`` in the dtype and on the device of ``like``, shaped ``[B, 1, ..., 1]``
    (or ``[1, ..., 1]`` for a single timestep) so that it broadcasts over ``like``."""
    values = _check_alphas_cumprod(values)
    if like.ndim == 0:
        raise ValueError("the data tensor must have a batch dimension, got a 0-d tensor")
    t = check_timesteps(timesteps, like.shape[0], values.shape[0]).to(like.device)
    out = values.to(device=like.device, dtype=like.dtype)[t]
    return out.reshape(-1, *([1] * (like.ndim - 1)))


def _check_same_shape(**tensors: torch.Tensor) -> None:
    (first_name, first), *rest = tensors.items()
    for name, tensor in [(first_name, first), *rest]:
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{name} must be a tensor, got {type(tensor).__name__}")
    for name, tensor in rest:
        if tensor.shape != first.shape:
            raise ValueError(
                f"{name} must have the shape of {first_name}, {tuple(first.shape)}, got {tuple(tensor.shape)}"
            )


# ------------------------------------------------------------------ the forward process


def add_noise(
    x0: torch.Tensor, noise: torch.Tensor, timesteps: int | torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    r"""Sample $x_t \sim q(x_t \mid x_0)$ in one shot, given the noise $\epsilon$."""
    _check_same_shape(x0=x0, noise=noise)
    abar = extract(alphas_cumprod, timesteps, x0)
    # $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$
    return abar**0.5 * x0 + (1 - abar) ** 0.5 * noise


def predict_x0_from_eps(
    x_t: torch.Tensor, eps: torch.Tensor, timesteps: int | torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """Solve the forward equation for $x_0$ given a (predicted) noise."""
    _check_same_shape(x_t=x_t, eps=eps)
    abar = extract(alphas_cumprod, timesteps, x_t)
    # $\hat x_0 = \frac{x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon}{\sqrt{\bar\alpha_t}}$
    return (x_t - (1 - abar) ** 0.5 * eps) / abar**0.5


def predict_eps_from_x0(
    x_t: torch.Tensor, x0: torch.Tensor, timesteps: int | torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    r"""Solve the forward equation for $\epsilon$ given a (predicted) clean sample."""
    _check_same_shape(x_t=x_t, x0=x0)
    abar = extract(alphas_cumprod, timesteps, x_t)
    # $\hat\epsilon = \frac{x_t - \sqrt{\bar\alpha_t}\, x_0}{\sqrt{1 - \bar\alpha_t}}$
    return (x_t - abar**0.5 * x0) / (1 - abar) ** 0.5


def get_velocity(
    x0: torch.Tensor, noise: torch.Tensor, timesteps: int | torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """The v-prediction target (Salimans & Ho, 2022)."""
    _check_same_shape(x0=x0, noise=noise)
    abar = extract(alphas_cumprod, timesteps, x0)
    # $v = \sqrt{\bar\alpha_t}\, \epsilon - \sqrt{1 - \bar\alpha_t}\, x_0$
    return abar**0.5 * noise - (1 - abar) ** 0.5 * x0


def predict_x0_from_v(
    x_t: torch.Tensor, v: torch.Tensor, timesteps: int | torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    r"""$x_0$ from a (predicted) velocity; unlike from $\epsilon$, no division, so it stays finite
    even at zero SNR."""
    _check_same_shape(x_t=x_t, v=v)
    abar = extract(alphas_cumprod, timesteps, x_t)
    # $\hat x_0 = \sqrt{\bar\alpha_t}\, x_t - \sqrt{1 - \bar\alpha_t}\, v$
    return abar**0.5 * x_t - (1 - abar) ** 0.5 * v


def predict_eps_from_v(
    x_t: torch.Tensor, v: torch.Tensor, timesteps: int | torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    r"""$\epsilon$ from a (predicted) velocity."""
    _check_same_shape(x_t=x_t, v=v)
    abar = extract(alphas_cumprod, timesteps, x_t)
    # $\hat\epsilon = \sqrt{\bar\alpha_t}\, v + \sqrt{1 - \bar\alpha_t}\, x_t$
    return abar**0.5 * v + (1 - abar) ** 0.5 * x_t


# ------------------------------------------------------------------ the posterior q(x_{t-1} | x_t, x_0)


def posterior_coefficients(
    alpha_prod_t: torch.Tensor, alpha_prod_t_prev: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Coefficients of $q(x_{t'} \mid x_t, x_0)$ for any earlier step $t' < t$, from
    $\bar\alpha_t$ and $\bar\alpha_{t'}$ (use 1 for "before the first step").
    With $t' = t - 1$ these are DDPM's eq. 6-7; a sampler that skips steps uses the same formulas
    with the effective $\beta = 1 - \bar\alpha_t / \bar\alpha_{t'}$.

    Returns ``(coef_x0, coef_xt, variance)``: mean $= $ coef_x0 $x_0 +$ coef_xt $x_t$."""
    # $\alpha_t = \bar\alpha_t / \bar\alpha_{t-1}$, $\beta_t = 1 - \alpha_t$
    alpha_t = alpha_prod_t / alpha_prod_t_prev
    beta_t = 1 - alpha_t
    # $\frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}$
    coef_x0 = alpha_prod_t_prev**0.5 * beta_t / (1 - alpha_prod_t)
    # $\frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}$
    coef_xt = alpha_t**0.5 * (1 - alpha_prod_t_prev) / (1 - alpha_prod_t)
    # $\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t$
    variance = (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * beta_t
    return coef_x0, coef_xt, variance


def posterior_mean_variance(
    x0: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor, schedule: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean $\tilde\mu_t(x_t, x_0)$ and variance $\tilde\beta_t$ of $q(x_{t-1} \mid x_t, x_0)$
    (DDPM eq. 6-7). ``schedule`` is a :class:`~minildm.schedules.NoiseSchedule`, anything with an
    ``alphas_cumprod`` attribute (e.g. a scheduler), or the ``alphas_cumprod`` tensor itself.
    The variance has shape ``[B, 1, ..., 1]``; at ``t = 0`` it is 0 (the last step adds no noise)."""
    alphas_cumprod = (
        schedule if isinstance(schedule, torch.Tensor) else getattr(schedule, "alphas_cumprod", None)
    )
    if alphas_cumprod is None:
        raise ValueError(
            f"schedule must be a NoiseSchedule, an object with alphas_cumprod, or that tensor, "
            f"got {type(schedule).__name__}"
        )
    _check_same_shape(x0=x0, x_t=x_t)
    alphas_cumprod = _check_alphas_cumprod(alphas_cumprod)
    t = check_timesteps(t, x0.shape[0], alphas_cumprod.shape[0]).to(x0.device)
    abar_t = extract(alphas_cumprod, t, x0)
    # $\bar\alpha_{t-1}$, with $\bar\alpha_0 = 1$ before the first step
    abar_prev = extract(alphas_cumprod, (t - 1).clamp(min=0), x0)
    abar_prev = torch.where(t.reshape(abar_prev.shape) > 0, abar_prev, torch.ones_like(abar_prev))
    coef_x0, coef_xt, variance = posterior_coefficients(abar_t, abar_prev)
    # $\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1 - \bar\alpha_t} x_0
    #   + \frac{\sqrt{\alpha_t}(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t$
    mean = coef_x0 * x0 + coef_xt * x_t
    return mean, variance


# ------------------------------------------------------------------ training


def training_target(
    x0: torch.Tensor,
    noise: torch.Tensor,
    timesteps: int | torch.Tensor,
    alphas_cumprod: torch.Tensor,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    r"""What the network should output: $\epsilon$, $v$ or $x_0$."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return get_velocity(x0, noise, timesteps, alphas_cumprod)
    if prediction_type == "sample":
        return x0
    raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def diffusion_loss(
    model_output: torch.Tensor,
    x0: torch.Tensor,
    noise: torch.Tensor,
    timesteps: int | torch.Tensor,
    alphas_cumprod: torch.Tensor,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    r"""The simple DDPM objective: mean squared error between the network's output and its target,
    $L = \mathbb{E}\,\|\text{target} - \text{output}\|^2$, averaged over every element."""
    _check_same_shape(model_output=model_output, x0=x0, noise=noise)
    target = training_target(x0, noise, timesteps, alphas_cumprod, prediction_type)
    # e.g. $L_\text{simple} = \mathbb{E}_{t, x_0, \epsilon}\|\epsilon - \epsilon_\theta(x_t, t)\|^2$
    return F.mse_loss(model_output, target)


def sample_timesteps(
    batch: int,
    num_train_timesteps: int,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    r"""One uniformly random timestep per sample, $t \sim \mathcal{U}\{0, \dots, T-1\}$, drawn on
    ``generator``'s device (the CPU without one: a CPU generator gives the same timesteps on every
    device) and moved to ``device``."""
    check_positive_int("batch", batch)
    check_positive_int("num_train_timesteps", num_train_timesteps)
    draw_on = generator.device if generator is not None else torch.device("cpu")
    t = torch.randint(0, num_train_timesteps, (batch,), generator=generator, device=draw_on)
    return t if device is None else t.to(device)
