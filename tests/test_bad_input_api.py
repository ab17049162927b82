"""Bad input to the library, as a careful user gives it: each row is a call, the error type it must
raise and a regex its message must match (naming the argument or the file, and what was expected).
Rows that read files also check that nothing on disk changed. The last tests check what must keep
working: NumPy integers where ints are expected, float16 checkpoints, every shipped checkpoint."""

from __future__ import annotations

import json
import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from minildm.checkpoints import (
    CONFIG_NAME,
    KINDS,
    WEIGHTS_NAME,
    checkpoint_dir,
    load_pretrained,
    load_text_encoder,
    load_vae,
    save_model,
)
from minildm.data import ShapesDataset, render_caption
from minildm.data.toy2d import two_peaks
from minildm.imageio import load_image, load_mask
from minildm.metrics import score
from minildm.metrics.evaluation import batch_seed
from minildm.metrics.prompts import prompt_set
from minildm.pipelines import Img2ImgPipeline, InpaintPipeline, LatentDiffusionPipeline, TextToImagePipeline
from minildm.schedulers import DDIMScheduler
from minildm.tasks.text2img import text2img_task
from minildm.text import TextEncoder
from minildm.utils import check_probability, seed_everything
from minildm.validation import check_seed


@pytest.fixture(scope="module")
def img2img():
    return Img2ImgPipeline.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def inpaint():
    return InpaintPipeline.from_pretrained(device="cpu")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _copy(kind: str, to: Path, name: str | None = None) -> Path:
    return Path(shutil.copytree(checkpoint_dir() / kind, to / (name or kind)))


def _edit_config(folder: Path, edit) -> Path:
    config = json.loads((folder / CONFIG_NAME).read_text())
    edit(config)
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


def _edit_weights(folder: Path, edit) -> Path:
    state = load_file(str(folder / WEIGHTS_NAME))
    edit(state)
    save_file(state, str(folder / WEIGHTS_NAME))
    return folder


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` grey pixels (one tiny, truncated IDAT): the header
    is all a reader needs to know its size, and it takes no time or memory to make."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def _truncated_png(path: Path, mode: str) -> Path:
    rng = np.random.default_rng(0)  # noise, so that the compressed data is long enough to cut
    shape = (32, 32, 3) if mode == "RGB" else (32, 32)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# ------------------------------------------------ files: (setup(tmp_path) -> call, error, message)

# The shipped VAE's first weight, used to plant a wrong dtype.
VAE_WEIGHT = "encoder.conv_in.weight"


def _vae_stored_as(dtype: torch.dtype):
    def setup(tmp: Path):
        folder = _edit_weights(_copy("vae", tmp), lambda s: s.update({VAE_WEIGHT: s[VAE_WEIGHT].to(dtype)}))
        return lambda: load_vae(folder, device="cpu")

    return setup


def _text2img_without(key: str):
    def setup(tmp: Path):
        folder = _edit_config(_copy("text2img", tmp), lambda c: c.pop(key))
        return lambda: TextToImagePipeline.from_pretrained(folder, device="cpu")

    return setup


def _text2img_with(edit):
    def setup(tmp: Path):
        folder = _edit_config(_copy("text2img", tmp), edit)
        return lambda: TextToImagePipeline.from_pretrained(folder, device="cpu")

    return setup


def _copy_with(kind: str, edit, load):
    def setup(tmp: Path):
        folder = _edit_config(_copy(kind, tmp), edit)
        return lambda: load(folder)

    return setup


def _vae_with(edit):
    def setup(tmp: Path):
        folder = _edit_config(_copy("vae", tmp), edit)
        return lambda: load_vae(folder, device="cpu")

    return setup


def _image_file(make, loader):
    def setup(tmp: Path):
        path = make(tmp)
        return lambda: loader(path, 32)

    return setup


CONFIG = r"text2img[/\\]config\.json'"
FILE_CASES = [
    # 1. a tensor stored in another dtype than the model's is refused, not cast
    ("int32 weight", _vae_stored_as(torch.int32), ValueError,
     rf"vae[/\\]model\.safetensors'.*tensor '{VAE_WEIGHT}' is stored as torch\.int32, "
     r"the model's is torch\.float32"),
    ("float64 weight", _vae_stored_as(torch.float64), ValueError,
     r"stored as torch\.float64, the model's is"),
    ("float16 weight, config says float32", _vae_stored_as(torch.float16), ValueError,
     r"'encoder\.conv_in\.weight' is stored as torch\.float16"),
    # 4. a config with a section missing, or an entry of the wrong type: the file, the key, the type
    ("no text_encoder", _text2img_without("text_encoder"), ValueError,
     CONFIG + r" has no 'text_encoder' section \(expected a JSON object\)"),
    ("no vae", _text2img_without("vae"), ValueError,
     CONFIG + r" has no 'vae' section \(expected a JSON object\)"),
    ("no scheduler", _text2img_without("scheduler"), ValueError,
     CONFIG + r" has no 'scheduler' section \(expected a JSON object\)"),
    ("no model", _text2img_without("model"), ValueError, CONFIG + r" has no 'model' section"),
    ("text2img scale_factor a str", _text2img_with(lambda c: c["vae"].update(scale_factor="0.5")), ValueError,
     CONFIG + r": 'vae\.scale_factor' must be a number \(finite\), got '0\.5'"),
    ("text2img scale_factor 0", _text2img_with(lambda c: c["vae"].update(scale_factor=0)), ValueError,
     CONFIG + r": 'vae\.scale_factor' must be a number > 0, got 0"),
    ("text2img VAE ch a str", _text2img_with(lambda c: c["vae"]["model"]["vae"].update(ch="16")), ValueError,
     r"the VAE checkpoint '.*vae' is not the one this U-Net was trained with"),
    ("text encoder kind a list", _text2img_with(lambda c: c["text_encoder"].update(kind=["clip"])),
     ValueError,
     CONFIG + r": 'text_encoder\.kind' must be a str, got \['clip'\]"),
    ("clip_skip a str", _text2img_with(lambda c: c["text_encoder"].update(clip_skip="2")), ValueError,
     CONFIG + r": 'text_encoder\.clip_skip' must be an int, got '2'"),
    ("DiT depth a float", _text2img_with(lambda c: c["model"]["dit"].update(depth=4.0)), ValueError,
     CONFIG + r": 'model\.dit\.depth' must be an int, got 4\.0"),
    ("scheduler typo", _text2img_with(lambda c: c["scheduler"].update(beta_shedule="linear")), ValueError,
     CONFIG + r": unknown key 'scheduler\.beta_shedule' \(expected some of \["),
    ("student steps a str",
     _copy_with("lcm", lambda c: c["distillation"].update(original_inference_steps="50"),
                lambda f: TextToImagePipeline.from_pretrained(f, device="cpu")),
     ValueError, r"lcm[/\\]config\.json': 'distillation\.original_inference_steps' must be an int, got '50'"),
    ("latent_ddpm without vae",
     _copy_with("latent_ddpm", lambda c: c.pop("vae"), lambda f: LatentDiffusionPipeline.from_pretrained(f)),
     ValueError, r"latent_ddpm[/\\]config\.json' has no 'vae' section"),
    ("VAE scale_factor a str", _vae_with(lambda c: c.update(scale_factor="0.5")), ValueError,
     r"vae[/\\]config\.json': 'scale_factor' must be a number \(finite\), got '0\.5'"),
    ("VAE scale_factor missing", _vae_with(lambda c: c.pop("scale_factor")), ValueError,
     r"vae[/\\]config\.json' has no 'scale_factor' entry \(expected a number\)"),
    ("VAE ch a str", _vae_with(lambda c: c["model"]["vae"].update(ch="16")), ValueError,
     r"vae[/\\]config\.json': 'model\.vae\.ch' must be an int, got '16'"),
    ("VAE ch_mult of str", _vae_with(lambda c: c["model"]["vae"].update(ch_mult=["1", "2", "4"])), ValueError,
     r"vae[/\\]config\.json': 'model\.vae\.ch_mult' must be a list of which each item is an int, got \['1'"),
    ("VAE model section a list", _vae_with(lambda c: c["model"].update(vae=[16])), ValueError,
     r"vae[/\\]config\.json': 'model\.vae' must be a JSON object, got \[16\]"),
    # 5. image files: the file named, what was expected said, absurd sizes refused before decoding
    ("truncated mask", _image_file(lambda t: _truncated_png(t / "mask.png", "L"), load_mask), ValueError,
     r"mask '.*mask\.png' is damaged and cannot be decoded .*expected a 32 x 32 PNG \(black and white\)"),
    ("truncated image", _image_file(lambda t: _truncated_png(t / "in.png", "RGB"), load_image), ValueError,
     r"image '.*in\.png' is damaged and cannot be decoded .*expected a 32 x 32 PNG \(RGB\)"),
    ("20000 x 20000 mask", _image_file(lambda t: _png_header(t / "big.png", 20000, 20000), load_mask),
     ValueError,
     r"mask '.*big\.png' is far too large \(Image size \(400000000 pixels\).*refused before decoding"),
    ("10000 x 10000 mask", _image_file(lambda t: _png_header(t / "big.png", 10000, 10000), load_mask),
     ValueError, r"mask '.*big\.png' is 10000 x 10000; the model works at 32 x 32"),
    ("not an image", _image_file(lambda t: (t / "x.png").write_text("hello") and t / "x.png", load_image),
     ValueError, r"image '.*x\.png' is not an image file PIL can read .*expected a 32 x 32 PNG"),
]


@pytest.mark.parametrize("name, setup, error, message", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_files_refused(tmp_path, name, setup, error, message):
    call = setup(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(error, match=message):
        call()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing changed


def test_missing_vae_section_names_no_vae_the_user_never_named(tmp_path):
    folder = _edit_config(_copy("text2img", tmp_path), lambda c: c.pop("vae"))
    with pytest.raises(ValueError) as info:
        TextToImagePipeline.from_pretrained(folder, device="cpu")
    assert "checkpoints/vae" not in str(info.value) and "text2img" in str(info.value)


# ------------------------------------------------ the API: (call, error, message)

NOT_A_CLIP = (r"is not a text encoder \('.*config\.json' describes a 'vae' model\): expected a CLIP text "
              r"encoder: text_model/")
API_CASES = [
    # 3. an empty batch
    ("encode_image of no image", lambda p: p.encode_image(torch.zeros(0, 3, 32, 32)), ValueError,
     r"images is an empty batch, shape \(0, 3, 32, 32\): give at least one image"),
    # 3. images and masks of another size than the model's, refused at the pipeline's door
    ("img2img 64 x 64", lambda p: p("a red circle", torch.zeros(3, 64, 64), num_inference_steps=2,
                                    progress=False).images, ValueError,
     r"image is 64 x 64 \(W x H\); this model works at 32 x 32"),
    ("img2img empty batch", lambda p: p("a red circle", torch.zeros(0, 3, 32, 32), progress=False).images,
     ValueError, r"image is an empty batch"),
    ("img2img strength as a str", lambda p: p("a red circle", torch.zeros(3, 32, 32), strength="0.5").images,
     ValueError, r"strength must be a number in \(0, 1\]"),
    # 2/7. one seed rule, NumPy integers included
    ("img2img seed -1 (numpy)", lambda p: p("a red circle", torch.zeros(3, 32, 32), seed=np.int64(-1)).images,
     ValueError, r"seed must be an int in \[0, 2\*\*63 - 1\], got np\.int64\(-1\)"),
    ("img2img steps 0 (numpy)", lambda p: p("a red circle", torch.zeros(3, 32, 32),
                                            num_inference_steps=np.int64(0)).images, ValueError,
     r"num_inference_steps must be a positive int, got np\.int64\(0\)"),
    ("render_caption seed -1", lambda p: render_caption("a red circle", seed=-1), ValueError,
     r"seed must be an int in \[0, 2\*\*63 - 1\], got -1"),
    ("render_caption seed 2**64", lambda p: render_caption("a red circle", seed=2**64), ValueError,
     r"seed must be an int in \[0, 2\*\*63 - 1\], got 18446744073709551616"),
    ("render_caption seed 1.0", lambda p: render_caption("a red circle", seed=1.0), ValueError,
     r"seed must be an int"),
    ("ShapesDataset seed -1", lambda p: ShapesDataset(4, seed=-1), ValueError,
     r"seed must be an int in \[0,"),
    ("ShapesDataset seed 2**64", lambda p: ShapesDataset(4, seed=2**64), ValueError,
     r"seed must be an int in"),
    ("ShapesDataset omit_prob NaN", lambda p: ShapesDataset(4, omit_prob=float("nan")), ValueError,
     r"omit_prob must be a number in \[0, 1\], got nan"),
    ("ShapesDataset fraction a str", lambda p: ShapesDataset(4, two_object_fraction="0.5"), ValueError,
     r"two_object_fraction must be a number in \[0, 1\], got '0\.5'"),
    ("ShapesDataset one caption", lambda p: ShapesDataset(captions="a red circle"), ValueError,
     r"captions must be a list of str \(one image each\), got one str 'a red circle': pass \['a red"),
    ("two_peaks seed -1", lambda p: two_peaks(10, seed=-1), ValueError, r"seed must be an int in \[0,"),
    ("prompt_set seed 2**64", lambda p: prompt_set("one", 2, seed=2**64), ValueError,
     r"seed must be an int in"),
    ("batch_seed -1", lambda p: batch_seed(-1, 0), ValueError, r"seed must be an int in \[0,"),
    ("check_probability bool", lambda p: check_probability("p", True), ValueError, r"p must be a number in"),
    # 8. one caption where a list is expected
    ("score with a str", lambda p: score(np.zeros((1, 32, 32, 3), np.uint8), "a red circle"), ValueError,
     r"captions must be a list of str, one per image, got one str 'a red circle': pass \['a red circle'\]"),
    ("score with None", lambda p: score(np.zeros((1, 32, 32, 3), np.uint8), None), ValueError,
     r"captions must be a list of str, one per image, got NoneType"),
    # 6. a Hub id offline, and local folders that are not text encoders
    ("hub id", lambda p: TextEncoder.from_pretrained("openai/clip-vit-base-patch32"), FileNotFoundError,
     r"'openai/clip-vit-base-patch32': no such folder \(it looks like a Hugging Face Hub id\)\. "
     r"A local folder is needed .*`hf download openai/clip-vit-base-patch32 --local-dir DIR`"),
    ("VAE folder as text encoder", lambda p: TextEncoder.from_pretrained(checkpoint_dir() / "vae"),
     ValueError, NOT_A_CLIP),
    ("mini CLIP checkpoint as text encoder", lambda p: TextEncoder.from_pretrained(checkpoint_dir() / "clip"),
     ValueError, r"describes a 'clip' model.*loads with minildm\.checkpoints\.load_text_encoder"),
    ("a file as text encoder", lambda p: TextEncoder.from_pretrained(checkpoint_dir() / "vae" / CONFIG_NAME),
     FileNotFoundError, r"config\.json': not a folder\. A local folder is needed"),
    ("train text2img on a hub id", lambda p: text2img_task(text_encoder_path="openai/clip-vit-base-patch32"),
     FileNotFoundError, r"'openai/clip-vit-base-patch32': no such folder .*hf download"),
]


@pytest.mark.parametrize("name, call, error, message", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses(img2img, name, call, error, message):
    timesteps = img2img.scheduler.timesteps
    with pytest.raises(error, match=message):
        call(img2img)
    assert img2img.scheduler.timesteps is timesteps  # refused before any sampling


def test_inpaint_checks_sizes_at_the_door(inpaint):
    mask = torch.zeros(32, 32)
    mask[8:16, 8:16] = 1
    cases = [
        (torch.zeros(3, 64, 64), torch.ones(64, 64), r"image is 64 x 64 \(W x H\); this model works at 32"),
        (torch.zeros(3, 32, 32), torch.ones(64, 64), r"mask is \(64, 64\) but the image is \(32, 32\)"),
        (torch.zeros(0, 3, 32, 32), mask, r"image is an empty batch"),
        (torch.zeros(3, 32, 32), torch.zeros(0, 1, 32, 32), r"mask is empty, shape \(0, 1, 32, 32\)"),
    ]
    for image, m, message in cases:
        with pytest.raises(ValueError, match=message):
            inpaint("a red circle", image, m, num_inference_steps=2, progress=False)


def test_empty_text_encoder_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not a text encoder \(no config\.json\): expected"):
        TextEncoder.from_pretrained(tmp_path)


def test_hub_id_fails_at_once():
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="A local folder is needed"):
        TextEncoder.from_pretrained("openai/clip-vit-base-patch32")
    assert time.perf_counter() - start < 1.0  # no retries against the network


# ------------------------------------------------ what must keep working


def test_numpy_integers_are_ints(img2img, inpaint):
    """``for seed in np.arange(...)`` gives NumPy integers: every pipeline takes them, exactly as ints."""
    text2img = TextToImagePipeline(img2img.unet, img2img.scheduler, img2img.vae, img2img.scale_factor,
                                   img2img.text_encoder, config=img2img.config)
    expected = text2img("a red circle", num_inference_steps=2, seed=3, progress=False).images
    for seed, steps in [(np.int64(3), np.int64(2)), (np.int32(3), np.uint8(2))]:
        got = text2img("a red circle", num_inference_steps=steps, seed=seed, progress=False).images
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    composed = text2img("a red circle to the left of a blue square", num_inference_steps=np.int64(2),
                        seed=np.int64(1), phrase_guidance=np.int64(1), progress=False).images
    assert composed.shape == (1, 3, 32, 32)
    image = expected[0]
    edited = img2img("a blue circle", image, num_inference_steps=np.int64(2), seed=np.int64(3),
                     progress=False).images
    again = img2img("a blue circle", image, num_inference_steps=2, seed=3, progress=False)
    assert torch.equal(edited, again.images)
    mask = torch.zeros(32, 32)
    mask[:16] = 1
    painted = inpaint("a red circle", image, mask, num_inference_steps=np.int64(2), seed=np.int64(0),
                      resample_steps=np.int64(1), progress=False).images
    assert painted.shape == (1, 3, 32, 32)
    latent = LatentDiffusionPipeline.from_pretrained(device="cpu")
    torch.testing.assert_close(latent(np.int64(1), np.int64(2), seed=np.int64(3), progress=False),
                               latent(1, 2, seed=3, progress=False), rtol=0, atol=0)
    with_numpy, with_int = DDIMScheduler(), DDIMScheduler()
    with_numpy.set_timesteps(np.int64(5))
    with_int.set_timesteps(5)
    assert with_numpy.timesteps.tolist() == with_int.timesteps.tolist()
    assert type(with_numpy.num_inference_steps) is int


def test_numpy_integers_in_data():
    np.testing.assert_array_equal(render_caption("a red circle", seed=np.int64(3), image_size=np.int64(32)),
                                  render_caption("a red circle", seed=3))
    a, b = ShapesDataset(np.int64(3), seed=np.int64(5), image_size=np.int64(32)), ShapesDataset(3, seed=5)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions and type(a.seed) is int
    assert check_seed("seed", np.uint64(2**63 - 1)) == 2**63 - 1
    for seed in np.arange(2, 3):  # what a loop over seeds gives
        first = torch.rand(3, generator=seed_everything(seed)), torch.rand(3)
        second = torch.rand(3, generator=seed_everything(int(seed))), torch.rand(3)
        assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_float16_checkpoints_still_load(tmp_path):
    """A config that says ``"weights_dtype": "float16"`` may store float16 weights (the LCM student does)."""
    model, _, config = load_pretrained("vae", device="cpu")
    save_model(tmp_path / "half", model.state_dict(), dict(config, weights_dtype="float16"))
    half, _ = load_vae(tmp_path / "half", device="cpu")
    for name, weight in half.state_dict().items():
        assert weight.dtype == torch.float32
        torch.testing.assert_close(weight, model.state_dict()[name].half().float(), rtol=0, atol=0)


@pytest.mark.parametrize("folder", sorted(p.name for p in checkpoint_dir().iterdir() if p.is_dir()))
def test_every_shipped_checkpoint_loads(folder):
    path = checkpoint_dir() / folder
    kind = json.loads((path / CONFIG_NAME).read_text())["kind"]
    assert kind in KINDS
    before = _snapshot(path)
    model, scheduler, _ = load_pretrained(kind, path, device="cpu")
    assert (scheduler is None) == (kind in ("vae", "clip"))
    if kind == "clip":
        load_text_encoder(path, device="cpu")
    if kind == "text2img":
        TextToImagePipeline.from_pretrained(path, device="cpu")
    assert _snapshot(path) == before
