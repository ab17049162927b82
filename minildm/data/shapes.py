"""Scenes of the shapes world and their anti-aliased renderer.

A :class:`Scene` is a list of :class:`ShapeObject` (shape, colour, size and the centre in
pixels) plus, for two objects, the relation between them. :func:`sample_scene` draws a
random scene, :func:`scene_for_caption` draws a scene that satisfies a caption, and
:func:`render_scene` draws it on a black canvas, anti-aliased by rendering at 4x and
averaging each 4x4 block (``docs/shapes-world.md`` is the contract).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minildm.data.captions import (
    COLOURS,
    HELDOUT_PAIRS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    CaptionSpec,
    ObjectSpec,
    format_caption,
    parse_caption,
)
from minildm.validation import check_choice, check_positive_int, check_seed, is_int

SPLITS = ("train", "all")


@dataclass(frozen=True)
class ShapeObject:
    """One object on the canvas; ``cx``, ``cy`` is the centre of its bounding box in pixels."""

    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    position: str | None = None  # the named position it was placed at (one-object scenes)

    def extent(self, image_size: int) -> float:
        """Bounding extent in pixels: 1/4 (small) or 1/2 (large) of the side."""
        return SIZES[self.size] * image_size


@dataclass(frozen=True)
class Scene:
    """A scene: one or two objects and, for two, the relation "first {relation} second"."""

    objects: tuple[ShapeObject, ...]
    image_size: int = 32
    relation: str | None = None

    @property
    def kind(self) -> str:
        return "one" if len(self.objects) == 1 else "two"

    def full_spec(self) -> CaptionSpec:
        """The caption that names every attribute of the scene."""
        if self.kind == "one":
            o = self.objects[0]
            return CaptionSpec("one", (ObjectSpec(o.shape, o.colour, o.size, o.position),))
        specs = tuple(ObjectSpec(o.shape, o.colour) for o in self.objects)
        return CaptionSpec("two", specs, relation=self.relation)


def _check_image_size(image_size: int) -> None:
    if not is_int(image_size) or image_size < 16 or image_size % 16:
        raise ValueError(f"image_size must be a multiple of 16 (e.g. 32 or 64), got {image_size!r}")


def _allowed_pairs(split: str) -> list[tuple[str, str]]:
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    return [p for p in pairs if split == "all" or p not in HELDOUT_PAIRS]


def _choose(rng: np.random.Generator, options):
    options = list(options)
    return options[int(rng.integers(len(options)))]


def _place_one(rng: np.random.Generator, spec: ObjectSpec, colour: str, image_size: int) -> ShapeObject:
    size = spec.size or _choose(rng, SIZES)
    position = spec.position or _choose(rng, POSITIONS)
    fx, fy = POSITIONS[position]
    jitter = image_size / 32
    cx = fx * image_size + rng.uniform(-jitter, jitter)
    cy = fy * image_size + rng.uniform(-jitter, jitter)
    return ShapeObject(spec.shape, colour, size, cx, cy, position)


def _place_two(
    rng: np.random.Generator, pairs: list[tuple[str, str]], relation: str, image_size: int
) -> tuple[ShapeObject, ShapeObject]:
    """Two small objects placed at random so that "first {relation} second" holds.

    Along the relation's axis the centres are at least 1/4 + 1/16 of the side apart (the
    spec's 1/4 margin plus a visible gap), so the objects never overlap.
    """
    axis, sign = RELATIONS[relation]
    half = SIZES["small"] * image_size / 2
    lo, hi = half + 0.5, image_size - half - 0.5
    min_gap = image_size * (1 / 4 + 1 / 16)
    while True:
        a, b = rng.uniform(lo, hi, size=2), rng.uniform(lo, hi, size=2)
        if abs(a[axis] - b[axis]) < min_gap:
            continue
        if np.sign(a[axis] - b[axis]) != sign:
            a[axis], b[axis] = b[axis], a[axis]
        objs = tuple(
            ShapeObject(shape, colour, "small", float(p[0]), float(p[1]))
            for (colour, shape), p in zip(pairs, (a, b))
        )
        return objs  # type: ignore[return-value]


def scene_for_caption(
    caption: str | CaptionSpec,
    rng: np.random.Generator,
    image_size: int = 32,
    allow_heldout: bool = False,
) -> Scene:
    """Draw a random scene that satisfies ``caption``; attributes it does not name are random.

    Raises ``ValueError`` if the caption names a held-out (colour, shape) pair and
    ``allow_heldout`` is False: held-out pairs never appear in training images.
    """
    _check_image_size(image_size)
    spec = parse_caption(caption) if isinstance(caption, str) else caption
    if spec.is_heldout and not allow_heldout:
        pairs = [f"{c} {s}" for c, s in sorted(HELDOUT_PAIRS) if (c, s) in {o.pair for o in spec.objects}]
        raise ValueError(
            f"caption {format_caption(spec)!r} names the held-out combination {', '.join(pairs)}, "
            "which never appears in training images; pass allow_heldout=True to render it for evaluation"
        )
    split = "all" if allow_heldout else "train"
    allowed = _allowed_pairs(split)
    chosen: list[tuple[str, str]] = []
    for obj in spec.objects:
        options = [
            p for p in allowed if p[1] == obj.shape and (obj.colour is None or p[0] == obj.colour)
        ]
        options = [p for p in options if p not in chosen] or options
        chosen.append(_choose(rng, options))
    if spec.kind == "one":
        obj = _place_one(rng, spec.objects[0], chosen[0][0], image_size)
        return Scene((obj,), image_size)
    if chosen[0] == chosen[1]:
        raise ValueError(
            f"caption {format_caption(spec)!r}: the two objects must be different (colour, shape) pairs"
        )
    return Scene(_place_two(rng, chosen, spec.relation, image_size), image_size, spec.relation)


def sample_scene(
    rng: np.random.Generator,
    image_size: int = 32,
    kind: str = "one",
    split: str = "train",
) -> Scene:
    """Draw a random scene of ``kind`` ("one" or "two") from ``split`` ("train" or "all")."""
    check_choice("split", split, SPLITS)
    _check_image_size(image_size)
    allowed = _allowed_pairs(split)
    if kind == "one":
        colour, shape = _choose(rng, allowed)
        spec = ObjectSpec(shape)
        return Scene((_place_one(rng, spec, colour, image_size),), image_size)
    if kind == "two":
        first = _choose(rng, allowed)
        second = _choose(rng, [p for p in allowed if p != first])
        relation = _choose(rng, RELATIONS)
        return Scene(_place_two(rng, [first, second], relation, image_size), image_size, relation)
    raise ValueError(f"kind must be 'one' or 'two', got {kind!r}")


def caption_for_scene(scene: Scene, rng: np.random.Generator, omit_prob: float = 0.3) -> str:
    """A caption of the scene; for one object, size, colour and position are each left
    out with probability ``omit_prob`` (the image still has them)."""
    spec = scene.full_spec()
    if scene.kind == "one" and omit_prob > 0:
        o = spec.objects[0]
        keep = rng.uniform(size=3) >= omit_prob
        o = ObjectSpec(
            o.shape,
            colour=o.colour if keep[0] else None,
            size=o.size if keep[1] else None,
            position=o.position if keep[2] else None,
        )
        spec = CaptionSpec("one", (o,))
    return format_caption(spec)


# ---------------------------------------------------------------------------- rendering


def _coverage(obj: ShapeObject, image_size: int, supersample: int) -> tuple[np.ndarray, slice, slice]:
    """Fraction of each pixel covered by ``obj``, on the pixels of its bounding box."""
    e = obj.extent(image_size)
    h = e / 2
    x0, x1 = max(0, math.floor(obj.cx - h) - 1), min(image_size, math.ceil(obj.cx + h) + 1)
    y0, y1 = max(0, math.floor(obj.cy - h) - 1), min(image_size, math.ceil(obj.cy + h) + 1)
    ss = supersample
    # sub-pixel centres: pixel j covers [j, j + 1), sample k sits at j + (k + 0.5) / ss
    xs = np.arange(x0 * ss, x1 * ss) / ss + 0.5 / ss - obj.cx
    ys = (np.arange(y0 * ss, y1 * ss) / ss + 0.5 / ss - obj.cy)[:, None]
    if obj.shape == "square":
        inside = (np.abs(xs) <= h) & (np.abs(ys) <= h)
    elif obj.shape == "circle":
        inside = xs**2 + ys**2 <= h**2
    elif obj.shape == "triangle":
        # equilateral: width e, height e * sqrt(3) / 2, apex up, centred in its bounding box
        height = e * math.sqrt(3) / 2
        depth = ys + height / 2  # distance below the apex
        inside = (depth >= 0) & (depth <= height) & (np.abs(xs) <= depth / height * h)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}; expected one of {SHAPES}")
    cov = inside.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    return cov, slice(y0, y1), slice(x0, x1)


def render_scene(scene: Scene, supersample: int = 4) -> np.ndarray:
    """Render ``scene`` to a uint8 image of shape (H, W, 3), black background."""
    s = scene.image_size
    canvas = np.zeros((s, s, 3), dtype=np.float32)
    for obj in scene.objects:
        cov, rows, cols = _coverage(obj, s, supersample)
        colour = np.asarray(COLOURS[obj.colour], dtype=np.float32)
        region = canvas[rows, cols]
        # paint over what is below (objects do not overlap, but stay correct if they did)
        canvas[rows, cols] = region * (1 - cov[..., None]) + cov[..., None] * colour
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def render_caption(
    caption: str, seed: int = 0, image_size: int = 32, allow_heldout: bool = False
) -> np.ndarray:
    """Render one random image that satisfies ``caption`` (deterministic for ``seed``)."""
    rng = np.random.default_rng(check_seed("seed", seed))
    scene = scene_for_caption(caption, rng, check_positive_int("image_size", image_size), allow_heldout)
    return render_scene(scene)
