"""Lesson 08's applications: img2img (SDEdit) and inpainting, in the API and at the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from minildm.cli import main
from minildm.data import render_caption
from minildm.pipelines import Img2ImgPipeline, InpaintPipeline
from minildm.sampling import CFGDenoiser, Sampler
from minildm.schedulers import DDIMScheduler
from minildm.utils import from_uint8


@pytest.fixture(scope="module")
def img2img():
    return Img2ImgPipeline.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def inpaint():
    return InpaintPipeline.from_pretrained(device="cpu")


def _image(caption: str = "a large red circle in the top left", seed: int = 0) -> torch.Tensor:
    return from_uint8(render_caption(caption, seed=seed)).unsqueeze(0)


def test_low_strength_keeps_the_image_and_a_seed_repeats(img2img):
    image = _image()
    light = img2img("a red circle", image, strength=0.1, seed=1, progress=False).images
    assert light.shape == (1, 3, 32, 32)
    assert (light - image).abs().mean() < 0.05  # two light steps: little more than the VAE round trip
    strong = img2img("a blue circle", image, strength=1.0, seed=1, progress=False).images
    assert (strong - image).abs().mean() > (light - image).abs().mean()
    assert torch.equal(strong, img2img("a blue circle", image, strength=1.0, seed=1, progress=False).images)
    # one image for several prompts, or one per prompt
    two = img2img(["a red circle", "a green circle"], image, strength=0.5, progress=False)
    assert two.images.shape[0] == 2


def test_img2img_refuses_bad_input(img2img):
    image = _image()
    for strength in (0.0, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match=r"strength must be a number in \(0, 1\]"):
            img2img("a red circle", image, strength=strength, progress=False)
    with pytest.raises(ValueError, match="leaves no denoising step"):
        img2img("a red circle", image, strength=0.01, num_inference_steps=10, progress=False)
    with pytest.raises(ValueError, match="give one image or one per prompt"):
        img2img(["a red circle"] * 3, image.expand(2, -1, -1, -1), progress=False)
    with pytest.raises(ValueError, match=r"values in \[-1, 1\]"):
        img2img("a red circle", (image + 1) * 127.5, progress=False)


def test_the_inversion_start(img2img):
    """init="inversion" (the default with DDIM) starts from DDIM inversion of the image's latent up to the
    first timestep that runs: with eta 0 it is deterministic, so the seed does not matter, and it keeps
    the picture closer than random noise at the same strength; init="noise" is SDEdit."""
    from minildm.schedulers import DPMSolverMultistepScheduler

    image = _image("a small red square in the center", seed=2)
    prompt, steps = "a green square", 10
    inverted = img2img(prompt, image, strength=0.8, num_inference_steps=steps, seed=1, progress=False).images
    assert torch.equal(inverted, img2img(prompt, image, strength=0.8, num_inference_steps=steps, seed=7,
                                         progress=False, init="inversion").images)
    # the same thing by hand: Sampler.invert up to the start, then the guided loop from there
    z0 = img2img.encode_image(image)
    start = steps - int(steps * 0.8)
    empty = img2img.encode_prompt([""])
    z_t = Sampler().invert(CFGDenoiser(img2img.backbone, empty), z0, img2img.scheduler, steps,
                           progress=False, start_index=start)
    guided = CFGDenoiser(img2img.backbone, img2img.encode_prompt([prompt]), empty, 3.0)
    z = Sampler().sample(guided, None, img2img.scheduler, steps, latents=z_t, start_index=start,
                         progress=False)
    torch.testing.assert_close(inverted, img2img.decode(z))
    noisy = [img2img(prompt, image, strength=0.8, num_inference_steps=steps, seed=seed, progress=False,
                     init="noise").images for seed in (1, 7)]
    assert not torch.equal(noisy[0], noisy[1])
    with pytest.raises(ValueError, match="init must be one of 'inversion', 'noise', got 'ddim'"):
        img2img(prompt, image, init="ddim", progress=False)
    saved = img2img.scheduler
    try:
        img2img.scheduler = DPMSolverMultistepScheduler.from_config(saved.config)
        with pytest.raises(ValueError, match="'inversion' runs DDIM backwards and needs the DDIM sampler"):
            img2img(prompt, image, init="inversion", progress=False)
        # without init, another sampler starts from noise
        out = img2img(prompt, image, num_inference_steps=steps, progress=False)
        assert out.images.shape == (1, 3, 32, 32)
    finally:
        img2img.scheduler = saved


def test_inpainting_keeps_the_unmasked_region(inpaint):
    image = _image("a red circle to the left of a blue square", seed=3)
    mask = torch.zeros(32, 32)
    mask[:, 16:] = 1  # repaint the right half
    out = inpaint("a red circle to the left of a green triangle", image, mask, seed=0, progress=False).images
    keep = (1 - mask).bool().expand_as(out)
    outside = (out - image).abs()[keep].mean()
    inside = (out - image).abs()[~keep].mean()
    assert outside < 0.05 and inside > 2 * outside


def test_repaint_resampling_keeps_the_unmasked_region_and_needs_a_one_step_scheduler(inpaint):
    from minildm.schedulers import DPMSolverMultistepScheduler

    image = _image("a red circle to the left of a blue square", seed=3)
    mask = torch.zeros(32, 32)
    mask[:, 16:] = 1
    prompt = "a red circle to the left of a green triangle"
    kwargs = dict(seed=0, progress=False, num_inference_steps=8)
    once = inpaint(prompt, image, mask, resample_steps=1, **kwargs).images
    thrice = inpaint(prompt, image, mask, resample_steps=3, **kwargs).images
    keep = (1 - mask).bool().expand_as(thrice)
    assert (thrice - image).abs()[keep].mean() < 0.05
    assert not torch.allclose(once, thrice)  # the jumps back change the fill
    by_default = inpaint(prompt, image, mask, seed=0, progress=False, num_inference_steps=8).images
    assert torch.equal(by_default, thrice)  # DEFAULT_RESAMPLE = 3 with DDIM
    with pytest.raises(ValueError, match="resample_steps must be a positive int"):
        inpaint(prompt, image, mask, resample_steps=0, progress=False)
    ddim = inpaint.scheduler
    inpaint.scheduler = DPMSolverMultistepScheduler.from_config(ddim.config)
    try:
        with pytest.raises(ValueError, match="one-step scheduler"):
            inpaint(prompt, image, mask, resample_steps=2, progress=False)
        # by default a multistep solver inpaints without resampling, as resample_steps=1 does
        plain = inpaint(prompt, image, mask, resample_steps=1, **kwargs).images
        assert torch.equal(inpaint(prompt, image, mask, **kwargs).images, plain)
    finally:
        inpaint.scheduler = ddim


def test_inpainting_refuses_bad_masks(inpaint):
    image = _image()
    cases = [
        (torch.full((32, 32), 0.5), "must be black and white"),
        (torch.zeros(32, 32), "repaints nothing"),
        (torch.ones(16, 16), r"mask is \(16, 16\) but the image is \(32, 32\)"),
        (torch.ones(1, 3, 32, 32), "must be single-channel"),
        (torch.full((32, 32), 2.0), r"values in \[0, 1\]"),
    ]
    for mask, message in cases:
        with pytest.raises(ValueError, match=message):
            inpaint("a red circle", image, mask, progress=False)


def test_sampler_start_index_and_step_callback():
    scheduler = DDIMScheduler(clip_sample=False)
    seen = []

    def model(x, t, context=None):
        return 0.1 * x

    def record(i, t, x):
        seen.append((i, t))
        return x

    Sampler().sample(model, (1, 2), scheduler, 10, start_index=7, on_step_end=record, progress=False)
    assert seen == [(7, 200), (8, 100), (9, 0)]  # leading spacing: 900, 800, ..., 0
    for bad in (10, -1, True):
        with pytest.raises(ValueError, match=r"start_index must be an int in \[0, 9\]"):
            Sampler().sample(model, (1, 2), scheduler, 10, start_index=bad, progress=False)


# ------------------------------------------------------------------ the command line


def _png(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return str(path)


def test_img2img_and_inpaint_commands(tmp_path, capsys):
    image = _png(tmp_path / "in.png", render_caption("a large red circle in the center", seed=0))
    mask_array = np.zeros((32, 32), np.uint8)
    mask_array[8:24, 8:24] = 255
    mask = _png(tmp_path / "mask.png", mask_array)
    out, saved = tmp_path / "fig.png", tmp_path / "saved"
    assert main(["img2img", image, "a large blue circle in the center", "a green circle", "--steps", "5",
                 "-o", str(out), "--save-dir", str(saved)]) == 0
    assert out.is_file() and sorted(p.name for p in saved.iterdir()) == ["000.png", "001.png"]
    # the default (inversion) start ignores the seed; --init noise (SDEdit) does not
    runs = {}
    for init in ("inversion", "noise"):
        for seed in ("1", "2"):
            d = tmp_path / f"{init}{seed}"
            args = ["img2img", image, "a green circle", "--steps", "5", "--seed", seed, "-o", str(out)]
            assert main([*args, "--save-dir", str(d)] + (["--init", "noise"] if init == "noise" else [])) == 0
            runs[init, seed] = np.asarray(Image.open(d / "000.png"))
    assert np.array_equal(runs["inversion", "1"], runs["inversion", "2"])
    assert not np.array_equal(runs["noise", "1"], runs["noise", "2"])
    assert Image.open(saved / "000.png").size == (32, 32)
    assert main(["inpaint", image, mask, "a large green square in the center", "--steps", "5",
                 "-o", str(tmp_path / "inp")]) == 0
    assert (tmp_path / "inp.png").is_file() and "1 image(s) written to" in capsys.readouterr().out
    gen = ["generate", "a red circle", "--steps", "2", "-o", str(out), "--save-dir", str(tmp_path / "g")]
    assert main(gen) == 0
    assert (tmp_path / "g" / "000.png").is_file()


def test_edit_commands_refuse_bad_files_in_one_line(tmp_path, capsys):
    good = _png(tmp_path / "in.png", render_caption("a red circle", seed=0))
    big = _png(tmp_path / "big.png", np.zeros((64, 64, 3), np.uint8))
    grey = _png(tmp_path / "grey.png", np.zeros((32, 32), np.uint8))
    rgb_mask = _png(tmp_path / "rgbmask.png", np.full((32, 32, 3), 255, np.uint8))
    cases = [
        (["img2img", big, "a red circle"], "is 64 x 64; the model works at 32 x 32"),
        (["img2img", grey, "a red circle"], "must be RGB, got mode 'L'"),
        (["img2img", str(tmp_path / "none.png"), "a red circle"], "no image at"),
        (["img2img", good, "a red circle", "--strength", "0"], "strength must be a number in (0, 1]"),
        (["img2img", good, "a red circle", "--init", "inversion", "--sampler", "dpm++"],
         "--init inversion runs DDIM backwards and needs --sampler ddim, not dpm++"),
        (["inpaint", good, rgb_mask, "a red circle"], "must be single-channel (mode L or 1), got mode 'RGB'"),
        (["inpaint", good, grey, "a red circle"], "repaints nothing"),
        (["inpaint", good, big, "a red circle"], "must be single-channel"),
        (["inpaint", good, big, "a red circle", "--resample", "0"], "--resample must be a positive int"),
        (["inpaint", good, big, "a red circle", "--resample", "2", "--sampler", "euler"], "--resample needs"),
    ]
    for args, message in cases:
        assert main([*args, "-o", str(tmp_path / "x.png")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("minildm: error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.png").exists()


def test_edit_cases_are_what_they_say():
    from minildm.metrics import judge
    from minildm.metrics.edits import inpaint_cases, recolour_cases, reshape_cases
    from minildm.utils import to_uint8

    cases = recolour_cases(6, seed=0)
    assert cases.images.shape == (6, 3, 32, 32) and cases.sources == recolour_cases(6, seed=0).sources
    rows = zip(to_uint8(cases.images), cases.sources, cases.prompts, cases.targets)
    for image, source, prompt, target in rows:
        assert judge(image, source).ok and not judge(image, prompt).ok  # the edit changes the colour
        assert target.split()[2] == prompt.split()[1] and target.split()[-1] == source.split()[-1]
    shapes = reshape_cases(6, seed=0)
    for image, source, prompt, target in zip(to_uint8(shapes.images), shapes.sources, shapes.prompts,
                                             shapes.targets):
        assert judge(image, source).ok and not judge(image, prompt).ok  # the edit changes the shape
        assert prompt.split()[1] == source.split()[2] and target.split()[3] == prompt.split()[2]
    scenes = inpaint_cases(4, seed=1)
    assert scenes.masks.shape == (4, 1, 32, 32) and scenes.targets == scenes.prompts
    rows = zip(to_uint8(scenes.images), scenes.sources, scenes.prompts, scenes.masks)
    for image, source, prompt, mask in rows:
        assert judge(image, source).ok and source.split()[:3] == prompt.split()[:3]
        assert 0.05 < mask.mean() < 0.5  # one object's box, not the picture
    with pytest.raises(ValueError, match="n must be a positive int"):
        recolour_cases(0)
