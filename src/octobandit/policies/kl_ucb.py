"""KL-UCB for Bernoulli rewards: the upper confidence bound in Kullback–Leibler divergence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from octobandit.errors import InvalidInput
from octobandit.policies.base import (
    ArmStats,
    FloatArray,
    Policy,
    _as_mask,
    check_number,
    ties_probabilities,
)


def bernoulli_kl(p: ArrayLike, q: ArrayLike) -> FloatArray:
    """``KL(Bernoulli(p) ‖ Bernoulli(q)) = p ln(p/q) + (1-p) ln((1-p)/(1-q))``.

    ``0 ln 0 = 0``; the divergence is ``+inf`` where ``q`` puts no mass on an
    outcome ``p`` has (``q ∈ {0, 1}``, ``q ≠ p``).

    >>> float(bernoulli_kl(0.5, 0.5)), round(float(bernoulli_kl(0.0, 0.5)), 6)
    (0.0, 0.693147)
    """
    p_ = np.asarray(p, dtype=np.float64)
    q_ = np.asarray(q, dtype=np.float64)
    out = special.rel_entr(p_, q_) + special.rel_entr(1.0 - p_, 1.0 - q_)
    return np.asarray(out, dtype=np.float64)


def kl_upper_bound(
    p: ArrayLike, delta: ArrayLike, *, tol: float = 1e-12, max_iter: int = 100
) -> FloatArray:
    """The largest ``q ∈ [p, 1]`` with ``KL(p, q) ≤ delta``, elementwise.

    ``q ↦ KL(p, q)`` is convex and increasing on ``[p, 1)`` and infinite at 1, so
    the bound is the root of ``KL(p, q) = delta``. It lies in ``[p, hi]`` with
    ``hi = min(p + sqrt(delta / 2), 1 - exp(-(delta + H(p)) / (1 - p)))`` (Pinsker,
    ``KL(p, q) ≥ 2 (q - p)²``, and ``KL(p, q) ≥ -H(p) - (1 - p) ln(1 - q)``, where
    ``H`` is the binary entropy). Newton's method started at ``hi`` stays on the right
    of the root and converges quadratically; a step that leaves the bracket (possible
    only when ``hi`` rounds to 1) is replaced by bisection. All elements iterate
    together until every step, or every bracket, is below ``tol``.

    >>> q = kl_upper_bound([0.0, 0.3, 1.0], 0.5)
    >>> q.round(6).tolist(), round(1 - float(np.exp(-0.5)), 6)
    ([0.393469, 0.771382, 1.0], 0.393469)
    >>> round(float(bernoulli_kl(0.3, q[1])), 12)
    0.5
    """
    p_, d_ = np.broadcast_arrays(
        np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0), np.asarray(delta, dtype=np.float64)
    )
    out = np.where(d_ > 0, 1.0, p_)  # delta <= 0: q = p; p = 1: q = 1
    todo = (d_ > 0) & (p_ < 1.0)
    if not todo.any():
        return np.asarray(out, dtype=np.float64)
    pa, da = p_[todo], d_[todo]
    lo = pa.copy()
    # KL(p, q) >= 2 (q - p)² (Pinsker) and KL(p, q) >= -H(p) - (1 - p) ln(1 - q)
    entropy = -(special.xlogy(pa, pa) + special.xlogy(1.0 - pa, 1.0 - pa))
    hi = np.minimum(pa + np.sqrt(da / 2.0), -np.expm1(-(da + entropy) / (1.0 - pa)))
    hi = np.minimum(hi, 1.0)
    q = np.where(hi < 1.0, hi, 0.5 * (lo + hi))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(max_iter):
            f = bernoulli_kl(pa, q) - da
            lo = np.where(f <= 0, q, lo)
            hi = np.where(f >= 0, q, hi)
            newton = q - f * q * (1.0 - q) / (q - pa)
            inside = np.isfinite(newton) & (newton >= lo) & (newton <= hi)
            q_next = np.where(inside, newton, 0.5 * (lo + hi))
            done = (np.abs(q_next - q) <= tol) | (hi - lo <= tol)
            q = q_next
            if done.all():
                break
    out[todo] = q
    return np.asarray(out, dtype=np.float64)


def exploration_level(total: ArrayLike, c: float) -> FloatArray:
    """``ln t + c · ln ln t`` with ``ln ln t`` taken as 0 while ``ln t ≤ 1`` (``t ≤ e``)."""
    log_t = np.log(np.maximum(np.asarray(total, dtype=np.float64), 1.0))
    return np.asarray(log_t + c * np.log(np.maximum(log_t, 1.0)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class KLUCB(Policy):
    """KL-UCB (Garivier & Cappé, 2011) for rewards in {0, 1}: the arm maximising

    ``max{q ∈ [μ̂, 1] : n · KL(μ̂, q) ≤ ln t + c · ln ln t}``

    with ``KL`` the Bernoulli Kullback–Leibler divergence, ``μ̂`` and ``n`` the
    arm's empirical mean and observed-reward count and ``t`` the observed rewards
    over the enabled arms. The paper proves its regret bound for ``c = 3`` and
    recommends ``c = 0`` in practice (the default). The bound is solved by
    safeguarded Newton iterations (:func:`kl_upper_bound`), vectorised over
    arms and problems. With ``c = 3`` its regret provably matches the Lai–Robbins
    lower bound asymptotically for Bernoulli rewards.

    An arm with no observed reward has an infinite index, so every arm is tried
    first. The choice is deterministic up to ties, broken uniformly: the
    propensity is ``1 / |ties|`` (1.0 in general), and logs of this policy cannot
    be evaluated off-policy. Binary rewards only.

    Reference: Garivier & Cappé, "The KL-UCB algorithm for bounded stochastic
    bandits and beyond", COLT 2011 (JMLR W&CP 19, 359–376).

    >>> p = KLUCB()
    >>> p.probabilities(ArmStats.of(n=[10, 0], s=[9, 0])).tolist()
    [0.0, 1.0]
    >>> stats = ArmStats.of(n=[100, 10], s=[60, 4])
    >>> p.indices(stats).round(4).tolist()
    [0.7407, 0.8317]
    >>> p.probabilities(stats).tolist()
    [0.0, 1.0]
    """

    type = "kl_ucb"
    deterministic = True

    c: float = 0.0
    reward: str = "binary"

    def __post_init__(self) -> None:
        object.__setattr__(self, "c", check_number(self.c, "policy.c", low=0.0))
        if self.reward != "binary":
            raise InvalidInput(
                "kl_ucb uses the Bernoulli divergence and needs binary rewards", field="policy.type"
            )

    def indices(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        n = np.where(mask, stats.n, 0.0)
        level = exploration_level(n.sum(axis=-1, keepdims=True), self.c)
        seen = n > 0
        n1 = np.where(seen, n, 1.0)
        bound = kl_upper_bound(stats.s / n1, np.broadcast_to(level, n.shape) / n1)
        return np.asarray(np.where(seen, bound, np.inf), dtype=np.float64)

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        return ties_probabilities(self.indices(stats, mask), mask)
