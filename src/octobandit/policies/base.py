"""The policy interface: sufficient statistics in, a choice with its propensity out.

A policy is pure: it owns no state and does no I/O. It reads the per-arm
sufficient statistics of the observed rewards (:class:`ArmStats`), an optional
mask of enabled arms and a seeded :class:`numpy.random.Generator`, and returns
the chosen arms together with the probability with which each was chosen.

Statistics are additive (``a + b`` merges two replicas or two batches), so
updates commute. Every array's last axis is the arm axis; a leading axis is a
batch of independent problems (for example simulation replications).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from octobandit.errors import InvalidInput

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


@dataclass(frozen=True, slots=True)
class Choice:
    """Chosen arm indices and the probability with which each was chosen."""

    arms: IntArray
    propensities: FloatArray


def _as_mask(enabled: Any, k: int) -> BoolArray:
    if enabled is None:
        return np.ones(k, dtype=bool)
    mask = np.asarray(enabled, dtype=bool)
    if mask.shape[-1] != k:
        raise ValueError(f"enabled has {mask.shape[-1]} arms, statistics have {k}")
    return mask


def ties_probabilities(values: FloatArray, mask: BoolArray) -> FloatArray:
    """Uniform probability over the enabled arms that share the maximum value."""
    v = np.where(mask, values, -np.inf)
    best = v.max(axis=-1, keepdims=True)
    ties = (v == best) & mask
    return np.asarray(ties / ties.sum(axis=-1, keepdims=True), dtype=np.float64)


def sample_categorical(probs: FloatArray, rng: np.random.Generator) -> IntArray:
    """Draw one index per row of ``probs`` (shape (B, K)); zero-probability arms never come out."""
    cum = np.cumsum(probs, axis=-1)
    cum = cum / cum[..., -1:]
    u = 1.0 - rng.random(cum.shape[:-1])  # in (0, 1]
    return np.asarray((cum < u[..., None]).sum(axis=-1), dtype=np.intp)


class Policy(ABC):
    """Base class of every policy family.

    Subclasses are frozen dataclasses whose fields are the policy's parameters,
    and implement :meth:`probabilities` (the selection distribution). Policies
    that draw by another mechanism (e.g. posterior sampling) override
    :meth:`_draw`.
    """

    type: ClassVar[str]
    #: True when the selection distribution is exact; False when estimated.
    exact_propensity: ClassVar[bool] = True
    #: True for policies that learn a state of their own (see "Stateful policies" below)
    #: instead of, or beside, the additive :class:`ArmStats`.
    stateful: ClassVar[bool] = False
    #: True for policies whose choice depends on a per-decision context vector.
    contextual: ClassVar[bool] = False
    #: True when the choice is deterministic up to ties (propensity 1/|ties|): such
    #: logs cannot be evaluated off-policy.
    deterministic: ClassVar[bool] = False

    reward: str

    # -- Stateful policies -------------------------------------------------
    # A stateful policy keeps named float arrays whose first axis is a batch of
    # independent problems (1 in the service, R replications in a simulation)
    # and whose second axis is the arms: shape (B, K, ...). It must override the
    # three methods below. The engine persists the state, replays it from the
    # event log, grows it along axis 1 when an arm is added (with
    # ``init_state(B, 1, dim)``), and re-initialises it on reset.

    def init_state(self, batch: int, k: int, dim: int = 0) -> dict[str, FloatArray]:
        """The initial state of ``batch`` problems with ``k`` arms (``dim``: context size)."""
        return {}

    def update_state(
        self,
        state: dict[str, FloatArray],
        arms: IntArray,
        rewards: FloatArray,
        counts: FloatArray,
        *,
        propensities: FloatArray,
        contexts: FloatArray | None,
        times: FloatArray,
    ) -> None:
        """Fold one observation per problem into ``state`` in place (all arrays shape (B,...)).

        ``propensities`` is NaN where unknown (a reward reported per arm, not per
        decision); ``contexts`` (B, dim) is the decision's context; ``times`` are
        seconds (the service passes wall-clock time, a simulation the step index).
        Additive policies keep no state: nothing to do.
        """
        return

    def state_probabilities(
        self,
        stats: ArmStats,
        enabled: Any,
        state: dict[str, FloatArray],
        *,
        contexts: FloatArray | None = None,
        time: float = 0.0,
    ) -> FloatArray:
        """Selection probabilities from the state: (B, K), or (M, K) for M contexts with B = 1.

        The default ignores the state (additive policies).
        """
        return self.probabilities(stats, enabled)

    @abstractmethod
    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        """Probability that each arm is chosen next, given the statistics (same shape)."""

    def point_estimates(self, stats: ArmStats) -> FloatArray:
        """The policy's estimate of each arm's mean reward (used to serve greedily)."""
        return stats.means()

    def _draw(self, stats: ArmStats, mask: BoolArray, rng: np.random.Generator) -> IntArray:
        """One draw per row of 2-D statistics (a batch of independent problems)."""
        return sample_categorical(self.probabilities(stats, mask), rng)

    def choose(
        self,
        stats: ArmStats,
        rng: np.random.Generator,
        *,
        size: int | None = None,
        enabled: Any = None,
        probabilities: FloatArray | None = None,
        propensities: bool = True,
    ) -> Choice:
        """Choose arms.

        With 1-D statistics (one problem), ``size`` draws are made from the same
        state and ``Choice.arms`` has shape ``(size,)`` (``(1,)`` if ``size`` is None);
        they are drawn from :meth:`probabilities`, and a zero-probability arm never
        comes out (``searchsorted`` on the cumulative sum lands on a jump).
        With 2-D statistics of shape ``(R, K)`` one draw is made per row.
        ``probabilities`` may pass in :meth:`probabilities` computed earlier for
        the same statistics and mask (a cache). With 2-D statistics,
        ``propensities=False`` skips computing them (NaN), for simulations.
        """
        k = stats.k
        mask = _as_mask(enabled, k)
        if not mask.any(axis=-1).all():
            raise ValueError("no enabled arm to choose from")
        if stats.n.ndim == 1:
            # One state, many draws: draw from the selection distribution itself.
            # For posterior sampling this is the same distribution (probability
            # matching), and the logged propensity is exactly what was used.
            row = self.probabilities(stats, mask) if probabilities is None else probabilities
            cum = np.cumsum(row)
            u = rng.random(1 if size is None else size) * cum[-1]
            arms = np.minimum(np.searchsorted(cum, u, side="right"), k - 1).astype(np.intp)
            return Choice(arms, row[arms])
        if size is not None:
            raise ValueError("size is only for 1-D statistics")
        arms = self._draw(stats, np.broadcast_to(mask, stats.n.shape), rng)
        if not propensities:
            return Choice(arms, np.full(arms.shape, np.nan))
        probs = self.probabilities(stats, mask) if probabilities is None else probabilities
        return Choice(arms, np.take_along_axis(probs, arms[:, None], axis=-1)[:, 0])

    def greedy(self, stats: ArmStats, enabled: Any = None) -> int:
        """The enabled arm with the best point estimate (lowest index on ties)."""
        mask = _as_mask(enabled, stats.k)
        est = np.where(mask, self.point_estimates(stats), -np.inf)
        return int(np.argmax(est))

    def params(self) -> dict[str, Any]:
        """Parameters as plain JSON values (``type`` included, ``reward`` excluded)."""
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name != "reward":
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, Any], reward: str) -> Policy:
        """Build from JSON parameters, raising :class:`InvalidInput` naming the bad field."""
        known = {f.name for f in fields(cls)} - {"reward"}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            if key == "type":
                continue
            if key not in known:
                raise InvalidInput(
                    f"unknown parameter for {cls.type}; known: {sorted(known)}",
                    field=f"policy.{key}",
                )
            kwargs[key] = value
        factory: Any = cls
        policy: Policy = factory(reward=reward, **kwargs)
        return policy


def check_number(
    value: Any,
    field: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Validate a finite real number in a range, naming ``field`` on failure."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("must be a number", field=field)
    try:
        x = float(value)  # an int beyond the float range overflows
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise InvalidInput("must be finite", field=field)
    if low is not None and (x <= low if low_open else x < low):
        raise InvalidInput(f"must be {'>' if low_open else '>='} {low}", field=field)
    if high is not None and x > high:
        raise InvalidInput(f"must be <= {high}", field=field)
    return x
