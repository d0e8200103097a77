"""A reward model for DM and the doubly robust estimators, fitted with k-fold cross-fitting.

scikit-learn is imported only when a model is fitted: ``pip install 'octobandit[evaluation]'``.
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


class RegressionModel:
    """Predicts the expected reward of every action at every position in every round,
    ``q(i, a, l)``, as an array of shape (n, K, L) for ``estimated_rewards_by_reg_model``.

    The features of a (round, action) pair are the round's context followed by the
    action's row of ``action_context`` (the identity by default: a one-hot action). One
    model is fitted per position, as OBP does.

    ``base_model`` is any scikit-learn estimator (cloned for every fit); with a
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
        sk = _sklearn()
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
            kfold = sk.model_selection.KFold(
                n_splits=n_folds, shuffle=True, random_state=random_state
            )
            splits = list(kfold.split(x))
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
                # every action for every held-out round: (len(test) * K) feature rows
                xt = np.repeat(x[test], self.n_actions, axis=0)
                at = np.tile(every, test.size)
                q[test, :, slot] = self._predict(model, self._features(xt, at)).reshape(
                    test.size, self.n_actions
                )
        return q
