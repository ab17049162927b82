"""Shared helpers: device, seeds, budget, image conversion, grids."""

import numpy as np
import pytest
import torch

from minildm.utils import (
    from_uint8,
    get_budget,
    get_device,
    make_grid,
    seed_everything,
    show_images,
    to_uint8,
)


def test_device_default_and_override(monkeypatch):
    monkeypatch.delenv("MINILDM_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else None
    dev = get_device()
    if expected:
        assert dev.type == expected
    else:
        assert dev.type in ("cpu", "mps")
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("MINILDM_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        get_device("gpu0")


def test_seed_makes_runs_bit_identical():
    def run():
        seed_everything(123)
        net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(5):
            loss = net(torch.randn(32, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return torch.cat([p.flatten() for p in net.parameters()])

    assert torch.equal(run(), run())
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*63 - 1\], got -1"):
        seed_everything(-1)


def test_budget(monkeypatch):
    monkeypatch.delenv("MINILDM_BUDGET", raising=False)
    assert get_budget() == ("full" if torch.cuda.is_available() else "quick")
    monkeypatch.setenv("MINILDM_BUDGET", "full")
    assert get_budget() == "full"
    assert get_budget("quick") == "quick"
    monkeypatch.setenv("MINILDM_BUDGET", "medium")
    with pytest.raises(ValueError, match="MINILDM_BUDGET"):
        get_budget()


def test_uint8_round_trip():
    arr = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    x = from_uint8(arr)
    assert x.shape == (2, 3, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(to_uint8(x), arr)
    assert to_uint8(x[0]).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="must be uint8"):
        from_uint8(arr.astype(np.float32))
    with pytest.raises(ValueError, match="float tensor"):
        to_uint8(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        to_uint8(torch.zeros(5, 8, 8))


def test_grid_and_figure(tmp_path):
    imgs = torch.rand(6, 3, 8, 8) * 2 - 1
    grid = make_grid(imgs, nrow=3, padding=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 10 + 2, 3 * 10 + 2, 3)
    fig = show_images(imgs, [f"image {i}" for i in range(6)], ncols=3, path=tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="6 images but 2 titles"):
        show_images(imgs, ["a", "b"])
