"""A reward model for DM and the doubly robust estimators, fitted with k-fold cross-fitting.

scikit-learn is imported only when a scikit-learn model is fitted:
``pip install 'octobandit[evaluation]'``. :class:`NewtonLogisticRegression` needs NumPy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from octobandit.evaluation._arrays import EvaluationError, Floats

_MISSING = (
    "RegressionModel needs scikit-learn, which is not installed: "
    "pip install 'octobandit[evaluation]' (or pip install 'scikit-learn>=1.3')"
)


def _sklearn() -> Any:
    try:
        import sklearn.base
        import sklearn.linear_model
        import sklearn.model_selection
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return sklearn


def kfold_splits(
    n: int, n_folds: int, random_state: int | None
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """The (train, test) row indices of shuffled k-fold cross-fitting, the same partition
    as scikit-learn's ``KFold(n_splits=n_folds, shuffle=True, random_state=random_state)``
    (checked in the tests): the rows are shuffled by NumPy's legacy ``RandomState`` seeded
    with ``random_state`` and cut into ``n_folds`` consecutive folds, the first
    ``n % n_folds`` of them one row longer; each fold (in row order) is a test set and the
    other rows, in order, its training set."""
    order = np.random.RandomState(random_state).permutation(n).astype(np.int64)
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    out = []
    start = 0
    for size in sizes:
        mask = np.zeros(n, dtype=bool)
        mask[order[start : start + size]] = True
        out.append((np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)))
        start += size
    return out


def _matvec(x: Floats, v: Floats) -> Floats:
    """``x @ v`` without BLAS: on these small, thin products a multithreaded BLAS spends
    more on its threads than on the work (5 to 10 times slower on a busy 2-core machine)."""
    return np.asarray(np.einsum("ni,i->n", x, v), dtype=np.float64)


class NewtonLogisticRegression:
    """L2-regularised logistic regression for 0/1 rewards, fitted by Newton's method with
    NumPy only.

    It minimises ``0.5 * |w|^2 + C * sum_i logloss(y_i, x_i . w + b)`` (the intercept ``b``
    is not penalised): the objective of scikit-learn's ``LogisticRegression(C=C)`` (its
    default L2 penalty, with an intercept), so both have the same unique minimum; scikit-learn
    stops its L-BFGS at ``tol=1e-4``, this iterates Newton steps (with a backtracking line
    search) until the largest step is below ``tol`` (1e-10 by default), a few iterations
    for the features of a reward model. ``predict_proba`` gives the probabilities of 0 and 1,
    as scikit-learn's classifiers do, so :class:`RegressionModel` takes it as a
    ``base_model``; it also uses the linear form to predict every action without building
    the feature rows.

    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> model = NewtonLogisticRegression(C=1e6).fit(x, np.array([0.0, 0.0, 1.0, 1.0]))
    >>> bool(model.predict_proba(x)[0, 1] < 0.01 < 0.99 < model.predict_proba(x)[3, 1])
    True
    """

    classes_ = np.array([0.0, 1.0])

    def __init__(self, C: float = 1.0, tol: float = 1e-10, max_iter: int = 100) -> None:
        if not C > 0:
            raise EvaluationError(f"C = {C} must be > 0")
        self.C = float(C)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.coef_: Floats = np.zeros(0)
        self.intercept_ = 0.0

    def copy(self) -> NewtonLogisticRegression:
        """An unfitted model with the same settings."""
        return NewtonLogisticRegression(C=self.C, tol=self.tol, max_iter=self.max_iter)

    def _objective(self, x1: Floats, y: Floats, theta: Floats) -> float:
        z = _matvec(x1, theta)
        loss = np.logaddexp(0.0, z) - y * z  # the log-loss of a logistic model, stably
        return float(0.5 * theta[:-1] @ theta[:-1] + self.C * loss.sum())

    def fit(self, x: npt.ArrayLike, y: npt.ArrayLike) -> NewtonLogisticRegression:
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        if not np.isin(ya, (0.0, 1.0)).all():
            raise EvaluationError("NewtonLogisticRegression needs rewards that are 0 or 1")
        n, d = xa.shape
        x1 = np.hstack([xa, np.ones((n, 1))])
        theta = np.zeros(d + 1)
        penalty = np.ones(d + 1)
        penalty[-1] = 0.0
        value = self._objective(x1, ya, theta)
        for _ in range(self.max_iter):
            p = 1.0 / (1.0 + np.exp(-_matvec(x1, theta)))
            grad = self.C * np.einsum("ni,n->i", x1, p - ya) + penalty * theta
            hess = self.C * np.einsum("ni,nj->ij", x1 * (p * (1.0 - p))[:, np.newaxis], x1)
            hess += np.diag(penalty)
            step = np.linalg.solve(hess, grad)
            t = 1.0
            while True:  # backtracking (Armijo) on the convex objective
                new = theta - t * step
                new_value = self._objective(x1, ya, new)
                if new_value <= value - 1e-4 * t * float(grad @ step) or t < 1e-10:
                    break
                t *= 0.5
            theta, value = new, new_value
            if float(np.max(np.abs(t * step))) < self.tol:
                break
        self.coef_ = theta[:-1]
        self.intercept_ = float(theta[-1])
        return self

    def decision_function(self, x: npt.ArrayLike) -> Floats:
        return _matvec(np.asarray(x, dtype=np.float64), self.coef_) + self.intercept_

    def predict_proba(self, x: npt.ArrayLike) -> Floats:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(x)))
        return np.column_stack([1.0 - p, p])


class RegressionModel:
    """Predicts the expected reward of every action at every position in every round,
    ``q(i, a, l)``, as an array of shape (n, K, L) for ``estimated_rewards_by_reg_model``.

    The features of a (round, action) pair are the round's context followed by the
    action's row of ``action_context`` (the identity by default: a one-hot action). One
    model is fitted per position, as OBP does.

    ``base_model`` is any scikit-learn estimator (cloned for every fit) or a
    :class:`NewtonLogisticRegression` (copied; no scikit-learn needed); with a
    ``predict_proba`` it is read as the probability of reward 1. By default:
    ``LogisticRegression(max_iter=1000)`` when every reward is 0 or 1, ``Ridge()`` otherwise.

    Cross-fitting (``n_folds`` > 1): the rounds are split into ``n_folds`` folds
    (shuffled, seeded by ``random_state``) and each fold's predictions come from a model
    fitted on the other folds, so no round is predicted by a model that saw its reward,
    which keeps DR's correction term honest. ``n_folds = 1`` fits and predicts on all the
    rounds (in-sample).

    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from octobandit.evaluation import RegressionModel
    >>> rng = np.random.default_rng(0)
    >>> context = rng.normal(size=(300, 2))
    >>> action = rng.integers(0, 3, size=300)
    >>> reward = context[:, 0] + np.array([0.0, 1.0, 2.0])[action]  # no noise: exact fit
    >>> model = RegressionModel(n_actions=3, base_model=LinearRegression())
    >>> q = model.fit_predict(context, action, reward, n_folds=3, random_state=12345)
    >>> q.shape
    (300, 3, 1)
    >>> bool(np.allclose(q[:, :, 0], context[:, :1] + [0.0, 1.0, 2.0]))
    True
    """

    def __init__(
        self,
        n_actions: int,
        len_list: int = 1,
        base_model: Any = None,
        action_context: npt.ArrayLike | None = None,
    ) -> None:
        if n_actions < 1:
            raise EvaluationError(f"n_actions = {n_actions} must be >= 1")
        if len_list < 1:
            raise EvaluationError(f"len_list = {len_list} must be >= 1")
        self.n_actions = int(n_actions)
        self.len_list = int(len_list)
        self.base_model = base_model
        if action_context is None:
            self.action_context: Floats = np.eye(self.n_actions)
        else:
            ac = np.asarray(action_context, dtype=np.float64)
            if ac.ndim != 2 or ac.shape[0] != self.n_actions:
                raise EvaluationError(
                    f"action_context must have shape (n_actions, d) = ({self.n_actions}, d); "
                    f"got {ac.shape}",
                    array="action_context",
                )
            self.action_context = ac

    def _model(self, sk: Any, binary: bool, random_state: int | None) -> Any:
        if isinstance(self.base_model, NewtonLogisticRegression):
            return self.base_model.copy()
        if self.base_model is not None:
            return sk.base.clone(self.base_model)
        if binary:
            return sk.linear_model.LogisticRegression(max_iter=1000, random_state=random_state)
        return sk.linear_model.Ridge()

    def _features(self, context: Floats, action: npt.NDArray[np.int64]) -> Floats:
        return np.hstack([context, self.action_context[action]])

    def _predict(self, model: Any, x: Floats) -> Floats:
        if hasattr(model, "predict_proba"):
            classes = list(model.classes_)
            return np.asarray(model.predict_proba(x)[:, classes.index(1)], dtype=np.float64)
        return np.asarray(model.predict(x), dtype=np.float64)

    def fit_predict(
        self,
        context: npt.ArrayLike,
        action: npt.ArrayLike,
        reward: npt.ArrayLike,
        position: npt.ArrayLike | None = None,
        n_folds: int = 3,
        random_state: int | None = 12345,
    ) -> Floats:
        """Fit with ``n_folds``-fold cross-fitting and predict every action at every
        position in every round: an array of shape (n, K, L)."""
        sk = None if isinstance(self.base_model, NewtonLogisticRegression) else _sklearn()
        r = np.asarray(reward, dtype=np.float64)
        n = r.shape[0]
        if r.ndim != 1 or n == 0 or not np.isfinite(r).all():
            raise EvaluationError("reward must be a non-empty (n,) array of finite numbers")
        x = np.asarray(context, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != n:
            raise EvaluationError(
                f"context must have shape (n, d) with n = {n}; got {x.shape}", array="context"
            )
        if not np.isfinite(x).all():
            i = int(np.argwhere(~np.isfinite(x))[0][0])
            raise EvaluationError(f"context[{i}] is not finite", array="context", index=i)
        a = np.asarray(action)
        if a.shape != (n,) or a.dtype.kind not in "iu":
            raise EvaluationError(f"action must be (n,) integers with n = {n}", array="action")
        a = a.astype(np.int64)
        bad = (a < 0) | (a >= self.n_actions)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EvaluationError(
                f"action[{i}] = {a[i]} is out of range 0..{self.n_actions - 1}",
                array="action",
                index=i,
            )
        if position is None:
            pos = np.zeros(n, dtype=np.int64)
        else:
            pos = np.asarray(position).astype(np.int64)
            if pos.shape != (n,) or ((pos < 0) | (pos >= self.len_list)).any():
                raise EvaluationError(
                    f"position must be (n,) integers in 0..{self.len_list - 1}", array="position"
                )
        if not 1 <= n_folds <= n:
            raise EvaluationError(f"n_folds = {n_folds} must be in 1..n ({n})")
        binary = bool(np.isin(r, (0.0, 1.0)).all())
        if n_folds == 1:
            splits = [(np.arange(n), np.arange(n))]
        else:
            splits = kfold_splits(n, n_folds, random_state)
        q = np.empty((n, self.n_actions, self.len_list), dtype=np.float64)
        every = np.arange(self.n_actions)
        for fold, (train, test) in enumerate(splits):
            for slot in range(self.len_list):
                rows = train[pos[train] == slot]
                if rows.size == 0:
                    raise EvaluationError(
                        f"fold {fold} has no training round at position {slot}: "
                        "use fewer folds or more data",
                        array="position",
                    )
                model = self._model(sk, binary, random_state)
                if hasattr(model, "predict_proba"):
                    if not binary:
                        raise EvaluationError(
                            "base_model is a classifier (it has predict_proba) but the rewards "
                            "are not all 0 or 1; use a regressor",
                            array="reward",
                        )
                    if np.unique(r[rows]).size < 2:
                        raise EvaluationError(
                            f"fold {fold}, position {slot}: every training reward is "
                            f"{r[rows][0]:g}, so a classifier cannot be fitted; use fewer "
                            "folds, more data or a regressor as base_model",
                            array="reward",
                        )
                model.fit(self._features(x[rows], a[rows]), r[rows])
                if isinstance(model, NewtonLogisticRegression):
                    # linear: the context's and the action's parts of the logit add up
                    d = x.shape[1]
                    z = (
                        _matvec(x[test], model.coef_[:d])[:, np.newaxis]
                        + (_matvec(self.action_context, model.coef_[d:]) + model.intercept_)[
                            np.newaxis, :
                        ]
                    )
                    q[test, :, slot] = 1.0 / (1.0 + np.exp(-z))
                    continue
                # every action for every held-out round: (len(test) * K) feature rows
                xt = np.repeat(x[test], self.n_actions, axis=0)
                at = np.tile(every, test.size)
                q[test, :, slot] = self._predict(model, self._features(xt, at)).reshape(
                    test.size, self.n_actions
                )
        return q
