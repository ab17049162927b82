"""Test cases for lesson 08's edits, shared by the notebook and ``bench/img2img.py``.

- :func:`recolour_cases`: one-object scenes and a prompt that changes only the colour;
- :func:`reshape_cases`: the same with a prompt that changes only the shape;
- :func:`inpaint_cases`: two-object scenes, a mask over the second object, and the new scene's caption.

Held-out colour-shape pairs are left out of both (they measure generalisation, lesson 10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from minildm.data import render_caption
from minildm.data.captions import COLOURS, HELDOUT_PAIRS, POSITIONS, RELATIONS, SHAPES, SIZES
from minildm.metrics.judge import DetectedObject, detect_objects
from minildm.utils import check_positive_int, from_uint8
from minildm.validation import check_seed

SEEN_PAIRS = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELDOUT_PAIRS]


@dataclass
class EditCases:
    """Images (B, 3, 32, 32) in [-1, 1], the caption each was rendered from, the edit's prompt, and
    what the judge checks afterwards (``target``), with the repaint masks (B, 1, 32, 32) for inpainting."""

    images: torch.Tensor
    sources: list[str]
    prompts: list[str]
    targets: list[str]
    masks: torch.Tensor | None = None


def _one_object_edits(n: int, seed: int, change: str) -> EditCases:
    """``n`` one-object renders and a prompt that changes only their ``change`` ("colour" or "shape")."""
    n = check_positive_int("n", n)
    rng = np.random.default_rng(check_seed("seed", seed))
    sources, prompts, targets = [], [], []
    while len(sources) < n:
        if change == "colour":
            shape, (c0, c1) = str(rng.choice(SHAPES)), rng.choice(list(COLOURS), 2, replace=False)
            old, new = (c0, shape), (c1, shape)
        else:
            colour, (s0, s1) = str(rng.choice(list(COLOURS))), rng.choice(SHAPES, 2, replace=False)
            old, new = (colour, s0), (colour, s1)
        if old in HELDOUT_PAIRS or new in HELDOUT_PAIRS:
            continue
        size, pos = str(rng.choice(list(SIZES))), str(rng.choice(list(POSITIONS)))
        sources.append(f"a {size} {old[0]} {old[1]} in the {pos}")
        prompts.append(f"a {new[0]} {new[1]}")
        targets.append(f"a {size} {new[0]} {new[1]} in the {pos}")
    images = torch.stack([from_uint8(render_caption(c, seed=i)) for i, c in enumerate(sources)])
    return EditCases(images, sources, prompts, targets)


def recolour_cases(n: int, seed: int = 0) -> EditCases:
    """``n`` renders of "a {size} {colour} {shape} in the {position}" with the prompt "a {other colour}
    {shape}"; ``targets`` is the full caption the edit should satisfy if size and position are kept."""
    return _one_object_edits(n, seed, "colour")


def reshape_cases(n: int, seed: int = 0) -> EditCases:
    """The same with the prompt "a {colour} {other shape}": the harder edit, which must move pixels."""
    return _one_object_edits(n, seed, "shape")


def object_mask(obj: DetectedObject, margin: float = 3.0, side: int = 32) -> torch.Tensor:
    """A (1, side, side) mask of 1 over the object's box, grown by ``margin`` pixels on each side."""
    yy, xx = np.mgrid[0:side, 0:side] + 0.5
    half = obj.extent / 2 + margin
    box = (abs(xx - obj.cx) <= half) & (abs(yy - obj.cy) <= half)
    return torch.from_numpy(box.astype(np.float32))[None]


def inpaint_cases(n: int, seed: int = 1, margin: float = 3.0) -> EditCases:
    """``n`` two-object renders "a A {relation} a B", the mask over B (its box + ``margin``), and the
    prompt "a A {relation} a C" with C a third seen colour-shape pair (``targets`` = ``prompts``)."""
    n = check_positive_int("n", n)
    rng = np.random.default_rng(check_seed("seed", seed))
    sources, prompts, images, masks = [], [], [], []
    while len(sources) < n:
        a, b, new = [SEEN_PAIRS[i] for i in rng.choice(len(SEEN_PAIRS), 3, replace=False)]
        rel = str(rng.choice(list(RELATIONS)))
        caption = f"a {a[0]} {a[1]} {rel} a {b[0]} {b[1]}"
        image = render_caption(caption, seed=100 + len(sources))
        objects = detect_objects(image)
        target = [o for o in objects if o.colour == b[0]]
        if len(objects) != 2 or len(target) != 1:  # (two objects of one colour: skip, to be unambiguous)
            continue
        sources.append(caption)
        prompts.append(f"a {a[0]} {a[1]} {rel} a {new[0]} {new[1]}")
        images.append(from_uint8(image))
        masks.append(object_mask(target[0], margin))
    return EditCases(torch.stack(images), sources, prompts, list(prompts), torch.stack(masks))
