"""DPM-Solver++ and the Euler samplers: diffusers' numbers, the theory's identities, bad input."""

import pytest
import torch

from minildm.sampling import Sampler
from minildm.schedulers import (
    SCHEDULERS,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
)

diffusers = pytest.importorskip("diffusers")

CONFIGS = {
    "ours (cosine, v, trailing)": dict(
        beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", timestep_spacing="trailing"
    ),
    "DDPM paper (linear, eps, linspace)": dict(
        beta_schedule="linear", prediction_type="epsilon", timestep_spacing="linspace"
    ),
    "SD (scaled linear, eps, leading)": dict(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="epsilon",
        timestep_spacing="leading",
        steps_offset=1,
    ),
    "x0-prediction": dict(beta_schedule="linear", prediction_type="sample", timestep_spacing="trailing"),
}
PAIRS = {
    "dpm++ midpoint": (DPMSolverMultistepScheduler, "DPMSolverMultistepScheduler", {}),
    "dpm++ heun": (DPMSolverMultistepScheduler, "DPMSolverMultistepScheduler", {"solver_type": "heun"}),
    "dpm++ order 1": (DPMSolverMultistepScheduler, "DPMSolverMultistepScheduler", {"solver_order": 1}),
    "dpm++ sigma_min": (
        DPMSolverMultistepScheduler,
        "DPMSolverMultistepScheduler",
        {"final_sigmas_type": "sigma_min"},
    ),
    "euler": (EulerDiscreteScheduler, "EulerDiscreteScheduler", {}),
    "euler_a": (EulerAncestralDiscreteScheduler, "EulerAncestralDiscreteScheduler", {}),
}


def fake_network(x: torch.Tensor, t) -> torch.Tensor:
    """A fixed, smooth, timestep-dependent stand-in for a trained network."""
    return torch.tanh(0.5 * x) * (1 + float(t) / 1000) + 0.1


def run_both(ours, ref, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    ours.set_timesteps(steps)
    ref.set_timesteps(steps)
    torch.testing.assert_close(ours.timesteps.to(ref.timesteps.dtype), ref.timesteps, rtol=0, atol=0)
    torch.testing.assert_close(ours.sigmas, ref.sigmas, rtol=0, atol=0)
    assert float(ours.init_noise_sigma) == float(ref.init_noise_sigma)
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    a, b = noise * ours.init_noise_sigma, noise * ref.init_noise_sigma
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for t in ours.timesteps:
        out_a = fake_network(ours.scale_model_input(a, t), t)
        out_b = fake_network(ref.scale_model_input(b, t), t)
        a = ours.step(out_a, t, a, generator=gen_a).prev_sample
        b = ref.step(out_b, t, b, generator=gen_b).prev_sample
    return a, b


@pytest.mark.parametrize("steps", [1, 2, 4, 10, 25])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("pair", PAIRS)
def test_matches_diffusers(pair, config, steps):
    ours_cls, ref_name, extra = PAIRS[pair]
    if ref_name.startswith("Euler") and CONFIGS[config]["prediction_type"] == "sample":
        pytest.skip("diffusers' Euler samplers do not implement x0-prediction")
    ours = ours_cls(**CONFIGS[config], **extra)
    ref = getattr(diffusers, ref_name)(**CONFIGS[config], **extra)
    a, b = run_both(ours, ref, steps)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [EulerDiscreteScheduler, EulerAncestralDiscreteScheduler])
def test_euler_add_noise_matches_diffusers(cls):
    config = CONFIGS["ours (cosine, v, trailing)"]
    ours, ref = cls(**config), getattr(diffusers, cls.__name__)(**config)
    ours.set_timesteps(10)
    ref.set_timesteps(10)
    x0, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    t = ours.timesteps[[2, 5, 9]]
    torch.testing.assert_close(
        ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, ref.timesteps[[2, 5, 9]])
    )


def test_first_order_dpm_solver_is_ddim():
    """DPM-Solver++ of order 1 is DDIM (eta 0): the same exponential-integrator step written in lambda."""
    config = dict(beta_schedule="linear", prediction_type="epsilon", timestep_spacing="trailing")
    dpm = DPMSolverMultistepScheduler(**config, solver_order=1)
    ddim = DDIMScheduler(**config, clip_sample=False)
    dpm.set_timesteps(10)
    ddim.set_timesteps(10)
    x = y = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    for t in ddim.timesteps:
        x = dpm.step(fake_network(x, t), t, x).prev_sample
        y = ddim.step(fake_network(y, t), t, y).prev_sample
    torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)


def test_second_order_beats_first_on_a_gaussian():
    """With data N(0, c^2) the exact eps-prediction is known, and so is where the probability-flow
    ODE takes x_T: x_0 = x_T * c / std(x_T) (it keeps each point's quantile). With 20 steps
    DPM-Solver++ 2M lands at least twice as close to it as first order (DDIM)."""
    c = 0.5
    config = dict(beta_schedule="linear", prediction_type="epsilon", timestep_spacing="trailing")

    def solve(order: int, steps: int) -> float:
        s = DPMSolverMultistepScheduler(**config, solver_order=order)
        s.set_timesteps(steps)
        abar = s.alphas_cumprod.double()
        x_T = torch.randn(4096, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        x = x_T
        for t in s.timesteps:
            a = abar[int(t)]
            eps = (1 - a) ** 0.5 * x / (a * c**2 + 1 - a)  # the exact E[eps | x_t]
            x = s.step(eps, t, x).prev_sample
        a_T = abar[int(s.timesteps[0])]
        exact = x_T * c / (a_T * c**2 + 1 - a_T) ** 0.5
        return float((x - exact).abs().mean())

    assert solve(2, 20) < 0.5 * solve(1, 20)
    assert solve(2, 10) < solve(1, 10)


def test_sampler_passes_euler_float_timesteps_as_floats():
    seen = []

    def model(x, t, context=None):
        seen.append(t)
        return torch.zeros_like(x)

    scheduler = EulerDiscreteScheduler(timestep_spacing="linspace")
    Sampler().sample(model, (1, 2), scheduler, 4, progress=False, generator=torch.Generator().manual_seed(0))
    assert seen[1].is_floating_point() and float(seen[1][0]) == pytest.approx(666.0)
    seen.clear()
    Sampler().sample(model, (1, 2), DDIMScheduler(), 4, progress=False)
    assert seen[0].dtype == torch.long


@pytest.mark.parametrize("name", ["dpm++", "euler", "euler_a"])
def test_pipeline_samples_with_every_solver(name):
    from minildm.pipelines import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained()
    pipe.scheduler = SCHEDULERS[name].from_config(pipe.scheduler.config)
    images = pipe(["a red circle"], num_inference_steps=4, seed=0, progress=False).images
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(images).all()


def test_img2img_with_euler_and_dpm():
    from minildm.data import render_caption
    from minildm.pipelines import Img2ImgPipeline
    from minildm.utils import from_uint8

    pipe = Img2ImgPipeline.from_pretrained()
    image = from_uint8(torch.from_numpy(render_caption("a large red circle in the center", seed=0))[None])
    for name in ("dpm++", "euler"):
        pipe.scheduler = SCHEDULERS[name].from_config(pipe.scheduler.config)
        out = pipe(
            ["a large blue circle in the center"],
            image,
            strength=0.6,
            num_inference_steps=10,
            seed=0,
            progress=False,
        ).images
        assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: DPMSolverMultistepScheduler(solver_order=3), "solver_order must be 1 or 2"),
        (lambda: DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++"), "algorithm_type"),
        (lambda: DPMSolverMultistepScheduler(solver_type="bogus"), "solver_type"),
        (lambda: DPMSolverMultistepScheduler(final_sigmas_type="one"), "final_sigmas_type"),
        (
            lambda: DPMSolverMultistepScheduler().set_timesteps(1001),
            r"num_inference_steps must be an int in \[1, 1000\]",
        ),
        (lambda: EulerDiscreteScheduler().set_timesteps(2000), "num_train_timesteps"),
        (lambda: EulerDiscreteScheduler().step(torch.zeros(1), 999.0, torch.zeros(1)), "set_timesteps"),
    ],
)
def test_bad_arguments(make, fragment):
    with pytest.raises(ValueError, match=fragment):
        make()


def test_dpm_solver_refuses_steps_out_of_order():
    s = DPMSolverMultistepScheduler()
    s.set_timesteps(5)
    x = torch.zeros(1, 2)
    s.step(x, s.timesteps[0], x)
    with pytest.raises(ValueError, match="in order"):
        s.step(x, s.timesteps[2], x)


def test_euler_refuses_a_timestep_off_the_schedule():
    s = EulerDiscreteScheduler()
    s.set_timesteps(5)
    with pytest.raises(ValueError, match="one of scheduler.timesteps"):
        s.scale_model_input(torch.zeros(1), 500.5)


def test_cli_refuses_eta_with_another_sampler(capsys):
    from minildm.cli import main

    assert main(["generate", "a red circle", "--sampler", "dpm++", "--eta", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "--eta" in err and "dpm++" in err and len(err.strip().splitlines()) == 1
