"""Per-arm sufficient statistics of the observed rewards, and the array types they use.

:class:`ArmStats` is what the policies read and what the statistics summarise:
count, sum and (shifted) sum of squares per arm. Statistics are additive
(``a + b`` merges two replicas or two batches), so updates commute. Every
array's last axis is the arm axis; a leading axis is a batch of independent
problems (for example simulation replications).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

REWARD_TYPES = ("binary", "continuous")


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Sufficient statistics of observed rewards per arm.

    ``n`` counts observed rewards and ``s`` sums them. ``ss`` sums the squares of the
    rewards *about a per-arm shift* ``c``: ``ss = Σ (x - c)²``. With ``c = 0`` (the default,
    ``c=None``) it is the plain sum of squares. A shift close to the arm's mean (the service
    fixes it at the arm's first reward) keeps the centred sum of squares
    ``m2 = Σ (x - x̄)² = ss - (s - n·c)² / n`` accurate when the mean is large compared with
    the spread, where ``Σx² - (Σx)² / n`` cancels catastrophically (mean 1e8, sd 1).
    Statistics with the same shift merge by plain addition; :meth:`__add__` re-centres when
    the shifts differ.

    >>> a = ArmStats.zeros(3).observe(1, 1.0)
    >>> b = ArmStats.zeros(3).observe(1, 0.0).observe(2, 1.0)
    >>> (a + b).n.tolist(), (a + b).s.tolist()
    ([0.0, 2.0, 1.0], [0.0, 1.0, 1.0])
    >>> x = ArmStats.of(n=[3], s=[3e8 + 3], ss=[5.0], c=[1e8])  # rewards 1e8 + {0, 1, 2}
    >>> x.m2.tolist()
    [2.0]
    """

    n: FloatArray
    s: FloatArray
    ss: FloatArray
    #: the per-arm shift of ``ss`` (``None``: 0)
    c: FloatArray | None = None

    @classmethod
    def zeros(cls, k: int, batch: tuple[int, ...] = ()) -> ArmStats:
        shape = (*batch, k)
        return cls(np.zeros(shape), np.zeros(shape), np.zeros(shape))

    @classmethod
    def of(cls, n: Any, s: Any, ss: Any | None = None, c: Any | None = None) -> ArmStats:
        """Build from array-likes; ``ss`` defaults to ``s`` (exact for 0/1 rewards, ``c = 0``)."""
        n_ = np.asarray(n, dtype=np.float64)
        s_ = np.asarray(s, dtype=np.float64)
        ss_ = s_.copy() if ss is None else np.asarray(ss, dtype=np.float64)
        c_ = None if c is None else np.asarray(c, dtype=np.float64)
        return cls(n_, s_, ss_, c_)

    @property
    def k(self) -> int:
        return int(self.n.shape[-1])

    @property
    def shift(self) -> FloatArray:
        """The per-arm shift ``c`` of ``ss`` (zeros when none is set)."""
        return np.zeros_like(self.n) if self.c is None else np.broadcast_to(self.c, self.n.shape)

    @property
    def m2(self) -> FloatArray:
        """Centred sum of squares ``Σ (x - x̄)²`` per arm (0 where nothing was observed)."""
        n1 = np.where(self.n > 0, self.n, 1.0)
        d = self.s if self.c is None else self.s - self.n * self.c  # Σ (x - c)
        m2 = np.maximum(self.ss - d * (d / n1), 0.0)
        return np.asarray(np.where(self.n > 0, m2, 0.0), dtype=np.float64)

    def __add__(self, other: ArmStats) -> ArmStats:
        n, s = self.n + other.n, self.s + other.s
        if other.c is None and self.c is None:
            return ArmStats(n, s, self.ss + other.ss)
        c1, c2 = self.shift, other.shift
        if np.array_equal(c1, c2):
            return ArmStats(n, s, self.ss + other.ss, c1)
        # Keep the shift of the side with data (self's where both have some), and move the
        # other side's squares onto it: Σ(x - c)² = Σ(x - c')² + 2 (c' - c) Σ(x - c') + n (c' - c)².
        c = np.where(self.n > 0, c1, c2)
        return ArmStats(n, s, _recentre(self, c) + _recentre(other, c), c)

    def observe(self, arm: int, reward: float, count: float = 1.0) -> ArmStats:
        """Return new statistics with ``count`` rewards of mean ``reward`` added to ``arm``.

        For a batch mean the within-batch spread is unknown, so the squares are
        taken as ``count * (reward - c)**2`` (exact when ``count == 1``).
        """
        n, s, ss = self.n.copy(), self.s.copy(), self.ss.copy()
        d = reward if self.c is None else reward - self.shift[..., arm]
        n[..., arm] += count
        s[..., arm] += reward * count
        ss[..., arm] += d * d * count
        return ArmStats(n, s, ss, self.c)

    def means(self, default: float = 0.0) -> FloatArray:
        """Empirical mean reward per arm (``default`` where nothing was observed)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.s / np.maximum(self.n, 1e-300), default)


def _recentre(stats: ArmStats, c: FloatArray) -> FloatArray:
    """``Σ (x - c)²`` from statistics kept about their own shift."""
    old = stats.shift
    delta = old - c
    d = stats.s - stats.n * old  # Σ (x - old)
    out = stats.ss + delta * (2.0 * d + stats.n * delta)
    return np.asarray(np.maximum(out, 0.0), dtype=np.float64)
