"""Images in and out of the command line: read a PNG as the model's input (checked: RGB, the
model's size), read a repaint mask (white = repaint), write images one by one at their native
size (atomically), for scripts to read back."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from minildm.utils import atomic_write, check_writable_folder, from_uint8


def _read_pixels(
    path: str | Path, what: str, size: int, modes: tuple[str, ...], convert: Callable
) -> np.ndarray:
    """Open an image file and return ``convert(image)``, after checking from its header alone
    (nothing decoded yet) that it is a readable image, of one of ``modes``, ``size`` x ``size``
    pixels; every refusal names the file and what was expected. A decompression bomb (a small file
    that decodes to billions of pixels) is refused before decoding, with its size."""
    from PIL import Image

    path = Path(path)
    expected = f"expected a {size} x {size} PNG" + (" (black and white)" if what == "mask" else " (RGB)")
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {str(path)!r}")
    try:
        with warnings.catch_warnings():  # (a large image only warns; the size check below refuses it)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as err:  # over twice Pillow's limit of pixels
        pixels = str(err).split(",")[0]  # "Image size (N pixels) exceeds limit of M pixels"
        raise ValueError(f"{what} {str(path)!r} is far too large ({pixels}); {expected}: "
                         "refused before decoding") from err
    except (OSError, SyntaxError, ValueError) as err:  # (UnidentifiedImageError is an OSError)
        raise ValueError(
            f"{what} {str(path)!r} is not an image file PIL can read ({err}); {expected}"
        ) from err
    with image:
        mode, (width, height) = image.mode, image.size
        if mode not in modes:
            wanted = "RGB" if what == "image" else "single-channel (mode L or 1)"
            raise ValueError(f"{what} {str(path)!r} must be {wanted}, got mode {mode!r}")
        if (width, height) != (size, size):
            raise ValueError(
                f"{what} {str(path)!r} is {width} x {height}; the model works at {size} x {size}"
            )
        try:
            return convert(image)
        except (OSError, SyntaxError, ValueError) as err:  # e.g. "image file is truncated"
            raise ValueError(
                f"{what} {str(path)!r} is damaged and cannot be decoded ({err}); {expected}"
            ) from err


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """An RGB image file as a float tensor (1, 3, size, size) in [-1, 1]; another size or mode is
    refused, naming what it is (resizing would change what the model is asked to edit)."""
    array = _read_pixels(path, "image", size, ("RGB", "RGBA", "P"), lambda im: np.array(im.convert("RGB")))
    return from_uint8(array).unsqueeze(0)


def load_mask(path: str | Path, size: int) -> torch.Tensor:
    """A black-and-white mask file as a float tensor (1, 1, size, size) of 0 and 1 (1 = white =
    repaint). It must be single-channel (mode L or 1), of the model's size, black and white (at most
    5% grey pixels, thresholded at the middle), and repaint something."""
    values = _read_pixels(
        path, "mask", size, ("L", "1"), lambda im: np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    )
    return mask_tensor(torch.from_numpy(values), name=f"mask {str(Path(path))!r}")


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
    if mask.numel() == 0:
        raise ValueError(f"{name} is empty, shape {tuple(mask.shape)}: give a mask of the image's size")
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
