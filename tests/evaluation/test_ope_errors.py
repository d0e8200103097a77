"""The array contract's errors: each names the array and, when it is about a round, the index."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from octobandit.evaluation import (
    DirectMethod,
    DoublyRobust,
    EvaluationError,
    InverseProbabilityWeighting,
    OffPolicyEstimator,
    RegressionModel,
    Replay,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
    evaluate,
)

WEIGHTED = [
    InverseProbabilityWeighting(),
    SelfNormalizedInverseProbabilityWeighting(),
    DoublyRobust(),
    SelfNormalizedDoublyRobust(),
    SwitchDoublyRobust(tau=2.0),
]


def arrays(**change: Any) -> dict[str, Any]:
    """Four valid rounds, three actions; ``change`` replaces some arrays."""
    base: dict[str, Any] = {
        "reward": np.array([1.0, 0.0, 1.0, 0.0]),
        "action": np.array([0, 1, 2, 1]),
        "pscore": np.array([0.5, 0.25, 0.25, 0.25]),
        "action_dist": np.full((4, 3), 1 / 3),
        "estimated_rewards_by_reg_model": np.full((4, 3), 0.5),
    }
    base.update(change)
    return base


def raises(estimator: OffPolicyEstimator, match: str, **change: Any) -> EvaluationError:
    with pytest.raises(EvaluationError, match=match) as info:
        estimator.estimate_policy_value(**arrays(**change))
    return info.value


def test_valid_arrays_pass_every_estimator() -> None:
    for estimator in [*WEIGHTED, DirectMethod()]:
        assert np.isfinite(estimator.estimate_policy_value(**arrays()))
    # replay needs a uniform logger
    uniform = arrays(pscore=np.full(4, 1 / 3))
    assert Replay().estimate_policy_value(**uniform) >= 0


def test_the_error_is_a_value_error_with_array_and_index() -> None:
    err = raises(WEIGHTED[0], r"pscore\[2\] = 0\.0 is zero", pscore=np.array([0.5, 0.5, 0, 0.5]))
    assert isinstance(err, ValueError)
    assert (err.array, err.index) == ("pscore", 2)


@pytest.mark.parametrize("estimator", WEIGHTED, ids=lambda e: e.name)
def test_missing_propensities(estimator: OffPolicyEstimator) -> None:
    err = raises(estimator, "pscore is missing", pscore=None)
    assert err.array == "pscore"


@pytest.mark.parametrize(
    ("pscore", "match"),
    [
        ([0.5, 0.0, 0.5, 0.5], r"pscore\[1\] = 0\.0 is zero"),
        ([0.5, 0.5, 1.5, 0.5], r"pscore\[2\] = 1\.5 is greater than 1"),
        ([0.5, 0.5, 0.5, -0.1], r"pscore\[3\] = -0\.1 is negative"),
        ([0.5, np.nan, 0.5, 0.5], r"pscore\[1\] is nan, not a finite number"),
        ([0.5, 0.5, 0.5], r"pscore has 3 rounds but reward has 4 \(shape mismatch\)"),
    ],
)
def test_bad_propensities(pscore: list[float], match: str) -> None:
    for estimator in WEIGHTED:
        raises(estimator, match, pscore=np.array(pscore))


@pytest.mark.parametrize("estimator", [*WEIGHTED, Replay()], ids=lambda e: e.name)
def test_a_deterministic_logger_cannot_be_reweighted(estimator: OffPolicyEstimator) -> None:
    raises(
        estimator,
        "deterministic, so importance weighting cannot evaluate other actions",
        pscore=np.ones(4),
    )


def test_a_deterministic_logger_is_fine_for_dm_and_with_a_single_action() -> None:
    assert DirectMethod().estimate_policy_value(**arrays(pscore=np.ones(4))) == 0.5
    single = {
        "reward": [1.0, 0.0],
        "action": [0, 0],
        "pscore": [1.0, 1.0],
        "action_dist": [[1.0], [1.0]],
    }
    assert InverseProbabilityWeighting().estimate_policy_value(**single) == 0.5


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"action": np.array([0, 1, 3, 1])}, r"action\[2\] = 3 is out of range.*0\.\.2"),
        ({"action": np.array([0, -1, 2, 1])}, r"action\[1\] = -1 is out of range"),
        ({"action": np.array([0.0, 1.5, 2.0, 1.0])}, r"action\[1\] = 1\.5 is not an integer"),
        ({"action": np.array([0, 1, 2])}, r"action has 3 rounds but reward has 4"),
        ({"action": np.array(["a", "b", "c", "d"])}, "action must hold integers"),
        ({"reward": np.array([1.0, np.inf, 0.0, 0.0])}, r"reward\[1\] is inf"),
        ({"reward": np.array([[1.0, 0.0, 1.0, 0.0]])}, r"reward must be one-dimensional"),
        ({"reward": np.array([])}, "reward is empty"),
        ({"action_dist": np.full((3, 3), 1 / 3)}, r"action_dist has 3 rounds but reward has 4"),
        ({"action_dist": np.full(4, 1.0)}, r"action_dist must have shape \(n, K, L\) or \(n, K\)"),
        ({"action_dist": None}, "action_dist is missing"),
        (
            {"action_dist": np.array([[1, 0, 0], [0.5, 0.4, 0.0], [1, 0, 0], [1, 0, 0]])},
            r"action_dist\[1, :, 0\] sums to 0\.9, not 1",
        ),
        (
            {"action_dist": np.array([[1, 0, 0], [1, 0, 0], [1.5, -0.5, 0], [1, 0, 0]])},
            r"action_dist\[2, 1, 0\] = -0\.5 is negative",
        ),
        (
            {"action_dist": np.where(np.eye(4, 3) > 0, np.nan, 0.5)},
            r"action_dist\[0, 0, 0\] is nan",
        ),
    ],
)
def test_bad_arrays(change: dict[str, Any], match: str) -> None:
    for estimator in [*WEIGHTED, DirectMethod()]:
        raises(estimator, match, **change)


def test_positions_out_of_range_and_the_sum_is_checked_per_position() -> None:
    dist = np.full((4, 3, 2), 1 / 3)
    raises(
        WEIGHTED[0],
        r"position\[3\] = 2 is out of range: action_dist has 2 positions",
        action_dist=dist,
        position=np.array([0, 1, 1, 2]),
    )
    dist[2, :, 1] = [0.5, 0.5, 0.5]
    raises(
        WEIGHTED[0],
        r"action_dist\[2, :, 1\] sums to 1\.5",
        action_dist=dist,
        position=np.array([0, 1, 1, 0]),
    )


def test_sums_within_the_tolerance_pass() -> None:
    dist = np.full((4, 3), 1 / 3)
    dist[:, 0] += 5e-7
    assert np.isfinite(WEIGHTED[0].estimate_policy_value(**arrays(action_dist=dist)))


@pytest.mark.parametrize(
    "estimator",
    [DirectMethod(), DoublyRobust(), SelfNormalizedDoublyRobust(), SwitchDoublyRobust()],
    ids=lambda e: e.name,
)
def test_the_reward_model_is_checked(estimator: OffPolicyEstimator) -> None:
    raises(
        estimator, "estimated_rewards_by_reg_model is missing", estimated_rewards_by_reg_model=None
    )
    raises(
        estimator,
        r"estimated_rewards_by_reg_model has shape \(4, 2, 1\) but action_dist has shape "
        r"\(4, 3, 1\)",
        estimated_rewards_by_reg_model=np.zeros((4, 2)),
    )
    raises(
        estimator,
        r"estimated_rewards_by_reg_model\[1, 2, 0\] is nan",
        estimated_rewards_by_reg_model=np.where(np.arange(12).reshape(4, 3) == 5, np.nan, 0.5),
    )


def test_replay_refuses_a_non_uniform_logger_and_an_empty_match() -> None:
    err = raises(
        Replay(),
        r"pscore\[1\] = 0\.25 differs from pscore\[0\] = 0\.5: replay assumes a uniformly "
        "random logger",
    )
    assert err.index == 1
    never = np.zeros((4, 3))
    never[np.arange(4), (np.array([0, 1, 2, 1]) + 1) % 3] = 1.0
    raises(Replay(), "replay kept no round", pscore=None, action_dist=never)


def test_parameters_are_checked() -> None:
    with pytest.raises(EvaluationError, match="tau"):
        SwitchDoublyRobust(tau=-1)
    with pytest.raises(EvaluationError, match="alpha"):
        WEIGHTED[0].estimate_interval(**arrays(), alpha=1.5)
    with pytest.raises(EvaluationError, match="n_bootstrap_samples"):
        WEIGHTED[0].estimate_interval(**arrays(), n_bootstrap_samples=0)
    with pytest.raises(TypeError, match="unknown arrays: pscores"):
        evaluate([WEIGHTED[0]], **arrays(), pscores=np.ones(4))
    # a whole dataset, context included, is fine: the estimators do not read the context
    assert evaluate([WEIGHTED[0]], **arrays(), context=np.zeros((4, 2)), n_bootstrap_samples=10)
    with pytest.raises(EvaluationError, match="two estimators are named 'ipw'"):
        evaluate([WEIGHTED[0], InverseProbabilityWeighting()], **arrays())


def test_the_regression_model_without_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "sklearn" or name.startswith("sklearn."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    model = RegressionModel(n_actions=2)
    with pytest.raises(ImportError, match=r"pip install 'octobandit\[evaluation\]'"):
        model.fit_predict(np.zeros((4, 1)), [0, 1, 0, 1], [0.0, 1.0, 1.0, 0.0])


def test_the_regression_model_checks_its_arrays() -> None:
    model = RegressionModel(n_actions=2)
    x = np.zeros((4, 1))
    with pytest.raises(EvaluationError, match=r"action\[2\] = 2 is out of range 0\.\.1"):
        model.fit_predict(x, [0, 1, 2, 1], [0.0, 1.0, 1.0, 0.0])
    with pytest.raises(EvaluationError, match=r"context must have shape \(n, d\) with n = 4"):
        model.fit_predict(np.zeros(4), [0, 1, 0, 1], [0.0, 1.0, 1.0, 0.0])
    with pytest.raises(EvaluationError, match="every training reward is 0"):
        model.fit_predict(x, [0, 1, 0, 1], [0.0, 0.0, 0.0, 0.0], n_folds=2)
    from sklearn.linear_model import LogisticRegression

    custom = RegressionModel(n_actions=2, base_model=LogisticRegression())
    with pytest.raises(EvaluationError, match="every training reward is 1"):
        custom.fit_predict(x, [0, 1, 0, 1], [1.0, 1.0, 1.0, 1.0], n_folds=2)
    with pytest.raises(EvaluationError, match="rewards are not all 0 or 1; use a regressor"):
        custom.fit_predict(x, [0, 1, 0, 1], [0.5, 1.0, 0.0, 1.0], n_folds=2)
    with pytest.raises(EvaluationError, match=r"action_context must have shape"):
        RegressionModel(n_actions=2, action_context=np.eye(3))


def test_dm_does_not_read_pscore() -> None:
    """DM needs no propensities: a broken pscore beside it is not its business."""
    value = DirectMethod().estimate_policy_value(**arrays(pscore=np.array([0.0, 2.0, 0.5, 0.5])))
    assert value == 0.5


def test_the_arrays_are_keyword_only() -> None:
    """OBP orders (pscore, action_dist) differently across estimators: no positional mix-up."""
    a = arrays()
    with pytest.raises(TypeError):
        WEIGHTED[0].estimate_policy_value(a["reward"], a["action"], a["pscore"], a["action_dist"])  # type: ignore[misc]
