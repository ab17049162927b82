"""The shapes-world judge: does an image show what its caption says?

Because the shapes world is drawn by a program, a program can check a picture against its
caption, attribute by attribute (``docs/shapes-world.md``, "Judging"). That turns
"is this text-to-image model any good?" into a number we can measure on a laptop.

How the judge sees an image:
1. foreground = pixels whose brightest channel is above a threshold (background is black);
2. objects = connected groups of foreground pixels (specks smaller than a few pixels are
   ignored, so a little sampling noise does not count as an object);
3. for each object: its mean colour -> the palette colour of nearest hue, or ``"off"`` when
   that hue is more than 18 degrees away or the colour is washed out (an orange object is not
   "red", a violet one not "magenta", mint not "green"); its bounding box
   -> size (extent nearer 1/4 or 1/2 of the side) and centre (-> quadrant or center);
   its shape from how it fills its box (square ~1, circle ~pi/4, triangle ~1/2) and where
   its mass is (a triangle, apex up, has 3/4 of it in the lower half).
"""

from __future__ import annotations

import colorsys
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from minildm.data.captions import COLOURS, RELATIONS, CaptionSpec, ObjectSpec, parse_caption

FOREGROUND_THRESHOLD = 60  # brightest channel above this (of 255) is foreground
MIN_OBJECT_PIXELS = 6  # at 32 x 32; smaller components are specks, not objects
SQUARE_CIRCLE_FILL = (1 + math.pi / 4) / 2  # 0.893: midway between a square's fill and a circle's
HUE_TOLERANCE_DEGREES = 18.0  # a colour further than this from every palette hue is "off"
MIN_SATURATION = 0.5  # palette colours have saturation ~0.83; below this a colour is washed out
OFF_PALETTE = "off"  # the colour the judge reports for an object outside the palette


@dataclass(frozen=True)
class DetectedObject:
    """An object found in an image, with every attribute the judge can read off it."""

    colour: str  # a palette colour, or "off" when outside the palette (judge.OFF_PALETTE)
    shape: str  # "circle", "square", "triangle" or "unknown"
    size: str  # "small", "large" or "unknown"
    position: str | None  # quadrant or "center"; None when it is in neither
    cx: float
    cy: float
    extent: float
    pixels: int
    hue: float = float("nan")  # of its mean colour, in degrees [0, 360) (lesson 10 reads blends off it)


@dataclass
class Judgement:
    """The verdict on one image: ``ok`` when every attribute the caption names holds."""

    caption: str
    ok: bool
    checks: dict[str, bool]
    objects: list[DetectedObject] = field(default_factory=list)


def _hsv(rgb) -> tuple[float, float, float]:
    r, g, b = (float(v) / 255 for v in rgb)
    return colorsys.rgb_to_hsv(r, g, b)


def _hue(rgb) -> float:
    return _hsv(rgb)[0]


_PALETTE_HUES = {name: _hue(rgb) for name, rgb in COLOURS.items()}
#: each palette colour's hue in degrees, as ``DetectedObject.hue`` reports hues
PALETTE_HUE_DEGREES = {name: 360.0 * h for name, h in _PALETTE_HUES.items()}


def hue_distance_degrees(h1: float, h2: float) -> float:
    """Distance on the hue circle, in degrees, between two hues given in [0, 1)."""
    d = abs(h1 - h2) % 1.0
    return 360.0 * min(d, 1.0 - d)


def nearest_colour(rgb) -> str:
    """The palette colour whose hue is nearest (on the hue circle) to ``rgb``, or ``"off"``
    when the colour is outside the palette: its hue more than ``HUE_TOLERANCE_DEGREES`` from
    every palette hue (orange, violet), or its saturation below ``MIN_SATURATION`` (mint, grey).

    Darker shades of a palette colour keep its hue and saturation (an anti-aliased edge is the
    colour mixed with the black background), so they still count."""
    h, s, _ = _hsv(rgb)
    name = min(_PALETTE_HUES, key=lambda c: hue_distance_degrees(h, _PALETTE_HUES[c]))
    if s < MIN_SATURATION or hue_distance_degrees(h, _PALETTE_HUES[name]) > HUE_TOLERANCE_DEGREES:
        return OFF_PALETTE
    return name


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """Connected groups (8-neighbourhood) of True pixels, each as an array of (row, col)."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    groups = []
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        stack, members = [(r0, c0)], []
        seen[r0, c0] = True
        while stack:
            r, c = stack.pop()
            members.append((r, c))
            for dr, dc in itertools.product((-1, 0, 1), repeat=2):
                rr, cc = r + dr, c + dc
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
        groups.append(np.array(members))
    return groups


def _classify_shape(cover: np.ndarray, width: float, height: float) -> str:
    """Shape from the coverage map of one object cropped to its bounding box, whose
    sub-pixel width and height are given. Two numbers decide it:

    - fill = area / (width * height): square 1, circle pi/4 = 0.785, triangle 1/2;
    - lower = the share of the area below the box's middle: 1/2, except for a triangle
      with its apex up, 3/4.

    A blob that fits none of them (noise, two shapes merged) is ``"unknown"``."""
    total = cover.sum()
    h = cover.shape[0]
    # mass below the box's middle row (a middle row, if any, counts half)
    lower = (cover[(h + 1) // 2 :].sum() + (cover[h // 2].sum() / 2 if h % 2 else 0)) / total
    fill = total / (width * height)
    if lower > 0.595:
        return "triangle" if 0.4 <= fill <= 0.72 else "unknown"
    if lower < 0.4:
        return "unknown"
    # square or circle: whichever ideal fill (1 or pi/4) is nearer, so the boundary is their midpoint
    if fill >= SQUARE_CIRCLE_FILL:
        return "square"
    return "circle" if 0.68 <= fill else "unknown"


def _position(cx: float, cy: float, side: int) -> str | None:
    third = side / 3
    if third <= cx <= 2 * third and third <= cy <= 2 * third:
        return "center"
    if abs(cx - side / 2) < 0.5 or abs(cy - side / 2) < 0.5:
        return None  # on a dividing line: in no quadrant
    vertical = "top" if cy < side / 2 else "bottom"
    horizontal = "left" if cx < side / 2 else "right"
    return f"{vertical} {horizontal}"


def _in_position(obj: DetectedObject, named: str, side: int) -> bool:
    if named == "center":
        third = side / 3
        return third <= obj.cx <= 2 * third and third <= obj.cy <= 2 * third
    vertical, horizontal = named.split()
    ok_y = obj.cy < side / 2 if vertical == "top" else obj.cy > side / 2
    ok_x = obj.cx < side / 2 if horizontal == "left" else obj.cx > side / 2
    return ok_x and ok_y


def detect_objects(image: np.ndarray) -> list[DetectedObject]:
    """Find the objects in a uint8 (H, W, 3) image, largest first."""
    image = _check_image(image)
    side = image.shape[0]
    bright = image.max(axis=-1).astype(np.float32)
    min_pixels = MIN_OBJECT_PIXELS * (side / 32) ** 2
    objects = []
    for members in _components(bright > FOREGROUND_THRESHOLD):
        if len(members) < min_pixels:
            continue
        rows, cols = members[:, 0], members[:, 1]
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        crop = np.zeros((r1 - r0, c1 - c0), dtype=np.float32)
        crop[rows - r0, cols - c0] = bright[rows, cols]
        # coverage of each pixel: its brightness relative to the object's full brightness
        cover = np.clip(crop / np.percentile(bright[rows, cols], 90), 0, 1)
        weights = cover[rows - r0, cols - c0][:, None]
        mean_rgb = (image[rows, cols].astype(np.float32) * weights).sum(0) / weights.sum()
        # bounding box from coverage (sub-pixel): trim rows/cols that are mostly empty
        col_mass, row_mass = cover.max(axis=0), cover.max(axis=1)
        width, height = col_mass.sum(), row_mass.sum()
        x_lo = c0 + (1 - col_mass[0])
        y_lo = r0 + (1 - row_mass[0])
        cx, cy = x_lo + width / 2, y_lo + height / 2
        extent = float(max(width, height))
        # nearer 1/4 (small) or 1/2 (large) of the side; outside 1/8..3/4 it is neither
        size = "small" if extent < side * 3 / 8 else "large"
        if not side / 8 <= extent <= side * 3 / 4:
            size = "unknown"
        objects.append(
            DetectedObject(
                colour=nearest_colour(mean_rgb),
                shape=_classify_shape(cover, width, height),
                size=size,
                position=_position(cx, cy, side),
                cx=float(cx),
                cy=float(cy),
                extent=extent,
                pixels=len(members),
                hue=360.0 * _hue(mean_rgb),
            )
        )
    return sorted(objects, key=lambda o: -o.pixels)


def _check_image(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array or tensor, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"image must be uint8 (H, W, 3) with values 0..255, got dtype {image.dtype}; "
            "convert model outputs in [-1, 1] with minildm.utils.to_uint8"
        )
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape[0] != image.shape[1] or image.shape[0] < 16:
        raise ValueError(f"image must have shape (H, W, 3) with H == W >= 16, got {image.shape}")
    return image


def _object_checks(obj: DetectedObject, spec: ObjectSpec, side: int) -> dict[str, bool]:
    checks = {"shape": obj.shape == spec.shape}
    if spec.colour is not None:
        checks["colour"] = obj.colour == spec.colour
    if spec.size is not None:
        checks["size"] = obj.size == spec.size
    if spec.position is not None:
        checks["position"] = _in_position(obj, spec.position, side)
    return checks


def _relation_holds(first: DetectedObject, second: DetectedObject, relation: str) -> bool:
    axis, sign = RELATIONS[relation]
    a, b = (first.cx, second.cx) if axis == 0 else (first.cy, second.cy)
    return (a - b) * sign > 0


def judge(image, caption: str | CaptionSpec) -> Judgement:
    """Check a uint8 (H, W, 3) image against a caption, attribute by attribute.

    ``checks`` has one entry per attribute the caption names (``count``, ``shape`` always;
    ``colour``, ``size``, ``position``, ``relation`` when named), each True when it holds;
    for two objects an attribute holds when it holds for both. ``ok`` is all of them."""
    if not isinstance(caption, (str, CaptionSpec)):
        raise ValueError(f"caption must be a str (or a CaptionSpec), got {type(caption).__name__}")
    spec = parse_caption(caption) if isinstance(caption, str) else caption
    text = caption if isinstance(caption, str) else " ".join(spec.words)
    objects = detect_objects(image)
    side = image.shape[0]
    want = len(spec.objects)
    attrs = [a for a in spec.attributes if a != "count"]
    if len(objects) != want:
        # still report what we can: match the largest objects found, count fails
        checks = {a: False for a in attrs}
        if objects and want == 1:  # report the object that matches the caption best
            candidates = [_object_checks(o, spec.objects[0], side) for o in objects]
            checks.update(max(candidates, key=lambda c: sum(c.values())))
        checks["count"] = False
        return Judgement(text, False, {a: checks[a] for a in spec.attributes}, objects)
    best: dict[str, bool] | None = None
    for order in itertools.permutations(objects):
        checks = {"count": True}
        per_obj = [_object_checks(o, s, side) for o, s in zip(order, spec.objects)]
        for a in attrs:
            if a != "relation":
                checks[a] = all(c.get(a, True) for c in per_obj)
        if spec.relation is not None:
            checks["relation"] = _relation_holds(order[0], order[1], spec.relation)
        if best is None or sum(checks.values()) > sum(best.values()):
            best = checks
    assert best is not None
    return Judgement(text, all(best.values()), {a: best[a] for a in spec.attributes}, objects)


def score(images, captions: list[str]) -> dict:
    """Judge a batch and summarise: the fraction of images that satisfy their caption
    (``"score"``), per attribute (``"attributes"``), and split into captions of seen and
    held-out combinations (``"seen"``, ``"heldout"``; ``None`` when there are none).

    ``images``: uint8 (B, H, W, 3), or float (B, 3, H, W) in [-1, 1] as models produce."""
    if isinstance(captions, str):  # (its len() would be the number of characters)
        raise ValueError(
            f"captions must be a list of str, one per image, got one str {captions!r}: "
            f"pass [{captions!r}] for a single image"
        )
    if not isinstance(captions, (list, tuple)) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"captions must be a list of str, one per image, got {type(captions).__name__}")
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        from minildm.utils import to_uint8

        images = to_uint8(images)
    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions")
    return summarise([judge(img, cap) for img, cap in zip(images, captions)], captions)


def summarise(verdicts: list[Judgement], captions: list[str]) -> dict:
    """The summary :func:`score` returns, from verdicts already made (one per caption)."""
    specs = [parse_caption(c) for c in captions]

    def frac(vs):
        return sum(v.ok for v in vs) / len(vs) if vs else None

    attributes: dict[str, float] = {}
    for name in ("count", "colour", "shape", "size", "position", "relation"):
        named = [v.checks[name] for v in verdicts if name in v.checks]
        if named:
            attributes[name] = sum(named) / len(named)
    return {
        "score": frac(verdicts),
        "n": len(verdicts),
        "attributes": attributes,
        "seen": frac([v for v, s in zip(verdicts, specs) if not s.is_heldout]),
        "heldout": frac([v for v, s in zip(verdicts, specs) if s.is_heldout]),
        "verdicts": verdicts,
    }


def clean_object_report(images) -> dict:
    """Judge *unconditional* samples (no caption to check): the fraction that show exactly one
    object whose shape, size and colour the judge recognises (``"clean"``: not ``"unknown"``,
    not an ``"off"``-palette colour), the fraction with an off-palette object
    (``"off_palette"``), and the mix of shapes,
    colours, sizes and positions among those, to compare with the training data's (uniform) mix.

    ``images``: uint8 (B, H, W, 3), or float (B, 3, H, W) in [-1, 1]."""
    from collections import Counter

    if isinstance(images, torch.Tensor) and images.is_floating_point():
        from minildm.utils import to_uint8

        images = to_uint8(images)
    found = [detect_objects(img) for img in images]
    clean = [
        objs[0]
        for objs in found
        if len(objs) == 1
        and objs[0].shape != "unknown"
        and objs[0].size != "unknown"
        and objs[0].colour != OFF_PALETTE
    ]
    return {
        "clean": len(clean) / max(1, len(found)),
        "n": len(found),
        # images with an object of a colour outside the palette (orange, violet, washed out...)
        "off_palette": sum(any(o.colour == OFF_PALETTE for o in objs) for objs in found)
        / max(1, len(found)),
        "objects_per_image": dict(sorted(Counter(len(objs) for objs in found).items())),
        "shapes": dict(Counter(o.shape for o in clean)),
        "colours": dict(Counter(o.colour for o in clean)),
        "sizes": dict(Counter(o.size for o in clean)),
        "positions": dict(Counter(o.position for o in clean)),
    }
