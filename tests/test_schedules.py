"""Beta schedules: parity with diffusers' DDPMScheduler, shapes, and bad input."""

import pytest
import torch

from minildm.schedules import NoiseSchedule, make_beta_schedule, rescale_zero_terminal_snr

# (our name, diffusers' beta_schedule, the beta range diffusers must be given to match our defaults)
SCHEDULES = [
    ("linear", "linear", {"beta_start": 1e-4, "beta_end": 0.02}),
    ("scaled_linear", "scaled_linear", {"beta_start": 0.00085, "beta_end": 0.012}),
    ("squaredcos_cap_v2", "squaredcos_cap_v2", {}),
    ("cosine", "squaredcos_cap_v2", {}),
]


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("name, theirs, betas", SCHEDULES)
def test_matches_diffusers(name, theirs, betas, rescale):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(beta_schedule=theirs, rescale_betas_zero_snr=rescale, **betas)
    ours = NoiseSchedule(name, rescale_zero_snr=rescale)
    for field in ("betas", "alphas", "alphas_cumprod"):
        mine, expected = getattr(ours, field), getattr(ref, field)
        assert mine.dtype == torch.float32 and mine.shape == (1000,)
        torch.testing.assert_close(mine, expected, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("T", [10, 250])
def test_other_lengths_match_diffusers(T):
    diffusers = pytest.importorskip("diffusers")
    for name, theirs, betas in SCHEDULES[:3]:
        ref = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=theirs, **betas)
        torch.testing.assert_close(make_beta_schedule(name, T), ref.betas, atol=1e-7, rtol=1e-6)


def test_rescale_function_matches_diffusers():
    sched = pytest.importorskip("diffusers.schedulers.scheduling_ddpm")
    betas = make_beta_schedule("scaled_linear")
    torch.testing.assert_close(rescale_zero_terminal_snr(betas), sched.rescale_zero_terminal_snr(betas))


def test_known_values():
    linear = make_beta_schedule("linear")
    assert linear[0].item() == pytest.approx(1e-4) and linear[-1].item() == pytest.approx(0.02)
    sd = make_beta_schedule("scaled_linear")
    assert sd[0].item() == pytest.approx(0.00085) and sd[-1].item() == pytest.approx(0.012)
    # SD leaves a little signal at t = T (Lin et al. 2023 quote 0.0047 for sqrt(abar_T) = 0.068)
    assert NoiseSchedule("scaled_linear").alphas_cumprod[-1].item() == pytest.approx(0.0047, abs=1e-4)
    cosine = make_beta_schedule("cosine")
    assert cosine.max().item() == pytest.approx(0.999)  # the cap bites at the very end
    assert torch.equal(cosine, make_beta_schedule("squaredcos_cap_v2"))
    custom = make_beta_schedule("linear", 5, beta_start=0.1, beta_end=0.5)
    torch.testing.assert_close(custom, torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5]))


def test_zero_terminal_snr():
    s = NoiseSchedule("scaled_linear", rescale_zero_snr=True)
    plain = NoiseSchedule("scaled_linear")
    assert s.alphas_cumprod[-1].item() == 0.0 and s.snr[-1].item() == 0.0 and s.betas[-1].item() == 1.0
    # the first step is unchanged, SNR still falls monotonically
    torch.testing.assert_close(s.alphas_cumprod[0], plain.alphas_cumprod[0])
    assert (s.snr[1:] < s.snr[:-1]).all()


def test_noise_schedule_fields():
    s = NoiseSchedule("linear", num_train_timesteps=100)
    assert len(s) == s.num_train_timesteps == 100
    torch.testing.assert_close(s.alphas, 1 - s.betas)
    torch.testing.assert_close(s.alphas_cumprod, torch.cumprod(s.alphas, 0))
    torch.testing.assert_close(s.snr, s.alphas_cumprod / (1 - s.alphas_cumprod))
    assert (s.snr[1:] < s.snr[:-1]).all()
    torch.testing.assert_close(s.log_snr(), torch.log(s.snr))


def test_bad_input():
    with pytest.raises(ValueError, match="'quadratic'") as err:
        make_beta_schedule("quadratic")
    assert "scaled_linear" in str(err.value) and "squaredcos_cap_v2" in str(err.value)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        make_beta_schedule("linear", 0)
    with pytest.raises(ValueError, match="beta_end"):
        make_beta_schedule("linear", beta_end=1.5)
    with pytest.raises(ValueError, match="betas"):
        rescale_zero_terminal_snr(torch.ones(2, 2))
    with pytest.raises(ValueError, match="'sqrt'"):
        NoiseSchedule("sqrt")
