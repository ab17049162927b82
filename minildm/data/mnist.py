"""MNIST and Fashion-MNIST through torchvision, for learners who are online.

The course itself trains on the generated shapes world and never downloads; these loaders
are here so the same code can be pointed at a real dataset. ``download=True`` fetches the
files once into ``root``; with ``download=False`` (the default) they must already be there.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from minildm.validation import check_int

FASHION_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))


class MNISTCaptioned(Dataset):
    """(Fashion-)MNIST as ``(image, caption)`` pairs like the shapes world.

    ``image`` is a float tensor (1, image_size, image_size) in [-1, 1] (padded from 28 to 32
    by default, so that it halves cleanly in a U-Net); ``caption`` is the class name
    ("7", "sneaker")."""

    def __init__(
        self,
        root: str | Path,
        train: bool = True,
        fashion: bool = False,
        download: bool = False,
        image_size: int = 32,
    ):
        from torchvision import datasets

        image_size = check_int("image_size", image_size, low=28, hint="MNIST is 28 x 28")
        cls = datasets.FashionMNIST if fashion else datasets.MNIST
        try:
            self.base = cls(str(root), train=train, download=download)
        except RuntimeError as err:
            raise FileNotFoundError(
                f"{cls.__name__} not found under {root!r}; pass download=True to fetch it "
                f"(needs internet) or copy the raw IDX files into {Path(root) / cls.__name__ / 'raw'}"
            ) from err
        self.classes = FASHION_CLASSES if fashion else DIGIT_CLASSES
        self.pad = (image_size - 28) // 2
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        img = self.base.data[i].float() / 127.5 - 1.0
        p = self.pad
        q = self.image_size - 28 - p  # padding after (right, bottom)
        img = torch.nn.functional.pad(img, (p, q, p, q), value=-1.0)  # pad with background (-1)
        return img[None], self.classes[int(self.base.targets[i])]
