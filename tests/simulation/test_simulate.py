"""The simulator's mechanics: regret accounting, records, seeds, outputs, errors."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import integrate, special

from octobandit.policies import POLICIES, EpsilonGreedy, Policy, ThompsonSampling, make_policy
from octobandit.simulation import (
    Bernoulli,
    Gaussian,
    LinearContextual,
    LogisticContextual,
    PiecewiseBernoulli,
    lai_robbins_bound,
    lai_robbins_constant,
    simulate,
)

Z = 5.0


@pytest.mark.parametrize("kind", [k for k in sorted(POLICIES) if not POLICIES[k].contextual])
def test_one_arm_has_zero_regret(kind: str) -> None:
    res = simulate(make_policy({"type": kind}), Bernoulli([0.3]), horizon=300, replications=8)
    assert (res.regret == 0).all()
    assert (res.best_arm == 1).all()
    assert res.pulls.tolist() == [[300.0]] * 8


def test_uniform_play_regret_is_the_mean_gap(fixed_arm: Callable[..., Policy]) -> None:
    """ε = 1 plays uniformly: E[regret(T)] = T · Σ_i Δ_i / K, within 5 standard errors."""
    env = Bernoulli([0.5, 0.4, 0.2, 0.45])
    res = simulate(EpsilonGreedy(epsilon=1.0), env, horizon=2000, replications=200, seed=4)
    expected = 2000 * (0.0 + 0.1 + 0.3 + 0.05) / 4
    assert abs(res.regret_mean[-1] - expected) <= Z * res.regret_se[-1]
    # a fixed arm's pseudo-regret is deterministic: T · Δ
    res = simulate(fixed_arm(arm=2), env, horizon=500, replications=3, record_every=100)
    assert res.steps.tolist() == [100, 200, 300, 400, 500]
    assert res.regret[:, 0] == pytest.approx([30.0, 60.0, 90.0, 120.0, 150.0], rel=1e-12)
    assert (res.best_arm == 0).all()


def test_piecewise_environment_swaps_the_best_arm(fixed_arm: Callable[..., Policy]) -> None:
    """Playing arm 0, best before the change at step 400 and 0.3 worse after: regret 0,
    then growing by 0.3 per step; rewards at 0.8 then 0.5 within binomial bounds."""
    env = PiecewiseBernoulli([[0.8, 0.6], [0.5, 0.8]], change_points=[400])
    res = simulate(fixed_arm(arm=0), env, horizon=1000, replications=200, record_every=100)
    cum = res.regret[:, 0]
    assert (cum[:4] == 0).all()
    assert cum[4:] == pytest.approx(0.3 * (res.steps[4:] - 400), rel=1e-12)
    assert res.best_arm_share.tolist() == [1.0] * 4 + [0.0] * 6
    rewards = res.stats.s[:, 0].sum()
    n = 200 * 1000
    mean = (400 * 0.8 + 600 * 0.5) / 1000
    var = (400 * 0.8 * 0.2 + 600 * 0.5 * 0.5) / 1000  # independent, non-identical Bernoullis
    assert abs(rewards / n - mean) <= Z * math.sqrt(var / n)
    # the other arm is best after the change: a policy playing it has regret only before
    res = simulate(fixed_arm(arm=1), env, horizon=1000, replications=2, record_every=100)
    assert res.regret[-1, 0] == pytest.approx(0.2 * 400, rel=1e-12)


def test_contextual_linear_regret_against_the_context_oracle(
    fixed_arm: Callable[..., Policy],
) -> None:
    """Means x and -x with x ~ N(0, 1): a fixed arm loses E[max(x, -x) - x] = E|x| = sqrt(2/π)
    per step, and plays the best arm half of the time."""
    env = LinearContextual([[0.0, 1.0], [0.0, -1.0]], noise_sd=1.0)
    fixed = fixed_arm(arm=0, reward="continuous")
    res = simulate(fixed, env, horizon=500, replications=100, seed=9)
    slope, se = res.slope(int(res.steps[0]), 500)
    assert abs(slope - math.sqrt(2 / math.pi)) <= Z * se
    share = float(res.best_arm.mean())
    assert abs(share - 0.5) <= Z * math.sqrt(0.25 / (500 * 100))


def test_contextual_logistic_regret_against_the_context_oracle(
    fixed_arm: Callable[..., Policy],
) -> None:
    """Means σ(2x) and σ(-2x): arm 0 loses E[(σ(-2x) - σ(2x))⁺] per step (a 1-D integral)."""
    env = LogisticContextual([[0.0, 2.0], [0.0, -2.0]])
    res = simulate(fixed_arm(arm=0), env, horizon=500, replications=100, seed=10)

    def loss(x: float) -> float:
        gap = float(special.expit(-2 * x) - special.expit(2 * x))
        return max(gap, 0.0) * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)

    expected = integrate.quad(loss, -np.inf, 0)[0]
    slope, se = res.slope(int(res.steps[0]), 500)
    assert abs(slope - expected) <= Z * se
    # a non-contextual policy runs (and ignores the context)
    res = simulate(ThompsonSampling(), env, horizon=200, replications=10)
    assert res.regret.shape == (200, 10)


def test_the_same_policy_object_is_called_once_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, tuple[int, ...], bool]] = []
    original = ThompsonSampling.choose

    def spy(self: Policy, stats: Any, rng: Any, **kwargs: Any) -> Any:
        calls.append((self, stats.n.shape, kwargs.get("propensities", True)))
        return original(self, stats, rng, **kwargs)

    monkeypatch.setattr(ThompsonSampling, "choose", spy)
    policy = ThompsonSampling()
    simulate(policy, Bernoulli([0.2, 0.5, 0.4]), horizon=50, replications=7)
    assert len(calls) == 50
    assert all(p is policy and shape == (7, 3) and props is False for p, shape, props in calls)


def test_seeds_fix_the_run() -> None:
    env = Bernoulli([0.5, 0.45, 0.3])
    a = simulate(ThompsonSampling(), env, horizon=300, replications=20, seed=5)
    b = simulate(ThompsonSampling(), env, horizon=300, replications=20, seed=5)
    c = simulate(ThompsonSampling(), env, horizon=300, replications=20, seed=6)
    assert np.array_equal(a.regret, b.regret) and np.array_equal(a.pulls, b.pulls)
    assert not np.array_equal(a.regret, c.regret)


def test_records_and_progress() -> None:
    seen: list[tuple[int, int]] = []
    res = simulate(
        EpsilonGreedy(),
        Bernoulli([0.5, 0.4]),
        horizon=10,
        replications=2,
        record_every=3,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert res.steps.tolist() == [3, 6, 9, 10]
    assert seen == [(3, 10), (6, 10), (9, 10), (10, 10)]
    assert simulate(EpsilonGreedy(), Bernoulli([0.5]), horizon=5000).steps.size == 1000


def test_policy_spec_and_reward_type_checks() -> None:
    env = Gaussian([1.0, 0.0], sd=1.0)
    res = simulate({"type": "thompson"}, env, horizon=100, replications=5)
    assert res.policy["type"] == "thompson"
    with pytest.raises(ValueError, match="continuous"):
        simulate(ThompsonSampling(), env, horizon=10)
    with pytest.raises(ValueError):
        simulate(ThompsonSampling(), Bernoulli([0.5]), horizon=0)
    with pytest.raises(ValueError):
        simulate(ThompsonSampling(), Bernoulli([0.5]), horizon=10, replications=0)


def test_lai_robbins_bound_closed_form() -> None:
    def kl(p: float, q: float) -> float:
        return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))

    means = [0.5, 0.4, 0.4, 0.3, 0.5]
    const = 2 * 0.1 / kl(0.4, 0.5) + 0.2 / kl(0.3, 0.5)  # tied best arms add nothing
    assert lai_robbins_constant(means) == pytest.approx(const, rel=1e-13)
    t = np.array([1, 10, 10_000])
    assert lai_robbins_bound(means, t) == pytest.approx(const * np.log(t), rel=1e-13)
    assert lai_robbins_constant([0.7]) == 0.0
    assert lai_robbins_constant([1.0, 0.5]) == 0.0  # KL(0.5, 1) is infinite
    with pytest.raises(ValueError):
        lai_robbins_constant([1.5, 0.2])


def test_csv_and_json_outputs(tmp_path: Path) -> None:
    res = simulate(ThompsonSampling(), Bernoulli([0.6, 0.5]), horizon=100, replications=30)
    text = res.to_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 100 and (tmp_path / "r.csv").read_text() == text
    last = rows[-1]
    assert int(last["step"]) == 100
    assert float(last["regret_mean"]) == pytest.approx(res.regret[-1].mean())
    lo, hi = float(last["regret_lo"]), float(last["regret_hi"])
    assert lo == pytest.approx(res.regret_mean[-1] - 1.959964 * res.regret_se[-1], rel=1e-6)
    assert lo <= float(last["regret_mean"]) <= hi
    data = json.loads(res.to_json(tmp_path / "r.json"))
    assert data["policy"] == ThompsonSampling().params()
    assert data["environment"] == {"type": "bernoulli", "means": [0.6, 0.5]}
    assert data["final_regret"]["mean"] == pytest.approx(res.regret_mean[-1])
    assert len(data["series"]["step"]) == 100
    # one replication has no standard error: NaN is written as null
    one = simulate(ThompsonSampling(), Bernoulli([0.6, 0.5]), horizon=10, replications=1)
    assert json.loads(one.to_json())["final_regret"]["se"] is None


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    res = simulate(ThompsonSampling(), Bernoulli([0.6, 0.5]), horizon=200, replications=20)
    out = res.plot(tmp_path / "fig" / "regret.png", lower_bound=([1, 200], [0, 5]))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = simulate(ThompsonSampling(), Bernoulli([0.6, 0.5]), horizon=10, replications=2)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match="pip install"):
        res.plot(tmp_path / "x.png")


def test_workers_split_replications_and_keep_the_statistics() -> None:
    """Two processes run half the replications each; the joined result has every
    replication, and its mean regret agrees with a single-process run within 5 SE
    of their difference (the streams differ, the distribution does not)."""
    env = Bernoulli([0.5, 0.4, 0.3])
    one = simulate(make_policy({"type": "thompson"}), env, horizon=400, replications=60, seed=2)
    two = simulate(
        make_policy({"type": "thompson"}), env, horizon=400, replications=60, seed=2, workers=2
    )
    assert two.regret.shape == one.regret.shape and two.pulls.shape == (60, 3)
    assert (two.pulls.sum(axis=1) == 400).all()
    diff = one.regret_mean[-1] - two.regret_mean[-1]
    assert abs(diff) <= 5 * math.hypot(one.regret_se[-1], two.regret_se[-1])
