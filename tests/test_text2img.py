"""Lesson 06 wiring: the clip and text2img training tasks, the text-to-image pipeline, the
generate command, and the path for users online (a transformers CLIP folder, tiny and local)."""

import json

import pytest
import torch

from minildm.checkpoints import checkpoint_dir, load_pretrained
from minildm.cli import main
from minildm.data import ShapesDataset
from minildm.pipelines import TextToImagePipeline
from minildm.schedulers import DDIMScheduler, DDPMScheduler
from minildm.tasks import CAPTION_DROPOUT, text2img_task
from minildm.text import (
    MiniCLIPConfig,
    TextEncoder,
    build_clip,
    build_tokenizer,
    save_tokenizer,
    tokenizer_dir,
)

TINY = ["--budget", "quick", "--steps", "2", "--batch-size", "4", "--data-size", "16"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step mini CLIP and a 2-step text2img U-Net on it (the shipped VAE encodes)."""
    root = tmp_path_factory.mktemp("t2i")
    assert 0 == main(["train", "clip", *TINY, "--run-dir", str(root / "rc"), "--out", str(root / "clip")])
    assert 0 == main(["train", "text2img", *TINY, "--text-encoder", str(root / "clip"),
          "--run-dir", str(root / "rt"), "--out", str(root / "text2img")])
    return root


@pytest.fixture(scope="module")
def pipe(trained):
    return TextToImagePipeline.from_pretrained(trained / "text2img", text_encoder_path=trained / "clip")


def test_checkpoints_describe_their_models(trained):
    clip, scheduler, config = load_pretrained("clip", trained / "clip")
    assert scheduler is None and config["kind"] == "clip" and not clip.training
    config = json.loads((trained / "text2img" / "config.json").read_text())
    assert config["kind"] == "text2img" and config["caption_dropout"] == CAPTION_DROPOUT
    assert config["text_encoder"]["kind"] == "clip" and config["text_encoder"]["width"] == 64
    assert config["model"]["unet"]["context_dim"] == 64
    assert config["scheduler"]["clip_sample"] is False  # latents are not in [-1, 1]


def test_clip_skip_is_trained_recorded_and_loaded(trained, tmp_path):
    """train text2img --clip-skip N conditions on layer L - N, records it in the config, and the pipeline
    loads the encoder at that layer; LCM students read what their teacher read."""
    out = tmp_path / "skip"
    assert 0 == main(["train", "text2img", *TINY, "--text-encoder", str(trained / "clip"), "--clip-skip", "2",
                      "--run-dir", str(tmp_path / "r"), "--out", str(out)])
    config = json.loads((out / "config.json").read_text())
    assert config["text_encoder"]["clip_skip"] == 2
    assert "clip_skip" not in json.loads((trained / "text2img" / "config.json").read_text())["text_encoder"]
    skipped = TextToImagePipeline.from_pretrained(out, text_encoder_path=trained / "clip")
    plain = TextToImagePipeline.from_pretrained(trained / "text2img", text_encoder_path=trained / "clip")
    assert (skipped.text_encoder.clip_skip, plain.text_encoder.clip_skip) == (2, 0)
    context = skipped.encode_prompt(["a yellow circle", "a red circle"])
    assert torch.equal(context[0, 3], context[1, 3])  # the embeddings alone: "circle" is "circle"
    task = text2img_task("quick", data_size=8, text_encoder_path=trained / "clip", clip_skip=1)
    assert task.config["text_encoder"]["clip_skip"] == 1
    student = tmp_path / "student"
    assert 0 == main(["train", "lcm", *TINY, "--teacher", str(out), "--text-encoder", str(trained / "clip"),
                      "--run-dir", str(tmp_path / "rs"), "--out", str(student)])
    assert json.loads((student / "config.json").read_text())["text_encoder"]["clip_skip"] == 2
    loaded = TextToImagePipeline.from_pretrained(student, text_encoder_path=trained / "clip")
    assert loaded.text_encoder.clip_skip == 2


def test_clip_skip_bad_input(trained, tmp_path, capsys):
    base = ["train", "text2img", *TINY, "--text-encoder", str(trained / "clip"),
            "--run-dir", str(tmp_path / "r")]
    cases = [
        (["--clip-skip", "3"], "clip_skip must be an int in [0, 2] (the text encoder has 2 layers), got 3"),
        (["--clip-skip", "-1"], "clip_skip must be an int in [0, 2]"),
    ]
    for extra, message in cases:
        assert main([*base, *extra, "--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("minildm: error: ") and message in err, err
    assert main(["train", "clip", *TINY, "--clip-skip", "1", "--run-dir", str(tmp_path / "c")]) == 1
    assert "--clip-skip applies to 'text2img' only, not 'clip'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_pipeline_generates_deterministically(pipe):
    prompts = ["a large red circle in the top left", "a blue square to the left of a green circle"]
    images = pipe(prompts, num_inference_steps=3, guidance_scale=3.0, seed=1, progress=False).images
    assert images.shape == (2, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, pipe(prompts, 3, 3.0, seed=1, progress=False).images)
    assert not torch.equal(images, pipe(prompts, 3, 1.0, seed=1, progress=False).images)  # guidance acts
    # the empty prompt is the unconditional model, on purpose; a str is one prompt
    assert pipe("", 2, seed=0, progress=False).images.shape == (1, 3, 32, 32)


def test_pipeline_scheduler_slot(pipe):
    prompts = ["a small green triangle"]
    assert isinstance(pipe.scheduler, DDIMScheduler)  # DDIM is the default
    ddim = pipe(prompts, 4, 2.0, seed=3, progress=False).images
    assert ddim.shape == (1, 3, 32, 32)
    # eta = 0: deterministic given the seed, and a different process from DDPM
    assert torch.equal(ddim, pipe(prompts, 4, 2.0, seed=3, progress=False).images)
    # eta > 0 adds fresh noise at every step (drawn from the same seeded generator)
    noisy = pipe(prompts, 4, 2.0, seed=3, progress=False, eta=1.0).images
    assert not torch.equal(ddim, noisy)
    assert torch.equal(noisy, pipe(prompts, 4, 2.0, seed=3, progress=False, eta=1.0).images)
    # the slot is swapped diffusers-style, keeping the checkpoint's schedule
    ddim_scheduler = pipe.scheduler
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    try:
        assert pipe.scheduler.alphas_cumprod.equal(ddim_scheduler.alphas_cumprod)
        assert pipe.scheduler.config.prediction_type == "v_prediction"
        assert not torch.equal(ddim, pipe(prompts, 4, 2.0, seed=3, progress=False).images)
        with pytest.raises(ValueError, match="DDPMScheduler.step takes no 'eta'"):
            pipe(["a red circle"], 2, eta=0.5, progress=False)
    finally:
        pipe.scheduler = ddim_scheduler
    assert pipe.config["kind"] == "text2img"  # the pipeline keeps its checkpoint's config


def test_encode_image_is_the_inverse_of_decode(pipe):
    images = ShapesDataset(4, seed=2).tensors()
    latents = pipe.encode_image(images)
    assert latents.shape == (4, *pipe.latent_shape)
    assert (pipe.decode(latents).cpu() - images).abs().mean() < 0.05  # the VAE's reconstruction
    with pytest.raises(ValueError, match="x must be an image batch"):
        pipe.encode_image(torch.zeros(1, 3, 30, 30))


def test_pipeline_bad_input(pipe):
    with pytest.raises(ValueError, match="eta must be a float in"):
        pipe(["a red circle"], 2, eta=2.0, progress=False)
    with pytest.raises(ValueError, match=r"num_inference_steps must be an int in \[1, 1000\]"):
        pipe(["a red circle"], 1001, progress=False)
    with pytest.raises(ValueError, match="unknown word 'purple'.*vocabulary is a, above"):
        pipe(["a purple circle"], 2, progress=False)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number >= 1"):
        pipe(["a red circle"], 2, guidance_scale=0.5, progress=False)
    with pytest.raises(ValueError, match="num_inference_steps must be a positive int"):
        pipe(["a red circle"], 0, progress=False)
    too_long = " ".join(["a red circle above a blue square"] * 3)
    with pytest.raises(ValueError, match="unexpected 'a' after the second object. Prompts follow the"):
        pipe([too_long], 2, progress=False)
    pipe.strict = False  # outside the grammar on purpose: the tokenizer still refuses what cannot fit
    try:
        with pytest.raises(ValueError, match="has 21 words; at most 14 fit"):
            pipe([too_long], 2, progress=False)
        assert pipe(["circle red a"], 2, progress=False).images.shape == (1, 3, 32, 32)
    finally:
        pipe.strict = True
    outside = [("circle red a square blue", "expected the article"), ("the the the", "expected the article"),
               ("a red circle above", "got the end of the caption"),
               ("a small red circle to the left of a blue square", "two-object captions name no size")]
    for prompt, wrong in outside:
        with pytest.raises(ValueError, match=wrong):
            pipe([prompt], 2, progress=False)
    with pytest.raises(ValueError, match="prompts must be a str or a non-empty list"):
        pipe([], 2, progress=False)


def test_loss_drops_the_caption_sometimes(trained):
    task = text2img_task("quick", data_size=8, text_encoder_path=trained / "clip")
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x, t, context):
            seen.append(context)
            return self.model(x, t, context)

    spy = Spy(task.model)
    for step in range(10):
        task.loss(spy, torch.Generator().manual_seed(step), 32)
    contexts = torch.cat(seen).cpu()
    clip_model = load_pretrained("clip", trained / "clip", device="cpu")[0]  # (the CPU even where CUDA is)
    encoder = TextEncoder.from_clip(clip_model, build_tokenizer())
    empty = encoder([""])[0].cpu()  # the empty prompt's context replaces a dropped caption
    # equal on the CPU; within float error where the task encoded on a GPU (other kernels)
    same = torch.isclose(contexts, empty, rtol=1e-4, atol=1e-4)
    dropped = same.flatten(1).all(dim=1).float().mean().item()
    assert 0.03 < dropped < 0.2  # about CAPTION_DROPOUT of 320 examples


def test_generate_command(trained, tmp_path, capsys, monkeypatch):
    # a checkpoints folder as data/checkpoints is: the shipped VAE beside the tiny clip and U-Net
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name, target in [("vae", checkpoint_dir() / "vae"), ("clip", trained / "clip"),
                         ("text2img", trained / "text2img")]:
        (folder / name).symlink_to(target.resolve())
    monkeypatch.setenv("MINILDM_CHECKPOINTS", str(folder))
    out = tmp_path / "gen.png"
    args = ["generate", "a red circle", "a small blue square", "-n", "2", "--steps", "2", "-o", str(out)]
    assert main(args) == 0
    assert out.stat().st_size > 1000 and "4 image(s) written" in capsys.readouterr().out
    assert main(["generate", "a red circle", "--sampler", "ddim", "--eta", "0", "--steps", "3",
                 "-o", str(out)]) == 0
    assert "1 image(s) written" in capsys.readouterr().out
    # a bad prompt: one line on stderr, exit 1, no traceback, the good picture kept
    before = out.read_bytes()
    assert main(["generate", "a purple circle", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minildm: error: ") and "unknown word 'purple'" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out.read_bytes() == before


def test_a_transformers_clip_folder_as_text_encoder(tmp_path):
    """The path for users online: any transformers CLIP folder with its tokenizer (here a tiny,
    randomly initialised one saved locally) can condition a U-Net, which records where it is."""
    tokenizer = build_tokenizer()
    tiny = MiniCLIPConfig(text_width=32, text_layers=1, text_heads=2, text_intermediate=64, patch_size=8,
                          vision_width=32, vision_layers=1, vision_heads=2, vision_intermediate=64,
                          projection_dim=32)
    torch.manual_seed(0)
    build_clip(tiny, tokenizer).save_pretrained(tmp_path / "hf_clip")
    save_tokenizer(tokenizer, tmp_path / "hf_clip")
    assert 0 == main(["train", "text2img", *TINY, "--text-encoder", str(tmp_path / "hf_clip"),
          "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "t2i")])
    config = json.loads((tmp_path / "t2i" / "config.json").read_text())
    assert config["text_encoder"]["kind"] == "transformers" and config["model"]["unet"]["context_dim"] == 32
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "t2i")  # finds the CLIP folder it recorded
    assert pipe(["a red circle"], 2, progress=False).images.shape == (1, 3, 32, 32)


def test_text_encoder_width_must_match_the_unet(pipe, tmp_path):
    tokenizer = build_tokenizer()
    other = MiniCLIPConfig(text_width=32, text_heads=2, vision_width=32, vision_heads=2, projection_dim=32)
    encoder = TextEncoder.from_clip(build_clip(other, tokenizer), tokenizer)
    with pytest.raises(ValueError, match="context of width 64, the text encoder gives 32"):
        TextToImagePipeline(pipe.unet, pipe.scheduler, pipe.vae, pipe.scale_factor, encoder)


def test_tokenizer_command_rebuilds_the_shipped_tokenizer(tmp_path, capsys):
    assert main(["tokenizer", "-o", str(tmp_path / "tok")]) == 0
    assert "26 tokens, context length 16" in capsys.readouterr().out
    shipped = tokenizer_dir() / "tokenizer.json"
    assert (tmp_path / "tok" / "tokenizer.json").read_text() == shipped.read_text()
