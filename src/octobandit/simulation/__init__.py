"""Simulate bandit policies on synthetic environments, to check that they work.

The simulator runs the service's own policy objects (no copies of the
algorithms) on many replications at once and reports the pseudo-regret with
95% bands; :func:`lai_robbins_bound` gives the asymptotic lower bound to
compare against. Conversions can be reported late (:mod:`~octobandit.simulation.delays`)
and counted as the service's attribution windows count them (``simulate(...,
feedback="window", window=W)``; see docs/delayed-feedback.md).

>>> from octobandit.policies import KLUCB
>>> res = simulate(KLUCB(), Bernoulli.with_gap(3, best=0.6, gap=0.2), horizon=300,
...                replications=20, seed=7)
>>> bool(res.best_arm_share[-1] > 1 / 3)
True
"""

from octobandit.simulation.bounds import lai_robbins_bound, lai_robbins_constant
from octobandit.simulation.delays import Delay, Exponential, Fixed
from octobandit.simulation.environments import (
    Bernoulli,
    Environment,
    Gaussian,
    LinearContextual,
    LogisticContextual,
    PiecewiseBernoulli,
)
from octobandit.simulation.labels import policy_label, policy_labels
from octobandit.simulation.plotting import plot_results
from octobandit.simulation.runner import (
    FEEDBACK,
    WINDOWED,
    SimulationResult,
    print_progress,
    simulate,
)

__all__ = [
    "FEEDBACK",
    "WINDOWED",
    "Bernoulli",
    "Delay",
    "Environment",
    "Exponential",
    "Fixed",
    "Gaussian",
    "LinearContextual",
    "LogisticContextual",
    "PiecewiseBernoulli",
    "SimulationResult",
    "lai_robbins_bound",
    "lai_robbins_constant",
    "plot_results",
    "policy_label",
    "policy_labels",
    "print_progress",
    "simulate",
]
