"""Shared helpers: device, seeds, the training budget, image conversion, grids, progress bars."""

from __future__ import annotations

import os
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

# The generic checks live in minildm.validation; these names stay importable from here.
from minildm import names
from minildm.validation import (  # noqa: F401
    MAX_SEED,
    check_choice,
    check_positive_int,
    check_positive_number,
    check_probability,
    is_positive_int,
    is_real_number,
)
from minildm.validation import check_seed as _check_seed

BUDGETS = names.BUDGETS  # ("quick", "full")


def check_finite(tensor: torch.Tensor, what: str) -> torch.Tensor:
    """``tensor`` if every value is finite, else a ValueError saying where NaN or inf appeared."""
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{what} hold NaN or infinite values ({bad} of {tensor.numel()})")
    return tensor


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``device`` if given, else ``$MINILDM_DEVICE``, else CUDA,
    then Apple's MPS, then the CPU. Never hard-code ``.cuda()``: pass this around instead."""
    choice = device if device is not None else os.environ.get("MINILDM_DEVICE")
    if choice is not None:
        try:
            chosen = torch.device(choice)
        except RuntimeError as err:
            raise ValueError(f"device must be e.g. 'cpu', 'cuda' or 'mps', got {choice!r}") from err
        _check_available(chosen)
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_available(device: torch.device) -> None:
    """Refuse, before any work, a device this machine does not have."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r}: CUDA is not available here (no NVIDIA GPU, or a PyTorch built "
                "without CUDA); use 'cpu'"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {str(device)!r}: Apple's MPS is not available here; use 'cpu'")


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; with ``deterministic``, ask PyTorch for deterministic
    kernels too, so that CPU runs are bit-for-bit reproducible. Returns a CPU generator
    seeded with ``seed`` for code that wants its own stream."""
    seed = _check_seed("seed", seed)  # (a Python int from here on: random.seed refuses NumPy's integers)
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
    return check_choice("budget (MINILDM_BUDGET)", choice, BUDGETS)


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
    check_finite(images, "the images")  # NaN would become 0: a black picture that looks like a result
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


def check_writable_folder(folder: str | Path, what: str = "output folder") -> Path:
    """``folder`` if it is, or can be created as, a folder we may write in; else a ValueError saying
    why (checked before any work, so a long run does not fail at its first save)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {str(folder)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(folder)!r}: no permission to write in {str(existing)!r}")
    try:  # a real try (root passes os.access everywhere, e.g. on /proc): a file made and removed
        fd, probe = tempfile.mkstemp(prefix=".minildm-write-check.", dir=existing)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        reason = err.strerror or err
        raise ValueError(f"{what} {str(folder)!r}: cannot write in {str(existing)!r} ({reason})") from err
    return folder


#: the figure formats minildm writes (by suffix; matplotlib writes each)
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def figure_path(path: str | Path) -> Path:
    """Where :func:`save_figure` writes ``path``: ``.png`` added when it has no suffix; a folder, a
    suffix not in :data:`FIGURE_SUFFIXES`, or a place we cannot write, is refused (name an image file
    in a writable folder)."""
    path = Path(path)
    if path.is_dir():
        example = str(path / "out.png")
        raise ValueError(f"output {str(path)!r} is a folder; name an image file, e.g. {example!r}")
    if path.suffix.lower() not in ("", *FIGURE_SUFFIXES):
        raise ValueError(
            f"output {str(path)!r}: {path.suffix!r} is not a figure format; name a file ending in "
            f"{', '.join(FIGURE_SUFFIXES)} (no suffix: .png)"
        )
    check_writable_folder(path.parent, "the output's folder")
    return path if path.suffix else path.with_suffix(".png")


def os_error_code(err: BaseException) -> int | None:
    """The errno a library's own exception reports in its text (Rust's "(os error 28)"), if any."""
    found = re.search(r"\(os error (\d+)\)", str(err)) if isinstance(err, Exception) else None
    return int(found.group(1)) if found else None


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (same suffix), then rename it over
    ``path`` (``os.replace`` is atomic): an interrupted write never leaves a truncated file, and the
    old one stays until the new one is complete. An ``OSError`` (a full disk: errno 28) names
    ``path``. Returns the path."""
    path = Path(path)
    tmp = None
    umask = os.umask(0)
    os.umask(umask)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp (and some writers) make it private (0600): the usual mode
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        # say which file could not be written (safetensors reports "... (os error 28)", no OSError)
        code = err.errno if isinstance(err, OSError) else os_error_code(err)
        if code:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else os.strerror(code)
            raise OSError(code, f"cannot write {str(path)!r}: {reason}") from err
        raise
    return path


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically (see :func:`atomic_write`). Returns the path written,
    with ``.png`` added when ``path`` has no suffix."""
    return atomic_write(figure_path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight"))


def show_images(
    images: torch.Tensor | np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 6,
    scale: float = 1.6,
    path: str | Path | None = None,
    suptitle: str | None = None,
):
    """Plot images in a grid with optional titles (captions) and a title above; save to ``path``
    if given (atomically, see :func:`save_figure`). Returns the matplotlib figure."""
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
    if suptitle is not None:
        fig.suptitle(suptitle, fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=120)
    return fig
