"""2-D warm-up data."""

import pytest
import torch

from minildm.data import moons, swiss_roll, two_peaks


def test_two_peaks_proportions_and_centres():
    pts, labels = two_peaks(20_000, seed=0, weights=(0.3, 0.7))
    assert pts.shape == (20_000, 2) and labels.dtype == torch.long
    assert abs(labels.float().mean().item() - 0.7) < 0.02
    assert torch.allclose(pts[labels == 0].mean(0), torch.tensor([-2.0, 0.0]), atol=0.02)
    assert torch.allclose(pts[labels == 1].mean(0), torch.tensor([2.0, 0.0]), atol=0.02)
    assert abs(pts[labels == 1, 1].std().item() - 0.3) < 0.02


def test_deterministic_for_seed():
    assert torch.equal(two_peaks(100, seed=3)[0], two_peaks(100, seed=3)[0])
    assert not torch.equal(two_peaks(100, seed=3)[0], two_peaks(100, seed=4)[0])
    assert torch.equal(moons(50, seed=1), moons(50, seed=1))
    assert torch.equal(swiss_roll(50, seed=1), swiss_roll(50, seed=1))


@pytest.mark.parametrize("fn", [moons, swiss_roll])
def test_classic_sets_are_in_range(fn):
    pts = fn(5000, seed=0)
    assert pts.shape == (5000, 2)
    assert pts.abs().max() < 3.5 and pts.std(0).min() > 0.3


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be a positive int"):
        two_peaks(0)
    with pytest.raises(ValueError, match="weights must be two non-negative numbers"):
        two_peaks(10, weights=(1.0, -1.0))
    with pytest.raises(ValueError, match="n must be a positive int"):
        moons(-5)
