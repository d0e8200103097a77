"""Frequentist intervals for an arm's mean reward."""

from __future__ import annotations

import math

from scipy import stats as _st

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (well behaved at 0 and 1 successes).

    >>> [round(x, 4) for x in wilson_interval(5, 10)]
    [0.2366, 0.7634]
    """
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(
    total: float, total_sq: float, n: float, level: float = 0.95, *, shift: float = 0.0
) -> tuple[float, float]:
    """Student-t interval for a mean from its sufficient statistics (needs ``n >= 2``).

    ``total_sq`` is ``Σ (x - shift)²`` (plain squares with the default ``shift = 0``); the
    centred sum of squares is ``total_sq - (total - n·shift)² / n``, accurate when ``shift``
    is near the mean (see :class:`~octobandit.stats.arms.ArmStats`).

    >>> [round(x, 3) for x in t_interval(total=6.0, total_sq=14.0, n=3)]
    [-0.484, 4.484]
    >>> [round(x, 3) for x in t_interval(total=6.0, total_sq=2.0, n=3, shift=2.0)]
    [-0.484, 4.484]
    """
    if n < 2:
        raise ValueError("n must be at least 2")
    mean = total / n
    d = total - n * shift
    var = max(total_sq - d * (d / n), 0.0) / (n - 1)
    half = float(_st.t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(var / n)
    return mean - half, mean + half


def mean_interval(
    reward_sum: float, reward_sq_sum: float, n: float, reward_type: str, *, shift: float = 0.0
) -> tuple[float, float] | None:
    """95% interval for an arm's mean: Wilson for binary rewards, Student-t for continuous.

    ``None`` when there are too few observations (0 for binary, fewer than 2 otherwise).
    ``reward_sq_sum`` is the sum of squares about ``shift`` (see :func:`t_interval`).
    """
    if reward_type == "binary":
        return wilson_interval(reward_sum, n) if n > 0 else None
    return t_interval(reward_sum, reward_sq_sum, n, shift=shift) if n >= 2 else None
