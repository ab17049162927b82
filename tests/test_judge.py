"""The judge: near-perfect on clean renders of every caption kind, and it catches mistakes."""

import numpy as np
import pytest
import torch

from minildm.data import ShapesDataset, render_caption, render_scene
from minildm.data.shapes import Scene, ShapeObject
from minildm.metrics import detect_objects, judge, nearest_colour, score
from minildm.utils import from_uint8

CAPTION_KINDS = {
    # kind -> (two_object_fraction, omit_prob)
    "one object, every attribute": (0.0, 0.0),
    "one object, some attributes": (0.0, 0.5),
    "two objects": (1.0, 0.0),
}


@pytest.mark.parametrize("kind", CAPTION_KINDS)
@pytest.mark.parametrize("split", ["train", "all"])
def test_judge_scores_clean_renders(kind, split):
    two, omit = CAPTION_KINDS[kind]
    ds = ShapesDataset(400, seed=11, split=split, two_object_fraction=two, omit_prob=omit)
    result = score(ds.images, ds.captions)
    assert result["score"] >= 0.99, [v.caption for v in result["verdicts"] if not v.ok][:5]


@pytest.mark.parametrize("relation", ["to the left of", "to the right of", "above", "below"])
def test_judge_every_relation(relation):
    captions = [f"a red circle {relation} a green square", f"a yellow circle {relation} a blue triangle"]
    ds = ShapesDataset(captions=captions * 50, split="all", seed=2)
    assert score(ds.images, ds.captions)["score"] >= 0.99


def test_judge_at_64_pixels():
    ds = ShapesDataset(200, seed=4, image_size=64, split="all", two_object_fraction=0.5, omit_prob=0.0)
    assert score(ds.images, ds.captions)["score"] >= 0.99


def test_judge_catches_each_wrong_attribute():
    img = render_caption("a small red square in the top left", seed=0)
    assert judge(img, "a small red square in the top left").ok
    for caption, attr in [
        ("a small blue square in the top left", "colour"),
        ("a small red circle in the top left", "shape"),
        ("a large red square in the top left", "size"),
        ("a small red square in the bottom right", "position"),
        ("a red square above a blue circle", "count"),
    ]:
        verdict = judge(img, caption)
        assert not verdict.ok and not verdict.checks[attr], (caption, verdict.checks)


def test_judge_relation_is_checked():
    scene = Scene(
        (
            ShapeObject("circle", "red", "small", 6.0, 16.0),
            ShapeObject("square", "blue", "small", 26.0, 16.0),
        ),
        32,
        "to the left of",
    )
    img = render_scene(scene)
    assert judge(img, "a red circle to the left of a blue square").ok
    wrong = judge(img, "a red circle to the right of a blue square")
    assert wrong.checks == {"count": True, "colour": True, "shape": True, "relation": False}
    # naming the objects in the other order flips the relation
    assert judge(img, "a blue square to the right of a red circle").ok


def test_empty_and_noisy_images():
    empty = np.zeros((32, 32, 3), dtype=np.uint8)
    assert judge(empty, "a circle").checks["count"] is False
    img = render_caption("a large green circle in the center", seed=3)
    specks = img.copy()
    specks[0, 0] = specks[31, 0] = (200, 200, 200)  # single bright pixels are not objects
    assert judge(specks, "a large green circle in the center").ok
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert not judge(noise, "a large green circle in the center").ok


def test_detected_attributes():
    img = render_caption("a large magenta triangle in the bottom right", seed=5, allow_heldout=True)
    (obj,) = detect_objects(img)
    assert (obj.colour, obj.shape, obj.size, obj.position) == ("magenta", "triangle", "large", "bottom right")
    assert abs(obj.extent - 16) < 1.5


@pytest.mark.parametrize("name", ["red", "green", "blue", "yellow", "cyan", "magenta"])
def test_nearest_colour_of_palette_and_darker_shades(name):
    from minildm.data import COLOURS

    rgb = np.array(COLOURS[name])
    assert nearest_colour(rgb) == name
    assert nearest_colour(rgb * 0.6) == name


OFF_PALETTE_COLOURS = {"orange": (255, 128, 0), "violet": (138, 43, 226), "mint": (152, 255, 152)}


@pytest.mark.parametrize("name", OFF_PALETTE_COLOURS)
def test_off_palette_colours_are_refused(name):
    rgb = np.array(OFF_PALETTE_COLOURS[name])
    assert nearest_colour(rgb) == "off"
    assert nearest_colour(rgb * 0.6) == "off"


def _recolour(image: np.ndarray, rgb) -> np.ndarray:
    """Paint every foreground pixel ``rgb``, keeping its brightness (anti-aliased edges stay soft)."""
    bright = image.max(axis=-1, keepdims=True).astype(np.float32) / 255
    return np.round(bright * np.array(rgb, dtype=np.float32)).astype(np.uint8)


@pytest.mark.parametrize("name", OFF_PALETTE_COLOURS)
@pytest.mark.parametrize("palette_colour", ["red", "yellow", "green", "magenta", "blue"])
def test_recoloured_renders_fail_the_colour_check(name, palette_colour):
    caption = f"a large {palette_colour} circle in the top left"
    image = render_caption(caption, seed=3, allow_heldout=True)
    assert judge(image, caption).ok
    verdict = judge(_recolour(image, OFF_PALETTE_COLOURS[name]), caption)
    assert not verdict.ok and not verdict.checks["colour"]
    assert verdict.checks["shape"] and verdict.checks["size"] and verdict.checks["position"]
    assert verdict.objects[0].colour == "off"


def test_hue_tolerance_edges():
    from minildm.metrics.judge import HUE_TOLERANCE_DEGREES, hue_distance_degrees

    assert hue_distance_degrees(0.01, 0.99) == pytest.approx(7.2)
    # red (hue 0) turned 15 degrees towards yellow is still red; 25 degrees is off
    import colorsys

    def at(deg):
        return np.array(colorsys.hsv_to_rgb(deg / 360, 0.85, 1.0)) * 255

    assert HUE_TOLERANCE_DEGREES == 18.0
    assert nearest_colour(at(15)) == "red" and nearest_colour(at(-15 % 360)) == "red"
    assert nearest_colour(at(25)) == "off"
    assert nearest_colour(np.array([128, 128, 128])) == "off"  # grey: no hue at all


def test_clean_object_report_counts_off_palette_as_not_clean():
    from minildm.metrics import clean_object_report

    image = render_caption("a large red square in the center", seed=1)
    report = clean_object_report(np.stack([image, _recolour(image, OFF_PALETTE_COLOURS["orange"])]))
    assert report["clean"] == 0.5 and report["colours"] == {"red": 1}


def test_score_accepts_model_outputs_and_splits_heldout():
    captions = ["a red circle", "a blue triangle", "a yellow circle in the center"]
    ds = ShapesDataset(captions=captions, split="all")
    floats = from_uint8(ds.images)
    result = score(floats, ds.captions)
    assert result["score"] == 1.0 and result["seen"] == 1.0 and result["heldout"] == 1.0
    assert set(result["attributes"]) == {"count", "colour", "shape", "position"}


@pytest.mark.parametrize(
    "image, fragment",
    [
        (np.zeros((32, 32, 3), dtype=np.float32), "must be uint8"),
        (np.zeros((3, 32, 32), dtype=np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((32, 16, 3), dtype=np.uint8), r"shape \(H, W, 3\)"),
        (torch.zeros(3, 32, 32), "must be uint8"),
        ([[0]], "numpy array or tensor"),
    ],
)
def test_judge_bad_image(image, fragment):
    with pytest.raises(ValueError, match=fragment):
        judge(image, "a red circle")


def test_judge_bad_caption_and_lengths():
    img = render_caption("a red circle", seed=0)
    with pytest.raises(ValueError, match="unknown word 'octagon'"):
        judge(img, "a red octagon")
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        score(np.stack([img, img]), ["a red circle"])
