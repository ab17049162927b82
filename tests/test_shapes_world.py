"""The shapes world: renderer, scenes, dataset determinism and the held-out split."""

import numpy as np
import pytest
import torch

from minildm.data import (
    HELDOUT_PAIRS,
    SIZES,
    ShapesDataset,
    parse_caption,
    render_caption,
    render_scene,
    sample_scene,
    scene_for_caption,
)
from minildm.data.shapes import Scene, ShapeObject


def test_render_is_uint8_hwc_black_background():
    img = render_caption("a small red square in the top left", seed=0)
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
    assert (img[-8:, -8:] == 0).all()  # the bottom right corner stays black
    core = img[6:10, 6:10].reshape(-1, 3)  # the middle of the square is the exact palette colour
    assert (core == np.array([255, 40, 40], dtype=np.uint8)).all()


def test_antialiased_edges():
    scene = Scene((ShapeObject("circle", "green", "large", 16.0, 16.0),), 32)
    img = render_scene(scene)
    levels = np.unique(img[..., 1])
    assert len(levels) > 3  # partial coverage gives intermediate values, not just 0 and 220


def test_sizes_scale_with_canvas():
    for side in (32, 64):
        for size, frac in SIZES.items():
            scene = Scene((ShapeObject("square", "blue", size, side / 2, side / 2),), side)
            img = render_scene(scene)
            rows = np.nonzero(img.max(axis=(1, 2)) > 127)[0]
            assert len(rows) == round(frac * side)


def test_triangle_apex_up():
    img = render_caption("a large triangle in the center", seed=1)
    mass = img.max(-1).astype(float)
    rows = np.nonzero(mass.sum(1))[0]
    top, bottom = mass[rows[1]].sum(), mass[rows[-2]].sum()
    assert bottom > 3 * top


@pytest.mark.parametrize("seed", range(20))
def test_two_object_relation_and_gap(seed):
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, kind="two")
    a, b = scene.objects
    assert a.size == b.size == "small"
    assert (a.colour, a.shape) != (b.colour, b.shape)
    axis = 0 if "left" in scene.relation or "right" in scene.relation else 1
    gap = abs((a.cx, a.cy)[axis] - (b.cx, b.cy)[axis])
    assert gap >= 32 / 4
    sign = {"to the left of": -1, "above": -1, "to the right of": 1, "below": 1}[scene.relation]
    assert np.sign((a.cx, a.cy)[axis] - (b.cx, b.cy)[axis]) == sign


def test_one_object_position_jitter_is_small():
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = scene_for_caption("a circle in the top right", rng)
        o = scene.objects[0]
        assert abs(o.cx - 24) <= 1 and abs(o.cy - 8) <= 1


def test_scene_for_caption_fills_unnamed_attributes():
    rng = np.random.default_rng(0)
    sizes = {scene_for_caption("a red circle", rng).objects[0].size for _ in range(50)}
    assert sizes == {"small", "large"}


def test_heldout_pairs_never_in_training_set():
    ds = ShapesDataset(3000, seed=5, two_object_fraction=0.5)
    pairs = {(o.colour, o.shape) for s in ds.scenes for o in s.objects}
    assert not pairs & HELDOUT_PAIRS
    assert len(pairs) == 18 - len(HELDOUT_PAIRS)
    held = ShapesDataset(3000, seed=5, split="all")
    assert {(o.colour, o.shape) for s in held.scenes for o in s.objects} & HELDOUT_PAIRS


def test_heldout_caption_refused_for_training():
    with pytest.raises(ValueError, match="held-out combination blue triangle"):
        scene_for_caption("a blue triangle in the center", np.random.default_rng(0))
    with pytest.raises(ValueError, match="held-out"):
        ShapesDataset(captions=["a yellow circle"])
    ds = ShapesDataset(captions=["a yellow circle"], split="all")
    assert ds.scenes[0].objects[0].colour == "yellow"


def test_captions_dataset_unknown_word():
    with pytest.raises(ValueError, match="unknown word 'dog'"):
        ShapesDataset(captions=["a red dog"])


def test_dataset_items_and_determinism():
    a = ShapesDataset(200, seed=7)
    b = ShapesDataset(200, seed=7)
    c = ShapesDataset(200, seed=8)
    assert a.captions == b.captions and np.array_equal(a.images, b.images)
    assert a.captions != c.captions
    img, cap = a[3]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32
    assert img.min() >= -1 and img.max() <= 1 and img.min() == -1
    assert cap == a.captions[3]
    parse_caption(cap)
    # item i does not depend on how many items come before or after it
    small = ShapesDataset(10, seed=7)
    assert small.captions == a.captions[:10]
    loader = torch.utils.data.DataLoader(a, batch_size=16)
    images, captions = next(iter(loader))
    assert images.shape == (16, 3, 32, 32) and len(captions) == 16


def test_caption_omissions_and_mix():
    ds = ShapesDataset(2000, seed=0, two_object_fraction=0.3, omit_prob=0.3)
    specs = [parse_caption(c) for c in ds.captions]
    two = sum(s.kind == "two" for s in specs) / len(specs)
    assert 0.25 < two < 0.35
    ones = [s.objects[0] for s in specs if s.kind == "one"]
    no_colour = sum(o.colour is None for o in ones) / len(ones)
    assert 0.25 < no_colour < 0.35
    full = ShapesDataset(200, seed=0, omit_prob=0.0)
    assert all(len(parse_caption(c).attributes) >= 4 for c in full.captions)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"split": "test"}, "split must be one of"),
        ({"two_object_fraction": 1.5}, "two_object_fraction"),
        ({"omit_prob": -0.1}, "omit_prob"),
        ({"size": 0}, "size must be a positive int"),
        ({"image_size": 30}, "image_size must be a multiple of 16"),
    ],
)
def test_dataset_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ShapesDataset(**({"size": 4} | kwargs))


def test_sample_scene_bad_kind():
    with pytest.raises(ValueError, match="kind must be 'one' or 'two'"):
        sample_scene(np.random.default_rng(0), kind="three")
