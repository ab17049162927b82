"""The forward process, the posterior and the loss: parity with diffusers, statistics, bad input."""

import pytest
import torch

from minildm.diffusion import (
    add_noise,
    diffusion_loss,
    get_velocity,
    posterior_coefficients,
    posterior_mean_variance,
    predict_eps_from_v,
    predict_eps_from_x0,
    predict_x0_from_eps,
    predict_x0_from_v,
    sample_timesteps,
    training_target,
)
from minildm.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule("scaled_linear")
ABAR = SCHEDULE.alphas_cumprod


def batch(shape=(4, 3, 5, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("shape", [(4, 2), (4, 3, 5, 5), (4, 4, 2, 2, 2)])
def test_add_noise_and_velocity_match_diffusers(shape):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    x0, noise = batch(shape)
    t = torch.tensor([0, 1, 500, 999])
    torch.testing.assert_close(add_noise(x0, noise, t, ABAR), ref.add_noise(x0, noise, t), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        get_velocity(x0, noise, t, ABAR), ref.get_velocity(x0, noise, t), atol=1e-6, rtol=0
    )


def test_add_noise_by_hand_and_broadcast():
    x0, noise = batch((3, 2))
    t = torch.tensor([0, 10, 999])
    out = add_noise(x0, noise, t, ABAR)
    for i in range(3):
        a = ABAR[t[i]]
        torch.testing.assert_close(out[i], a.sqrt() * x0[i] + (1 - a).sqrt() * noise[i])
    # a single timestep (int or 0-d tensor) applies to the whole batch
    torch.testing.assert_close(
        add_noise(x0, noise, 10, ABAR), add_noise(x0, noise, torch.full((3,), 10), ABAR)
    )
    # float64 data stays float64
    assert add_noise(x0.double(), noise.double(), t, ABAR).dtype == torch.float64


def test_add_noise_statistics():
    """Over many draws of the noise, x_t has mean sqrt(abar) x0 and variance 1 - abar."""
    g = torch.Generator().manual_seed(1)
    n = 200_000
    x0 = torch.tensor([[1.5, -0.5]]).expand(n, 2)
    for t in (0, 250, 999):
        xt = add_noise(x0, torch.randn(n, 2, generator=g), t, ABAR)
        a = ABAR[t]
        torch.testing.assert_close(xt.mean(0), a.sqrt() * x0[0], atol=0.01, rtol=0)
        torch.testing.assert_close(xt.var(0), (1 - a).expand(2), atol=0.01 * (1 - a).item() + 1e-4, rtol=0)


def test_add_noise_equals_step_by_step_noising():
    """The closed form q(x_t | x_0) has the law of t single steps
    x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z."""
    s = NoiseSchedule("linear", num_train_timesteps=50)
    g = torch.Generator().manual_seed(2)
    x = torch.full((100_000, 1), 2.0)
    for beta in s.betas:
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=g)
    a = s.alphas_cumprod[-1]
    assert x.mean().item() == pytest.approx(2 * a.sqrt().item(), abs=0.01)
    assert x.var().item() == pytest.approx((1 - a).item(), abs=0.01)


def test_parameterisations_invert_each_other():
    x0, eps = batch(seed=3)
    x0, eps = x0.double(), eps.double()
    t = torch.tensor([0, 100, 600, 999])
    xt = add_noise(x0, eps, t, ABAR)
    v = get_velocity(x0, eps, t, ABAR)
    torch.testing.assert_close(predict_x0_from_eps(xt, eps, t, ABAR), x0)
    torch.testing.assert_close(predict_eps_from_x0(xt, x0, t, ABAR), eps)
    torch.testing.assert_close(predict_x0_from_v(xt, v, t, ABAR), x0)
    torch.testing.assert_close(predict_eps_from_v(xt, v, t, ABAR), eps)


def test_posterior_variance_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    for name, kw in [("linear", {}), ("squaredcos_cap_v2", {})]:
        ref = diffusers.DDPMScheduler(beta_schedule=name, **kw)
        s = NoiseSchedule(name)
        x0, xt = batch((1000, 1), seed=4)
        _, var = posterior_mean_variance(x0, xt, torch.arange(1000), s)
        expected = torch.stack([ref._get_variance(t) for t in range(1000)])
        # diffusers clamps the variance at 1e-20, where ours is exactly 0 (t = 0)
        torch.testing.assert_close(var.flatten().clamp(min=1e-20), expected, atol=1e-7, rtol=1e-5)
        assert var[0].item() == 0.0


def test_posterior_mean_by_hand():
    """Mean and variance of q(x_{t-1} | x_t, x_0), DDPM eq. 6-7, written out with the betas."""
    s = NoiseSchedule("linear")
    x0, xt = batch((2, 3), seed=5)
    t = torch.tensor([1, 700])
    mean, var = posterior_mean_variance(x0, xt, t, s)
    # beta_t recovered as 1 - abar_t / abar_{t-1} from float32 abar loses digits when beta_t is tiny
    # (t = 1: beta = 1.2e-4, 0.1% off); diffusers does the same, so compare loosely there
    for i, (ti, rtol) in enumerate([(1, 2e-3), (700, 1e-5)]):
        beta, abar, abar_prev = s.betas[ti], s.alphas_cumprod[ti], s.alphas_cumprod[ti - 1]
        coef_x0 = abar_prev.sqrt() * beta / (1 - abar)
        coef_xt = (1 - beta).sqrt() * (1 - abar_prev) / (1 - abar)
        torch.testing.assert_close(mean[i], coef_x0 * x0[i] + coef_xt * xt[i], atol=1e-6, rtol=rtol)
        torch.testing.assert_close(var[i, 0], (1 - abar_prev) / (1 - abar) * beta, atol=1e-9, rtol=rtol)
    # at t = 0 the posterior is a point mass at x0
    mean0, var0 = posterior_mean_variance(x0, xt, 0, s.alphas_cumprod)
    torch.testing.assert_close(mean0, x0)
    assert (var0 == 0).all()
    # posterior_coefficients with t' = t - 1 are the same numbers
    c0, ct, v = posterior_coefficients(s.alphas_cumprod[700], s.alphas_cumprod[699])
    torch.testing.assert_close(c0 * x0[1] + ct * xt[1], mean[1])
    torch.testing.assert_close(v, var[1, 0])


def test_loss_targets():
    x0, noise = batch(seed=6)
    t = torch.tensor([3, 30, 300, 900])
    v = get_velocity(x0, noise, t, ABAR)
    assert diffusion_loss(noise, x0, noise, t, ABAR).item() == 0.0
    assert diffusion_loss(v, x0, noise, t, ABAR, prediction_type="v_prediction").item() == 0.0
    assert diffusion_loss(x0, x0, noise, t, ABAR, prediction_type="sample").item() == 0.0
    zero = torch.zeros_like(x0)
    torch.testing.assert_close(diffusion_loss(zero, x0, noise, t, ABAR), noise.pow(2).mean())
    torch.testing.assert_close(training_target(x0, noise, t, ABAR, "v_prediction"), v)


def test_sample_timesteps():
    t = sample_timesteps(10_000, 1000, torch.Generator().manual_seed(0))
    assert t.shape == (10_000,) and t.dtype == torch.long
    assert t.min().item() == 0 and t.max().item() == 999
    again = sample_timesteps(10_000, 1000, torch.Generator().manual_seed(0), device="cpu")
    assert torch.equal(t, again)


def test_bad_input():
    x0, noise = batch((2, 3))
    with pytest.raises(ValueError, match=r"\[0, 999\].*1000"):
        add_noise(x0, noise, torch.tensor([5, 1000]), ABAR)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        add_noise(x0, noise, -1, ABAR)
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        add_noise(x0, noise, torch.tensor([1, 2, 3]), ABAR)
    with pytest.raises(ValueError, match="integer"):
        add_noise(x0, noise, torch.tensor([0.5, 1.0]), ABAR)
    with pytest.raises(ValueError, match="noise must have the shape of x0"):
        add_noise(x0, noise[:, :2], 1, ABAR)
    with pytest.raises(ValueError, match="alphas_cumprod"):
        add_noise(x0, noise, 1, ABAR.reshape(10, 100))
    with pytest.raises(ValueError, match="prediction_type"):
        diffusion_loss(noise, x0, noise, 1, ABAR, prediction_type="x0")
    with pytest.raises(ValueError, match="model_output"):
        diffusion_loss(noise[:1], x0, noise, 1, ABAR)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        posterior_mean_variance(x0, noise, 1000, SCHEDULE)
    with pytest.raises(ValueError, match="schedule"):
        posterior_mean_variance(x0, noise, 1, "linear")
    with pytest.raises(ValueError, match="batch"):
        sample_timesteps(0, 1000)
