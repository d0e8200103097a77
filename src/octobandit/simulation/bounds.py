"""Regret lower bounds."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from octobandit.policies.base import FloatArray
from octobandit.policies.kl_ucb import bernoulli_kl


def lai_robbins_constant(means: ArrayLike) -> float:
    """``Σ_{i: μ_i < μ*} (μ* - μ_i) / KL(μ_i, μ*)`` for Bernoulli arms with the given means.

    An arm whose divergence from the best is infinite (``μ* = 1``) adds nothing.

    >>> round(lai_robbins_constant([0.5, 0.4, 0.4]), 4)  # 2 · 0.1 / KL(0.4, 0.5)
    9.9327
    """
    mu = np.asarray(means, dtype=np.float64)
    if mu.ndim != 1 or mu.size == 0 or (mu < 0).any() or (mu > 1).any():
        raise ValueError("means must be a non-empty 1-D sequence in [0, 1]")
    best = float(mu.max())
    sub = mu[mu < best]
    if sub.size == 0:
        return 0.0
    kl = bernoulli_kl(sub, best)
    with np.errstate(divide="ignore"):
        terms = np.where(np.isfinite(kl), (best - sub) / kl, 0.0)
    return float(terms.sum())


def lai_robbins_bound(means: ArrayLike, t: ArrayLike) -> FloatArray:
    """Lai & Robbins (1985) asymptotic lower bound on the expected regret of any
    uniformly good policy on Bernoulli arms: ``Σ_i (μ* - μ_i) / KL(μ_i, μ*) · ln t``.

    It holds as ``t → ∞`` (``liminf R(t) / ln t ≥`` the constant); at finite
    ``t`` it is a reference curve, not a guarantee.

    Reference: Lai & Robbins, "Asymptotically efficient adaptive allocation rules",
    Advances in Applied Mathematics 6 (1985), 4–22.

    >>> lai_robbins_bound([0.5, 0.4], [1, 100]).round(3).tolist()
    [0.0, 22.871]
    """
    t_ = np.asarray(t, dtype=np.float64)
    return np.asarray(lai_robbins_constant(means) * np.log(np.maximum(t_, 1.0)), dtype=np.float64)
