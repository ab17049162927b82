"""DDIM: parity with diffusers (timesteps, step, inverse step, loops), determinism, inversion, bad input."""


import pytest
import torch
from denoisers import GAUSS_MEAN, GAUSS_STD, gaussian_denoiser

from minildm.sampling import CFGDenoiser, DDIMSampler
from minildm.schedulers import DDIMInverseScheduler, DDIMScheduler, DDPMScheduler, SchedulerOutput

diffusers = pytest.importorskip("diffusers")

# our constructor kwargs, also valid for diffusers' DDIMScheduler
SCHEDULES = {
    "linear": {"beta_schedule": "linear"},
    "scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    "cosine": {"beta_schedule": "squaredcos_cap_v2"},
}
SD = SCHEDULES["scaled_linear"]


def pair(**kwargs):
    return DDIMScheduler(**kwargs), diffusers.DDIMScheduler(**kwargs)


def inverse_pair(**kwargs):
    return DDIMInverseScheduler(**kwargs), diffusers.DDIMInverseScheduler(**kwargs)


def fake_model_output(x, t):
    """A deterministic stand-in for a network: anything of x's shape that depends on x and t."""
    return 0.7 * x + 0.3 * torch.sin(x * 3 + t / 100)


def fake_model(x, t, context=None):
    return fake_model_output(x, t.reshape(-1, *([1] * (x.ndim - 1))).float())


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ timesteps and schedule


@pytest.mark.parametrize(
    "spacing, offset", [("leading", 0), ("leading", 1), ("trailing", 0), ("linspace", 0)]
)
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_set_timesteps_and_schedule_match_diffusers(spacing, offset, schedule):
    kwargs = dict(SCHEDULES[schedule], timestep_spacing=spacing, steps_offset=offset)
    ours, ref = pair(**kwargs)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod, atol=1e-7, rtol=0)
    torch.testing.assert_close(ours.betas, ref.betas, atol=1e-7, rtol=0)
    assert torch.equal(ours.timesteps, ref.timesteps) and len(ours) == len(ref) == 1000
    for n in (1, 10, 25, 50, 999):
        ours.set_timesteps(n)
        ref.set_timesteps(n)
        assert ours.timesteps.dtype == torch.long and len(ours.timesteps) == n == ours.num_inference_steps
        assert torch.equal(ours.timesteps, ref.timesteps), (spacing, offset, n)
    assert ours.init_noise_sigma == ref.init_noise_sigma == 1.0


def test_final_alpha_cumprod_and_forward_process():
    for one in (True, False):
        ours, ref = pair(**SD, set_alpha_to_one=one)
        assert ours.final_alpha_cumprod.item() == pytest.approx(ref.final_alpha_cumprod.item(), abs=0)
    x0, noise = randn(4, 4, 8, 8, seed=0), randn(4, 4, 8, 8, seed=1)
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        ours.get_velocity(x0, noise, t), ref.get_velocity(x0, noise, t), atol=1e-6, rtol=0
    )
    assert ours.scale_model_input(x0, 10) is x0


def test_previous_timestep_is_the_next_scheduled_one():
    s = DDIMScheduler(timestep_spacing="linspace")
    s.set_timesteps(10)  # 999, 888, 777, ..., 111, 0
    assert s.previous_timestep(999) == 888 and s.previous_timestep(0) == -1
    inverse = DDIMInverseScheduler(timestep_spacing="linspace")
    inverse.set_timesteps(10)  # 0, 111, ..., 999: the inverse step goes up from previous_timestep
    assert inverse.timesteps[0].item() == 0 and inverse.previous_timestep(999) == 888


# ------------------------------------------------------------------ step


def assert_same_step(ours, ref, t, x, **step_kwargs):
    out = fake_model_output(x, t)
    seed = step_kwargs.pop("seed", None)
    if seed is not None:
        step_kwargs["generator"] = torch.Generator().manual_seed(seed)
    mine = ours.step(out, t, x, **step_kwargs)
    if seed is not None:
        step_kwargs["generator"] = torch.Generator().manual_seed(seed)
    theirs = ref.step(out, t, x, **step_kwargs)
    assert isinstance(mine, SchedulerOutput)
    torch.testing.assert_close(mine.pred_original_sample, theirs.pred_original_sample, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(mine.prev_sample, theirs.prev_sample, atol=1e-6, rtol=1e-6)
    return theirs.prev_sample


STEP_CASES = [
    (prediction, eta, noise, clip, use_clipped, one)
    for prediction in ("epsilon", "v_prediction", "sample")
    for eta, noise in ((0.0, None), (0.5, "variance_noise"), (1.0, "generator"))
    for clip, use_clipped in ((False, False), (True, False), (True, True))
    for one in (True, False)
]


@pytest.mark.parametrize("prediction, eta, noise, clip, use_clipped, set_alpha_to_one", STEP_CASES)
def test_step_matches_diffusers(prediction, eta, noise, clip, use_clipped, set_alpha_to_one):
    """A 10-step chain (980 -> 880 -> ... -> 80 -> 0 -> final alpha), both fed diffusers' trajectory.
    The inputs are large enough (|x| ~ 2) that clipping changes x0_hat."""
    kwargs = dict(
        SCHEDULES["linear"], prediction_type=prediction, clip_sample=clip, set_alpha_to_one=set_alpha_to_one
    )
    ours, ref = pair(**kwargs)
    ours.set_timesteps(10)
    ref.set_timesteps(10)
    x = 2 * randn(2, 3, 4, 4, seed=1)
    for i, t in enumerate(ref.timesteps):
        step_kwargs = dict(eta=eta, use_clipped_model_output=use_clipped)
        if noise == "variance_noise":
            step_kwargs["variance_noise"] = randn(*x.shape, seed=100 + i)
        elif noise == "generator":
            step_kwargs["seed"] = i
        x = assert_same_step(ours, ref, t, x, **step_kwargs)
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("n", [10, 25, 50])
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_full_chain_matches_diffusers_trailing(schedule, n):
    """Each side runs its own chain (eta = 0.3, same seed) with trailing spacing, n dividing T."""
    kwargs = dict(SCHEDULES[schedule], timestep_spacing="trailing", prediction_type="v_prediction")
    ours, ref = pair(**kwargs)
    ours.set_timesteps(n)
    ref.set_timesteps(n)
    g_ours, g_ref = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    x_ours = x_ref = randn(2, 3, 4, 4, seed=3)
    for t in ref.timesteps:
        x_ours = ours.step(fake_model_output(x_ours, t), t, x_ours, eta=0.3, generator=g_ours).prev_sample
        x_ref = ref.step(fake_model_output(x_ref, t), t, x_ref, eta=0.3, generator=g_ref).prev_sample
    torch.testing.assert_close(x_ours, x_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_step_zero_terminal_snr_matches_diffusers(prediction, eta):
    """At t = 999, abar = 0: eps-prediction's x0_hat is infinite and clipping saves it."""
    kwargs = dict(SD, prediction_type=prediction, rescale_betas_zero_snr=True, timestep_spacing="trailing")
    ours, ref = pair(**kwargs)
    ours.set_timesteps(25)
    ref.set_timesteps(25)
    assert ours.alphas_cumprod[-1].item() == 0.0
    x = randn(2, 4, 4, 4, seed=4)
    for i, t in enumerate(ref.timesteps):
        x = assert_same_step(ours, ref, t, x, eta=eta, seed=i)
    assert torch.isfinite(x).all()


def test_step_by_hand_and_noise():
    """Eq. 12 written out, for a non-final step; eta only adds sigma_t z."""
    s = DDIMScheduler(**SD, clip_sample=False)
    s.set_timesteps(50)
    x, eps = randn(3, 2, seed=5), randn(3, 2, seed=6)
    a, a_prev = s.alphas_cumprod[500], s.alphas_cumprod[480]
    x0_hat = (x - (1 - a).sqrt() * eps) / a.sqrt()
    deterministic = s.step(eps, 500, x)
    torch.testing.assert_close(deterministic.pred_original_sample, x0_hat)
    torch.testing.assert_close(deterministic.prev_sample, a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps)
    # eta = 1: sigma^2 is DDPM's posterior variance, and the direction term shrinks to keep the marginal
    z = randn(3, 2, seed=7)
    sigma2 = (1 - a_prev) / (1 - a) * (1 - a / a_prev)
    noisy = s.step(eps, 500, x, eta=1.0, variance_noise=z).prev_sample
    expected = a_prev.sqrt() * x0_hat + (1 - a_prev - sigma2).sqrt() * eps + sigma2.sqrt() * z
    torch.testing.assert_close(noisy, expected)
    # the same noise drawn with a seeded generator: torch.randn with that seed
    seeded = s.step(eps, 500, x, eta=1.0, generator=torch.Generator().manual_seed(7)).prev_sample
    torch.testing.assert_close(seeded, noisy)
    # eta = 1 matches DDPM's ancestral step (same mean and variance: the posterior)
    ddpm = DDPMScheduler(**SD, clip_sample=False)
    ddpm.set_timesteps(50)
    torch.testing.assert_close(ddpm.step(eps, 500, x, variance_noise=z).prev_sample, noisy, atol=1e-5, rtol=0)
    # the last step goes to final_alpha_cumprod = 1: the result is x0_hat itself
    final = s.step(eps, 0, x, eta=1.0, variance_noise=z)
    torch.testing.assert_close(final.prev_sample, final.pred_original_sample)


def test_eta_zero_is_deterministic():
    """With eta = 0 the generator is never used: two runs from the same x_T agree exactly."""
    s = DDIMScheduler(**SD, prediction_type="v_prediction")
    s.set_timesteps(20)

    def run(eta, seed):
        g, x = torch.Generator().manual_seed(seed), randn(2, 3, 4, 4, seed=8)
        for t in s.timesteps:
            x = s.step(fake_model_output(x, t), t, x, eta=eta, generator=g).prev_sample
        return x

    assert torch.equal(run(0.0, 1), run(0.0, 2))
    assert not torch.allclose(run(0.5, 1), run(0.5, 2))
    # the sampler: the same seed gives the same x_T, hence the same sample
    sampler, scheduler = DDIMSampler(), DDIMScheduler(**SD)
    a, b = (
        sampler.sample(
            fake_model, (2, 3), scheduler, 10, generator=torch.Generator().manual_seed(0), progress=False
        )
        for _ in range(2)
    )
    assert torch.equal(a, b)


# ------------------------------------------------------------------ the sampler


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_sample_matches_a_diffusers_loop(eta):
    kwargs = dict(SCHEDULES["cosine"], prediction_type="v_prediction", timestep_spacing="trailing")
    ours = DDIMSampler().sample(
        fake_model,
        (2, 3, 4, 4),
        DDIMScheduler(**kwargs),
        20,
        generator=torch.Generator().manual_seed(7),
        progress=False,
        eta=eta,
    )
    ref = diffusers.DDIMScheduler(**kwargs)
    ref.set_timesteps(20)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 4, 4, generator=g)
    for t in ref.timesteps:
        x = ref.step(fake_model_output(x, t), t, x, eta=eta, generator=g).prev_sample
    torch.testing.assert_close(ours, x, atol=1e-5, rtol=1e-5)


class RecordingModel:
    """Returns a known function of (x, t, context) and records the batch sizes it was called with."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, t, context=None):
        self.batches.append(x.shape[0])
        assert t.shape == (x.shape[0],)
        shift = 0.0 if context is None else context.reshape(context.shape[0], *([1] * (x.ndim - 1)))
        return 0.1 * x + shift


def test_guidance_has_one_code_path():
    """DDIMSampler does not re-implement guidance: sample and invert both call the denoiser, a
    CFGDenoiser here, with one doubled batch per step."""
    cond, uncond = torch.full((2,), 0.2), torch.full((1,), -0.1)
    model, scheduler = RecordingModel(), DDIMScheduler(clip_sample=False)
    guided = CFGDenoiser(model, cond, uncond, 3.0)
    DDIMSampler().sample(guided, (2, 3), scheduler, 5, progress=False)
    DDIMSampler().invert(guided, randn(2, 3), scheduler, 5, progress=False)
    assert model.batches == [4] * 10
    # guided output = uncond + s (cond - uncond): the same numbers as a hand-rolled loop
    ours = DDIMSampler().invert(CFGDenoiser(RecordingModel(), cond, uncond, 3.0), randn(2, 3), scheduler, 5,
                                progress=False)
    inverse = DDIMInverseScheduler(clip_sample=False)
    inverse.set_timesteps(5)
    x = randn(2, 3)
    for t in inverse.timesteps:
        eps_c, eps_u = 0.1 * x + 0.2, 0.1 * x - 0.1
        x = inverse.step(eps_u + 3.0 * (eps_c - eps_u), t, x).prev_sample
    torch.testing.assert_close(ours, x)


# ------------------------------------------------------------------ inversion


INVERSE_CASES = [
    (prediction, spacing, offset, one, clip)
    for prediction in ("epsilon", "v_prediction")
    for spacing, offset in (("leading", 0), ("leading", 1), ("trailing", 0))
    for one in (True, False)
    for clip in (False, True)
]


@pytest.mark.parametrize("prediction, spacing, offset, set_alpha_to_one, clip", INVERSE_CASES)
def test_inverse_step_matches_diffusers(prediction, spacing, offset, set_alpha_to_one, clip):
    kwargs = dict(
        SD,
        prediction_type=prediction,
        timestep_spacing=spacing,
        steps_offset=offset,
        set_alpha_to_one=set_alpha_to_one,
        clip_sample=clip,
    )
    ours, ref = inverse_pair(**kwargs)
    assert torch.equal(ours.timesteps, ref.timesteps)
    ours.set_timesteps(10)
    ref.set_timesteps(10)
    assert torch.equal(ours.timesteps, ref.timesteps)
    assert ours.initial_alpha_cumprod.item() == ref.initial_alpha_cumprod.item()
    x = randn(2, 3, 4, 4, seed=9)
    for t in ref.timesteps:
        x = assert_same_step(ours, ref, t, x)


def test_invert_matches_a_diffusers_loop():
    kwargs = dict(SD, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    x0 = randn(2, 4, 4, 4, seed=10)
    ours = DDIMSampler().invert(fake_model, x0, DDIMScheduler(**kwargs), 25, progress=False)
    ref = diffusers.DDIMInverseScheduler(**kwargs)
    ref.set_timesteps(25)
    x = x0
    for t in ref.timesteps:
        x = ref.step(fake_model_output(x, t), t, x).prev_sample
    torch.testing.assert_close(ours, x, atol=1e-5, rtol=1e-5)


def _ddim_loop(model, x, scheduler, n):
    """Deterministic DDIM sampling from a given x_T (Sampler.sample draws its own)."""
    scheduler.set_timesteps(n)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t.reshape(1), None), t, x).prev_sample
    return x


X_STAR = torch.tensor([[0.8, -0.3, 0.5]])


def test_point_mass_round_trip_is_exact():
    """If the data is the single point x*, the best eps-prediction is eps(x_t) = (x_t - sqrt(abar) x*)
    / sqrt(1 - abar); then x0_hat = x* at every step, from any x_T: DDIM lands exactly on x*,
    whatever the number of steps, and so does inversion followed by sampling."""
    s = DDIMScheduler(**SD, clip_sample=False)

    def model(x, t, context=None):
        abar = s.alphas_cumprod[t].reshape(-1, 1)
        return (x - abar.sqrt() * X_STAR) / (1 - abar).sqrt()

    for n in (2, 10, 50):
        torch.testing.assert_close(_ddim_loop(model, randn(5, 3, seed=n), s, n), X_STAR.expand(5, 3))
        x_T = DDIMSampler().invert(model, X_STAR, s, n, progress=False)
        torch.testing.assert_close(_ddim_loop(model, x_T, s, n), X_STAR)


def test_partial_inversion_stops_where_sampling_resumes():
    """img2img's inversion start: ``invert(..., start_index=k)`` runs the first n - k inverse steps, up to
    ``scheduler.timesteps[k]``, and sampling from there with the same ``start_index`` lands back on x*
    (exactly, for the point-mass model); k = 0 is the whole inversion."""
    s = DDIMScheduler(**SD, clip_sample=False)

    def model(x, t, context=None):
        abar = s.alphas_cumprod[t].reshape(-1, 1)
        return (x - abar.sqrt() * X_STAR) / (1 - abar).sqrt()

    n = 10
    for k in (0, 3, 9):
        z = DDIMSampler().invert(model, X_STAR, s, n, progress=False, start_index=k)
        inverse = DDIMInverseScheduler.from_config(s.config)
        inverse.set_timesteps(n)
        s.set_timesteps(n)
        run = inverse.timesteps[: n - k]
        assert int(run[-1]) == int(s.timesteps[k])  # it ends at the level sampling starts from
        x = X_STAR
        for t in run:
            x = inverse.step(model(x, t.reshape(1), None), t, x).prev_sample
        torch.testing.assert_close(z, x)
        back = DDIMSampler().sample(model, None, s, n, latents=z, start_index=k, progress=False)
        torch.testing.assert_close(back, X_STAR)
    full = DDIMSampler().invert(model, X_STAR, s, n, progress=False)
    torch.testing.assert_close(full, DDIMSampler().invert(model, X_STAR, s, n, progress=False, start_index=0))
    assert not torch.allclose(full, DDIMSampler().invert(model, X_STAR, s, n, progress=False, start_index=3))
    for bad in (-1, n, 1.5, True):
        with pytest.raises(ValueError, match=r"start_index must be an int in \[0, 9\]"):
            DDIMSampler().invert(model, X_STAR, s, n, progress=False, start_index=bad)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_inversion_follows_the_ode_and_round_trips(prediction):
    """For Gaussian data, the DDIM ODE maps x0 to x_T = sqrt(abar_T) m + sqrt(abar_T s^2 + 1 - abar_T) z,
    z = (x0 - m) / s (the z-score is kept). Inversion approximates it to first order in the step
    size (it evaluates the network one step off): errors shrink roughly as 1/n, and a round trip
    through x_T and back reconstructs x0 closely with a few hundred steps."""
    scheduler = DDIMScheduler(**SD, prediction_type=prediction, clip_sample=False)
    model = gaussian_denoiser(scheduler, prediction)
    x0 = GAUSS_MEAN + GAUSS_STD * randn(200, 2, seed=11)
    ode_errors, round_trip_errors = [], []
    for n in (10, 50, 250):
        x_T = DDIMSampler().invert(model, x0, scheduler, n, progress=False)
        abar_T = scheduler.alphas_cumprod[scheduler.timesteps[0]]  # the inverse's last timestep
        exact = (
            abar_T.sqrt() * GAUSS_MEAN
            + (abar_T * GAUSS_STD**2 + 1 - abar_T).sqrt() * (x0 - GAUSS_MEAN) / GAUSS_STD
        )
        ode_errors.append((x_T - exact).abs().mean().item())
        round_trip_errors.append((_ddim_loop(model, x_T, scheduler, n) - x0).abs().mean().item())
    assert ode_errors[0] > ode_errors[1] > 3 * ode_errors[2], ode_errors
    assert round_trip_errors[0] > round_trip_errors[1] > 3 * round_trip_errors[2], round_trip_errors
    assert round_trip_errors[2] < 0.02 and ode_errors[2] < 0.03
    # the inverted noise looks like x_T ~ N(sqrt(abar_T) m, (abar_T s^2 + 1 - abar_T) I), nearly N(0, I)
    assert (x_T.mean(0) - abar_T.sqrt() * GAUSS_MEAN).abs().max() < 0.2
    assert (x_T.std(0) - (abar_T * GAUSS_STD**2 + 1 - abar_T).sqrt()).abs().max() < 0.1


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_round_trip_with_a_linear_network(prediction):
    """A non-trivial linear network (not the optimal one): inversion then sampling with the same
    steps gives x0 back approximately, better with more steps."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 3)
    with torch.no_grad():
        net.weight.copy_(0.9 * torch.eye(3) + 0.1 * torch.randn(3, 3))
        net.bias.mul_(0.1)
    model = lambda x, t, context=None: net(x)
    scheduler = DDIMScheduler(**SD, prediction_type=prediction, clip_sample=False)
    x0 = 0.5 * randn(32, 3, seed=12)
    errors = []
    with torch.no_grad():
        for n in (10, 100, 250):
            x_T = DDIMSampler().invert(model, x0, scheduler, n, progress=False)
            errors.append((_ddim_loop(model, x_T, scheduler, n) - x0).abs().max().item())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.05, errors


# ------------------------------------------------------------------ bad input and imports


def test_bad_input():
    s = DDIMScheduler()
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"call set_timesteps\(num_inference_steps\) before step"):
        s.step(x, 999, x)
    with pytest.raises(ValueError, match="before step"):
        DDIMInverseScheduler().step(x, 0, x)
    for n in (0, 1001, 2.5, True):
        with pytest.raises(ValueError, match=r"num_inference_steps must be an int in \[1, 1000\]"):
            s.set_timesteps(n)
    s.set_timesteps(10)
    with pytest.raises(ValueError, match="timestep must be one of scheduler.timesteps"):
        s.step(x, 999, x)
    with pytest.raises(ValueError, match="timestep must be a single integer"):
        s.step(x, 900.0, x)
    with pytest.raises(ValueError, match="model_output must have the shape of sample"):
        s.step(x[:1], 900, x)
    for eta in (-0.1, 1.5, True, None):
        with pytest.raises(ValueError, match=r"eta must be a float in \[0, 1\]"):
            s.step(x, 900, x, eta=eta)
    with pytest.raises(ValueError, match="either generator or variance_noise"):
        s.step(x, 900, x, eta=0.5, generator=torch.Generator(), variance_noise=x)
    with pytest.raises(ValueError, match="variance_noise must have the shape of sample"):
        s.step(x, 900, x, eta=0.5, variance_noise=x[:1])
    with pytest.raises(ValueError, match="timestep_spacing must be one of"):
        DDIMScheduler(timestep_spacing="uniform")
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        DDIMScheduler(prediction_type="x0")
    with pytest.raises(ValueError, match="'squaredcos'"):
        DDIMScheduler(beta_schedule="squaredcos")
    with pytest.raises(ValueError, match="steps_offset must be a non-negative int"):
        DDIMScheduler(steps_offset=-1)
    with pytest.raises(ValueError, match="clip_sample_range must be a positive number"):
        DDIMScheduler(clip_sample_range=0)
    with pytest.raises(ValueError, match="steps_offset=1 pushes the largest timestep"):
        DDIMScheduler(steps_offset=1).set_timesteps(1000)
    with pytest.raises(TypeError):  # diffusers' 5th positional argument is trained_betas: keyword-only here
        DDIMScheduler(1000, 0.0001, 0.02, "linear", "epsilon")
    with pytest.raises(ValueError, match="prediction_type must be 'epsilon' or 'v_prediction' for DDIM inv"):
        DDIMInverseScheduler(prediction_type="sample")
    sampler = DDIMSampler()
    with pytest.raises(ValueError, match="DDPMScheduler.step takes no 'eta'"):
        sampler.sample(fake_model, (2, 3), DDPMScheduler(), 10, eta=0.5, progress=False)
    with pytest.raises(ValueError, match="a DDIMInverseScheduler goes from data to noise"):
        sampler.sample(fake_model, (2, 3), DDIMInverseScheduler(), 10, progress=False)
    with pytest.raises(ValueError, match="scheduler must be a sampling scheduler"):
        sampler.sample(fake_model, (2, 3), "ddim", 10, progress=False)
    with pytest.raises(ValueError, match="eta must be"):
        sampler.sample(fake_model, (2, 3), DDIMScheduler(), 10, eta=-1.0, progress=False)
    with pytest.raises(ValueError, match="scheduler must be a DDIMScheduler or a DDIMInverseScheduler"):
        sampler.invert(fake_model, x, DDPMScheduler(), 10, progress=False)
    with pytest.raises(ValueError, match="x0 must be a batch"):
        sampler.invert(fake_model, torch.tensor(1.0), DDIMScheduler(), 10, progress=False)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number >= 1"):
        CFGDenoiser(fake_model, x, x, 0.5)


def test_from_config_copies_settings():
    s = DDIMScheduler(
        **SD, prediction_type="v_prediction", set_alpha_to_one=False, timestep_spacing="trailing"
    )
    inverse = DDIMInverseScheduler.from_config(s.config)
    assert vars(inverse.config) == vars(s.config)
    assert inverse.initial_alpha_cumprod.item() == s.final_alpha_cumprod.item() == s.alphas_cumprod[0].item()
    # a DDPMScheduler's config works too: the settings DDIM does not have are ignored
    ddpm = DDPMScheduler(**SD, variance_type="fixed_large")
    assert DDIMScheduler.from_config(ddpm.config).config.beta_schedule == "scaled_linear"
