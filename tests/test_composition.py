"""Lesson 10's tools: the failure types of a verdict, and composable guidance (one term per object)."""

import importlib

import pytest
import torch

from minildm.data import ShapesDataset
from minildm.metrics.composition import FAILURE_TYPES, failure_table, failure_type
from minildm.metrics.judge import DetectedObject, judge
from minildm.pipelines.composable import ComposableGuidance, check_phrase_scale, object_phrases
from minildm.utils import to_uint8


def obj(colour, shape, cx=8.0, cy=16.0, hue=float("nan")):
    return DetectedObject(colour, shape, "small", None, cx, cy, 8.0, 40, hue)


def verdict_for(caption, objects):
    """A verdict as the judge would give it for these detected objects (checks recomputed)."""
    judge_module = importlib.import_module("minildm.metrics.judge")  # the module, not the function
    original = judge_module.detect_objects
    judge_module.detect_objects = lambda image: objects
    try:
        return judge(torch.zeros(32, 32, 3, dtype=torch.uint8).numpy(), caption)
    finally:
        judge_module.detect_objects = original


TWO = "a magenta circle to the left of a yellow square"


@pytest.mark.parametrize("objects, expected", [
    ([obj("magenta", "circle", 8), obj("yellow", "square", 24)], None),
    ([obj("magenta", "circle", 8)], "wrong count"),
    ([obj("magenta", "circle", 8), obj("off", "square", 24, hue=30.0)], "colour blend"),  # salmon-orange
    ([obj("magenta", "circle", 8), obj("off", "square", 24, hue=150.0)], "off-palette colour"),  # mint
    ([obj("magenta", "circle", 8), obj("magenta", "square", 24)], "colour leak"),
    ([obj("magenta", "square", 8), obj("yellow", "circle", 24)], "attribute swap"),
    ([obj("magenta", "circle", 8), obj("yellow", "circle", 24)], "wrong shape"),
    ([obj("red", "circle", 8), obj("yellow", "square", 24)], "wrong colour"),
    ([obj("magenta", "circle", 24), obj("yellow", "square", 8)], "wrong relation"),
])
def test_each_failure_gets_its_type(objects, expected):
    assert failure_type(verdict_for(TWO, objects)) == expected


SAME_SHAPE = "a blue circle above a green circle"
SAME_COLOUR = "a red circle to the left of a red square"


@pytest.mark.parametrize("caption, objects, expected", [
    # the green circle drawn above the blue one: the colours tell the circles apart, so the relation is wrong
    (SAME_SHAPE, [obj("blue", "circle", 16, 24.0), obj("green", "circle", 16, 14.8)], "wrong relation"),
    (SAME_SHAPE, [obj("green", "circle", 16, 14.8), obj("blue", "circle", 16, 24.0)], "wrong relation"),
    (SAME_SHAPE, [obj("blue", "circle", 16, 8.0), obj("green", "square", 16, 24.0)], "wrong shape"),
    (SAME_SHAPE, [obj("blue", "circle", 16, 8.0), obj("green", "circle", 16, 24.0)], None),
    # the square drawn left of the circle: the shapes tell the red objects apart
    (SAME_COLOUR, [obj("red", "circle", 24.0), obj("red", "square", 8.0)], "wrong relation"),
    (SAME_COLOUR, [obj("red", "square", 8.0), obj("red", "circle", 24.0)], "wrong relation"),
    (SAME_COLOUR, [obj("red", "circle", 8.0), obj("blue", "square", 24.0)], "wrong colour"),
])
def test_objects_that_share_a_shape_or_a_colour_are_told_apart_by_the_other(caption, objects, expected):
    verdict = verdict_for(caption, objects)
    assert failure_type(verdict) == expected, verdict.checks


def test_clean_renders_have_no_failures_and_the_table_counts_each_image_once():
    data = ShapesDataset(40, seed=5, two_object_fraction=0.5)
    verdicts = [judge(img, c) for img, c in zip(to_uint8(data.tensors()), data.captions)]
    assert all(failure_type(v) is None for v in verdicts)
    table = failure_table(verdicts + [verdict_for(TWO, [obj("magenta", "circle", 8)])])
    assert table["passed"]["count"] == 40 and table["wrong count"]["count"] == 1
    assert sum(table[t]["count"] for t in ("passed", *FAILURE_TYPES)) == 41
    assert 0 < table["wrong count"]["low"] < table["wrong count"]["rate"] < table["wrong count"]["high"]


def test_object_phrases():
    assert object_phrases(TWO) == ["a magenta circle", "a yellow square"]
    assert object_phrases("a large red circle in the top left") == []
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        object_phrases("a purple circle")


class Linear(torch.nn.Module):
    """eps(x, t, c) = x + mean of c: linear in the context, so every guided term is checkable."""

    def forward(self, x, t, c):
        return x + c.mean(dim=(1, 2)).reshape(-1, 1, 1, 1)


def test_composable_guidance_is_the_sum_of_guided_terms():
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([5, 5])
    uncond, cond = torch.zeros(1, 3, 2), torch.full((2, 3, 2), 1.0)
    phrases = torch.stack([torch.full((2, 3, 2), 2.0), torch.full((2, 3, 2), 3.0)])  # [K=2, B, T, W]
    weights = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # prompt 0 has two phrases, prompt 1 none
    guided = ComposableGuidance(Linear(), cond, uncond, phrases, weights, guidance_scale=3.0,
                                phrase_scale=0.5)
    out = guided(x, t)
    # prompt 0: x + 0 + 3 (1 - 0) + 0.5 ((2 - 0) + (3 - 0)); prompt 1: plain guidance, x + 3
    torch.testing.assert_close(out[0], x[0] + 3.0 + 2.5)
    torch.testing.assert_close(out[1], x[1] + 3.0)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), "2", True])
def test_a_bad_phrase_scale_is_refused(bad):
    with pytest.raises(ValueError, match="phrase_guidance must be"):
        check_phrase_scale(bad)


def test_composition_prompts_are_fixed_and_of_their_kind():
    from minildm.data.captions import parse_caption
    from minildm.metrics.composition import COMPOSITION_KINDS, composition_prompts

    kinds = composition_prompts(12, seed=3)
    assert list(kinds) == list(COMPOSITION_KINDS) and all(len(v) == 12 for v in kinds.values())
    assert kinds == composition_prompts(12, seed=3)
    for kind, prompts in kinds.items():
        for p in prompts:
            spec = parse_caption(p)
            assert spec.kind == kind.split()[-1] and spec.is_heldout == kind.startswith("heldout"), (kind, p)


def test_heldout_pair_rates_split_by_pair_and_count():
    from minildm.metrics.composition import heldout_pair_rates

    alone = verdict_for("a yellow circle", [obj("yellow", "circle")])
    beside = verdict_for("a yellow circle to the left of a red square",
                         [obj("yellow", "circle", 8), obj("yellow", "square", 24)])
    rows = heldout_pair_rates([alone, beside])
    assert rows[("yellow", "circle")] == {"alone": 1.0, "n alone": 1, "in two": 0.0, "n in two": 1}
    assert rows[("magenta", "square")]["n alone"] == 0


def test_hue_between_takes_the_shorter_arc():
    from minildm.metrics.composition import PALETTE_HUES, hue_between

    assert round(PALETTE_HUES["magenta"]) == 300 and round(PALETTE_HUES["yellow"]) == 53
    assert hue_between(30.0, 300.0, 60.0) and hue_between(330.0, 60.0, 300.0)  # through red, either order
    assert not hue_between(180.0, 300.0, 60.0)


def test_the_judge_reports_each_objects_hue():
    data = ShapesDataset(6, seed=2, two_object_fraction=0.0, omit_prob=0.0)
    from minildm.data.captions import parse_caption
    from minildm.metrics.composition import PALETTE_HUES
    from minildm.metrics.judge import detect_objects, hue_distance_degrees

    for image, caption in zip(to_uint8(data.tensors()), data.captions):
        (found,) = detect_objects(image)
        named = parse_caption(caption).objects[0].colour
        assert hue_distance_degrees(found.hue / 360, PALETTE_HUES[named] / 360) < 5, (caption, found.hue)
