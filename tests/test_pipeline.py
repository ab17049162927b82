"""Latent diffusion wiring: the vae and latent training tasks and the pipeline (tiny runs)."""

import json
import shutil

import pytest
import torch

from minildm.checkpoints import CONFIG_NAME, WEIGHTS_NAME
from minildm.cli import main
from minildm.pipelines import LatentDiffusionPipeline, PipelineOutput


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ck")
    common = ["--budget", "quick", "--steps", "2", "--batch-size", "4", "--data-size", "16"]
    assert 0 == main(["train", "vae", *common, "--run-dir", str(root / "rv"), "--out", str(root / "vae")])
    mp = pytest.MonkeyPatch()
    mp.setenv("MINILDM_CHECKPOINTS", str(root))  # the latent task encodes with the "shipped" VAE
    run, out = str(root / "rl"), str(root / "latent_ddpm")
    assert 0 == main(["train", "latent", *common, "--run-dir", run, "--out", out])
    mp.undo()
    return root


def test_vae_checkpoint_has_its_scale_factor(checkpoints):
    config = json.loads((checkpoints / "vae" / CONFIG_NAME).read_text())
    assert config["kind"] == "vae" and config["scale_factor"] > 0


def test_latent_scheduler_does_not_clip(checkpoints):
    # pixels live in [-1, 1], latents do not: clipping the predicted z_0 would ruin the samples
    pipe = LatentDiffusionPipeline.from_pretrained(checkpoints / "latent_ddpm", checkpoints / "vae")
    assert pipe.scheduler.config.clip_sample is False
    shipped = LatentDiffusionPipeline.from_pretrained()  # data/checkpoints
    assert shipped.scheduler.config.clip_sample is False


def test_pipeline_samples_images(checkpoints):
    pipe = LatentDiffusionPipeline.from_pretrained(checkpoints / "latent_ddpm", checkpoints / "vae")
    out = pipe(batch_size=2, num_inference_steps=3, seed=1, progress=False)
    assert isinstance(out, PipelineOutput)
    images, latents = out.images, out.latents
    assert images.shape == (2, 3, 32, 32) and latents.shape == (2, 4, 8, 8)
    assert images.min() >= -1 and images.max() <= 1
    again = pipe(batch_size=2, num_inference_steps=3, seed=1, progress=False).images
    assert torch.equal(images, again)  # same seed, same images
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert pipe.decode(pipe.encode(x)).shape == x.shape


def test_pipeline_bad_input(checkpoints):
    pipe = LatentDiffusionPipeline.from_pretrained(checkpoints / "latent_ddpm", checkpoints / "vae")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        pipe(batch_size=0)
    with pytest.raises(ValueError, match="num_inference_steps must be a positive int"):
        pipe(batch_size=1, num_inference_steps=0)
    with pytest.raises(ValueError, match="holds a 'latent_ddpm' model, expected 'vae'"):
        LatentDiffusionPipeline.from_pretrained(checkpoints / "latent_ddpm", checkpoints / "latent_ddpm")


def test_pipeline_refuses_another_vae(checkpoints, tmp_path):
    other = tmp_path / "vae"
    other.mkdir()
    config = json.loads((checkpoints / "vae" / CONFIG_NAME).read_text())
    config["model"]["vae"]["ch"] = 32
    (other / CONFIG_NAME).write_text(json.dumps(config))
    shutil.copy(checkpoints / "vae" / WEIGHTS_NAME, other / WEIGHTS_NAME)
    with pytest.raises(ValueError, match="does not fit|not the one this U-Net was trained with"):
        LatentDiffusionPipeline.from_pretrained(checkpoints / "latent_ddpm", other)
