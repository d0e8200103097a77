"""Thompson sampling: draw each arm's mean from its posterior, serve the largest draw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from octobandit.policies.base import (
    ArmStats,
    BoolArray,
    FloatArray,
    IntArray,
    Policy,
    _as_mask,
)
from octobandit.stats.conjugate import ConjugatePrior
from octobandit.stats.posterior import beta_prob_best, student_t_prob_best


@dataclass(frozen=True, slots=True)
class ThompsonSampling(ConjugatePrior, Policy):
    """Thompson sampling with a conjugate posterior per arm.

    * ``reward="binary"``: Beta–Bernoulli with prior ``Beta(alpha, beta)``; an
      arm with ``n`` observed rewards summing to ``s`` has posterior
      ``Beta(alpha + s, beta + n - s)``.
    * ``reward="continuous"``: Normal with unknown mean and variance under a
      Normal-Inverse-Gamma prior ``NIG(mu0, kappa0, a0, b0)``; the marginal
      posterior of the mean is a Student-t with ``2·a_n`` degrees of freedom. By default
      ``mu0`` and ``b0`` (the parameters with the rewards' unit) are empirical (see
      :meth:`nig_prior`): the choice does not depend on the unit of the rewards.

    With a batch of problems (2-D statistics, e.g. simulations) each arm's mean
    is drawn from its posterior and the largest draw wins. For many draws from
    one state (the service) the arm is drawn directly from the posterior
    probability of being best: the same distribution, and the logged
    propensity is exactly the probability used. That probability is computed
    by deterministic Gauss–Legendre quadrature of ``∫ f_i(x) ∏_{j≠i} F_j(x) dx``
    (absolute error below 1e-6), not by Monte Carlo,
    so even rare arms get a usable, non-zero propensity for off-policy evaluation.

    >>> import numpy as np
    >>> p = ThompsonSampling()
    >>> stats = ArmStats.of(n=[0, 0], s=[0, 0])
    >>> p.probabilities(stats).round(6).tolist()
    [0.5, 0.5]
    >>> p.choose(stats, np.random.default_rng(1), size=3).arms.shape
    (3,)
    """

    type = "thompson"
    exact_propensity = False

    # the prior's parameters and their checks are those of ConjugatePrior
    reward: str = "binary"

    def point_estimates(self, stats: ArmStats) -> FloatArray:
        if self.reward == "binary":
            a, b = self.beta_posterior(stats)
            return a / (a + b)
        return self.t_posterior(stats)[0]

    def probabilities(self, stats: ArmStats, enabled: Any = None) -> FloatArray:
        mask = _as_mask(enabled, stats.k)
        if self.reward == "binary":
            a, b = self.beta_posterior(stats)
            return beta_prob_best(a, b, mask=mask)
        loc, scale, df = self.t_posterior(stats)
        return student_t_prob_best(loc, scale, df, mask=mask)

    def _draw(self, stats: ArmStats, mask: BoolArray, rng: np.random.Generator) -> IntArray:
        """Posterior sampling, one draw per problem (used for batches of problems)."""
        if self.reward == "binary":
            a, b = self.beta_posterior(stats)
            theta = rng.beta(a, b)
        else:
            loc, scale, df = self.t_posterior(stats)
            theta = loc + scale * rng.standard_t(df)
        return np.asarray(np.argmax(np.where(mask, theta, -np.inf), axis=-1), dtype=np.intp)
