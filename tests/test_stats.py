"""The Wilson score interval (minildm.metrics.stats) against known values."""

import math

import numpy as np
import pytest

from minildm.metrics import wilson_interval


@pytest.mark.parametrize(
    ("successes", "n", "z", "expected"),
    [
        (8, 10, 1.96, (0.4902, 0.9433)),  # Wilson's textbook example, e.g. Newcombe (1998) / Wikipedia
        (5, 10, 1.96, (0.2366, 0.7634)),
        (81, 263, 1.96, (0.2553, 0.3662)),  # Newcombe (1998), table I, example (e)
        (15, 148, 1.96, (0.0624, 0.1605)),  # Newcombe (1998), example (c)
        (1, 29, 1.96, (0.0061, 0.1718)),  # Newcombe (1998), example (b)
    ],
)
def test_known_values(successes, n, z, expected):
    low, high = wilson_interval(successes, n, z)
    assert low == pytest.approx(expected[0], abs=5e-4)
    assert high == pytest.approx(expected[1], abs=5e-4)


def test_edges():
    # 0 of n: the interval starts at 0, and its top is z^2 / (n + z^2)
    low, high = wilson_interval(0, 20)
    assert low == 0.0
    assert high == pytest.approx(1.96**2 / (20 + 1.96**2))
    # n of n mirrors it
    low, high = wilson_interval(20, 20)
    assert high == 1.0
    assert low == pytest.approx(20 / (20 + 1.96**2))
    # Newcombe (1998), example (a): 0/10 -> (0, 0.2775)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=5e-4)


def test_symmetry_contains_estimate_and_narrows_with_n():
    for n in (1, 7, 32, 100):
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0
            mirror = wilson_interval(n - k, n)
            assert low == pytest.approx(1 - mirror[1]) and high == pytest.approx(1 - mirror[0])
    widths = [np.subtract(*wilson_interval(3 * n // 4, n)[::-1]) for n in (8, 32, 128, 512)]
    assert all(a > b for a, b in zip(widths, widths[1:]))


def test_z_sets_the_level():
    narrow, wide = wilson_interval(8, 10, z=1.0), wilson_interval(8, 10, z=2.576)
    assert wide[0] < narrow[0] < 0.8 < narrow[1] < wide[1]


def test_numpy_integers_are_accepted():
    verdicts = np.array([True, True, False, True])
    assert wilson_interval(verdicts.sum(), np.int64(len(verdicts))) == wilson_interval(3, 4)


@pytest.mark.parametrize(
    ("successes", "n", "z"),
    [(-1, 10, 1.96), (11, 10, 1.96), (1, 0, 1.96), (1, -3, 1.96), (0.5, 10, 1.96), (True, 10, 1.96),
     (1, 10, 0.0), (1, 10, -1.0), (1, 10, math.nan), (1, 10, math.inf), ("1", 10, 1.96)],
)
def test_bad_input(successes, n, z):
    with pytest.raises(ValueError):
        wilson_interval(successes, n, z)
