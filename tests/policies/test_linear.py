"""Disjoint linear contextual policies (LinUCB, linear Thompson sampling): the state in closed
form, the ridge solution, the index, exact selection probabilities, arm-axis growth, and regret
on a linear contextual environment."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import ArmStats, LinearThompson, LinUCB, make_policy
from octobandit.policies.base import FloatArray
from octobandit.policies.linear import NEEDS_CONTEXTS, DisjointRidge
from octobandit.simulation.environments import LinearContextual
from octobandit.simulation.runner import simulate

Z95 = 1.959963984540054


def feed(
    policy: DisjointRidge,
    state: dict[str, FloatArray],
    arms: np.ndarray,
    rewards: np.ndarray,
    counts: np.ndarray,
    contexts: np.ndarray,
) -> None:
    """Apply observations of shape (T, B[, d]) one step at a time."""
    for t in range(arms.shape[0]):
        policy.update_state(
            state,
            arms[t],
            rewards[t],
            counts[t],
            propensities=np.full(arms.shape[1], np.nan),
            contexts=contexts[t],
            times=np.full(arms.shape[1], float(t)),
        )


def random_history(
    rng: np.random.Generator, steps: int, batch: int, k: int, d: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arms = rng.integers(0, k, size=(steps, batch))
    rewards = rng.normal(0.5, 1.0, size=(steps, batch))
    counts = rng.integers(1, 4, size=(steps, batch)).astype(float)
    contexts = rng.normal(size=(steps, batch, d))
    return arms, rewards, counts, contexts


POLICIES = [LinUCB(alpha=0.8, ridge=0.7), LinearThompson(v=0.6, ridge=0.7)]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.type)
def test_state_after_known_updates_is_the_closed_form(policy: DisjointRidge) -> None:
    """A_i = λI + Σ c x xᵀ and b_i = Σ c r x over the arm's observations, per problem."""
    rng = np.random.default_rng(1)
    batch, k, d, steps = 3, 4, 3, 60
    arms, rewards, counts, contexts = random_history(rng, steps, batch, k, d)
    state = policy.init_state(batch, k, d)
    assert state["A"].shape == (batch, k, d, d) and state["b"].shape == (batch, k, d)
    feed(policy, state, arms, rewards, counts, contexts)
    a = np.broadcast_to(0.7 * np.eye(d), (batch, k, d, d)).copy()
    b = np.zeros((batch, k, d))
    for t in range(steps):
        for j in range(batch):
            x, c, r = contexts[t, j], counts[t, j], rewards[t, j]
            a[j, arms[t, j]] += c * np.outer(x, x)
            b[j, arms[t, j]] += c * r * x
    np.testing.assert_allclose(state["A"], a, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(state["b"], b, rtol=1e-13, atol=1e-13)


def test_a_count_is_that_many_identical_observations() -> None:
    p = LinUCB()
    x = np.array([[0.3, -1.2]])
    once, thrice = p.init_state(1, 2, 2), p.init_state(1, 2, 2)
    args = {"propensities": np.array([np.nan]), "contexts": x, "times": np.zeros(1)}
    p.update_state(once, np.array([1]), np.array([0.4]), np.array([3.0]), **args)
    for _ in range(3):
        p.update_state(thrice, np.array([1]), np.array([0.4]), np.array([1.0]), **args)
    for name in ("A", "b"):
        np.testing.assert_allclose(once[name], thrice[name], rtol=1e-15, atol=1e-15)


def test_coefficients_are_the_ridge_regression_solution() -> None:
    """θ_i = A_i⁻¹ b_i minimises Σ (r - x·θ)² + λ|θ|² over the arm's observations, a count c
    being c repeated rows: solved independently as least squares on the augmented system
    [X; √λ I] θ ≈ [r; 0]."""
    rng = np.random.default_rng(2)
    k, d, steps, lam = 3, 4, 80, 2.5
    arms, rewards, counts, contexts = random_history(rng, steps, 1, k, d)
    rewards = rewards + contexts[..., 0] * (1.0 + arms)  # a signal that differs per arm
    p = LinUCB(ridge=lam)
    state = p.init_state(1, k, d)
    feed(p, state, arms, rewards, counts, contexts)
    theta = p.coefficients(state)[0]
    for arm in range(k):
        mine = arms[:, 0] == arm
        reps = counts[mine, 0].astype(int)
        xs = np.repeat(contexts[mine, 0], reps, axis=0)
        ys = np.repeat(rewards[mine, 0], reps)
        design = np.vstack([xs, math.sqrt(lam) * np.eye(d)])
        target = np.concatenate([ys, np.zeros(d)])
        expected = np.linalg.lstsq(design, target, rcond=None)[0]
        np.testing.assert_allclose(theta[arm], expected, rtol=1e-10, atol=1e-12)


def test_linucb_index_formula_and_choice() -> None:
    """index = x·θ_i + α sqrt(xᵀ A_i⁻¹ x) (explicit inverse here), the choice its argmax."""
    rng = np.random.default_rng(3)
    k, d, alpha = 4, 3, 1.7
    p = LinUCB(alpha=alpha, ridge=1.3)
    state = p.init_state(1, k, d)
    feed(p, state, *random_history(rng, 50, 1, k, d))
    xs = rng.normal(size=(7, d))
    inv = np.linalg.inv(state["A"][0])
    theta = np.einsum("kij,kj->ki", inv, state["b"][0])
    expected = xs @ theta.T + alpha * np.sqrt(np.einsum("md,kde,me->mk", xs, inv, xs))
    idx = p.indices(state, xs)
    np.testing.assert_allclose(idx, expected, rtol=1e-12, atol=1e-12)
    probs = p.state_probabilities(ArmStats.zeros(k), None, state, contexts=xs)
    assert probs.shape == (7, k)
    assert (probs == np.eye(k)[np.argmax(expected, axis=1)]).all()
    # a disabled arm is never chosen, even when its index is the largest
    mask = np.ones(k, dtype=bool)
    mask[np.argmax(expected[0])] = False
    probs = p.state_probabilities(ArmStats.zeros(k), mask, state, contexts=xs[:1])
    assert probs[0].tolist() == np.eye(k)[np.argmax(np.where(mask, expected[0], -np.inf))].tolist()
    # one context per problem: a batch of problems gives the same rows as one problem each
    batch = {n: np.repeat(v, 2, axis=0) for n, v in state.items()}
    batch["b"][1] *= -1.0
    rows = p.indices(batch, xs[:2])
    assert rows[0] == pytest.approx(idx[0], rel=1e-12)
    single = {n: v[1:] for n, v in batch.items()}
    assert rows[1] == pytest.approx(p.indices(single, xs[1:2])[0], rel=1e-12)
    with pytest.raises(ValueError, match="contexts for a state of 2 problems"):
        p.indices(batch, xs[:3])


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.type)
def test_fresh_state_and_zero_context_tie_uniformly(policy: DisjointRidge) -> None:
    state = policy.init_state(1, 3, 2)
    xs = np.array([[1.0, 2.0], [0.0, 0.0]])
    probs = policy.state_probabilities(ArmStats.zeros(3), None, state, contexts=xs)
    np.testing.assert_allclose(probs, np.full((2, 3), 1 / 3), rtol=1e-12)
    mask = np.array([True, False, True])
    probs = policy.state_probabilities(ArmStats.zeros(3), mask, state, contexts=xs)
    np.testing.assert_allclose(probs, [[0.5, 0.0, 0.5]] * 2, rtol=1e-12, atol=0)
    arms = policy.state_draw(
        ArmStats.zeros(3), mask, state, np.random.default_rng(4), contexts=np.zeros((1, 2))
    )
    assert arms.tolist() in ([0], [2])


def test_linear_thompson_probabilities_match_monte_carlo() -> None:
    """P(best) by quadrature against a Monte Carlo of the algorithm itself: draw every arm's
    coefficients θ̃_i ~ N(θ_i, v² A_i⁻¹) and take the largest score x·θ̃_i. Each frequency lies
    within 5 binomial standard errors; so do those of the faster score sampler state_draw."""
    rng = np.random.default_rng(5)
    k, d, v = 3, 2, 0.8
    p = LinearThompson(v=v, ridge=1.0)
    state = p.init_state(1, k, d)
    arms, rewards, counts, contexts = random_history(rng, 12, 1, k, d)
    feed(p, state, arms, rewards, counts, contexts)
    xs = np.array([[1.0, 0.0], [0.3, -1.0], [-0.5, 0.5], [2.0, 1.0]])
    probs = p.state_probabilities(ArmStats.zeros(k), None, state, contexts=xs)
    assert probs.sum(axis=1) == pytest.approx(np.ones(4), abs=1e-9)
    assert (probs > 0.02).sum() >= 8  # a test with several non-trivial probabilities
    n = 200_000
    theta = p.coefficients(state)[0]
    chol = np.linalg.cholesky(np.linalg.inv(state["A"][0]))  # (K, d, d)
    draws = theta + v * np.einsum("kij,nkj->nki", chol, rng.standard_normal((n, k, d)))
    for m, x in enumerate(xs):
        freq = np.bincount(np.argmax(draws @ x, axis=1), minlength=k) / n
        se = np.sqrt(probs[m] * (1 - probs[m]) / n)
        assert np.all(np.abs(freq - probs[m]) <= 5 * se + 1e-12), (m, freq, probs[m])
        one = {name: value.copy() for name, value in state.items()}
        drawn = p.state_draw(ArmStats.zeros(k), None, one, rng, contexts=np.tile(x, (n, 1)))
        freq = np.bincount(drawn, minlength=k) / n
        assert np.all(np.abs(freq - probs[m]) <= 5 * se + 1e-12), (m, freq, probs[m])


def test_linear_thompson_probability_in_closed_form() -> None:
    """Two arms: P(arm 0) = Φ((μ0 - μ1) / sqrt(s0² + s1²))."""
    from scipy import special

    rng = np.random.default_rng(6)
    p = LinearThompson(v=1.5, ridge=2.0)
    state = p.init_state(1, 2, 3)
    feed(p, state, *random_history(rng, 20, 1, 2, 3))
    xs = rng.normal(size=(5, 3))
    loc, scale = p.score_distribution(state, xs)
    probs = p.state_probabilities(ArmStats.zeros(2), None, state, contexts=xs)
    expected = special.ndtr((loc[:, 0] - loc[:, 1]) / np.hypot(scale[:, 0], scale[:, 1]))
    np.testing.assert_allclose(probs[:, 0], expected, atol=1e-8)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.type)
def test_states_concatenate_along_the_arm_axis(policy: DisjointRidge) -> None:
    """An arm's slice depends on its own observations only: a state grown with
    init_state(B, 1, d) is the state that had the extra arm all along."""
    rng = np.random.default_rng(7)
    batch, d = 2, 3
    arms, rewards, counts, contexts = random_history(rng, 40, batch, 3, d)
    full = policy.init_state(batch, 3, d)
    feed(policy, full, arms, rewards, counts, contexts)
    early = arms < 2  # the first two arms' observations, then the third arm is added
    grown = policy.init_state(batch, 2, d)
    for t in range(40):
        rows = np.flatnonzero(early[t])
        sub = {name: value[rows] for name, value in grown.items()}
        feed(policy, sub, arms[t : t + 1, rows], rewards[t : t + 1, rows],
             counts[t : t + 1, rows], contexts[t : t + 1, rows])  # fmt: skip
        for name in grown:
            grown[name][rows] = sub[name]
    extra = policy.init_state(batch, 1, d)
    grown = {name: np.concatenate([grown[name], extra[name]], axis=1) for name in grown}
    late = ~early
    for t in range(40):
        rows = np.flatnonzero(late[t])
        sub = {name: value[rows] for name, value in grown.items()}
        feed(policy, sub, arms[t : t + 1, rows], rewards[t : t + 1, rows],
             counts[t : t + 1, rows], contexts[t : t + 1, rows])  # fmt: skip
        for name in grown:
            grown[name][rows] = sub[name]
    for name in full:
        assert grown[name].shape == full[name].shape
        np.testing.assert_allclose(grown[name], full[name], rtol=1e-13, atol=1e-13)
    one = {name: value[:1] for name, value in full.items()}
    xs = rng.normal(size=(4, d))
    probs = policy.state_probabilities(ArmStats.zeros(3), None, one, contexts=xs)
    again = policy.state_probabilities(
        ArmStats.zeros(3), None, {n: v[:1] for n, v in grown.items()}, contexts=xs
    )
    np.testing.assert_allclose(probs, again, atol=1e-12)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.type)
def test_contexts_are_required(policy: DisjointRidge) -> None:
    state = policy.init_state(1, 2, 2)
    with pytest.raises(ValueError, match=NEEDS_CONTEXTS):
        policy.state_probabilities(ArmStats.zeros(2), None, state)
    with pytest.raises(ValueError, match=NEEDS_CONTEXTS):
        policy.probabilities(ArmStats.zeros(2))
    with pytest.raises(ValueError, match=NEEDS_CONTEXTS):
        policy.update_state(
            state, np.array([0]), np.array([1.0]), np.array([1.0]),
            propensities=np.array([np.nan]), contexts=None, times=np.zeros(1),
        )  # fmt: skip
    with pytest.raises(ValueError, match="features"):
        policy.state_probabilities(ArmStats.zeros(2), None, state, contexts=np.ones((1, 3)))
    with pytest.raises(ValueError, match="dim >= 1"):
        policy.init_state(1, 2, 0)
    with pytest.raises(ValueError, match="no enabled arm"):
        x = np.array([[1.0, 0.0]])
        policy.state_probabilities(ArmStats.zeros(2), [False, False], state, contexts=x)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"type": "linucb", "alpha": -0.1}, "policy.alpha"),
        ({"type": "linucb", "ridge": 0.0}, "policy.ridge"),
        ({"type": "linucb", "alpha": "big"}, "policy.alpha"),
        ({"type": "linear_thompson", "v": 0.0}, "policy.v"),
        ({"type": "linear_thompson", "ridge": float("inf")}, "policy.ridge"),
        ({"type": "linear_thompson", "alpha": 1.0}, "policy.alpha"),
    ],
)
def test_parameters_are_validated(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        make_policy(spec, "continuous")
    assert err.value.field == field


def test_registry_and_params() -> None:
    p = make_policy({"type": "linucb"}, "continuous")
    assert isinstance(p, LinUCB) and p.stateful and p.contextual
    assert p.params() == {"type": "linucb", "alpha": 1.0, "ridge": 1.0}
    q = make_policy({"type": "linear_thompson", "v": 0.5}, "binary")
    assert isinstance(q, LinearThompson) and q.stateful and q.contextual
    assert q.params() == {"type": "linear_thompson", "v": 0.5, "ridge": 1.0}


# -- regret ------------------------------------------------------------------------------------

#: Four arms whose best depends on the context x = (1, z), z ~ N(0, I₂): every fixed arm,
#: hence every non-contextual policy, loses a constant amount per step.
THETA = [[0.3, 1.0, 0.0], [0.2, 0.0, 1.0], [0.1, -1.0, 0.0], [0.0, 0.0, -1.0]]


def contextual_regret(
    policy: DisjointRidge, env: LinearContextual, horizon: int, replications: int, seed: int
) -> FloatArray:
    """Final cumulative pseudo-regret per replication (a vectorised loop, as the simulator's)."""
    policy_rng, env_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    r = replications
    state = policy.init_state(r, env.k, env.context_dim)
    stats = ArmStats.zeros(env.k, (r,))
    rows, ones, nan = np.arange(r), np.ones(r), np.full(r, np.nan)
    cum = np.zeros(r)
    for t in range(horizon):
        x = env.contexts(t, r, env_rng)
        mu = env.expected_rewards(t, x)
        arms = policy.state_draw(stats, None, state, policy_rng, contexts=x, time=float(t))
        chosen = mu[rows, arms]
        cum += mu.max(axis=1) - chosen
        rewards = env.rewards(arms, chosen, env_rng)
        policy.update_state(
            state, arms, rewards, ones, propensities=nan, contexts=x, times=np.full(r, float(t))
        )
    return cum


def test_contextual_policies_halve_the_best_non_contextual_regret() -> None:
    """On LinearContextual (50 replications, 3,000 steps) LinUCB's and linear TS's mean final
    regret is at most half the best non-contextual policy's: the upper end of the contextual
    policy's 95% band lies below half the lower end of the best non-contextual band."""
    env = LinearContextual(THETA, noise_sd=1.0)
    horizon, reps = 3000, 50
    specs: list[dict[str, Any]] = [
        {"type": "thompson"},
        {"type": "ucb1"},
        {"type": "epsilon_greedy", "epsilon": 0.1},
    ]
    baseline = []
    for i, spec in enumerate(specs):
        res = simulate(make_policy(spec, "continuous"), env, horizon, reps, seed=100 + i)
        final = res.regret[-1]
        baseline.append(
            (final.mean() - Z95 * final.std(ddof=1) / math.sqrt(reps), final.mean(), spec)
        )
    best_lo, best_mean, _ = min(baseline, key=lambda b: b[1])
    for i, policy in enumerate([LinUCB(reward="continuous"), LinearThompson(reward="continuous")]):
        final = contextual_regret(policy, env, horizon, reps, seed=200 + i)
        hi = final.mean() + Z95 * final.std(ddof=1) / math.sqrt(reps)
        assert hi <= 0.5 * best_lo, (policy.type, final.mean(), best_mean)
