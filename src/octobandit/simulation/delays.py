"""Conversion delays of simulated environments, counted in steps (decisions).

A delay tells the simulator how long after its decision a positive outcome (a
"conversion": a binary reward of 1) is reported. :meth:`Delay.sample` draws whole
steps ``D >= 0``: the conversion of the decision made at step ``t`` arrives at the end
of step ``t + D``, so the policy sees it from step ``t + D + 1`` on (``D = 0`` is the
simulator's immediate feedback). :meth:`Delay.within` gives ``P(D < w)``, the
probability that a conversion arrives within ``w`` steps of its decision, which is
what an attribution window of ``w`` steps keeps.

An environment takes a delay as a parameter (``Bernoulli([...], delay=Exponential(1000))``);
:func:`~octobandit.simulation.runner.simulate` uses it with ``feedback="window"``,
``"failure_until_reward"`` or ``"positives_only"``.

>>> import numpy as np
>>> d = Exponential(1000)
>>> d.describe()
{'type': 'exponential', 'mean': 1000.0}
>>> round(d.within(1000), 6)  # 1 - exp(-1)
0.632121
>>> Fixed(5).sample(np.random.default_rng(0), 3).tolist()
[5, 5, 5]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from octobandit.policies.base import FloatArray, IntArray

__all__ = ["Delay", "Exponential", "Fixed"]


class Delay(ABC):
    """A distribution of whole-step delays ``D >= 0``; see the module docstring."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, size: int) -> IntArray:
        """``size`` independent delays, in steps (integers >= 0)."""

    @abstractmethod
    def within(self, steps: float) -> float:
        """``P(D < steps)``: the probability that a conversion arrives within ``steps`` steps."""

    def arrived(self, ages: IntArray | FloatArray) -> FloatArray:
        """``P(D <= age)`` for each ``age`` (steps since the decision): the probability that
        a conversion has been counted by the end of the step ``age`` steps after its decision.

        >>> Fixed(2).arrived(np.arange(4)).tolist()
        [0.0, 0.0, 1.0, 1.0]
        """
        return np.asarray([self.within(float(a) + 1.0) for a in np.asarray(ages).ravel()])

    def mean_arrived(self, horizon: int) -> float:
        """``(1/H) Σ_{j<H} P(D <= j)``: the expected share of a horizon's conversions
        counted by its end when decisions are spread evenly over the ``H`` steps.

        With ``feedback="failure_until_reward"`` this is the factor by which the mean
        estimate of an arm played at a constant rate falls short of the arm's mean.

        >>> Fixed(10).mean_arrived(100)  # the last 10 steps' conversions are missing
        0.9
        """
        if horizon < 1:
            raise ValueError("horizon must be a positive integer")
        return float(self.arrived(np.arange(horizon)).mean())

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The delay as plain JSON values."""


@dataclass(frozen=True)
class Fixed(Delay):
    """Every conversion arrives exactly ``steps`` steps after its decision (``Fixed(0)``:
    no delay).

    >>> Fixed(3).within(3), Fixed(3).within(4)
    (0.0, 1.0)
    """

    steps: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError("Fixed: steps must be an integer >= 0")

    def sample(self, rng: np.random.Generator, size: int) -> IntArray:
        return np.full(size, self.steps, dtype=np.intp)

    def within(self, steps: float) -> float:
        return 1.0 if self.steps < steps else 0.0

    def arrived(self, ages: IntArray | FloatArray) -> FloatArray:
        return (np.asarray(ages, dtype=np.float64) >= self.steps).astype(np.float64)

    def describe(self) -> dict[str, Any]:
        return {"type": "fixed", "steps": self.steps}


@dataclass(frozen=True)
class Exponential(Delay):
    """Exponential delays of mean ``mean`` steps, whole steps rounded down.

    A continuous delay ``X ~ Exp(mean)`` is drawn and the conversion arrives at the end
    of step ``t + floor(X)``: for a whole number of steps ``w``, ``P(D < w) = P(X < w) =
    1 - exp(-w / mean)`` exactly, the share of conversions a window of ``w`` steps keeps.
    (``E[D] = 1 / (exp(1 / mean) - 1)``, about ``mean - 1/2``.)

    >>> d = Exponential(2.0)
    >>> round(d.within(2), 6), d.arrived(np.array([0, 1])).round(6).tolist()
    (0.632121, [0.393469, 0.632121])
    >>> round(Exponential(1000).mean_arrived(50_000), 4)  # ≈ 1 - (m/H)(1 - exp(-H/m))
    0.98
    """

    mean: float

    def __post_init__(self) -> None:
        mean = float(self.mean)
        if not (math.isfinite(mean) and mean > 0):
            raise ValueError("Exponential: mean must be finite and > 0")
        object.__setattr__(self, "mean", mean)

    def sample(self, rng: np.random.Generator, size: int) -> IntArray:
        return np.floor(rng.exponential(self.mean, size)).astype(np.intp)

    def within(self, steps: float) -> float:
        return -math.expm1(-max(steps, 0.0) / self.mean)

    def arrived(self, ages: IntArray | FloatArray) -> FloatArray:
        a = np.asarray(ages, dtype=np.float64)
        return np.asarray(-np.expm1(-np.maximum(a + 1.0, 0.0) / self.mean), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"type": "exponential", "mean": self.mean}
