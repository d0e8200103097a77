"""UCB-Tuned: the index in closed form (Auer et al. 2002, §4), deterministic choices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octobandit.errors import InvalidInput
from octobandit.policies import UCB1, ArmStats, UCBTuned, make_policy


def tuned_index(n: float, s: float, ss: float, total: float, cap: float = 0.25) -> float:
    mean = s / n
    v = ss / n - mean**2 + math.sqrt(2 * math.log(total) / n)
    return mean + math.sqrt(math.log(total) / n * min(cap, v))


def test_index_matches_the_closed_form_on_both_branches() -> None:
    # arm 0: Bernoulli(0.1) with many pulls -> V < 1/4 (variance branch);
    # arm 1: mean 0.5 -> V > 1/4 (capped at 1/4); arm 2: continuous, arbitrary ss
    n, s, ss = [10_000, 5_000, 400], [1_000, 2_500, 120], [1_000, 2_500, 50]
    total = sum(n)
    idx = UCBTuned().indices(ArmStats.of(n=n, s=s, ss=ss))
    want = [tuned_index(*a, total) for a in zip(n, s, ss, strict=True)]
    assert idx == pytest.approx(want, rel=1e-13)
    v0 = 1_000 / 10_000 - 0.1**2 + math.sqrt(2 * math.log(total) / 10_000)
    assert v0 < 0.25  # the first arm is on the variance branch, as intended


def test_max_variance_scales_the_cap() -> None:
    stats = ArmStats.of(n=[50, 50], s=[10, 25], ss=[200, 400])
    idx = UCBTuned(max_variance=4.0).indices(stats)
    want = [tuned_index(50, 10, 200, 100, 4.0), tuned_index(50, 25, 400, 100, 4.0)]
    assert idx == pytest.approx(want, rel=1e-13)


def test_bonus_is_never_above_ucb1s() -> None:
    """sqrt(ln N / n · min(1/4, V)) ≤ sqrt(ln N / (4n)) < sqrt(2 ln N / n)."""
    rng = np.random.default_rng(8)
    n = rng.integers(1, 1000, size=(200, 6)).astype(float)
    s = rng.binomial(n.astype(int), 0.4).astype(float)
    stats = ArmStats.of(n, s)
    assert (UCBTuned().indices(stats) < UCB1().indices(stats)).all()
    mean = s / n
    log_total = np.log(n.sum(axis=1, keepdims=True))
    assert (UCBTuned().indices(stats) <= mean + np.sqrt(log_total / (4 * n)) + 1e-15).all()


def test_untried_arms_first_ties_share_the_propensity() -> None:
    rng = np.random.default_rng(0)
    p = UCBTuned()
    c = p.choose(ArmStats.of(n=[4, 0, 0, 3], s=[1, 0, 0, 2]), rng, size=20_000)
    assert set(c.arms.tolist()) == {1, 2}
    assert np.all(c.propensities == 0.5)
    c = p.choose(ArmStats.of(n=[100, 100, 100], s=[30, 70, 50]), rng, size=100)
    assert (c.arms == 1).all() and (c.propensities == 1.0).all()
    c = p.choose(ArmStats.of(n=[0, 5], s=[0, 1]), rng, enabled=[False, True])
    assert c.arms.tolist() == [1]


def test_batch_rows_match_single_rows() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(0, 50, size=(30, 4)).astype(float)
    s = rng.binomial(n.astype(int), 0.5).astype(float)
    batch = UCBTuned().indices(ArmStats.of(n, s))
    for i in range(30):
        assert batch[i] == pytest.approx(UCBTuned().indices(ArmStats.of(n[i], s[i])), rel=1e-15)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), "big", None])
def test_max_variance_is_validated(bad: object) -> None:
    with pytest.raises(InvalidInput) as err:
        make_policy({"type": "ucb_tuned", "max_variance": bad})
    assert err.value.field == "policy.max_variance"
