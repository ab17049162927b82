"""Lesson 11's DiT backbone: shapes, adaLN-Zero, patches, the U-Net's size, training and loading."""

import json

import pytest
import torch

from minildm.cli import main
from minildm.nn import DiTConfig, DiTModel, UNetModel, count_parameters
from minildm.nn.dit import sincos_position_embedding
from minildm.tasks.text2img import TEXT2IMG_DIT, TEXT2IMG_UNET


def test_shapes_and_zero_output_at_initialisation():
    model = DiTModel(DiTConfig())
    x, t, context = torch.randn(3, 4, 8, 8), torch.tensor([0, 500, 999]), torch.randn(3, 12, 64)
    out = model(x, t, context)
    assert out.shape == x.shape
    # adaLN-Zero: the output layer and every block's gates start at zero
    assert torch.count_nonzero(out) == 0


def test_patchify_unpatchify_round_trip():
    config = DiTConfig(in_channels=4, out_channels=4, patch_size=2)
    model = DiTModel(config)
    x = torch.randn(2, 4, 8, 8)
    p = config.patch_size
    # tokens as patchify lays them out: row-major over the 4 x 4 grid of 2 x 2 patches, each (p, p, C)
    tokens = x.reshape(2, 4, 4, p, 4, p).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, p * p * 4)
    torch.testing.assert_close(model.unpatchify(tokens), x)


def test_every_block_sees_the_timestep_and_the_text_after_training_starts():
    torch.manual_seed(0)
    model = DiTModel(DiTConfig(depth=2, hidden_size=32, num_heads=2, context_dim=8))
    for p in model.parameters():  # leave the zero start: any weights
        torch.nn.init.normal_(p, std=0.2)
    x, context = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 8)
    base = model(x, torch.tensor([10, 10]), context)
    assert not torch.allclose(base, model(x, torch.tensor([900, 900]), context))
    assert not torch.allclose(base, model(x, torch.tensor([10, 10]), torch.randn(2, 5, 8)))


def test_position_embedding_is_distinct_per_patch():
    pe = sincos_position_embedding(4, 16)
    assert pe.shape == (16, 16)
    assert torch.cdist(pe, pe).add(torch.eye(16)).min() > 0.1


def test_same_size_as_the_unet():
    dit, unet = count_parameters(DiTModel(TEXT2IMG_DIT)), count_parameters(UNetModel(TEXT2IMG_UNET))
    assert abs(dit - unet) / unet < 0.02, (dit, unet)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"patch_size": 3}, "patch_size 3 must divide the latent's side image_size=8"),
        ({"hidden_size": 30, "num_heads": 4}, "must be a multiple of num_heads"),
        ({"depth": 0}, "depth must be a positive int"),
    ],
)
def test_bad_configs(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        DiTConfig(**kwargs)


def test_bad_inputs():
    model = DiTModel(DiTConfig())
    with pytest.raises(ValueError, match=r"x must have shape \[B, 4, 8, 8\]"):
        model(torch.randn(1, 4, 16, 16), torch.tensor([1]), torch.randn(1, 3, 64))
    with pytest.raises(ValueError, match="context must be given"):
        model(torch.randn(1, 4, 8, 8), torch.tensor([1]))


def test_train_a_dit_and_sample_it_in_the_pipeline(tmp_path):
    from minildm.pipelines import TextToImagePipeline

    out = tmp_path / "dit"
    args = ["train", "text2img", "--backbone", "dit", "--budget", "quick", "--steps", "3",
            "--batch-size", "8", "--data-size", "32", "--run-dir", str(tmp_path / "run"), "--out", str(out)]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert "dit" in config["model"] and "unet" not in config["model"]
    pipe = TextToImagePipeline.from_pretrained(out)
    assert isinstance(pipe.unet, DiTModel)
    images = pipe(["a red circle"], num_inference_steps=2, seed=0, progress=False).images
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(images).all()
    # lesson 11's distillation takes a DiT teacher too: the student is a DiT that starts as the teacher
    from minildm.schedulers import LCMScheduler
    from minildm.tasks import lcm_task

    task = lcm_task("quick", teacher=str(out), data_size=16)
    assert isinstance(task.model, DiTModel)
    for a, b in zip(task.model.state_dict().values(), pipe.unet.state_dict().values()):
        torch.testing.assert_close(a, b)
    student = tmp_path / "student"
    tiny = ["--budget", "quick", "--steps", "2", "--batch-size", "4", "--data-size", "16"]
    assert main(["train", "lcm", "--teacher", str(out), *tiny, "--run-dir", str(tmp_path / "lcm_run"),
                 "--out", str(student)]) == 0
    fast = TextToImagePipeline.from_pretrained(student)
    assert isinstance(fast.unet, DiTModel) and isinstance(fast.scheduler, LCMScheduler)
    assert torch.isfinite(fast(["a red circle"], seed=0, progress=False).images).all()
    # a checkpoint whose patch size does not divide the latent is refused, naming the problem
    config["model"]["dit"]["patch_size"] = 3
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="patch_size 3 must divide"):
        TextToImagePipeline.from_pretrained(out)


def test_backbone_only_for_text2img(capsys):
    assert main(["train", "toy2d", "--backbone", "dit", "--steps", "1"]) == 1
    assert "--backbone applies to 'text2img' only" in capsys.readouterr().err


def test_the_shipped_dit_loads_and_draws_a_prompt():
    """data/checkpoints/text2img, the default: lesson 11's DiT at twice the U-Net's steps (lesson 10,
    section 5); the U-Net of lessons 06-09 ships beside it as text2img_unet."""
    from minildm.checkpoints import checkpoint_dir
    from minildm.metrics import judge
    from minildm.pipelines import TextToImagePipeline
    from minildm.utils import to_uint8

    pipe = TextToImagePipeline.from_pretrained(device="cpu")  # the default checkpoint
    assert isinstance(pipe.unet, DiTModel) and pipe.config["kind"] == "text2img"
    unet = TextToImagePipeline.from_pretrained(checkpoint_dir() / "text2img_unet", device="cpu").unet
    assert isinstance(unet, UNetModel)
    assert pipe.config["text_encoder"]["clip_skip"] == 2 and pipe.config["steps_trained"] == 24_000
    assert "resumed" not in pipe.config  # trained from scratch in one run
    prompts = ["a red circle", "a green triangle", "a blue square"]  # one object: 192 of 192 in evaluate
    images = pipe(prompts, seed=0, progress=False).images
    assert images.shape == (3, 3, 32, 32) and torch.isfinite(images).all()
    assert [judge(image, p).ok for image, p in zip(to_uint8(images), prompts)] == [True, True, True]
