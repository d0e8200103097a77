"""KL-UCB: the Bernoulli divergence, its upper bound solved to tolerance, the index."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import KLUCB, ArmStats, make_policy
from octobandit.policies.kl_ucb import bernoulli_kl, exploration_level, kl_upper_bound


def kl(p: float, q: float) -> float:
    def term(a: float, b: float) -> float:
        return 0.0 if a == 0 else a * math.log(a / b)

    return term(p, q) + term(1 - p, 1 - q)


def test_bernoulli_kl_closed_form_and_edges() -> None:
    ps = [0.1, 0.5, 0.9, 0.0, 1.0, 0.3]
    qs = [0.2, 0.5, 0.3, 0.4, 0.6, 0.31]
    assert bernoulli_kl(ps, qs) == pytest.approx([kl(p, q) for p, q in zip(ps, qs, strict=True)])
    assert bernoulli_kl([0.0, 1.0], [0.0, 1.0]).tolist() == [0.0, 0.0]
    assert bernoulli_kl([0.5, 0.5], [0.0, 1.0]).tolist() == [math.inf, math.inf]


def test_upper_bound_solves_the_divergence_equation() -> None:
    """For p < 1 and δ > 0 the bound q is the root of KL(p, q) = δ: within 1e-11
    of it, KL(p, q - 1e-10) < δ < KL(p, q + 1e-10) (KL is increasing on [p, 1))."""
    rng = np.random.default_rng(2011)
    p = np.concatenate([rng.random(5000), rng.random(500) * 1e-6, [0.0] * 10, [0.999] * 10])
    delta = np.exp(rng.uniform(-10, 1.5, p.size))
    q = kl_upper_bound(p, delta)
    assert ((q >= p) & (q <= 1)).all()
    inside = q < 1 - 1e-6  # where q + 1e-10 stays inside (0, 1) with room
    assert inside.mean() > 0.9
    lo, hi = q[inside] - 1e-10, q[inside] + 1e-10
    d, pi = delta[inside], p[inside]
    assert (bernoulli_kl(pi, np.maximum(lo, pi)) <= d).all()
    assert (bernoulli_kl(pi, hi) > d).all()
    # and the residual is at the level of the tolerance times the slope (q - p)/(q(1 - q))
    slope = (q[inside] - pi) / (q[inside] * (1 - q[inside]))
    assert (np.abs(bernoulli_kl(pi, q[inside]) - d) <= slope * 1e-11 + 1e-14).all()


def test_upper_bound_closed_forms_and_bounds() -> None:
    delta = np.array([0.01, 0.5, 3.0])
    assert kl_upper_bound(0.0, delta) == pytest.approx(1 - np.exp(-delta), rel=1e-12)
    assert kl_upper_bound(1.0, delta).tolist() == [1.0, 1.0, 1.0]
    assert kl_upper_bound([0.2, 0.7], 0.0).tolist() == [0.2, 0.7]
    # Pinsker: KL(p, q) >= 2 (q - p)^2, so q <= p + sqrt(δ / 2); monotone in δ
    p = np.full(50, 0.35)
    d = np.geomspace(1e-6, 5, 50)
    q = kl_upper_bound(p, d)
    assert (q <= p + np.sqrt(d / 2) + 1e-12).all()
    assert (np.diff(q) > 0).all()


def test_exploration_level() -> None:
    assert exploration_level([1, 2, math.e], 3.0) == pytest.approx([0, math.log(2), 1], rel=1e-15)
    t = 1000.0
    assert float(exploration_level(t, 3.0)) == pytest.approx(
        math.log(t) + 3 * math.log(math.log(t)), rel=1e-15
    )


@pytest.mark.parametrize("c", [0.0, 3.0])
def test_index_is_the_kl_upper_confidence_bound(c: float) -> None:
    n = [100, 40, 10, 250]
    s = [55, 20, 7, 130]
    t = sum(n)
    level = math.log(t) + c * math.log(math.log(t))
    idx = KLUCB(c=c).indices(ArmStats.of(n=n, s=s))
    for i in range(4):
        mean = s[i] / n[i]
        assert idx[i] > mean
        assert n[i] * kl(mean, idx[i]) == pytest.approx(level, rel=1e-9)


def test_index_rows_of_a_batch_and_enabled_total() -> None:
    rng = np.random.default_rng(5)
    n = rng.integers(1, 300, size=(40, 5)).astype(float)
    s = rng.binomial(n.astype(int), 0.3).astype(float)
    batch = KLUCB().indices(ArmStats.of(n, s))
    for i in range(40):
        assert batch[i] == pytest.approx(KLUCB().indices(ArmStats.of(n[i], s[i])), abs=1e-11)
    # t counts the enabled arms only
    stats = ArmStats.of(n=[10, 1000, 10], s=[5, 100, 3])
    idx = KLUCB().indices(stats, [True, False, True])
    assert 10 * kl(0.5, idx[0]) == pytest.approx(math.log(20), rel=1e-9)


def test_deterministic_choice_untried_first_ties_share() -> None:
    rng = np.random.default_rng(1)
    p = KLUCB()
    c = p.choose(ArmStats.of(n=[5, 0, 0], s=[5, 0, 0]), rng, size=10_000)
    assert set(c.arms.tolist()) == {1, 2} and np.all(c.propensities == 0.5)
    c = p.choose(ArmStats.of(n=[200, 200], s=[60, 120]), rng, size=50)
    assert (c.arms == 1).all() and (c.propensities == 1.0).all()
    c = p.choose(ArmStats.of(n=[0, 5], s=[0, 1]), rng, enabled=[False, True])
    assert c.arms.tolist() == [1]


def test_binary_rewards_only_and_c_validated() -> None:
    with pytest.raises(InvalidInput) as err:
        make_policy({"type": "kl_ucb"}, "continuous")
    assert err.value.field == "policy.type"
    for bad in (-1.0, float("inf"), "3", None):
        with pytest.raises(InvalidInput) as err:
            make_policy({"type": "kl_ucb", "c": bad})
        assert err.value.field == "policy.c"
    assert make_policy({"type": "kl_ucb", "c": 3}).params() == {"type": "kl_ucb", "c": 3.0}
