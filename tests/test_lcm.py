"""The latent consistency model: LCMScheduler against diffusers', the boundary condition, the
distillation step, and the student in the pipeline (steps it was not trained for warn)."""

import pytest
import torch

from minildm.schedulers import SCHEDULERS, LCMScheduler

CONFIGS = {
    "ours (cosine, v)": dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"),
    "SD (scaled linear, eps)": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                    prediction_type="epsilon"),
    "x0, clipped, 25 original steps": dict(beta_schedule="linear", prediction_type="sample", clip_sample=True,
                                            original_inference_steps=25),
}


def fake_network(x: torch.Tensor, t) -> torch.Tensor:
    return torch.tanh(0.5 * x) * (1 + float(t) / 1000) + 0.1


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_lcm_matches_diffusers(name, steps):
    diffusers = pytest.importorskip("diffusers")
    ours, ref = LCMScheduler(**CONFIGS[name]), diffusers.LCMScheduler(**CONFIGS[name])
    ours.set_timesteps(steps)
    ref.set_timesteps(steps)
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    a = b = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    for t in ours.timesteps:
        out_a = ours.step(fake_network(a, t), t, a, generator=torch.Generator().manual_seed(int(t)))
        out_b = ref.step(fake_network(b, t), t, b, generator=torch.Generator().manual_seed(int(t)))
        torch.testing.assert_close(out_a.pred_original_sample, out_b.denoised)
        a, b = out_a.prev_sample, out_b.prev_sample
        torch.testing.assert_close(a, b)


def test_four_steps_pick_from_the_skipping_schedule():
    scheduler = LCMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    assert scheduler.origin_timesteps()[:3].tolist() == [19, 39, 59]  # k = 1000 // 50 = 20
    scheduler.set_timesteps(4)
    assert scheduler.timesteps.tolist() == [999, 759, 499, 259]
    assert SCHEDULERS["lcm"] is LCMScheduler


def test_the_boundary_condition_holds_at_t0():
    scheduler = LCMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(torch.tensor([0.0, 19.0, 999.0]))
    assert c_skip[0] == 1 and c_out[0] == 0  # f(x, 0) = x whatever the network says
    assert c_skip[1] < 1e-3 and c_out[1] > 0.999  # from t ~ 20 on, f is the network's x0
    x, junk = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    t = torch.tensor([0, 0, 0])
    torch.testing.assert_close(scheduler.consistency_function(junk, t, x), x)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="original_inference_steps must be an int in"):
        LCMScheduler(original_inference_steps=0)
    scheduler = LCMScheduler()
    with pytest.raises(ValueError, match=r"num_inference_steps must be an int in \[1, 50\]"):
        scheduler.set_timesteps(51)
    with pytest.raises(ValueError, match="call set_timesteps"):
        LCMScheduler().step(torch.zeros(1, 4, 8, 8), 999, torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="timestep_scaling must be a positive number"):
        LCMScheduler(timestep_scaling=0)


# ---------------------------------------------------------------- the distillation and the student

TINY = ["--budget", "quick", "--steps", "2", "--batch-size", "4", "--data-size", "16"]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A 2-step student of the shipped text2img model, written by the training command."""
    from minildm.cli import main

    root = tmp_path_factory.mktemp("lcm")
    assert 0 == main(["train", "lcm", *TINY, "--run-dir", str(root / "run"), "--out", str(root / "student")])
    return root / "student"


def test_the_student_starts_as_the_teacher_and_its_loss_is_finite():
    from minildm.checkpoints import load_pretrained
    from minildm.tasks import lcm_task

    task = lcm_task("quick", data_size=16)
    teacher, _, _ = load_pretrained("text2img", None, device="cpu")
    for a, b in zip(task.model.state_dict().values(), teacher.state_dict().values()):
        torch.testing.assert_close(a, b)
    loss = task.loss(task.model, torch.Generator().manual_seed(0), 4)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.model.parameters())
    assert task.config["kind"] == "text2img" and task.config["distillation"]["guidance_scale"] == 3.0


def test_the_teacher_step_is_a_guided_ddim_step():
    """One step of the task's teacher equals DDIMScheduler.step on the guided output."""
    from minildm.checkpoints import load_pretrained
    from minildm.schedulers import DDIMScheduler
    from minildm.tasks.lcm import guided_ddim_step

    teacher, scheduler, _ = load_pretrained("text2img", None, device="cpu")
    ddim = DDIMScheduler.from_config(scheduler.config)
    ddim.set_timesteps(50)  # trailing: 999, 979, ..., 19: the skipping-step schedule
    z, context, uncond = torch.randn(1, 4, 8, 8), torch.randn(1, 16, 64), torch.randn(1, 16, 64)
    t, t_prev = torch.tensor([519]), torch.tensor([499])
    with torch.no_grad():
        ours = guided_ddim_step(teacher, z, t, t_prev, context, uncond, ddim.alphas_cumprod, 3.0, ddim)
        out_c, out_u = teacher(z, t, context), teacher(z, t, uncond)
    reference = ddim.step(out_u + 3.0 * (out_c - out_u), 519, z).prev_sample
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)


def test_the_student_loads_with_its_sampler_and_defaults(student):
    from minildm.pipelines import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(student)
    assert isinstance(pipe.scheduler, LCMScheduler)
    assert (pipe.default_steps, pipe.default_guidance, pipe.default_sampler) == (4, 1.0, "lcm")
    a = pipe(["a red circle"], seed=3, progress=False).images
    b = pipe(["a red circle"], seed=3, progress=False).images
    assert a.shape == (1, 3, 32, 32) and torch.equal(a, b)
    with pytest.warns(UserWarning, match=r"distilled for \[1, 2, 4, 8\] steps; 3 steps"):
        pipe(["a red circle"], num_inference_steps=3, progress=False)
    with pytest.warns(UserWarning, match="guides again"):
        pipe(["a red circle"], guidance_scale=2.0, progress=False)
    with pytest.raises(ValueError, match=r"num_inference_steps must be an int in \[1, 50\]"):
        pipe(["a red circle"], num_inference_steps=51, progress=False)
    from minildm.pipelines import Img2ImgPipeline

    edit = Img2ImgPipeline.from_pretrained(student)  # the edit pipelines check a student the same way
    with pytest.warns(UserWarning, match=r"distilled for \[1, 2, 4, 8\] steps; 25 steps"):
        edit(["a blue circle"], a[0], num_inference_steps=25, guidance_scale=1.0, progress=False)


def test_cli_student_and_bad_input(student, tmp_path, capsys):
    from minildm.cli import main

    out = tmp_path / "s.png"
    assert 0 == main(["generate", "a blue square", "--checkpoint", str(student), "-o", str(out),
                      "--save-dir", str(tmp_path / "raw")])
    from minildm.imageio import load_image
    from minildm.pipelines import TextToImagePipeline
    from minildm.utils import to_uint8

    # the CLI samples the student as the pipeline does by default: LCM, 4 steps, no extra guidance
    by_pipeline = TextToImagePipeline.from_pretrained(student)(["a blue square"], progress=False)
    expected = to_uint8(by_pipeline.images)
    assert (to_uint8(load_image(tmp_path / "raw" / "000.png", 32)) == expected).all()
    capsys.readouterr()
    # the lcm sampler on a model that was not distilled: one line, before any work
    assert main(["generate", "a blue square", "--sampler", "lcm", "-o", str(tmp_path / "x.png")]) == 1
    assert "the lcm sampler needs a distilled student checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert main(["train", "text2img", *TINY, "--teacher", str(student)]) == 1
    assert "--teacher applies to 'lcm' only" in capsys.readouterr().err
    run = ["--run-dir", str(tmp_path / "r"), "--out", str(tmp_path / "o")]
    assert main(["train", "lcm", *TINY, "--teacher", str(student), *run]) == 1  # a student as teacher
    assert "itself distilled" in capsys.readouterr().err


def test_the_student_is_stored_in_half_precision(student, tmp_path):
    from safetensors.torch import load_file

    from minildm.checkpoints import load_pretrained, save_model

    stored = load_file(student / "model.safetensors")
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    model, _, config = load_pretrained("text2img", student)
    assert config["weights_dtype"] == "float16"
    for name, value in model.state_dict().items():  # loaded back into float32, the rounded values
        assert value.dtype == torch.float32 and torch.equal(value, stored[name].float())
    with pytest.raises(ValueError, match="weights_dtype must be float32 or float16, got 'int8'"):
        save_model(tmp_path / "bad", model.state_dict(), dict(config, weights_dtype="int8"))
    assert not (tmp_path / "bad").exists()


def test_a_resumed_distillation_is_exact(tmp_path):
    """The target network is the training loop's EMA, saved in the training state: an interrupted
    distillation continues bit for bit."""
    from safetensors.torch import load_file

    from minildm.cli import main

    tiny = ["--budget", "quick", "--batch-size", "4", "--data-size", "16"]
    assert 0 == main(["train", "lcm", *tiny, "--steps", "4", "--run-dir", str(tmp_path / "a"),
                      "--out", str(tmp_path / "a_out")])
    assert 0 == main(["train", "lcm", *tiny, "--steps", "2", "--run-dir", str(tmp_path / "b"),
                      "--out", str(tmp_path / "b_out")])
    assert 0 == main(["train", "lcm", *tiny, "--steps", "4", "--resume", "--run-dir", str(tmp_path / "b"),
                      "--out", str(tmp_path / "b_out")])
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("a_out", "b_out"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_pseudo_huber_distance():
    """c = 0.00054 sqrt(d) per latent (Song & Dhariwal 2023); large errors count linearly, small ones
    quadratically; "l2" is the mean squared error."""
    from minildm.tasks.lcm import consistency_distance

    p, y = torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 8, 8)
    y[0, 0, 0, 0], y[1, 1, 2, 3] = 3.0, 4.0
    c = 0.00054 * 256**0.5
    expected = ((9 + c * c) ** 0.5 - c + (16 + c * c) ** 0.5 - c) / 2
    torch.testing.assert_close(consistency_distance(p, y, "huber"), torch.tensor(expected))
    torch.testing.assert_close(consistency_distance(p, y, "l2"), torch.tensor(25 / 512))
    small = torch.full((1, 4, 8, 8), 1e-5)
    near = consistency_distance(small.double(), torch.zeros_like(small).double(), "huber").item()
    assert near == pytest.approx(256e-10 / (2 * c), rel=1e-3)  # small errors: |e|^2 / 2c
    with pytest.raises(ValueError, match="kind must be one of l2, huber, got 'l1'"):
        consistency_distance(p, y, "l1")


def test_the_distillation_options_are_recorded_and_checked(tmp_path, capsys):
    """--original-steps N and --consistency-loss reach the task and the student's config (N sets the
    student's sampling schedule); bad values are refused in one line, before any work."""
    from minildm.cli import main
    from minildm.pipelines import TextToImagePipeline
    from minildm.tasks import lcm_task

    task = lcm_task("quick", data_size=16, original_steps=25, consistency_loss="huber")
    distillation = task.config["distillation"]
    assert (distillation["original_inference_steps"], distillation["loss"]) == (25, "huber")
    loss = task.loss(task.model, torch.Generator().manual_seed(0), 4)
    assert torch.isfinite(loss) and loss.item() > 0
    out = tmp_path / "s25"
    assert 0 == main(["train", "lcm", *TINY, "--original-steps", "25", "--consistency-loss", "huber",
                      "--run-dir", str(tmp_path / "r"), "--out", str(out)])
    pipe = TextToImagePipeline.from_pretrained(out)
    pipe.scheduler.set_timesteps(4)
    assert pipe.scheduler.timesteps.tolist() == [999, 759, 519, 279]  # k = 40
    capsys.readouterr()
    run = ["--run-dir", str(tmp_path / "r2"), "--out", str(tmp_path / "o2")]
    assert main(["train", "lcm", *TINY, "--original-steps", "0", *run]) == 1
    assert "--original-steps must be a positive int" in capsys.readouterr().err
    assert main(["train", "lcm", *TINY, "--original-steps", "1001", *run]) == 1
    assert "--original-steps must be at most the teacher's 1000" in capsys.readouterr().err
    assert main(["train", "text2img", *TINY, "--consistency-loss", "huber", *run]) == 1
    assert "--consistency-loss applies to 'lcm' only" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "r2").exists()
