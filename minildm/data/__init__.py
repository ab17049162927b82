"""Data: the shapes world (captions, scenes, renderer, dataset), 2-D toy sets and MNIST."""

from minildm.data.captions import (
    COLOURS,
    HELDOUT_PAIRS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    VOCABULARY,
    CaptionSpec,
    ObjectSpec,
    format_caption,
    parse_caption,
)
from minildm.data.dataset import ShapesDataset
from minildm.data.shapes import (
    Scene,
    ShapeObject,
    caption_for_scene,
    render_caption,
    render_scene,
    sample_scene,
    scene_for_caption,
)
from minildm.data.toy2d import moons, swiss_roll, two_peaks

__all__ = [
    "COLOURS", "HELDOUT_PAIRS", "POSITIONS", "RELATIONS", "SHAPES", "SIZES", "VOCABULARY",
    "CaptionSpec", "ObjectSpec", "Scene", "ShapeObject", "ShapesDataset",
    "caption_for_scene", "format_caption", "moons", "parse_caption", "render_caption",
    "render_scene", "sample_scene", "scene_for_caption", "swiss_roll", "two_peaks",
]
