"""Error bars for pass rates: the Wilson score interval of a binomial proportion.

A judge's pass rate over ``n`` prompts is a binomial proportion: ``k`` successes in ``n`` trials.
With ``n`` = 32 a rate of 75% could well be 58% or 88% on another draw of prompts, so a curve of
such rates needs error bars. The textbook interval ``p ± z sqrt(p (1 - p) / n)`` fails where we
need it most (it has zero width at 0% and 100% and can leave [0, 1]); the Wilson (1927) interval
inverts the score test instead and behaves well for small ``n`` and extreme rates:

    centre = (p + z² / 2n) / (1 + z² / n),
    half   = z / (1 + z² / n) * sqrt(p (1 - p) / n + z² / 4n²),

with ``p = k / n``. ``z = 1.96`` gives a 95% interval.
"""

from __future__ import annotations

import math

from minildm.validation import check_int, check_positive_int, check_positive_number


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval ``(low, high)`` for ``successes`` out of ``n`` trials.

    ``z`` is the normal quantile of the confidence level (1.96: 95%, 1.0: about 68%).
    Always within [0, 1]; ``low`` is 0 when ``successes`` is 0, ``high`` is 1 when it is ``n``.

    >>> tuple(round(v, 3) for v in wilson_interval(8, 10))
    (0.49, 0.943)
    """
    n = check_positive_int("n", n)
    successes = check_int("successes", successes, low=0, high=n, hint="a count out of n")
    z = check_positive_number("z", z)
    p = successes / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
