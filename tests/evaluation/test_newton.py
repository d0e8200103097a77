"""The NumPy-only reward model pieces: the k-fold partition and Newton's logistic regression
agree with scikit-learn's; evaluate() shares its bootstrap resamples across estimators."""

from __future__ import annotations

import numpy as np
import pytest

from octobandit.evaluation import (
    DoublyRobust,
    EvaluationError,
    InverseProbabilityWeighting,
    NewtonLogisticRegression,
    RegressionModel,
    SelfNormalizedInverseProbabilityWeighting,
    evaluate,
)
from octobandit.evaluation.regression import kfold_splits


@pytest.mark.parametrize(
    ("n", "k", "seed"), [(10, 3, 0), (10_000, 3, 12345), (7, 7, 1), (50, 4, 9)]
)
def test_kfold_splits_are_scikit_learns(n: int, k: int, seed: int) -> None:
    from sklearn.model_selection import KFold

    theirs = list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros((n, 1))))
    ours = kfold_splits(n, k, seed)
    assert len(ours) == len(theirs) == k
    for (train, test), (t_train, t_test) in zip(ours, theirs, strict=True):
        assert np.array_equal(train, t_train)
        assert np.array_equal(test, t_test)


@pytest.mark.parametrize("c", [0.1, 1.0, 10.0])
def test_newton_logistic_regression_is_scikit_learns_minimum(c: float) -> None:
    """The same strictly convex objective: scikit-learn run to a tight tolerance reaches the
    same minimum (to its own tolerance)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 5))
    logit = x @ np.array([1.0, -0.5, 0.0, 2.0, 0.3]) - 3.0
    y = (rng.random(2000) < 1 / (1 + np.exp(-logit))).astype(float)
    ours = NewtonLogisticRegression(C=c).fit(x, y)
    theirs = LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_[0], rtol=0, atol=1e-6)
    assert ours.intercept_ == pytest.approx(theirs.intercept_[0], abs=1e-6)
    np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), rtol=0, atol=1e-7)


def test_newton_in_the_regression_model_predicts_as_its_features_say() -> None:
    """The shortcut (context and action parts of the logit added) equals predicting the
    full feature rows."""
    rng = np.random.default_rng(4)
    n, k = 600, 4
    context = rng.normal(size=(n, 3))
    action = rng.integers(0, k, n)
    position = rng.integers(0, 2, n)
    reward = (rng.random(n) < 0.3).astype(float)
    ac = rng.normal(size=(k, 2))
    model = RegressionModel(k, 2, NewtonLogisticRegression(), action_context=ac)
    q = model.fit_predict(context, action, reward, position, n_folds=1)
    for slot in range(2):
        rows = position == slot
        fitted = NewtonLogisticRegression().fit(
            np.hstack([context[rows], ac[action[rows]]]), reward[rows]
        )
        for a in range(k):
            x = np.hstack([context, np.repeat(ac[a : a + 1], n, axis=0)])
            np.testing.assert_allclose(q[:, a, slot], fitted.predict_proba(x)[:, 1], atol=1e-12)


def test_newton_refuses_non_binary_rewards() -> None:
    with pytest.raises(EvaluationError, match="0 or 1"):
        NewtonLogisticRegression().fit(np.zeros((3, 1)), np.array([0.0, 0.5, 1.0]))
    with pytest.raises(EvaluationError, match="C = 0"):
        NewtonLogisticRegression(C=0)


def test_evaluate_gives_each_estimator_its_own_interval() -> None:
    """evaluate() draws the resamples once for all the estimators: each interval equals the
    one the estimator computes alone with the same seed."""
    rng = np.random.default_rng(5)
    n, k = 2000, 3
    arrays = {
        "reward": (rng.random(n) < 0.4).astype(float),
        "action": rng.integers(0, k, n),
        "pscore": np.full(n, 1 / k),
        "action_dist": rng.dirichlet(np.ones(k), n),
        "estimated_rewards_by_reg_model": rng.random((n, k)),
    }
    estimators = [
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
        DoublyRobust(),
    ]
    together = evaluate(estimators, **arrays, n_bootstrap_samples=300, random_state=7)
    for estimator in estimators:
        alone = estimator.estimate_interval(**arrays, n_bootstrap_samples=300, random_state=7)
        assert together[estimator.name]["ci95"] == [alone["lower"], alone["upper"]]
        assert together[estimator.name]["value"] == estimator.estimate_policy_value(**arrays)
