"""Shared helpers: device, seeds, the training budget, image conversion, grids, progress bars."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

BUDGETS = ("quick", "full")


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``device`` if given, else ``$MINILDM_DEVICE``, else CUDA,
    then Apple's MPS, then the CPU. Never hard-code ``.cuda()``: pass this around instead."""
    choice = device if device is not None else os.environ.get("MINILDM_DEVICE")
    if choice is not None:
        try:
            return torch.device(choice)
        except RuntimeError as err:
            raise ValueError(f"device must be e.g. 'cpu', 'cuda' or 'mps', got {choice!r}") from err
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; with ``deterministic``, ask PyTorch for deterministic
    kernels too, so that CPU runs are bit-for-bit reproducible. Returns a CPU generator
    seeded with ``seed`` for code that wants its own stream."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def get_budget(budget: str | None = None) -> str:
    """``"quick"`` or ``"full"``: ``budget`` if given, else ``$MINILDM_BUDGET``, else full
    where CUDA is available and quick elsewhere. Quick trains a few seconds to show the loss
    falling, then loads the shipped checkpoint; full trains from scratch."""
    choice = budget if budget is not None else os.environ.get("MINILDM_BUDGET")
    if choice is None or choice == "":
        return "full" if torch.cuda.is_available() else "quick"
    if choice not in BUDGETS:
        raise ValueError(f"budget (MINILDM_BUDGET) must be one of {BUDGETS}, got {choice!r}")
    return choice


def progress(iterable: Iterable | None = None, **kwargs) -> tqdm:
    """A tqdm progress bar (notebook widget or terminal). ``MINILDM_PROGRESS=0`` hides it."""
    if os.environ.get("MINILDM_PROGRESS", "1") == "0":
        kwargs["disable"] = True
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


# ------------------------------------------------------------------ image conversion


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images in [-1, 1], (3, H, W) or (B, 3, H, W), to uint8 (H, W, 3) or (B, H, W, 3)."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise ValueError(
            f"images must be a float tensor in [-1, 1], got {type(images).__name__}"
            + (f" of dtype {images.dtype}" if isinstance(images, torch.Tensor) else "")
        )
    if images.ndim not in (3, 4) or images.shape[-3] not in (1, 3):
        raise ValueError(
            f"images must have shape (C, H, W) or (B, C, H, W) with C = 1 or 3, got {tuple(images.shape)}"
        )
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()


def from_uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (H, W, C) or (B, H, W, C) to float tensors (C, H, W) / (B, C, H, W) in [-1, 1]."""
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {x.dtype}")
    if x.ndim not in (3, 4) or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must have shape (H, W, C) or (B, H, W, C) with C = 1 or 3, got {tuple(x.shape)}"
        )
    return x.movedim(-1, -3).float() / 127.5 - 1.0


def make_grid(images: torch.Tensor | np.ndarray, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """A grid of images as one uint8 (H, W, 3) array, via ``torchvision.utils.make_grid``.

    ``images`` may be float (B, C, H, W) in [-1, 1] or uint8 (B, H, W, C)."""
    from torchvision.utils import make_grid as tv_make_grid

    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        x = from_uint8(x)
    if x.ndim != 4:
        raise ValueError(f"images must be a batch (B, C, H, W), got shape {tuple(x.shape)}")
    grid = tv_make_grid(x.detach().cpu().float(), nrow=nrow, padding=padding, pad_value=0.2)
    return to_uint8(grid)


def show_images(
    images: torch.Tensor | np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 6,
    scale: float = 1.6,
    path: str | Path | None = None,
):
    """Plot images in a grid with optional titles (captions); save to ``path`` if given.

    Returns the matplotlib figure."""
    import textwrap

    import matplotlib.pyplot as plt

    x = torch.as_tensor(images)
    arr = to_uint8(x) if x.is_floating_point() else x.numpy()
    if arr.ndim != 4:
        raise ValueError(f"images must be a batch, got shape {tuple(arr.shape)}")
    if titles is not None and len(titles) != len(arr):
        raise ValueError(f"got {len(arr)} images but {len(titles)} titles")
    n = len(arr)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows * 1.25), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            image = arr[k].squeeze(-1) if arr.shape[-1] == 1 else arr[k]
            ax.imshow(image, cmap="gray", interpolation="nearest")
            if titles is not None:
                ax.set_title("\n".join(textwrap.wrap(titles[k], 18)), fontsize=7)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
