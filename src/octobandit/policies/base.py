"""The policy interface: sufficient statistics in, a choice with its propensity out.

A policy is pure: it owns no state and does no I/O. It reads the per-arm
sufficient statistics of the observed rewards (:class:`ArmStats`), an optional
mask of enabled arms and a seeded :class:`numpy.random.Generator`, and returns
the chosen arms together with the probability with which each was chosen.

The statistics (:mod:`octobandit.stats.arms`, re-exported here) are additive
(``a + b`` merges two replicas or two batches), so updates commute. Every
array's last axis is the arm axis; a leading axis is a batch of independent
problems (for example simulation replications).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from octobandit.checks import check_number
from octobandit.errors import InvalidInput
from octobandit.stats.arms import REWARD_TYPES, ArmStats, BoolArray, FloatArray, IntArray

__all__ = [
    "REWARD_TYPES",
    "ArmStats",
    "BoolArray",
    "Choice",
    "FloatArray",
    "IntArray",
    "Policy",
    "check_number",
    "sample_categorical",
    "ties_probabilities",
]


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
