"""The estimators tested as statistics, on synthetic logs with a known truth.

K = 4 arms with known mean rewards, a known logging policy and a known evaluation policy:
the true value is ``sum_a π(a) μ(a)``. Every random draw has a fixed seed. The tolerances
come from the math, not from a run:

- a mean of R independent estimates is within ``Z · s / √R`` of its expectation except with
  probability ~6e-5 for ``Z = 4`` (central limit theorem);
- a sample variance ``s²`` of R near-normal estimates with true variance ``σ²`` satisfies
  ``(R - 1) s² / σ² ~ χ²(R - 1)``: we check the closed-form ``σ²`` against the two-sided
  99.9% interval of that law;
- a coverage count over R independent intervals is Binomial(R, coverage).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from octobandit.evaluation import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    OffPolicyEstimator,
    RegressionModel,
    Replay,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
    evaluate,
)

Z = 4.0
MU = np.array([0.2, 0.4, 0.5, 0.7])  # Bernoulli means of the K = 4 arms
K = MU.size


def draw_logs(
    seed: int, reps: int, n: int, logger: np.ndarray, offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``reps`` independent logs of ``n`` rounds: (action, reward, pscore), each (reps, n).
    The reward of arm ``a`` is ``offset + Bernoulli(MU[a])``."""
    rng = np.random.default_rng(seed)
    action = rng.choice(K, size=(reps, n), p=logger)
    reward = offset + (rng.random((reps, n)) < MU[action]).astype(float)
    return action, reward, logger[action]


def chi2_bounds(reps: int, sigma2: float) -> tuple[float, float]:
    """The two-sided 99.9% interval of a sample variance of ``reps`` normal draws."""
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], reps - 1)
    return sigma2 * lo / (reps - 1), sigma2 * hi / (reps - 1)


def second_moment(mu: np.ndarray, offset: float, shift: np.ndarray | float) -> np.ndarray:
    """E[(r - shift)² | a] for r = offset + Bernoulli(mu): variance + squared bias."""
    return mu * (1 - mu) + (mu + offset - shift) ** 2


def run(estimator: OffPolicyEstimator, logs: tuple[np.ndarray, ...], **extra: Any) -> np.ndarray:
    action, reward, pscore = logs
    return np.array(
        [
            estimator.estimate_policy_value(
                reward=reward[r], action=action[r], pscore=pscore[r], **extra
            )
            for r in range(action.shape[0])
        ]
    )


# -- unbiasedness ---------------------------------------------------------------------------

LOGGER = np.array([0.4, 0.3, 0.2, 0.1])
TARGET = np.array([0.1, 0.2, 0.3, 0.4])
TRUTH = float(TARGET @ MU)  # 0.53
W = TARGET / LOGGER  # the importance weight of each arm


def test_ips_and_dr_are_unbiased_over_repeated_draws() -> None:
    """IPS is unbiased with the true propensities; so is DR with *any* fixed reward model,
    here a wrong one (0.5 for every arm); the spread of each matches its closed form."""
    reps, n = 400, 500
    logs = draw_logs(1, reps, n, LOGGER)
    dist = np.tile(TARGET, (n, 1))
    q = np.full((n, K), 0.5)
    ips = run(InverseProbabilityWeighting(), logs, action_dist=dist)
    dr = run(DoublyRobust(), logs, action_dist=dist, estimated_rewards_by_reg_model=q)
    # per-round variances: Var(w r) and Var(w (r - q)) (DM's part is a constant here)
    var_ips = float(LOGGER @ (W**2 * second_moment(MU, 0, 0))) - TRUTH**2
    bias_q = float(TARGET @ (MU - 0.5))
    var_dr = float(LOGGER @ (W**2 * second_moment(MU, 0, 0.5))) - bias_q**2
    for values, sigma2 in ((ips, var_ips / n), (dr, var_dr / n)):
        s = values.std(ddof=1)
        assert abs(values.mean() - TRUTH) <= Z * s / np.sqrt(reps)
        lo, hi = chi2_bounds(reps, sigma2)
        assert lo <= s**2 <= hi


# -- variance: a target far from the logger, rewards with a large constant offset ----------

FAR_LOGGER = np.array([0.55, 0.3, 0.1, 0.05])
FAR_TARGET = np.array([0.05, 0.05, 0.1, 0.8])
OFFSET = 10.0


def test_snips_and_dr_are_far_less_variable_than_ips_far_from_the_logger() -> None:
    """Why: IPS's term ``w·r`` carries the offset, so its variance has a part
    ``OFFSET² · Var(w)`` (Var(w) ≈ 12 here: the target's favourite arm was logged 5% of the
    time). SNIPS is invariant to a constant added to the rewards (it is a weighted mean), and
    DR's term ``w·(r - q)`` subtracts a model that knows the offset (q = OFFSET + 0.5 for
    every arm, not the arms' means): both lose that part. Each sample variance matches its
    closed form (SNIPS's is the delta method's ``Var(w (r - V)) / n``), and the ratios pass
    an F test at 0.999."""
    reps, n = 300, 1000
    logs = draw_logs(2, reps, n, FAR_LOGGER, offset=OFFSET)
    dist = np.tile(FAR_TARGET, (n, 1))
    q = np.full((n, K), OFFSET + 0.5)
    w = FAR_TARGET / FAR_LOGGER
    truth = OFFSET + float(FAR_TARGET @ MU)
    ips = run(InverseProbabilityWeighting(), logs, action_dist=dist)
    snips = run(SelfNormalizedInverseProbabilityWeighting(), logs, action_dist=dist)
    dr = run(DoublyRobust(), logs, action_dist=dist, estimated_rewards_by_reg_model=q)
    var_ips = float(FAR_LOGGER @ (w**2 * second_moment(MU, OFFSET, 0))) - truth**2
    var_snips = float(FAR_LOGGER @ (w**2 * second_moment(MU, OFFSET, truth)))
    bias_q = float(FAR_TARGET @ (MU + OFFSET - q[0]))
    var_dr = float(FAR_LOGGER @ (w**2 * second_moment(MU, OFFSET, q[0]))) - bias_q**2
    assert var_ips > 100 * max(var_snips, var_dr)  # the closed forms: the offset dominates
    for values, sigma2 in ((ips, var_ips / n), (snips, var_snips / n), (dr, var_dr / n)):
        lo, hi = chi2_bounds(reps, sigma2)
        assert lo <= values.var(ddof=1) <= hi
    f = stats.f.ppf(0.999, reps - 1, reps - 1)
    assert ips.var(ddof=1) / snips.var(ddof=1) > f
    assert ips.var(ddof=1) / dr.var(ddof=1) > f


# -- replay ---------------------------------------------------------------------------------

UNIFORM = np.full(K, 1 / K)


@pytest.mark.parametrize(
    "target",
    [np.eye(K)[3], TARGET],
    ids=["deterministic", "stochastic"],
)
def test_replay_equals_the_on_policy_value_under_a_uniform_logger(target: np.ndarray) -> None:
    """Kept rounds are on-policy rounds: their mean reward estimates ``sum π μ`` with the
    variance of the on-policy reward over the number kept (about n / K)."""
    reps, n = 300, 800
    action, reward, pscore = draw_logs(3, reps, n, UNIFORM)
    dist = np.tile(target, (n, 1))
    values = np.array(
        [
            Replay(random_state=r).estimate_policy_value(
                reward=reward[r], action=action[r], pscore=pscore[r], action_dist=dist
            )
            for r in range(reps)
        ]
    )
    truth = float(target @ MU)
    on_policy_var = float(target @ second_moment(MU, 0, truth))
    # E[1/m] for m ~ Binomial(n, 1/K) kept rounds, to first order
    sigma2 = on_policy_var * K / n * (1 + (K - 1) / n)
    s = values.std(ddof=1)
    assert abs(values.mean() - truth) <= Z * s / np.sqrt(reps)
    lo, hi = chi2_bounds(reps, sigma2)
    assert lo <= s**2 <= hi


def test_replay_with_noiseless_rewards_is_exact() -> None:
    rng = np.random.default_rng(4)
    action = rng.integers(0, K, size=200)
    dist = np.tile(np.eye(K)[2], (200, 1))
    assert (
        Replay().estimate_policy_value(reward=MU[action], action=action, action_dist=dist)
        == (MU[2])
    )


# -- DM with a correct reward model -----------------------------------------------------------

BETA = np.array([0.5, -1.0, 0.3])
GAMMA = np.array([0.0, 0.5, 1.0, 1.5])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def contextual(seed: int, n: int) -> dict[str, np.ndarray]:
    """Linear rewards ``x·β + γ_a + N(0, 1)``, a context-dependent logger and target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, BETA.size))
    logger = softmax(x @ rng.normal(size=(BETA.size, K)) * 0.5)
    target = softmax(x @ np.array([[1.0, 0, 0, -1], [0, 1, -1, 0], [0, 0, 1, 1]]))
    action = (logger.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    mean = (x @ BETA)[:, None] + GAMMA[None, :]  # (n, K)
    reward = mean[np.arange(n), action] + rng.normal(size=n)
    oracle = float((target * mean).sum(axis=1).mean())  # the value on these contexts
    return {"x": x, "action": action, "reward": reward, "pscore": logger[np.arange(n), action],
            "target": target, "oracle": np.array(oracle)}  # fmt: skip


@pytest.mark.parametrize("n", [500, 20_000])
@pytest.mark.parametrize("n_folds", [1, 3])
def test_dm_with_a_correct_model_is_consistent(n: int, n_folds: int) -> None:
    """With OLS on the true features ``z = [x, onehot(a)]`` DM's error is a linear contrast
    ``c'(θ̂ - θ)`` with ``c = mean_i sum_a π(a|x_i) z(x_i, a)``, whose sd given the design is
    ``sqrt(c'(Z'Z)⁻¹c)`` (unit noise). With cross-fitting the error is a sum over folds and
    its sd at most the sum of the folds' sds. That bound shrinks as 1/√n: consistency."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold

    d = contextual(5, n)
    model = RegressionModel(n_actions=K, base_model=LinearRegression(fit_intercept=False))
    q = model.fit_predict(d["x"], d["action"], d["reward"], n_folds=n_folds, random_state=7)
    dm = DirectMethod().estimate_policy_value(
        reward=d["reward"],
        action=d["action"],
        action_dist=d["target"],
        estimated_rewards_by_reg_model=q,
    )
    z = np.hstack([d["x"], np.eye(K)[d["action"]]])
    splits = (
        [(np.arange(n), np.arange(n))]
        if n_folds == 1
        else KFold(n_folds, shuffle=True, random_state=7).split(z)
    )
    sd = 0.0
    for train, test in splits:
        c = np.concatenate([d["x"][test].mean(axis=0), d["target"][test].mean(axis=0)])
        sd += test.size / n * float(np.sqrt(c @ np.linalg.solve(z[train].T @ z[train], c)))
    assert sd < 2.0 / np.sqrt(n)  # the bound is O(1/√n)
    assert abs(dm - float(d["oracle"])) <= Z * sd


def test_dr_with_a_cross_fitted_model_covers_the_value() -> None:
    """DR with the default cross-fitted reward model (Ridge on the right features, slightly
    shrunk): the value on these contexts is inside its 99.9% bootstrap interval."""
    d = contextual(6, 4000)
    q = RegressionModel(n_actions=K).fit_predict(d["x"], d["action"], d["reward"])
    ci = DoublyRobust().estimate_interval(
        reward=d["reward"],
        action=d["action"],
        pscore=d["pscore"],
        action_dist=d["target"],
        estimated_rewards_by_reg_model=q,
        alpha=0.001,
        random_state=8,
    )
    assert ci["lower"] <= float(d["oracle"]) <= ci["upper"]


# -- bootstrap coverage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimator", "logger"),
    [
        (InverseProbabilityWeighting(), LOGGER),
        (SelfNormalizedInverseProbabilityWeighting(), LOGGER),
        (DoublyRobust(), LOGGER),
        (Replay(), UNIFORM),
    ],
    ids=["ipw", "snipw", "dr", "replay"],
)
def test_bootstrap_intervals_cover_at_about_the_nominal_rate(
    estimator: OffPolicyEstimator, logger: np.ndarray
) -> None:
    """Over R independent logs the 95% intervals cover the truth a Binomial(R, ~0.95) number
    of times: the count is inside Binomial(R, 0.95)'s two-sided 99.9% interval."""
    reps, n = 200, 500
    action, reward, pscore = draw_logs(9, reps, n, logger)
    dist = np.tile(TARGET, (n, 1))
    q = np.full((n, K), 0.5)
    covered = 0
    for r in range(reps):
        ci = estimator.estimate_interval(
            reward=reward[r],
            action=action[r],
            pscore=pscore[r],
            action_dist=dist,
            estimated_rewards_by_reg_model=q,
            n_bootstrap_samples=400,
            random_state=r,
        )
        covered += ci["lower"] <= TRUTH <= ci["upper"]
    lo, hi = stats.binom.ppf([0.0005, 0.9995], reps, 0.95)
    assert lo <= covered <= hi


# -- identities -----------------------------------------------------------------------------


def small_log() -> dict[str, Any]:
    action, reward, pscore = (v[0] for v in draw_logs(10, 1, 300, LOGGER))
    return {
        "reward": reward,
        "action": action,
        "pscore": pscore,
        "action_dist": np.tile(TARGET, (300, 1)),
        "estimated_rewards_by_reg_model": np.tile(MU * 0.8, (300, 1)),
    }


def test_switch_dr_spans_dm_and_dr_and_snips_is_shift_invariant() -> None:
    log = small_log()
    dr = DoublyRobust().estimate_policy_value(**log)
    dm = DirectMethod().estimate_policy_value(**log)
    assert SwitchDoublyRobust(tau=np.inf).estimate_policy_value(**log) == pytest.approx(dr)
    assert SwitchDoublyRobust(tau=0).estimate_policy_value(**log) == pytest.approx(dm)
    # a threshold between the weights (0.25, 2/3, 1.5, 4) drops arm 3's corrections
    middle = SwitchDoublyRobust(tau=2.0).estimate_policy_value(**log)
    kept = log["action"] != 3
    w = W[log["action"]]
    resid = log["reward"] - 0.8 * MU[log["action"]]
    assert middle == pytest.approx(dm + float((w * resid * kept).mean()))
    snips = SelfNormalizedInverseProbabilityWeighting()
    shifted = snips.estimate_policy_value(**{**log, "reward": log["reward"] + 100})
    assert shifted == pytest.approx(snips.estimate_policy_value(**log) + 100, abs=1e-9)
    # SNDR with weights normalised: its correction is the weighted mean residual
    sndr = SelfNormalizedDoublyRobust().estimate_policy_value(**log)
    assert sndr == pytest.approx(dm + float((w * resid).sum() / w.sum()))


def test_positions_index_the_action_distribution() -> None:
    """With L = 2 the weight is action_dist[i, a_i, p_i] / pscore[i]; (n, K) means L = 1."""
    dist = np.zeros((2, 2, 2))
    dist[:, :, 0] = [0.9, 0.1]
    dist[:, :, 1] = [0.2, 0.8]
    log = {"reward": [1.0, 2.0], "action": [0, 1], "pscore": [0.5, 0.5], "action_dist": dist}
    ipw = InverseProbabilityWeighting()
    value = ipw.estimate_policy_value(**log, position=[1, 0])
    assert value == pytest.approx((0.2 / 0.5 * 1 + 0.1 / 0.5 * 2) / 2)
    flat = ipw.estimate_policy_value(**{**log, "action_dist": dist[:, :, 0]})
    assert flat == ipw.estimate_policy_value(**log)  # position omitted: all at 0


def test_evaluate_gives_value_and_interval_for_each_estimator() -> None:
    log = small_log()
    estimators = [
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
        DirectMethod(),
        DoublyRobust(),
        SelfNormalizedDoublyRobust(),
        SwitchDoublyRobust(tau=2.0),
    ]
    out = evaluate(estimators, **log, n_bootstrap_samples=200)
    assert list(out) == ["ipw", "snipw", "dm", "dr", "sndr", "switch-dr"]
    for estimator in estimators:
        entry = out[estimator.name]
        assert entry["value"] == estimator.estimate_policy_value(**log)
        lo, hi = entry["ci95"]
        assert lo <= hi
    again = evaluate(estimators, **log, n_bootstrap_samples=200)
    assert again == out  # seeded: the same intervals


def test_cross_fitting_predicts_a_round_without_its_own_reward() -> None:
    """Binary rewards, two positions, the default logistic model: probabilities of shape
    (n, K, L); changing a round's reward changes no prediction of that round (it was
    predicted by the models of the other folds), while in-sample fitting (one fold) does."""
    rng = np.random.default_rng(11)
    n = 600
    x = rng.normal(size=(n, 2))
    action = rng.integers(0, K, size=n)
    position = rng.integers(0, 2, size=n)
    reward = (rng.random(n) < MU[action]).astype(float)
    model = RegressionModel(n_actions=K, len_list=2)
    q = model.fit_predict(x, action, reward, position=position, n_folds=3)
    assert q.shape == (n, K, 2)
    assert ((q > 0) & (q < 1)).all()
    flipped = reward.copy()
    flipped[0] = 1 - flipped[0]
    q2 = model.fit_predict(x, action, flipped, position=position, n_folds=3)
    assert np.array_equal(q[0], q2[0])
    assert not np.array_equal(q, q2)  # the other folds' models saw the change
    in_sample = model.fit_predict(x, action, reward, position=position, n_folds=1)
    in_sample2 = model.fit_predict(x, action, flipped, position=position, n_folds=1)
    assert not np.array_equal(in_sample[0], in_sample2[0])
