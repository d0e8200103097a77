"""Off-policy evaluation on plain arrays: how would a policy have done on logged data?

The estimators take NumPy arrays after OBP's contract (see
:mod:`octobandit.evaluation._arrays`) and know nothing of the service's storage or engine;
turning an experiment's event log into those arrays is a separate adapter's job.

>>> from octobandit.evaluation import InverseProbabilityWeighting, Replay, evaluate
>>> out = evaluate(
...     [InverseProbabilityWeighting(), Replay()],
...     reward=[1, 0, 1, 1],
...     action=[0, 1, 0, 1],
...     pscore=[0.5, 0.5, 0.5, 0.5],
...     action_dist=[[1.0, 0.0]] * 4,  # always action 0
...     n_bootstrap_samples=100,
... )
>>> out["ipw"]["value"], out["replay"]["value"]
(1.0, 1.0)
"""

from octobandit.evaluation._arrays import EvaluationError
from octobandit.evaluation.estimators import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    OffPolicyEstimator,
    Replay,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
    evaluate,
)
from octobandit.evaluation.regression import NewtonLogisticRegression, RegressionModel

__all__ = [
    "DirectMethod",
    "DoublyRobust",
    "EvaluationError",
    "InverseProbabilityWeighting",
    "NewtonLogisticRegression",
    "OffPolicyEstimator",
    "RegressionModel",
    "Replay",
    "SelfNormalizedDoublyRobust",
    "SelfNormalizedInverseProbabilityWeighting",
    "SwitchDoublyRobust",
    "evaluate",
]
