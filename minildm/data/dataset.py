"""``ShapesDataset``: captioned images of the shapes world as a PyTorch dataset.

Item ``i`` is drawn from its own random generator seeded by ``(seed, i)``, so the dataset is
the same whatever order it is read in, on any machine. All images are rendered once when the
dataset is made (50,000 in a few seconds) and kept as uint8.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from minildm.data.captions import parse_caption
from minildm.data.shapes import (
    SPLITS,
    Scene,
    caption_for_scene,
    render_scene,
    sample_scene,
    scene_for_caption,
)
from minildm.utils import from_uint8, progress
from minildm.validation import check_choice, check_positive_int, check_probability, check_seed


class ShapesDataset(Dataset):
    """Captioned shapes-world images.

    Args:
        size: number of images.
        seed: item ``i`` is generated from ``numpy.random.default_rng([seed, i])``.
        image_size: canvas side in pixels (32 by default; 64 for GPU runs).
        split: ``"train"`` never shows a held-out (colour, shape) pair; ``"all"`` may.
        two_object_fraction: fraction of two-object scenes.
        omit_prob: probability that a one-object caption leaves out its size, its colour,
            its position (each independently).
        captions: render these captions (one image each) instead of random scenes;
            ``size`` is then ignored.

    ``dataset[i]`` is ``(image, caption)``: a float tensor (3, H, W) in [-1, 1] and a str.
    ``dataset.images`` holds all images as uint8 (N, H, W, 3), ``dataset.scenes`` the scenes.
    """

    def __init__(
        self,
        size: int = 10_000,
        seed: int = 0,
        image_size: int = 32,
        split: str = "train",
        two_object_fraction: float = 0.3,
        omit_prob: float = 0.3,
        captions: list[str] | None = None,
        show_progress: bool = False,
    ):
        check_choice("split", split, SPLITS)
        two_object_fraction = check_probability("two_object_fraction", two_object_fraction)
        omit_prob = check_probability("omit_prob", omit_prob)
        if isinstance(captions, str) or not (captions is None or isinstance(captions, (list, tuple))):
            one = isinstance(captions, str)
            got = f"one str {captions!r}: pass [{captions!r}]" if one else repr(captions)
            raise ValueError(f"captions must be a list of str (one image each), got {got}")
        if captions is None:
            size = check_positive_int("size", size)
        seed, image_size = check_seed("seed", seed), check_positive_int("image_size", image_size)
        self.seed, self.image_size, self.split = seed, image_size, split
        if captions is not None:
            specs = [parse_caption(c) for c in captions]  # fail early, naming the bad word
            size = len(specs)
        n = size
        self.images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
        self.captions: list[str] = []
        self.scenes: list[Scene] = []
        for i in progress(range(n), desc="rendering shapes", disable=not show_progress):
            rng = np.random.default_rng([seed, i])
            if captions is not None:
                scene = scene_for_caption(specs[i], rng, image_size, allow_heldout=split == "all")
                caption = captions[i]
            else:
                kind = "two" if rng.uniform() < two_object_fraction else "one"
                scene = sample_scene(rng, image_size, kind, split)
                caption = caption_for_scene(scene, rng, omit_prob)
            self.images[i] = render_scene(scene)
            self.captions.append(caption)
            self.scenes.append(scene)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return from_uint8(self.images[i]), self.captions[i]

    def tensors(self) -> torch.Tensor:
        """All images as one float tensor (N, 3, H, W) in [-1, 1]."""
        return from_uint8(self.images)
