"""The scheduler settings of diffusers' configs: the full-loop numbers of diffusers' own scheduler
tests, every option honoured (same numbers as diffusers' scheduler with the same config) or refused
with a message naming it, and Karras sigmas."""

import inspect

import numpy as np
import pytest
import torch

from minildm.schedulers import (
    SCHEDULERS,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
)
from minildm.schedulers.base import dynamic_threshold
from minildm.schedulers.dpmsolver import karras_sigmas, sigmas_to_timesteps, vp_sigmas

# ------------------------------------------------------------------ diffusers' test harness, rebuilt
# diffusers' scheduler tests run a fixed "model" from a fixed sample for the whole loop and compare
# sum(|x|) and mean(|x|) with literal numbers (tolerance 1e-2 on the sum, 1e-3 on the mean).


def dummy_model(sample: torch.Tensor, t) -> torch.Tensor:
    """diffusers' SchedulerCommonTest model: sample * t / (t + 1)."""
    if isinstance(t, torch.Tensor):
        t = t.reshape(-1, *(1,) * (sample.ndim - 1)).to(sample.dtype)
    return sample * t / (t + 1)


def dummy_deter(flip: bool = False) -> torch.Tensor:
    """diffusers' deterministic sample (``dummy_sample_deter``) or noise (``dummy_noise_deter``,
    the same numbers flipped): arange(4 * 3 * 8 * 8) laid out (C, H, W, B), over its length."""
    n = 4 * 3 * 8 * 8
    values = torch.arange(n)
    if flip:
        values = values.flip(-1)
    return (values.reshape(3, 8, 8, 4) / n).permute(3, 0, 1, 2)


DDPM_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.0001,
    beta_end=0.02,
    beta_schedule="linear",
    variance_type="fixed_small",
    clip_sample=True,
)
DDIM_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear", clip_sample=True
)
DPM_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.0001,
    beta_end=0.02,
    beta_schedule="linear",
    solver_order=2,
    prediction_type="epsilon",
    thresholding=False,
    sample_max_value=1.0,
    algorithm_type="dpmsolver++",
    solver_type="midpoint",
    lower_order_final=False,
    euler_at_final=False,
    lambda_min_clipped=-float("inf"),
    variance_type=None,
    final_sigmas_type="sigma_min",
)
EULER_CONFIG = dict(num_train_timesteps=1100, beta_start=0.0001, beta_end=0.02, beta_schedule="linear")


def ddpm_loop(start=None, **kw):
    s = DDPMScheduler(**{**DDPM_CONFIG, **kw})
    sample, generator = dummy_deter(), torch.manual_seed(0)
    timesteps = s.timesteps if start is None else s.timesteps[start:]
    if start is not None:
        sample = s.add_noise(sample, dummy_deter(flip=True), timesteps[:1])
    for t in timesteps:
        sample = s.step(dummy_model(sample, t), t, sample, generator=generator).prev_sample
    return sample


def ddim_loop(start=None, **kw):
    s = DDIMScheduler(**{**DDIM_CONFIG, **kw})
    s.set_timesteps(10)
    sample, timesteps = dummy_deter(), s.timesteps if start is None else s.timesteps[start:]
    if start is not None:
        sample = s.add_noise(sample, dummy_deter(flip=True), timesteps[:1])
    for t in timesteps:
        sample = s.step(dummy_model(sample, t), t, sample, 0.0).prev_sample
    return sample


def dpm_loop(start=None, **kw):
    s = DPMSolverMultistepScheduler(**{**DPM_CONFIG, **kw})
    s.set_timesteps(10)
    sample, timesteps = dummy_deter(), s.timesteps if start is None else s.timesteps[start:]
    if start is not None:
        sample = s.add_noise(sample, dummy_deter(flip=True), timesteps[:1])
    for t in timesteps:
        sample = s.step(dummy_model(sample, t), t, sample).prev_sample
    return sample


def euler_loop(cls, **kw):
    s = cls(**{**EULER_CONFIG, **kw})
    s.set_timesteps(10)
    generator = torch.manual_seed(0)
    sample = dummy_deter() * s.init_noise_sigma
    for t in s.timesteps:
        sample = s.scale_model_input(sample, t)  # (diffusers' tests step from the scaled sample)
        sample = s.step(dummy_model(sample, t), t, sample, generator=generator).prev_sample
    return sample


# (loop, expected sum of |x| or None where diffusers' test checks only the mean, expected mean),
# the literal numbers of diffusers' tests/schedulers/test_scheduler_*.py
FULL_LOOPS = {
    "ddpm": (lambda: ddpm_loop(), 258.9606, 0.3372),
    "ddpm v_prediction": (lambda: ddpm_loop(prediction_type="v_prediction"), 202.0296, 0.2631),
    "ddpm with noise": (lambda: ddpm_loop(start=998), 387.9466, 0.5051),
    "ddim": (lambda: ddim_loop(), 172.0067, 0.223967),
    "ddim v_prediction": (lambda: ddim_loop(prediction_type="v_prediction"), 52.5302, 0.0684),
    "ddim set_alpha_to_one": (lambda: ddim_loop(set_alpha_to_one=True, beta_start=0.01), 149.8295, 0.1951),
    "ddim no set_alpha_to_one": (
        lambda: ddim_loop(set_alpha_to_one=False, beta_start=0.01),
        149.0784,
        0.1941,
    ),
    "ddim with noise": (lambda: ddim_loop(start=8), 354.5418, 0.4616),
    "dpm++": (lambda: dpm_loop(), None, 0.3301),
    "dpm++ thresholding": (
        lambda: dpm_loop(thresholding=True, dynamic_thresholding_ratio=0.87, sample_max_value=0.5),
        None,
        1.1364,
    ),
    "dpm++ v_prediction": (lambda: dpm_loop(prediction_type="v_prediction"), None, 0.2251),
    "dpm++ karras v_prediction": (
        lambda: dpm_loop(prediction_type="v_prediction", use_karras_sigmas=True),
        None,
        0.2096,
    ),
    "dpm++ lu v_prediction": (
        lambda: dpm_loop(prediction_type="v_prediction", use_lu_lambdas=True),
        None,
        0.1554,
    ),
    "dpm++ with noise": (lambda: dpm_loop(start=5), 318.4111, 0.4146),
    "euler": (lambda: euler_loop(EulerDiscreteScheduler), 10.0807, 0.0131),
    "euler v_prediction": (
        lambda: euler_loop(EulerDiscreteScheduler, prediction_type="v_prediction"),
        0.0002,
        2.2676e-06,
    ),
    "euler karras": (
        lambda: euler_loop(EulerDiscreteScheduler, use_karras_sigmas=True),
        124.52299499511719,
        0.16213932633399963,
    ),
    "euler ancestral": (lambda: euler_loop(EulerAncestralDiscreteScheduler), 152.3192, 0.1983),
    "euler ancestral v_prediction": (
        lambda: euler_loop(EulerAncestralDiscreteScheduler, prediction_type="v_prediction"),
        108.4439,
        0.1412,
    ),
}


@pytest.mark.parametrize("name", FULL_LOOPS)
def test_full_loop_numbers_of_diffusers_tests(name):
    loop, expected_sum, expected_mean = FULL_LOOPS[name]
    sample = loop()
    assert torch.isfinite(sample).all()
    if expected_sum is not None:
        assert abs(sample.abs().sum().item() - expected_sum) < 1e-2, sample.abs().sum().item()
    assert abs(sample.abs().mean().item() - expected_mean) < 1e-3, sample.abs().mean().item()


def test_thresholding_keeps_half_precision():
    """diffusers' fp16 test: dynamic thresholding (quantile 0) on a float16 loop stays float16."""
    s = DPMSolverMultistepScheduler(**{**DPM_CONFIG, "thresholding": True, "dynamic_thresholding_ratio": 0})
    s.set_timesteps(10)
    sample = dummy_deter().half()
    for t in s.timesteps:
        sample = s.step(dummy_model(sample, t), t, sample).prev_sample
    assert sample.dtype == torch.float16 and torch.isfinite(sample).all()


# ------------------------------------------------------------------ dynamic thresholding and Karras


def test_dynamic_threshold_by_hand():
    """s = the quantile of |x0| per sample, kept in [1, max]; x0 -> clip(x0, -s, s) / s."""
    x0 = torch.stack([torch.linspace(-4, 4, 101), torch.linspace(-0.5, 0.5, 101)]).reshape(2, 1, 101)
    out = dynamic_threshold(x0, ratio=0.5, max_value=3.0)
    # sample 0: the median |x| is 2, so s = 2; sample 1: the median is 0.25, raised to s = 1
    torch.testing.assert_close(out[0], x0[0].clamp(-2, 2) / 2)
    torch.testing.assert_close(out[1], x0[1])
    capped = dynamic_threshold(x0, ratio=1.0, max_value=3.0)  # s = 4 would exceed the bound 3
    torch.testing.assert_close(capped[0], x0[0].clamp(-3, 3) / 3)
    below_one = dynamic_threshold(x0, ratio=0.5, max_value=0.5)  # a bound under 1 is the s used
    torch.testing.assert_close(below_one[1], x0[1].clamp(-0.5, 0.5) / 0.5)


def test_karras_sigmas_follow_eq_5():
    sigmas = karras_sigmas(0.03, 14.6, 12)
    assert sigmas[0] == pytest.approx(14.6) and sigmas[-1] == pytest.approx(0.03)
    steps = np.diff(sigmas ** (1 / 7))  # evenly spaced in sigma^(1/rho), rho = 7
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)
    assert (np.diff(sigmas) < 0).all()


def test_sigmas_map_back_to_their_timesteps():
    train = vp_sigmas(DDPMScheduler().alphas_cumprod).astype(np.float32)
    log_train = np.log(train)
    # (float32 logs against float64 ones: equal to about 1e-4 of a timestep)
    np.testing.assert_allclose(
        sigmas_to_timesteps(train.astype(np.float64), log_train), np.arange(1000), atol=1e-3
    )
    # halfway in log sigma between timesteps 10 and 11 is timestep 10.5; beyond the ends, the ends
    middle = np.exp((log_train[10].astype(np.float64) + log_train[11]) / 2)
    assert sigmas_to_timesteps(np.array([middle, 1e-6, 1e6]), log_train) == pytest.approx(
        [10.5, 0, 999], abs=1e-6
    )


# ------------------------------------------------------------------ the options against diffusers


def _fake_network(x: torch.Tensor, t) -> torch.Tensor:
    return torch.tanh(0.5 * x) * (1 + float(t) / 1000) + 0.1


def _run(scheduler, steps: int, sample: torch.Tensor, doubled: bool = False, seed: int = 1):
    """A short loop; ``doubled``: the network's output gains a channel per channel (its variance)."""
    generator = torch.Generator().manual_seed(seed)
    scheduler.set_timesteps(steps)
    x = sample * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        out = _fake_network(scheduler.scale_model_input(x, t), t)
        if doubled:
            out = torch.cat([out, torch.full_like(out, 0.3)], dim=1)
        kwargs = (
            {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        )
        x = scheduler.step(out, t, x, **kwargs).prev_sample
    return x


TRAINED_BETAS = np.linspace(0.0002, 0.03, 1000).tolist()
SD = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
# per scheduler: (the other settings, the options under test)
HONOURED = {
    "DDPMScheduler": [
        ({}, dict(trained_betas=TRAINED_BETAS)),
        (
            dict(prediction_type="sample"),
            dict(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=1.5),
        ),
        (dict(clip_sample=False), dict(thresholding=True, sample_max_value=0.5)),
        ({}, dict(variance_type="fixed_small_log")),
    ],
    "DDIMScheduler": [
        (dict(set_alpha_to_one=False, steps_offset=1, clip_sample=False), dict(trained_betas=TRAINED_BETAS)),
        (
            dict(prediction_type="sample"),
            dict(thresholding=True, dynamic_thresholding_ratio=0.8, sample_max_value=2.0),
        ),
        (
            dict(prediction_type="v_prediction", timestep_spacing="trailing"),
            dict(thresholding=True, sample_max_value=2.0),
        ),
    ],
    "LCMScheduler": [
        ({}, dict(trained_betas=TRAINED_BETAS)),
        (
            dict(prediction_type="sample"),
            dict(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=1.2),
        ),
    ],
    "DPMSolverMultistepScheduler": [
        ({}, dict(trained_betas=TRAINED_BETAS)),
        (
            dict(prediction_type="sample"),
            dict(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=1.5),
        ),
        (dict(solver_type="heun", final_sigmas_type="sigma_min"), dict(thresholding=True)),
        (dict(final_sigmas_type="sigma_min", lower_order_final=False), dict(euler_at_final=True)),
        (dict(beta_schedule="squaredcos_cap_v2"), dict(lambda_min_clipped=-5.1)),
        (dict(timestep_spacing="trailing"), dict(lambda_min_clipped=-3.0)),
        (dict(timestep_spacing="leading", steps_offset=1), dict(lambda_min_clipped=-3.0)),
        ({}, dict(variance_type="learned_range")),
        (SD, dict(use_karras_sigmas=True)),
        (dict(prediction_type="v_prediction"), dict(use_karras_sigmas=True)),
        (SD, dict(use_lu_lambdas=True)),
        (dict(SD, rescale_betas_zero_snr=True, prediction_type="v_prediction"), dict(use_karras_sigmas=True)),
    ],
    "EulerDiscreteScheduler": [
        ({}, dict(trained_betas=TRAINED_BETAS)),
        (SD, dict(use_karras_sigmas=True)),
        (dict(SD, timestep_spacing="leading", steps_offset=1), dict(use_karras_sigmas=True)),
        (dict(use_karras_sigmas=True), dict(sigma_min=0.05, sigma_max=8.0)),
        (dict(prediction_type="v_prediction"), dict(final_sigmas_type="sigma_min")),
    ],
    "EulerAncestralDiscreteScheduler": [({}, dict(trained_betas=TRAINED_BETAS))],
}
CASES = [(name, i) for name, configs in HONOURED.items() for i in range(len(configs))]
SCHEDULERS_BY_CLASS = {cls.__name__: cls for cls in SCHEDULERS.values()}


@pytest.mark.parametrize("steps", [4, 10])
@pytest.mark.parametrize(("name", "index"), CASES)
def test_option_matches_diffusers(name, index, steps):
    diffusers = pytest.importorskip("diffusers")
    shared, options = HONOURED[name][index]
    config = {**shared, **options}
    ours = SCHEDULERS_BY_CLASS[name](**config)
    ref = getattr(diffusers, name)(**config)
    sample = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.7
    doubled = config.get("variance_type") == "learned_range"
    a, b = _run(ours, steps, sample, doubled), _run(ref, steps, sample, doubled)
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    if hasattr(ref, "sigmas"):
        torch.testing.assert_close(ours.sigmas, ref.sigmas.to(ours.sigmas.dtype), rtol=0, atol=0)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# (not fixed_small_log, the same standard deviation computed through its log, nor a learned
# variance, which the solver is meant to ignore)
CHANGING = [(n, i) for n, i in CASES if HONOURED[n][i][1].get("variance_type") is None]


@pytest.mark.parametrize(("name", "index"), CHANGING)
def test_each_option_changes_the_numbers(name, index):
    """The option does something: the loop without it differs."""
    shared, options = HONOURED[name][index]
    cls = SCHEDULERS_BY_CLASS[name]
    sample = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.7
    with_option, without = _run(cls(**shared, **options), 10, sample), _run(cls(**shared), 10, sample)
    assert not torch.allclose(with_option, without, atol=1e-4)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("steps", [1, 7, 25, 100])
def test_karras_sigmas_and_timesteps_equal_diffusers(spacing, steps):
    diffusers = pytest.importorskip("diffusers")
    for cls in (EulerDiscreteScheduler, DPMSolverMultistepScheduler):
        for schedule in (dict(beta_schedule="linear"), SD, dict(beta_schedule="squaredcos_cap_v2")):
            config = dict(schedule, use_karras_sigmas=True, timestep_spacing=spacing)
            ours, ref = cls(**config), getattr(diffusers, cls.__name__)(**config)
            ours.set_timesteps(steps)
            ref.set_timesteps(steps)
            assert ours.timesteps.dtype == ref.timesteps.dtype
            assert torch.equal(ours.timesteps, ref.timesteps), (cls.__name__, config)
            assert torch.equal(ours.sigmas, ref.sigmas), (cls.__name__, config)
            assert float(ours.init_noise_sigma) == float(ref.init_noise_sigma)


def test_dpm_solver_steps_through_repeated_karras_timesteps():
    """Rounded Karras timesteps repeat at low noise with many steps: the solver counts positions."""
    diffusers = pytest.importorskip("diffusers")
    ours = DPMSolverMultistepScheduler(use_karras_sigmas=True)
    ours.set_timesteps(200)
    assert len(set(ours.timesteps.tolist())) < len(ours.timesteps)  # some repeat
    ref = diffusers.DPMSolverMultistepScheduler(use_karras_sigmas=True)
    sample = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_run(ours, 200, sample), _run(ref, 200, sample), rtol=1e-5, atol=1e-5)


def test_euler_ancestral_karras_uses_eulers_noise_levels():
    """diffusers' ancestral Euler has no Karras option; ours takes Euler's sigmas and steps them
    as diffusers' ancestral step would (its sigmas and timesteps replaced by the Karras ones)."""
    diffusers = pytest.importorskip("diffusers")
    ours = EulerAncestralDiscreteScheduler(use_karras_sigmas=True, **SD)
    euler = EulerDiscreteScheduler(use_karras_sigmas=True, **SD)
    ours.set_timesteps(10)
    euler.set_timesteps(10)
    assert torch.equal(ours.sigmas, euler.sigmas) and torch.equal(ours.timesteps, euler.timesteps)
    ref = diffusers.EulerAncestralDiscreteScheduler(**SD)
    ref.set_timesteps(10)
    ref.sigmas, ref.timesteps = ours.sigmas.clone(), ours.timesteps.clone()
    x = y = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * ours.init_noise_sigma
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for t in ours.timesteps:
        x = ours.step(_fake_network(ours.scale_model_input(x, t), t), t, x, generator=gen_a).prev_sample
        y = ref.step(_fake_network(ref.scale_model_input(y, t), t), t, y, generator=gen_b).prev_sample
    torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ refused values, accepted keys

REFUSED = [
    (DDPMScheduler, dict(variance_type="learned"), "variance_type='learned' is not supported"),
    (DDPMScheduler, dict(variance_type="learned_range"), "variance_type='learned_range'"),
    (DDPMScheduler, dict(variance_type="fixed_large_log"), "variance_type='fixed_large_log'"),
    (DDPMScheduler, dict(variance_type="other"), "variance_type must be one of"),
    (DDPMScheduler, dict(thresholding=True, dynamic_thresholding_ratio=1.5), "dynamic_thresholding_ratio"),
    (DDIMScheduler, dict(thresholding=True, sample_max_value=0), "sample_max_value must be a positive"),
    (DDIMScheduler, dict(thresholding="yes"), "thresholding must be True or False"),
    (DDIMScheduler, dict(trained_betas=[0.1, 0.2]), "trained_betas must hold num_train_timesteps = 1000"),
    (LCMScheduler, dict(trained_betas=[0.0] * 1000), r"trained_betas must each lie in \(0, 1\]"),
    (DPMSolverMultistepScheduler, dict(solver_order=3), "solver_order must be 1 or 2"),
    (
        DPMSolverMultistepScheduler,
        dict(algorithm_type="sde-dpmsolver++"),
        r"algorithm_type must be 'dpmsolver\+\+'",
    ),
    (
        DPMSolverMultistepScheduler,
        dict(use_exponential_sigmas=True),
        "use_exponential_sigmas=True is not supported",
    ),
    (DPMSolverMultistepScheduler, dict(use_beta_sigmas=True), "use_beta_sigmas=True is not supported"),
    (DPMSolverMultistepScheduler, dict(use_flow_sigmas=True), "use_flow_sigmas=True is not supported"),
    (DPMSolverMultistepScheduler, dict(flow_shift=3.0), "flow_shift=3.0 is not supported"),
    (DPMSolverMultistepScheduler, dict(use_dynamic_shifting=True), "use_dynamic_shifting=True"),
    (DPMSolverMultistepScheduler, dict(time_shift_type="linear"), "time_shift_type='linear'"),
    (DPMSolverMultistepScheduler, dict(variance_type="other"), "variance_type='other' is not supported"),
    (DPMSolverMultistepScheduler, dict(use_karras_sigmas=True, use_lu_lambdas=True), "set one"),
    (
        DPMSolverMultistepScheduler,
        dict(lambda_min_clipped=float("nan")),
        "lambda_min_clipped must be a number",
    ),
    (DPMSolverMultistepScheduler, dict(euler_at_final=1), "euler_at_final must be True or False"),
    (EulerDiscreteScheduler, dict(interpolation_type="log_linear"), "interpolation_type='log_linear'"),
    (EulerDiscreteScheduler, dict(use_exponential_sigmas=True), "use_exponential_sigmas=True"),
    (EulerDiscreteScheduler, dict(use_beta_sigmas=True), "use_beta_sigmas=True"),
    (EulerDiscreteScheduler, dict(timestep_type="continuous"), "timestep_type='continuous'"),
    (EulerDiscreteScheduler, dict(sigma_min=0.1), "needs use_karras_sigmas=True"),
    (EulerDiscreteScheduler, dict(use_karras_sigmas=True, sigma_max=-1.0), "sigma_max must be a positive"),
    (EulerDiscreteScheduler, dict(final_sigmas_type="one"), "final_sigmas_type must be one of"),
    (
        EulerAncestralDiscreteScheduler,
        dict(use_karras_sigmas="yes"),
        "use_karras_sigmas must be True or False",
    ),
]


@pytest.mark.parametrize(("cls", "config", "message"), REFUSED)
def test_unsupported_values_are_refused_by_name(cls, config, message):
    with pytest.raises(ValueError, match=message):
        cls(**config)


def test_a_refusal_says_what_is_supported():
    with pytest.raises(ValueError) as info:
        EulerDiscreteScheduler(interpolation_type="log_linear")
    message = str(info.value)
    assert message.startswith("EulerDiscreteScheduler: interpolation_type='log_linear' is not supported (")
    assert message.endswith("supported: 'linear'")


def test_dpm_learned_variance_needs_twice_the_channels():
    s = DPMSolverMultistepScheduler(variance_type="learned")
    s.set_timesteps(5)
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"model_output must have twice the channels of sample \(6"):
        s.step(x, s.timesteps[0], x)


@pytest.mark.parametrize("cls", SCHEDULERS.values(), ids=lambda cls: cls.__name__)
def test_every_diffusers_key_is_accepted(cls):
    """Every argument of diffusers' class of the same name, at diffusers' default, is accepted
    (no TypeError), and the defaults give the same scheduler as ours."""
    diffusers = pytest.importorskip("diffusers")
    params = inspect.signature(getattr(diffusers, cls.__name__).__init__).parameters.values()
    defaults = {p.name: p.default for p in params if p.name != "self" and p.default is not p.empty}
    ours = cls(**defaults)
    assert set(defaults) <= set(vars(ours.config))
    plain = cls()
    torch.testing.assert_close(ours.alphas_cumprod, plain.alphas_cumprod, rtol=0, atol=0)
    ours.set_timesteps(10)
    plain.set_timesteps(10)
    assert torch.equal(ours.timesteps, plain.timesteps)


# the scheduler_config.json of Stable Diffusion 1.x (PNDM) and 2.x (DDIM, v-prediction) folders
SD1_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
SD2_CONFIG = {
    "_class_name": "DDIMScheduler",
    "_diffusers_version": "0.8.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


@pytest.mark.parametrize("sd_config", [SD1_CONFIG, SD2_CONFIG], ids=["sd1", "sd2"])
@pytest.mark.parametrize("name", SCHEDULERS)
def test_stable_diffusion_scheduler_configs_load(name, sd_config):
    cls = SCHEDULERS[name]
    scheduler, unused = cls.from_config(sd_config, return_unused_kwargs=True)
    assert scheduler.config.beta_schedule == "scaled_linear" and scheduler.config.steps_offset == 1
    assert scheduler.config.prediction_type == sd_config.get("prediction_type", "epsilon")
    assert "skip_prk_steps" in unused and not any(key.startswith("_") for key in unused)
    assert set(unused) == {k for k in sd_config if not k.startswith("_")} - cls._config_names()
    if name == "ddim":
        assert (
            unused == {"skip_prk_steps": True}
            and scheduler.final_alpha_cumprod == scheduler.alphas_cumprod[0]
        )
    scheduler.set_timesteps(4)
    assert len(scheduler.timesteps) == 4


def test_from_config_overrides():
    s = DDIMScheduler.from_config(SD2_CONFIG, timestep_spacing="trailing", thresholding=True)
    assert s.config.timestep_spacing == "trailing" and s.config.thresholding is True
    assert s.config.prediction_type == "v_prediction"
    with pytest.raises(ValueError, match="interpolation_type='log_linear'"):
        EulerDiscreteScheduler.from_config(SD1_CONFIG, interpolation_type="log_linear")


@pytest.mark.parametrize("source", SCHEDULERS)
@pytest.mark.parametrize("target", SCHEDULERS)
def test_from_config_of_every_other_scheduler(source, target):
    """diffusers' idiom ``Other.from_config(scheduler.config)`` works between every pair: a setting
    one scheduler has and the other does not is left out, a shared one carried over."""
    source_scheduler = SCHEDULERS[source](beta_schedule="scaled_linear", prediction_type="v_prediction")
    scheduler = SCHEDULERS[target].from_config(source_scheduler.config)
    assert (
        scheduler.config.beta_schedule == "scaled_linear"
        and scheduler.config.prediction_type == "v_prediction"
    )
    scheduler.set_timesteps(4)


def test_dpm_solver_ignores_ddpms_fixed_variances():
    """DDPM's variance types set the noise of its random step; the deterministic solver reads the
    network the same way whichever a config carries."""
    sample = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = _run(DPMSolverMultistepScheduler(), 6, sample)
    for variance in ("fixed_small", "fixed_large", "fixed_small_log", "fixed_large_log"):
        assert torch.equal(_run(DPMSolverMultistepScheduler(variance_type=variance), 6, sample), plain)


def test_dpm_solver_begins_at_a_named_position():
    """Where Karras timesteps repeat, set_begin_index says which occurrence a run starts at (as in
    diffusers' img2img); without it the first is taken."""
    s = DPMSolverMultistepScheduler(use_karras_sigmas=True)
    s.set_timesteps(200)
    timesteps = s.timesteps.tolist()
    second = next(i for i in range(1, len(timesteps)) if timesteps[i] == timesteps[i - 1])
    x = torch.zeros(1, 2)
    s.set_begin_index(second)
    for t in s.timesteps[second : second + 3]:
        s.step(x, t, x)
    assert s._step_index == second + 3
    s.set_timesteps(200)
    s.step(x, s.timesteps[second], x)  # no begin index: the first occurrence
    assert s._step_index == second
    with pytest.raises(ValueError, match=r"begin_index must be an int in \[0, 199\]"):
        s.set_begin_index(200)
    with pytest.raises(ValueError, match="before set_begin_index"):
        DPMSolverMultistepScheduler().set_begin_index(0)
