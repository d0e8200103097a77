"""Conjugate posteriors of each arm's mean reward: Beta–Bernoulli and Normal-Inverse-Gamma.

:class:`ConjugatePrior` holds the prior parameters and turns the sufficient
statistics (:class:`~octobandit.stats.arms.ArmStats`) into posterior parameters:
``Beta(a, b)`` for binary rewards, the Student-t marginal of the mean for
continuous ones. Thompson sampling draws from these posteriors (the
``thompson`` policy is a :class:`ConjugatePrior`), and the posterior summaries of
:mod:`octobandit.stats.conclusion` are computed on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from octobandit.checks import check_number
from octobandit.errors import InvalidInput
from octobandit.stats.arms import ArmStats, FloatArray

#: Parameter ranges: pseudo-counts from 0.01 (Beta) or 10^-6 to the largest exact total,
#: ``mu0`` within the reward bound (10^12) and ``b0`` (a reward²) up to its square. Outside
#: them the posterior quadrature can no longer be trusted (see docs/policies.md).
_LIMITS: dict[str, tuple[float, float]] = {
    "alpha": (0.01, 1e15),
    "beta": (0.01, 1e15),
    "mu0": (-1e12, 1e12),
    "kappa0": (1e-6, 1e6),
    "a0": (0.5, 1e6),
    "b0": (1e-100, 1e24),
}


@dataclass(frozen=True, slots=True)
class ConjugatePrior:
    """The prior of every arm's mean reward, and its conjugate update by the statistics.

    * binary rewards: ``Beta(alpha, beta)``; an arm with ``n`` observed rewards
      summing to ``s`` has posterior ``Beta(alpha + s, beta + n - s)``;
    * continuous rewards: Normal with unknown mean and variance under a
      Normal-Inverse-Gamma prior ``NIG(mu0, kappa0, a0, b0)``; the marginal
      posterior of the mean is a Student-t with ``2·a_n`` degrees of freedom. By default
      ``mu0`` and ``b0`` (the parameters with the rewards' unit) are empirical (see
      :meth:`nig_prior`).

    The parameters are checked against their ranges, naming ``policy.<param>``.
    """

    alpha: float = 1.0
    beta: float = 1.0
    mu0: float | None = None
    kappa0: float = 0.01
    a0: float = 1.0
    b0: float | None = None

    def __post_init__(self) -> None:
        for name, (low, high) in _LIMITS.items():
            value = getattr(self, name)
            if value is None and name in ("mu0", "b0"):
                continue  # empirical
            checked = check_number(value, f"policy.{name}", low=low, high=high)
            object.__setattr__(self, name, checked)
        if self.a0 <= 0.5:
            # an arm without rewards has 2·a0 degrees of freedom: its mean must exist
            raise InvalidInput("must be > 0.5", field="policy.a0")

    # -- posteriors ---------------------------------------------------------
    def beta_posterior(self, stats: ArmStats) -> tuple[FloatArray, FloatArray]:
        a = self.alpha + stats.s
        b = self.beta + np.maximum(stats.n - stats.s, 0.0)
        return a, b

    def nig_prior(self, stats: ArmStats) -> tuple[FloatArray, FloatArray]:
        """``(mu0, b0)`` per row of ``stats`` (shape ``(..., 1)``): as given, or empirical.

        A parameter left unset (``None``, the default) is estimated from the rewards of
        every arm of the row, so that the default prior is invariant under an affine change
        of the rewards' unit, ``x -> a·x + b`` (``a > 0``):

        * ``mu0`` = the pooled mean of all rewards (0 before any reward);
        * ``b0`` = ``a0 · v`` with ``v`` the pooled within-arm variance
          ``Σ m2_i / Σ max(n_i - 1, 0)``; when no arm has two rewards, the variance of all
          rewards about the pooled mean; when every reward seen is equal (or fewer than
          two), 1. That last fallback does not depend on the data, but then every arm's
          posterior has the same centre and the common scale cancels out of P(best).

        ``kappa0`` and ``a0`` are pseudo-counts (no unit): they stay as given.
        """
        n, xbar, m2 = _moments(stats)
        return self._prior(n, xbar, m2)

    def _prior(
        self, n: FloatArray, xbar: FloatArray, m2: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        ones = np.ones(n.shape[-1])  # row sums as matrix products: faster for small K

        def total(x: FloatArray) -> FloatArray:
            return np.asarray(x @ ones, dtype=np.float64)[..., None]

        n_all = total(n)
        grand = total(n * xbar) / np.where(n_all > 0, n_all, 1.0)
        mu0 = grand if self.mu0 is None else np.full_like(grand, self.mu0)
        if self.b0 is not None:
            return mu0, np.full_like(grand, self.b0)
        within = total(m2)
        within_df = total(np.maximum(n - 1.0, 0.0))
        dev = xbar - grand
        between = total(n * dev * dev)
        spread = np.where(within_df > 0, within, within + between)
        df = np.where(within_df > 0, within_df, n_all - 1.0)
        v = spread / np.where(df > 0, df, np.inf)
        v = np.where(v > 0, v, 1.0)  # no spread seen: any common scale gives the same P(best)
        return mu0, self.a0 * v

    def t_posterior(self, stats: ArmStats) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(loc, scale, df) of the Student-t marginal posterior of each arm's mean.

        Normal–Inverse-Gamma update in a numerically stable form: with ``x̄`` the arm's mean
        and ``m2`` its centred sum of squares (:attr:`ArmStats.m2`),
        ``b = b0 + m2 / 2 + kappa0 · n · (x̄ - mu0)² / (2 · (kappa0 + n))``.
        """
        n, xbar, m2 = _moments(stats)
        mu0, b0 = self._prior(n, xbar, m2)
        kappa = self.kappa0 + n
        w = n / kappa  # 0 where n = 0: then x̄ does not matter
        delta = xbar - mu0
        mu = mu0 + w * delta
        a = self.a0 + 0.5 * n
        b = b0 + 0.5 * (m2 + self.kappa0 * w * delta * delta)
        return mu, np.sqrt(b / (a * kappa)), 2.0 * a


#: Guards divisions by counts that are 0 (the numerator is then 0 too).
_TINY = 1e-300


def _moments(stats: ArmStats) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(n, x̄, m2)`` per arm; ``x̄ = 0`` and ``m2 = 0`` where ``n = 0``."""
    n = stats.n
    n1 = np.where(n > 0, n, 1.0)
    xbar = stats.s / n1
    d = stats.s if stats.c is None else stats.s - n * stats.c
    m2 = np.maximum(stats.ss - d * (d / n1), 0.0)
    return n, xbar, m2
