"""Simulated bandit environments, vectorised over a batch of independent replications.

An environment tells the simulator, at every step ``t`` (0-based), the expected
reward of each arm (:meth:`Environment.expected_rewards`, shape ``(K,)`` when it is the
same for every replication, ``(R, K)`` when it depends on a per-replication
context) and draws the rewards of the chosen arms (:meth:`Environment.rewards`).
Knowing the expected rewards is what makes the simulator's regret a
*pseudo-regret*: ``max_a μ_a(t) - μ_{A_t}(t)`` per step, free of reward noise.

Contextual environments also draw a context vector per replication and step
(:meth:`Environment.contexts`); the expected rewards then depend on it, and the
regret is measured against the best arm *for that context*. Non-contextual
policies never see the context.

The binary environments (:class:`Bernoulli`, :class:`PiecewiseBernoulli`,
:class:`LogisticContextual`) take an optional ``delay``
(:mod:`~octobandit.simulation.delays`): how many steps after its decision a
conversion (a reward of 1) is reported. It only matters to the simulator's delayed
feedback modes (``simulate(..., feedback="window")`` and others); it is part of
:meth:`Environment.describe` when given.

>>> import numpy as np
>>> env = PiecewiseBernoulli([[0.9, 0.1], [0.1, 0.9]], change_points=[100])
>>> env.expected_rewards(99, None).tolist(), env.expected_rewards(100, None).tolist()
([0.9, 0.1], [0.1, 0.9])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from octobandit.policies.base import FloatArray, IntArray
from octobandit.simulation.delays import Delay

__all__ = [
    "Bernoulli",
    "Environment",
    "Gaussian",
    "LinearContextual",
    "LogisticContextual",
    "PiecewiseBernoulli",
]


def _vector(
    values: ArrayLike, name: str, *, low: float | None = None, high: float | None = None
) -> FloatArray:
    v = np.array(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite")
    if low is not None and (v < low).any():
        raise ValueError(f"{name} must be >= {low}")
    if high is not None and (v > high).any():
        raise ValueError(f"{name} must be <= {high}")
    v.setflags(write=False)
    return v


def _check_delay(delay: object) -> None:
    if delay is not None and not isinstance(delay, Delay):
        raise ValueError("delay must be a Delay (e.g. Exponential(1000)) or None")


def _with_delay(out: dict[str, Any], delay: Delay | None) -> dict[str, Any]:
    if delay is not None:
        out["delay"] = delay.describe()
    return out


class Environment(ABC):
    """A K-armed environment; see the module docstring for the protocol."""

    #: ``"binary"`` when rewards are 0/1, ``"continuous"`` otherwise.
    reward: ClassVar[str] = "binary"
    #: Length of the context vector (0: not contextual).
    context_dim: int = 0
    #: Delay of the conversions (binary environments; None: none).
    delay: Delay | None = None

    @property
    @abstractmethod
    def k(self) -> int:
        """Number of arms."""

    def contexts(self, t: int, replications: int, rng: np.random.Generator) -> FloatArray | None:
        """Step ``t``'s context per replication, shape ``(R, d)``; None if not contextual."""
        return None

    @abstractmethod
    def expected_rewards(self, t: int, contexts: FloatArray | None) -> FloatArray:
        """Expected reward of each arm at step ``t``: ``(K,)``, or ``(R, K)`` given contexts.

        Stationary environments return the same (read-only) array at every step.
        """

    @abstractmethod
    def rewards(self, arms: IntArray, means: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Draw one reward per replication for the chosen ``arms`` (shape ``(R,)``),
        whose expected rewards are ``means`` (same shape)."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The environment as plain JSON values."""


@dataclass(frozen=True, eq=False)
class Bernoulli(Environment):
    """Stationary Bernoulli arms: arm ``i`` pays 1 with probability ``means[i]``;
    ``delay``: how late a 1 (a conversion) is reported, in steps.

    >>> Bernoulli([0.5, 0.4]).k
    2
    >>> from octobandit.simulation.delays import Exponential
    >>> Bernoulli([0.1, 0.05], delay=Exponential(1000)).describe()
    {'type': 'bernoulli', 'means': [0.1, 0.05], 'delay': {'type': 'exponential', 'mean': 1000.0}}
    """

    means: Sequence[float] | FloatArray
    delay: Delay | None = None
    reward: ClassVar[str] = "binary"

    def __post_init__(self) -> None:
        object.__setattr__(self, "means", _vector(self.means, "means", low=0.0, high=1.0))
        _check_delay(self.delay)

    @classmethod
    def with_gap(
        cls, k: int, best: float = 0.5, gap: float = 0.1, *, delay: Delay | None = None
    ) -> Bernoulli:
        """``k`` arms: arm 0 has mean ``best``, the others ``best - gap``."""
        return cls([best] + [best - gap] * (k - 1), delay=delay)

    @property
    def k(self) -> int:
        return int(np.asarray(self.means).size)

    def expected_rewards(self, t: int, contexts: FloatArray | None) -> FloatArray:
        return np.asarray(self.means)

    def rewards(self, arms: IntArray, means: FloatArray, rng: np.random.Generator) -> FloatArray:
        return (rng.random(means.shape) < means).astype(np.float64)

    def describe(self) -> dict[str, Any]:
        return _with_delay(
            {"type": "bernoulli", "means": np.asarray(self.means).tolist()}, self.delay
        )


@dataclass(frozen=True, eq=False)
class Gaussian(Environment):
    """Stationary Gaussian arms: arm ``i`` pays ``N(means[i], sd[i]²)`` (``sd`` scalar or per arm).

    >>> Gaussian([1.0, 0.0], sd=2.0).describe()
    {'type': 'gaussian', 'means': [1.0, 0.0], 'sd': [2.0, 2.0]}
    """

    means: Sequence[float] | FloatArray
    sd: float | Sequence[float] | FloatArray = 1.0
    reward: ClassVar[str] = "continuous"

    def __post_init__(self) -> None:
        means = _vector(self.means, "means")
        sd = np.broadcast_to(np.asarray(self.sd, dtype=np.float64), means.shape)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "sd", _vector(sd, "sd", low=0.0))

    @property
    def k(self) -> int:
        return int(np.asarray(self.means).size)

    def expected_rewards(self, t: int, contexts: FloatArray | None) -> FloatArray:
        return np.asarray(self.means)

    def rewards(self, arms: IntArray, means: FloatArray, rng: np.random.Generator) -> FloatArray:
        sd = np.asarray(self.sd)[arms]
        return np.asarray(means + sd * rng.standard_normal(means.shape), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {
            "type": "gaussian",
            "means": np.asarray(self.means).tolist(),
            "sd": np.asarray(self.sd).tolist(),
        }


@dataclass(frozen=True, eq=False)
class PiecewiseBernoulli(Environment):
    """Bernoulli arms whose means switch at given steps.

    ``segments[j]`` holds the arm means from step ``change_points[j - 1]``
    (0 for ``j = 0``) up to, not including, step ``change_points[j]``; so there is
    one more segment than change points, and change points increase strictly.

    >>> env = PiecewiseBernoulli([[0.6, 0.4], [0.4, 0.6], [0.5, 0.7]], [10, 20])
    >>> [int(np.argmax(env.expected_rewards(t, None))) for t in (0, 9, 10, 19, 20, 10**6)]
    [0, 0, 1, 1, 1, 1]
    """

    segments: Sequence[Sequence[float]] | FloatArray
    change_points: Sequence[int] = field(default_factory=tuple)
    delay: Delay | None = None
    reward: ClassVar[str] = "binary"

    def __post_init__(self) -> None:
        seg = np.array(self.segments, dtype=np.float64)
        if seg.ndim != 2 or seg.shape[1] == 0:
            raise ValueError("segments must be a non-empty list of equally long lists of means")
        if not np.isfinite(seg).all() or (seg < 0).any() or (seg > 1).any():
            raise ValueError("segment means must lie in [0, 1]")
        cps = tuple(int(c) for c in self.change_points)
        if len(cps) != len(seg) - 1:
            raise ValueError("give one change point fewer than segments")
        if any(c <= 0 for c in cps) or any(b <= a for a, b in pairwise(cps)):
            raise ValueError("change points must be positive and strictly increasing")
        _check_delay(self.delay)
        seg.setflags(write=False)
        object.__setattr__(self, "segments", seg)
        object.__setattr__(self, "change_points", cps)

    @property
    def k(self) -> int:
        return int(np.asarray(self.segments).shape[1])

    def segment(self, t: int) -> int:
        """Index of the segment that step ``t`` belongs to."""
        return int(np.searchsorted(np.asarray(self.change_points), t, side="right"))

    def expected_rewards(self, t: int, contexts: FloatArray | None) -> FloatArray:
        return np.asarray(np.asarray(self.segments)[self.segment(t)], dtype=np.float64)

    def rewards(self, arms: IntArray, means: FloatArray, rng: np.random.Generator) -> FloatArray:
        return (rng.random(means.shape) < means).astype(np.float64)

    def describe(self) -> dict[str, Any]:
        out = {
            "type": "piecewise_bernoulli",
            "segments": np.asarray(self.segments).tolist(),
            "change_points": list(self.change_points),
        }
        return _with_delay(out, self.delay)


@dataclass(frozen=True, eq=False)
class _Contextual(Environment):
    """Contexts ``x = (1, z)`` with ``intercept`` (else ``x = z``), ``z ~ N(0, I)``;
    ``theta`` has one row of ``d`` coefficients per arm."""

    theta: Sequence[Sequence[float]] | FloatArray
    intercept: bool = True

    def __post_init__(self) -> None:
        th = np.array(self.theta, dtype=np.float64)
        if th.ndim != 2 or th.size == 0 or not np.isfinite(th).all():
            raise ValueError("theta must be a finite (arms × features) matrix")
        th.setflags(write=False)
        object.__setattr__(self, "theta", th)
        object.__setattr__(self, "context_dim", int(th.shape[1]))

    @property
    def k(self) -> int:
        return int(np.asarray(self.theta).shape[0])

    def contexts(self, t: int, replications: int, rng: np.random.Generator) -> FloatArray:
        x = rng.standard_normal((replications, self.context_dim))
        if self.intercept:
            x[:, 0] = 1.0
        return x

    def linear(self, contexts: FloatArray | None) -> FloatArray:
        if contexts is None:
            raise ValueError("a contextual environment needs contexts")
        return np.asarray(contexts @ np.asarray(self.theta).T, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class LinearContextual(_Contextual):
    """Linear rewards: arm ``i`` pays ``θ_i · x + N(0, noise_sd²)`` in context ``x``.

    >>> env = LinearContextual([[0.0, 1.0], [0.5, 0.0]])
    >>> x = env.contexts(0, 3, np.random.default_rng(0))
    >>> x[:, 0].tolist(), env.expected_rewards(0, x).shape
    ([1.0, 1.0, 1.0], (3, 2))
    """

    noise_sd: float = 1.0
    reward: ClassVar[str] = "continuous"

    def __post_init__(self) -> None:
        _Contextual.__post_init__(self)
        if not (np.isfinite(self.noise_sd) and self.noise_sd >= 0):
            raise ValueError("noise_sd must be finite and >= 0")

    def expected_rewards(self, t: int, contexts: FloatArray | None) -> FloatArray:
        return self.linear(contexts)

    def rewards(self, arms: IntArray, means: FloatArray, rng: np.random.Generator) -> FloatArray:
        return np.asarray(means + self.noise_sd * rng.standard_normal(means.shape))

    def describe(self) -> dict[str, Any]:
        return {
            "type": "linear_contextual",
            "theta": np.asarray(self.theta).tolist(),
            "intercept": self.intercept,
            "noise_sd": self.noise_sd,
        }


@dataclass(frozen=True, eq=False)
class LogisticContextual(_Contextual):
    """Logistic rewards: arm ``i`` pays 1 with probability ``σ(θ_i · x)`` in context ``x``.

    >>> env = LogisticContextual([[0.0, 1.0], [0.0, -1.0]], intercept=False)
    >>> env.expected_rewards(0, np.array([[0.0, 2.0]])).round(4).tolist()
    [[0.8808, 0.1192]]
    """

    delay: Delay | None = None
    reward: ClassVar[str] = "binary"

    def __post_init__(self) -> None:
        _Contextual.__post_init__(self)
        _check_delay(self.delay)

    def expected_rewards(self, t: int, contexts: FloatArray | None) -> FloatArray:
        return np.asarray(special.expit(self.linear(contexts)), dtype=np.float64)

    def rewards(self, arms: IntArray, means: FloatArray, rng: np.random.Generator) -> FloatArray:
        return (rng.random(means.shape) < means).astype(np.float64)

    def describe(self) -> dict[str, Any]:
        out = {
            "type": "logistic_contextual",
            "theta": np.asarray(self.theta).tolist(),
            "intercept": self.intercept,
        }
        return _with_delay(out, self.delay)
