"""The torchvision MNIST loader, on tiny IDX files the test writes (no download)."""

import struct

import numpy as np
import pytest
import torch

from minildm.data.mnist import MNISTCaptioned


def _write_idx(path, array: np.ndarray) -> None:
    """IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian dims, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_dataset(root, folder: str, n: int = 12) -> np.ndarray:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return images


@pytest.mark.parametrize(
    "fashion, folder, caption3", [(False, "MNIST", "3"), (True, "FashionMNIST", "dress")]
)
def test_loads_local_idx_files(tmp_path, fashion, folder, caption3):
    images = _write_dataset(tmp_path, folder)
    ds = MNISTCaptioned(tmp_path, train=True, fashion=fashion)
    assert len(ds) == 12
    img, caption = ds[3]
    assert caption == caption3
    assert img.shape == (1, 32, 32) and img.dtype == torch.float32
    assert img.min() >= -1 and img.max() <= 1
    # padding is background (-1) and the 28 x 28 middle is the image
    assert (img[0, :2] == -1).all()
    expected = torch.from_numpy(images[3]).float() / 127.5 - 1
    assert torch.allclose(img[0, 2:30, 2:30], expected)


def test_missing_files_explain_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        MNISTCaptioned(tmp_path / "nothing")


def test_image_size_too_small(tmp_path):
    with pytest.raises(ValueError, match=r"image_size must be an int >= 28"):
        MNISTCaptioned(tmp_path, image_size=16)
