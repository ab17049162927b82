"""2-D warm-up data: small point clouds whose whole distribution we can plot.

Lessons 01-02 learn diffusion on these before touching images: a sample is a point, so we
can watch noise spread a distribution out and a denoiser pull it back together.
"""

from __future__ import annotations

import math

import torch

from minildm.validation import check_positive_int, check_seed


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(check_seed("seed", seed))


#: Centres of the two peaks: "cats" on the left, "dogs" on the right.
PEAK_CENTRES = ((-2.0, 0.0), (2.0, 0.0))


def two_peaks(
    n: int, seed: int = 0, weights: tuple[float, float] = (0.5, 0.5), std: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor]:
    """The "cats and dogs" mixture: two Gaussian peaks at (-2, 0) and (2, 0).

    Returns ``(points, labels)``: float (n, 2) and long (n,) with 0 = cat, 1 = dog.
    ``weights`` are the peaks' proportions (they need not be equal)."""
    n = check_positive_int("n", n)
    w = torch.tensor(weights, dtype=torch.float64)
    if w.shape != (2,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be two non-negative numbers, got {weights!r}")
    g = _generator(seed)
    labels = torch.multinomial(w / w.sum(), n, replacement=True, generator=g)
    centres = torch.tensor(PEAK_CENTRES)[labels]
    return centres + std * torch.randn(n, 2, generator=g), labels


def moons(n: int, seed: int = 0, noise: float = 0.05) -> torch.Tensor:
    """Two interleaving half circles (the classic "moons"), scaled to about [-2, 2]."""
    n = check_positive_int("n", n)
    g = _generator(seed)
    upper = torch.rand(n, generator=g) < 0.5
    angle = torch.rand(n, generator=g) * math.pi
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    pts = torch.stack([x - 0.5, y - 0.25], dim=1) * 2
    return pts + noise * torch.randn(n, 2, generator=g)


def swiss_roll(n: int, seed: int = 0, noise: float = 0.05) -> torch.Tensor:
    """A 2-D Swiss roll (a spiral), scaled to about [-2, 2]."""
    n = check_positive_int("n", n)
    g = _generator(seed)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / 7
    return pts + noise * torch.randn(n, 2, generator=g)
