"""The command line with a Stable Diffusion checkpoint: a tiny SD 1.x-shaped folder of random weights
(built as tests/test_stable_diffusion.py builds it), 64 x 64 pictures, two or three steps."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import StableDiffusionPipeline  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from test_stable_diffusion import _components  # noqa: E402

from minildm.cli import main  # noqa: E402
from minildm.pipelines import Img2ImgPipeline, InpaintPipeline, TextToImagePipeline  # noqa: E402
from minildm.utils import from_uint8, to_uint8  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread_no_bars(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("MINILDM_PROGRESS", "0")
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sd(tmp_path_factory) -> Path:
    """A diffusers SD folder: U-Net sample size 8, so 64 x 64 pictures (sizes: multiples of 32)."""
    root = tmp_path_factory.mktemp("sd_cli")
    diffusers.utils.logging.set_verbosity_error()
    pipe = StableDiffusionPipeline(
        **_components(1, root), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.save_pretrained(root / "sd")
    return root / "sd"


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "in.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(root / "mask.png")
    Image.new("RGB", (64, 32), "red").save(root / "wide.png")
    Image.new("RGB", (48, 48), "red").save(root / "small.png")
    return {"image": root / "in.png", "mask": root / "mask.png", "wide": root / "wide.png",
            "small": root / "small.png"}


def _saved(folder: Path) -> np.ndarray:
    return np.asarray(Image.open(folder / "000.png"))


def _run(args: list[str], tmp_path: Path) -> np.ndarray:
    out = tmp_path / "out"
    assert main([*args, "-o", str(tmp_path / "fig.png"), "--save-dir", str(out), "--device", "cpu"]) == 0
    assert (tmp_path / "fig.png").is_file()
    return _saved(out)


def test_generate_writes_the_asked_size_and_equals_the_pipeline(sd, tmp_path):
    args = ["generate", "a red cat", "--checkpoint", str(sd), "--steps", "2", "--seed", "4"]
    square = _run(args, tmp_path / "a")
    assert square.shape == (64, 64, 3)  # the U-Net config's sample size x the VAE's 8
    wide = _run([*args, "--height", "64", "--width", "96", "--guidance", "5"], tmp_path / "b")
    assert wide.shape == (64, 96, 3)
    pipe = TextToImagePipeline.from_pretrained(sd, device="cpu")
    ours = pipe(["a red cat"], 2, 7.5, seed=4, progress=False).images  # SD's guidance, the CLI's default
    assert np.array_equal(square, to_uint8(ours)[0])
    assert np.array_equal(wide, to_uint8(pipe(["a red cat"], 2, 5.0, seed=4, progress=False, height=64,
                                              width=96).images)[0])


def test_sd_defaults_come_from_the_checkpoint(sd):
    from minildm.commands import _load_pipeline
    from minildm.sd_commands import SD_GUIDANCE, SD_STEPS, load_sd_pipeline

    args = argparse.Namespace(checkpoint=sd, tokenizer=None, device="cpu", sampler=None, no_strict=False,
                              dtype=None, steps=None, guidance=None, height=None, width=None)
    given = dict(vars(args))
    pipe, sampling = _load_pipeline(TextToImagePipeline, args, stable_diffusion=True)
    assert (sampling.steps, sampling.guidance, sampling.size) == (SD_STEPS, SD_GUIDANCE, (64, 64))
    assert (SD_STEPS, SD_GUIDANCE) == (25, 7.5) and sampling.sampler == "ddim"  # the folder's DDIMScheduler
    assert vars(args) == given  # the options are read, never rewritten
    args = argparse.Namespace(**{**vars(args), "sampler": "euler"})
    assert type(load_sd_pipeline(TextToImagePipeline, args).scheduler).__name__ == "EulerDiscreteScheduler"
    assert pipe.any_size and pipe.size_multiple == 32


def test_img2img_and_inpaint_equal_their_pipelines(sd, pictures, tmp_path):
    common = ["--checkpoint", str(sd), "--steps", "3", "--seed", "2"]
    edited = _run(["img2img", str(pictures["image"]), "a red cat", "--strength", "0.7", *common],
                  tmp_path / "i")
    image = from_uint8(np.array(Image.open(pictures["image"]))).unsqueeze(0)
    pipe = Img2ImgPipeline.from_pretrained(sd, device="cpu")
    expected = pipe(["a red cat"], image, 0.7, 3, 7.5, seed=2, progress=False).images
    assert edited.shape == (64, 64, 3) and np.array_equal(edited, to_uint8(expected)[0])
    repainted = _run(["inpaint", str(pictures["image"]), str(pictures["mask"]), "an apple", *common],
                     tmp_path / "p")
    mask = torch.from_numpy(np.array(Image.open(pictures["mask"])) / 255.0).float()
    pipe = InpaintPipeline.from_pretrained(sd, device="cpu")
    expected = pipe(["an apple"], image, mask, 3, 7.5, seed=2, progress=False).images
    assert repainted.shape == (64, 64, 3) and np.array_equal(repainted, to_uint8(expected)[0])


def test_a_long_prompt_warns_in_one_line_how_many_tokens_are_dropped(sd, tmp_path, capsys):
    prompt = " ".join(["a red cat"] * 40)  # 120 words: 122 tokens with the start and end tokens
    assert main(["generate", prompt, "--checkpoint", str(sd), "--steps", "1", "-o", str(tmp_path / "f.png"),
                 "--device", "cpu"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("minildm: warning")]
    start = "a red cat a red cat a red cat a red c..."
    assert warnings == [f"minildm: warning: CLIP reads at most 77 tokens: the prompt {start!r} has 122, "
                        f"its last 45 are dropped ({start!r})"]


def _single_file(sd: Path, to: Path) -> Path:
    """The folder's weights as one original-layout file (CompVis' names), as SD's releases ship."""
    from minildm.stable_diffusion import load_sd_folder

    parts = load_sd_folder(sd, device="cpu")
    unet = parts["backbone"].state_dict()
    state = {"model.diffusion_model." + k.replace("time_embed.linear_1.", "time_embed.0.")
             .replace("time_embed.linear_2.", "time_embed.2."): v for k, v in unet.items()}
    state |= {"first_stage_model." + k: v for k, v in parts["vae"].state_dict().items()}
    text = parts["text_encoder"].text_model
    state |= {"cond_stage_model.transformer.text_model." + k: v
              for k, v in getattr(text, "text_model", text).state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(to))
    return to


def test_a_single_file_with_its_tokenizer_draws_what_the_folder_draws(sd, tmp_path, capsys):
    single = _single_file(sd, tmp_path / "sd.safetensors")
    args = ["generate", "an apple", "--steps", "2", "--seed", "1"]
    from_file = _run([*args, "--checkpoint", str(single), "--tokenizer", str(sd)], tmp_path / "s")
    assert np.array_equal(from_file, _run([*args, "--checkpoint", str(sd)], tmp_path / "f"))
    assert main([*args, "--checkpoint", str(single), "--tokenizer", str(sd), "--height", "48",
                 "-o", str(tmp_path / "x.png")]) == 1  # (a single file's size rules: known once read)
    err = capsys.readouterr().err
    assert "--height 48: this Stable Diffusion model draws sizes that are multiples of 32" in err


def test_half_precision_unet_stays_close_to_float32(sd):
    """--dtype float16 runs on a GPU only; the wrapper itself is checked here, on the CPU's float16."""
    from minildm.stable_diffusion.precision import HalfPrecisionUNet

    pipe = TextToImagePipeline.from_pretrained(sd, device="cpu")
    full = pipe(["a red cat"], 2, 7.5, seed=0, progress=False).images
    pipe.unet = HalfPrecisionUNet(pipe.unet)
    half = pipe(["a red cat"], 2, 7.5, seed=0, progress=False).images
    assert half.dtype == torch.float32 and next(pipe.unet.parameters()).dtype == torch.float16
    assert (half - full).abs().max().item() < 0.05


HUB = "stable-diffusion-v1-5/stable-diffusion-v1-5"
BAD = [
    (["--checkpoint", "{tmp}/missing"],
     "--checkpoint '{tmp}/missing': no such folder or file; a local folder is needed"),
    (["--checkpoint", HUB],
     f"a local folder is needed (a Hugging Face model id? fetch it once, online: hf download {HUB} "
     "--local-dir stable-diffusion-v1-5; then --checkpoint stable-diffusion-v1-5)"),
    (["--checkpoint", "{tmp}/sd.ckpt"],
     "--checkpoint '{tmp}/sd.ckpt': a pickle checkpoint (.ckpt) can run code"),
    (["--checkpoint", "{tmp}/neither"], "--checkpoint '{tmp}/neither' is neither a minildm checkpoint"),
    (["--checkpoint", "{sd}", "--height", "60"],
     "--height 60: this Stable Diffusion model draws sizes that are multiples of 32 (its VAE shrinks by 8, "
     "its U-Net by 4 more), e.g. 64"),
    (["--checkpoint", "{sd}", "--width", "0"], "--width must be a positive int"),
    (["--checkpoint", "{sd}", "--fp16", "--device", "cpu"],
     "--dtype float16 needs a GPU (--device cuda or mps)"),
    (["--checkpoint", "{sd}", "--tokenizer", "{sd}"], "--tokenizer applies to a single-file --checkpoint"),
    (["--checkpoint", "{tmp}/sd.safetensors"],
     "is a single file, which holds no tokenizer: pass --tokenizer"),
    (["--height", "64"], "--height applies to Stable Diffusion checkpoints"),
    (["--dtype", "float16"], "--dtype float16 applies to Stable Diffusion checkpoints"),
]


@pytest.mark.parametrize("extra, message", BAD, ids=[" ".join(c[0])[:40] for c in BAD])
def test_bad_input_is_refused_in_one_line_before_loading(sd, tmp_path, capsys, monkeypatch, extra, message):
    import minildm.stable_diffusion

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(minildm.stable_diffusion, "load_components", refuse)
    (tmp_path / "sd.ckpt").write_bytes(b"not read")
    (tmp_path / "sd.safetensors").write_bytes(b"not read either")
    (tmp_path / "neither").mkdir()
    fill = {"{tmp}": str(tmp_path), "{sd}": str(sd)}
    args = ["generate", "a red cat", *extra, "-o", str(tmp_path / "fig.png")]
    for key, value in fill.items():
        args, message = [a.replace(key, value) for a in args], message.replace(key, value)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("minildm: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "fig.png").exists()


@pytest.mark.parametrize("picture, message", [
    ("wide", "is 64 x 32; Stable Diffusion edits a square picture here"),
    ("small", "is 48 x 48: this Stable Diffusion model works on sizes that are multiples of 32"),
])
def test_an_image_sd_cannot_take_is_refused_before_loading(sd, pictures, tmp_path, capsys, monkeypatch,
                                                          picture, message):
    import minildm.stable_diffusion

    monkeypatch.setattr(minildm.stable_diffusion, "load_components", lambda *a, **k: 1 / 0)
    assert main(["img2img", str(pictures[picture]), "a red cat", "--checkpoint", str(sd),
                 "-o", str(tmp_path / "fig.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and f"IMAGE '{pictures[picture]}'" in err
