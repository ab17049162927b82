"""DDPMScheduler parity with diffusers (timesteps, add_noise, step), the sampling loop, guidance."""

import pytest
import torch
from denoisers import GAUSS_MEAN, GAUSS_STD, gaussian_denoiser

from minildm.sampling import CFGDenoiser, Sampler, timestep_batch
from minildm.schedulers import DDPMScheduler, SchedulerOutput

diffusers = pytest.importorskip("diffusers")

# our constructor kwargs, also valid for diffusers' DDPMScheduler
SCHEDULES = {
    "linear": {"beta_schedule": "linear"},
    "scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    "cosine": {"beta_schedule": "squaredcos_cap_v2"},
}


def pair(**kwargs):
    return DDPMScheduler(**kwargs), diffusers.DDPMScheduler(**kwargs)


def fake_model_output(x, t):
    """A deterministic stand-in for a network: anything of x's shape that depends on x and t."""
    return 0.7 * x + 0.3 * torch.sin(x * 3 + t / 100)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_set_timesteps_matches_diffusers(spacing):
    for n in (1, 7, 10, 20, 50, 100, 333, 999, 1000):
        ours, ref = pair(timestep_spacing=spacing)
        ours.set_timesteps(n)
        ref.set_timesteps(n)
        assert ours.timesteps.dtype == torch.long and len(ours.timesteps) == n == ours.num_inference_steps
        assert torch.equal(ours.timesteps, ref.timesteps), (spacing, n)


def test_set_timesteps_ends_and_offset():
    leading, trailing, linspace = (
        DDPMScheduler(timestep_spacing=s) for s in ("leading", "trailing", "linspace")
    )
    for s in (leading, trailing, linspace):
        s.set_timesteps(50)
    assert (leading.timesteps[0].item(), leading.timesteps[-1].item()) == (980, 0)
    assert (trailing.timesteps[0].item(), trailing.timesteps[-1].item()) == (999, 19)
    assert (linspace.timesteps[0].item(), linspace.timesteps[-1].item()) == (999, 0)
    # Stable Diffusion's config: leading with steps_offset = 1
    ours, ref = pair(steps_offset=1)
    ours.set_timesteps(50)
    ref.set_timesteps(50)
    assert torch.equal(ours.timesteps, ref.timesteps) and ours.timesteps[-1].item() == 1
    # before set_timesteps: every step, T-1 .. 0
    assert torch.equal(DDPMScheduler().timesteps, torch.arange(999, -1, -1))


def test_trailing_never_returns_minus_one():
    """diffusers' trailing spacing yields n + 1 timesteps, the last -1, for some n (e.g. 61)."""
    ours, ref = pair(timestep_spacing="trailing")
    ours.set_timesteps(61)
    ref.set_timesteps(61)
    assert len(ours.timesteps) == 61 and ours.timesteps.min().item() >= 0
    assert torch.equal(ours.timesteps, ref.timesteps[:61])


def test_add_noise_and_velocity_match_diffusers():
    ours, ref = pair(**SCHEDULES["scaled_linear"])
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        ours.get_velocity(x0, noise, t), ref.get_velocity(x0, noise, t), atol=1e-6, rtol=0
    )
    assert ours.scale_model_input(x0, 10) is x0 and ours.init_noise_sigma == 1.0


STEP_CASES = [
    (schedule, prediction, variance)
    for schedule in SCHEDULES
    for prediction in ("epsilon", "v_prediction")
    for variance in ("fixed_small", "fixed_large")
]


def assert_same_step(ours, ref, t, x, seed):
    out = fake_model_output(x, t)
    mine = ours.step(out, t, x, generator=torch.Generator().manual_seed(seed))
    theirs = ref.step(out, t, x, generator=torch.Generator().manual_seed(seed))
    assert isinstance(mine, SchedulerOutput)
    torch.testing.assert_close(mine.pred_original_sample, theirs.pred_original_sample, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(mine.prev_sample, theirs.prev_sample, atol=1e-6, rtol=1e-6)
    return theirs.prev_sample


@pytest.mark.parametrize("schedule, prediction, variance", STEP_CASES)
def test_step_matches_diffusers_1000_steps(schedule, prediction, variance):
    """Steps of the full 1000-step chain (t -> t - 1), every 9th one and both ends, each fed the
    same input (diffusers' own trajectory)."""
    kwargs = dict(SCHEDULES[schedule], prediction_type=prediction, variance_type=variance)
    ours, ref = pair(**kwargs)
    ours.set_timesteps(1000)
    ref.set_timesteps(1000)
    g = torch.Generator().manual_seed(1)
    for t in [*range(999, 0, -9), 1, 0]:
        x = torch.randn(2, 3, 4, 4, generator=g)
        assert_same_step(ours, ref, torch.tensor(t), x, seed=t)


@pytest.mark.parametrize(
    "schedule, prediction, variance, set_timesteps",
    [("linear", "epsilon", "fixed_small", False), ("scaled_linear", "v_prediction", "fixed_large", True)],
)
def test_full_1000_step_chain_matches_diffusers(schedule, prediction, variance, set_timesteps):
    """All 1000 steps, each side running its own chain (with or without calling set_timesteps)."""
    kwargs = dict(SCHEDULES[schedule], prediction_type=prediction, variance_type=variance)
    ours, ref = pair(**kwargs)
    if set_timesteps:
        ours.set_timesteps(1000)
        ref.set_timesteps(1000)
    g_ours, g_ref = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    x_ours = x_ref = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    for t in ref.timesteps:
        x_ours = ours.step(fake_model_output(x_ours, t), t, x_ours, generator=g_ours).prev_sample
        x_ref = ref.step(fake_model_output(x_ref, t), t, x_ref, generator=g_ref).prev_sample
    torch.testing.assert_close(x_ours, x_ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("schedule, prediction, variance", STEP_CASES)
def test_sampling_chain_matches_diffusers_50_steps(schedule, prediction, variance, spacing):
    """A 50-step sub-sequence, each side running its own chain from the same start and seed."""
    kwargs = dict(
        SCHEDULES[schedule], prediction_type=prediction, variance_type=variance, timestep_spacing=spacing
    )
    ours, ref = pair(**kwargs)
    ours.set_timesteps(50)
    ref.set_timesteps(50)
    g_ours, g_ref = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    x_ours = x_ref = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    for t in ref.timesteps:
        x_ours = ours.step(fake_model_output(x_ours, t), t, x_ours, generator=g_ours).prev_sample
        x_ref = ref.step(fake_model_output(x_ref, t), t, x_ref, generator=g_ref).prev_sample
    torch.testing.assert_close(x_ours, x_ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_step_zero_terminal_snr_matches_diffusers(prediction):
    kwargs = dict(
        SCHEDULES["scaled_linear"],
        prediction_type=prediction,
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
    )
    ours, ref = pair(**kwargs)
    ours.set_timesteps(25)
    ref.set_timesteps(25)
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(4))
    for i, t in enumerate(ref.timesteps):
        x = assert_same_step(ours, ref, t, x, seed=i)
    assert torch.isfinite(x).all()


def test_step_variance_noise_and_final_step():
    ours = DDPMScheduler(variance_type="fixed_large")
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(5))
    out = fake_model_output(x, 500)
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(6))
    with_noise = ours.step(out, 500, x, variance_noise=z).prev_sample
    without = ours.step(out, 500, x, variance_noise=torch.zeros_like(x)).prev_sample
    torch.testing.assert_close(with_noise - without, ours.betas[500].sqrt() * z)
    # same noise through the generator: torch.randn with that seed
    seeded = ours.step(out, 500, x, generator=torch.Generator().manual_seed(6)).prev_sample
    torch.testing.assert_close(seeded, with_noise)
    # t = 0 adds no noise and returns the posterior mean, which is then pred_x0 itself
    final = ours.step(out, 0, x, variance_noise=z)
    torch.testing.assert_close(final.prev_sample, final.pred_original_sample)


def test_step_previous_timestep():
    s = DDPMScheduler()
    assert s.previous_timestep(500) == 499
    s.set_timesteps(50)
    assert s.previous_timestep(980) == 960 and s.previous_timestep(0) == -1


class RecordingModel:
    """Returns a known function of (x, t, context) and records the batch sizes it was called with."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, t, context=None):
        self.batches.append(x.shape[0])
        assert t.shape == (x.shape[0],)
        shift = 0.0 if context is None else context.reshape(context.shape[0], *([1] * (x.ndim - 1)))
        return 0.1 * x + shift


def test_classifier_free_guidance():
    model = RecordingModel()
    x, t = torch.randn(3, 2, 4), timestep_batch(10, torch.zeros(3))
    cond, uncond = torch.full((3,), 2.0), torch.full((3,), 0.5)
    out = CFGDenoiser(model, cond, uncond, 7.5)(x, t)
    assert model.batches == [6]  # one doubled batch
    eps_c, eps_u = 0.1 * x + 2.0, 0.1 * x + 0.5
    torch.testing.assert_close(out, eps_u + 7.5 * (eps_c - eps_u))
    # scale 1 or no uncond: a single conditional pass
    torch.testing.assert_close(CFGDenoiser(model, cond, uncond, 1.0)(x, t), eps_c)
    torch.testing.assert_close(CFGDenoiser(model, cond, None, 7.5)(x, t), eps_c)
    assert model.batches == [6, 3, 3]
    # an uncond of batch 1 (the empty prompt) is broadcast
    one = CFGDenoiser(model, cond, uncond[:1], 3.0)(x, t)
    torch.testing.assert_close(one, eps_u + 3.0 * (eps_c - eps_u))


def test_sample_matches_a_diffusers_loop():
    scheduler_kwargs = dict(SCHEDULES["cosine"], prediction_type="v_prediction", timestep_spacing="trailing")
    model = lambda x, t, context=None: fake_model_output(x, t[0])
    ours = Sampler().sample(
        model,
        (2, 3, 4, 4),
        DDPMScheduler(**scheduler_kwargs),
        20,
        generator=torch.Generator().manual_seed(7),
        progress=False,
    )
    ref = diffusers.DDPMScheduler(**scheduler_kwargs)
    ref.set_timesteps(20)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 4, 4, generator=g)
    for t in ref.timesteps:
        x = ref.step(fake_model_output(x, t), t, x, generator=g).prev_sample
    torch.testing.assert_close(ours, x, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_sampling_recovers_a_gaussian(prediction):
    """With the exact denoiser of x0 ~ N(m, s^2), 1000 DDPM steps must give back N(m, s^2):
    a sign error anywhere in step would not survive this."""
    scheduler = DDPMScheduler(prediction_type=prediction, clip_sample=False)
    out = Sampler().sample(
        gaussian_denoiser(scheduler, prediction),
        (4000, 2),
        scheduler,
        1000,
        generator=torch.Generator().manual_seed(8),
        progress=False,
    )
    torch.testing.assert_close(out.mean(0), GAUSS_MEAN, atol=0.03, rtol=0)
    torch.testing.assert_close(out.std(0), torch.full((2,), GAUSS_STD), atol=0.015, rtol=0)


def test_fixed_small_and_large_bracket_the_truth_with_few_steps():
    """With 100 of 1000 steps, ancestral sampling ignores the uncertainty of x0 given x_t:
    sigma^2 = beta_tilde (fixed_small) gives too narrow samples, sigma^2 = beta (fixed_large) too wide."""
    stds = {}
    for variance in ("fixed_small", "fixed_large"):
        scheduler = DDPMScheduler(variance_type=variance, clip_sample=False)
        out = Sampler().sample(
            gaussian_denoiser(scheduler, "epsilon"),
            (4000, 2),
            scheduler,
            100,
            generator=torch.Generator().manual_seed(9),
            progress=False,
        )
        stds[variance] = out.std(0).mean().item()
    assert stds["fixed_small"] < GAUSS_STD - 0.01 and stds["fixed_large"] > GAUSS_STD + 0.002


def test_bad_input():
    s = DDPMScheduler()
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"timestep must lie in \[0, 999\], got 1000"):
        s.step(x, 1000, x)
    with pytest.raises(ValueError, match="model_output must have the shape of sample"):
        s.step(x[:1], 10, x)
    with pytest.raises(ValueError, match="num_inference_steps"):
        s.set_timesteps(1001)
    with pytest.raises(ValueError, match="num_inference_steps"):
        s.set_timesteps(0)
    s.set_timesteps(10)
    with pytest.raises(ValueError, match="scheduler.timesteps"):
        s.step(x, 999, x)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        s.add_noise(x, x, torch.tensor([0, 1000]))
    with pytest.raises(ValueError, match="'squaredcos'"):
        DDPMScheduler(beta_schedule="squaredcos")
    with pytest.raises(ValueError, match="prediction_type"):
        DDPMScheduler(prediction_type="x0")
    with pytest.raises(ValueError, match="variance_type"):
        DDPMScheduler(variance_type="learned")
    with pytest.raises(ValueError, match="timestep_spacing"):
        DDPMScheduler(timestep_spacing="uniform")
    with pytest.raises(ValueError, match="steps_offset"):
        DDPMScheduler(steps_offset=1).set_timesteps(1000)
    with pytest.raises(ValueError, match=r"guidance_scale must be a finite number >= 1.*0\.5"):
        CFGDenoiser(RecordingModel(), x, x, 0.5)
    with pytest.raises(ValueError, match="takes no 'guidance_scale'"):  # guidance lives in the denoiser
        Sampler().sample(RecordingModel(), (2, 3), DDPMScheduler(), 10, guidance_scale=0.5, progress=False)
    with pytest.raises(ValueError, match="cond must be given"):
        CFGDenoiser(RecordingModel(), None, x, 2.0)


def test_sample_can_start_from_given_latents():
    """``latents=`` starts the loop from noise we already have (e.g. DDIM inversion's): the same
    numbers as drawing that noise from the seed."""
    scheduler = DDPMScheduler(clip_sample=False)
    model = gaussian_denoiser(scheduler, "epsilon")
    drawn = Sampler().sample(model, (4, 2), scheduler, 20, generator=torch.Generator().manual_seed(5),
                             progress=False)
    g = torch.Generator().manual_seed(5)
    x_T = torch.randn(4, 2, generator=g)
    given = Sampler().sample(model, None, scheduler, 20, generator=g, latents=x_T, progress=False)
    assert torch.equal(drawn, given)
    with pytest.raises(ValueError, match=r"latents have shape \(4, 2\), but shape=\(3, 2\)"):
        Sampler().sample(model, (3, 2), scheduler, 20, latents=x_T, progress=False)
    with pytest.raises(ValueError, match="shape must be a tuple of positive ints"):
        Sampler().sample(model, None, scheduler, 20, progress=False)


def test_scheduler_from_config_swaps_the_sampler_keeping_the_schedule():
    ddpm = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                         variance_type="fixed_large")
    again = DDPMScheduler.from_config(ddpm.config)
    assert vars(again.config) == vars(ddpm.config) and torch.equal(again.alphas_cumprod, ddpm.alphas_cumprod)
    from minildm.schedulers import DDIMScheduler

    ddim = DDIMScheduler.from_config(ddpm.config)  # variance_type means nothing to DDIM: dropped
    back = DDPMScheduler.from_config(ddim.config)  # set_alpha_to_one means nothing to DDPM: dropped
    assert back.config.prediction_type == "v_prediction" and back.config.variance_type == "fixed_small"
    assert torch.equal(ddim.alphas_cumprod, ddpm.alphas_cumprod)
