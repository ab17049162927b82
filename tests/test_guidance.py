"""Classifier-free guidance written once (minildm.guidance.CFGDenoiser), and the pipelines that share it:
one prepare step (a distilled student's defaults in every pipeline), PipelineOutput, the backbone slot."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

import minildm.guidance
from minildm.checkpoints import checkpoint_dir
from minildm.guidance import CFGDenoiser
from minildm.pipelines import (
    Img2ImgPipeline,
    InpaintPipeline,
    PipelineOutput,
    TextToImagePipeline,
)
from minildm.pipelines.composable import ComposableGuidance


class Recording(torch.nn.Module):
    """eps(x, t, c) = 0.1 x + c (one number per sample); records each call's batch and contexts."""

    def __init__(self):
        super().__init__()
        self.calls: list[torch.Tensor | None] = []

    def forward(self, x, t, context=None):
        self.calls.append(context)
        assert t.shape == (x.shape[0],)
        shift = 0.0 if context is None else context.reshape(-1, *[1] * (x.ndim - 1))
        return 0.1 * x + shift


X, T = torch.randn(3, 2, 4), torch.full((3,), 10)
COND, UNCOND = torch.tensor([2.0, 3.0, 4.0]), torch.tensor([0.5])


def test_the_denoiser_is_the_formula_in_one_doubled_batch():
    net = Recording()
    out = CFGDenoiser(net, COND, UNCOND, 7.5)(X, T)
    eps_c, eps_u = 0.1 * X + COND.reshape(-1, 1, 1), 0.1 * X + 0.5
    torch.testing.assert_close(out, eps_u + 7.5 * (eps_c - eps_u))
    assert len(net.calls) == 1 and torch.equal(net.calls[0], torch.tensor([0.5] * 3 + [2.0, 3.0, 4.0]))
    # the distillation teacher's order, [cond, uncond]: the same numbers
    flipped = CFGDenoiser(net, COND, UNCOND, 7.5, uncond_first=False)(X, T)
    assert torch.equal(net.calls[1], torch.tensor([2.0, 3.0, 4.0] + [0.5] * 3))
    torch.testing.assert_close(flipped, out)


def test_scale_one_or_no_uncond_calls_the_net_once_unbatched():
    net = Recording()
    for denoiser in (CFGDenoiser(net, COND, UNCOND, 1.0), CFGDenoiser(net, COND), CFGDenoiser(net)):
        out = denoiser(X, T)
        assert out.shape == X.shape
    assert [None if c is None else c.shape[0] for c in net.calls] == [3, 3, None]
    torch.testing.assert_close(CFGDenoiser(net, COND, UNCOND, 1.0)(X, T), 0.1 * X + COND.reshape(-1, 1, 1))


def test_composable_terms_add_one_weighted_guided_term_each():
    net = Recording()
    c1, c2 = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([3.0, 3.0, 3.0])
    w2 = torch.tensor([1.0, 0.0, 2.0])  # a weight per sample
    out = CFGDenoiser(net, COND, UNCOND, 2.0, terms=[(c1, 0.5), (c2, w2)])(X, T)
    assert len(net.calls) == 1 and net.calls[0].shape == (12,)  # one batch: uncond, cond, c1, c2
    eps_u = 0.1 * X + 0.5
    expected = eps_u + 2.0 * (COND.reshape(-1, 1, 1) - 0.5) + 0.5 * (1.0 - 0.5) + w2.reshape(-1, 1, 1) * 2.5
    torch.testing.assert_close(out, expected)
    # lesson 10's ComposableGuidance is this denoiser, its phrase weights times the phrase scale
    phrases, weights = torch.stack([c1, c2]), torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 2.0]])
    composed = ComposableGuidance(net, COND, UNCOND, phrases, weights, 2.0, 1.0)
    assert isinstance(composed, CFGDenoiser)
    torch.testing.assert_close(composed(X, T), eps_u + 2.0 * (COND.reshape(-1, 1, 1) - 0.5)
                               + 0.5 + w2.reshape(-1, 1, 1) * 2.5)


def test_bad_guidance_is_refused_when_the_denoiser_is_made():
    with pytest.raises(ValueError, match=r"guidance_scale must be a finite number >= 1.*0\.5"):
        CFGDenoiser(Recording(), COND, UNCOND, 0.5)
    with pytest.raises(ValueError, match="cond must be given along with uncond"):
        CFGDenoiser(Recording(), None, UNCOND, 2.0)
    with pytest.raises(ValueError, match="uncond must have batch size 1 or 3, got 2"):
        CFGDenoiser(Recording(), COND, torch.zeros(2), 2.0)(X, T)


@pytest.fixture(scope="module")
def text2img():
    return TextToImagePipeline.from_pretrained(checkpoint_dir() / "text2img_unet", device="cpu")


def test_a_call_checks_guidance_once_and_returns_a_pipeline_output(text2img, monkeypatch):
    calls = []
    check = minildm.guidance.check_guidance_scale
    monkeypatch.setattr(minildm.guidance, "check_guidance_scale", lambda s: calls.append(s) or check(s))
    out = text2img(["a red circle", "a blue square"], 5, 3.0, seed=0, progress=False)
    assert calls == [3.0]  # at the entry, not at each of the 5 steps
    assert [f.name for f in dataclasses.fields(PipelineOutput)] == ["images", "latents"]
    assert isinstance(out, PipelineOutput)
    assert out.images.shape == (2, 3, 32, 32) and out.latents.shape == (2, 4, 8, 8)
    torch.testing.assert_close(text2img.decode(out.latents), out.images)


def test_the_network_slot_is_backbone_with_unet_an_alias(text2img):
    net = text2img.backbone
    assert text2img.unet is net
    text2img.unet = Recording()
    try:
        assert isinstance(text2img.backbone, Recording)
    finally:
        text2img.backbone = net


@pytest.mark.parametrize("cls", [TextToImagePipeline, Img2ImgPipeline, InpaintPipeline])
def test_a_students_defaults_apply_to_every_pipeline(cls):
    """The distilled student (data/checkpoints/lcm) samples in 4 steps with its guidance in its weights,
    whichever pipeline holds it: one unguided network call per step, and no warning."""
    pipe = cls.from_pretrained(checkpoint_dir() / "lcm", device="cpu")
    plan = pipe.prepare("a red circle")
    assert (plan.num_inference_steps, plan.guidance_scale) == (4, 1.0) and not plan.denoiser.guided
    calls = []
    net = pipe.backbone
    pipe.backbone = lambda x, t, context=None: calls.append(x.shape[0]) or net(x, t, context)
    pipe.backbone.parameters = net.parameters  # (the pipeline's device)
    image = torch.zeros(3, 32, 32)
    mask = torch.zeros(32, 32)
    mask[:, 16:] = 1
    args = {TextToImagePipeline: (), Img2ImgPipeline: (image,), InpaintPipeline: (image, mask)}[cls]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unmeasured step count or guiding again would warn
        out = pipe("a red circle", *args, seed=0, progress=False)
    assert out.images.shape == (1, 3, 32, 32)
    # img2img runs the last floor(4 * 0.8) = 3 of the 4 steps
    assert calls == [1] * (3 if cls is Img2ImgPipeline else 4)
