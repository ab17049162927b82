"""Images in and out of the command line: read a PNG as the model's input (checked: RGB, the
model's size), read a repaint mask (white = repaint), write images one by one at their native
size (atomically), for scripts to read back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from minildm.utils import atomic_write, check_writable_folder, from_uint8


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """An RGB image file as a float tensor (1, 3, size, size) in [-1, 1]; another size or mode is
    refused, naming what it is (resizing would change what the model is asked to edit)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at {str(path)!r}")
    try:
        with Image.open(path) as image:
            mode, (width, height) = image.mode, image.size
            array = np.array(image.convert("RGB")) if mode in ("RGB", "RGBA", "P") else None
    except OSError as err:
        raise ValueError(f"{str(path)!r} is not an image file PIL can read ({err})") from err
    if array is None:
        raise ValueError(f"image {str(path)!r} must be RGB, got mode {mode!r}")
    if (width, height) != (size, size):
        raise ValueError(f"image {str(path)!r} is {width} x {height}; the model works at {size} x {size}")
    return from_uint8(array).unsqueeze(0)


def load_mask(path: str | Path, size: int) -> torch.Tensor:
    """A black-and-white mask file as a float tensor (1, 1, size, size) of 0 and 1 (1 = white =
    repaint). It must be single-channel (mode L or 1), of the model's size, black and white (at most
    5% grey pixels, thresholded at the middle), and repaint something."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no mask at {str(path)!r}")
    with Image.open(path) as image:
        mode, (width, height) = image.mode, image.size
        values = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if mode not in ("L", "1"):
        raise ValueError(f"mask {str(path)!r} must be single-channel (mode L or 1), got mode {mode!r}")
    if (width, height) != (size, size):
        raise ValueError(f"mask {str(path)!r} is {width} x {height}; the model works at {size} x {size}")
    return mask_tensor(torch.from_numpy(values), name=f"mask {str(path)!r}")


def mask_tensor(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """A mask with values in [0, 1] as exact 0/1 floats, (B, 1, H, W); refused when it is not black
    and white (over 5% of pixels grey after thresholding at 0.5) or repaints nothing."""
    if not isinstance(mask, torch.Tensor) or not (mask.is_floating_point() or mask.dtype == torch.bool):
        raise ValueError(f"{name} must be a float or bool tensor with values in [0, 1]")
    mask = mask.float()
    while mask.ndim < 4:
        mask = mask.unsqueeze(0)
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"{name} must be single-channel, (H, W) or (B, 1, H, W), "
                         f"got {tuple(mask.shape)}")
    if mask.min() < 0 or mask.max() > 1:
        low, high = mask.min().item(), mask.max().item()
        raise ValueError(f"{name} must have values in [0, 1] (1 = repaint), got {low:g} to {high:g}")
    grey = ((mask > 0.1) & (mask < 0.9)).float().mean().item()
    if grey > 0.05:
        raise ValueError(f"{name} must be black and white (1 = repaint); {grey:.0%} of its pixels are grey")
    binary = (mask >= 0.5).float()
    if binary.sum() == 0:
        raise ValueError(f"{name} repaints nothing: it has no white (1) pixel")
    return binary


def save_images(images: np.ndarray, folder: str | Path) -> list[Path]:
    """Write uint8 images (B, H, W, 3) as ``folder/000.png``, ``001.png``, ... at their native size,
    each atomically. Returns the paths."""
    from PIL import Image

    folder = check_writable_folder(folder, "--save-dir")
    folder.mkdir(parents=True, exist_ok=True)
    def writer(image: np.ndarray) -> Callable[[str], None]:
        return lambda tmp: Image.fromarray(image).save(tmp, format="PNG")

    return [atomic_write(folder / f"{k:03d}.png", writer(image)) for k, image in enumerate(images)]
