"""Input that used to give a 500 is refused (nothing written) or handled: options merge on
PATCH, bounded rewards, counts and per-arm totals, validated admin statistics and priors."""

from __future__ import annotations

import math
from typing import Any

import pytest

from octobandit.api.errors import http_status
from octobandit.engine import Engine, RewardItem
from octobandit.engine.bounds import MAX_ABS_REWARD, MAX_COUNT, MAX_TOTAL, MIN_COUNT
from octobandit.errors import Conflict, InvalidInput, OctobanditError


def contextual(engine: Engine) -> None:
    engine.create_experiment(
        {
            "id": "ctx",
            "policy": {"type": "linucb"},
            "reward": {"type": "continuous"},
            "context": {"features": ["age", "mobile"]},
            "arms": [{"id": "a"}, {"id": "b"}],
        }
    )


@pytest.mark.parametrize(
    "change",
    [
        {"snapshot_interval": 60},
        {"stopping": {"prob_best": 0.95}},
        {"stopping": {"auto_conclude": True}, "snapshot_interval": 30},
    ],
)
def test_patching_options_keeps_the_context_features(engine: Engine, change: Any) -> None:
    contextual(engine)
    engine.update_experiment("ctx", change)
    record = engine.get_experiment("ctx")
    assert record.options["context_features"] == ["age", "mobile"]
    d = engine.decide("ctx", context={"age": 30, "mobile": 1})
    engine.reward("ctx", [RewardItem(2.0, decision_id=d["decision_id"])])
    # and a second patch still keeps them (merge, never drop)
    engine.update_experiment("ctx", {"snapshot_interval": 120})
    assert engine.get_experiment("ctx").options["context_features"] == ["age", "mobile"]
    assert engine.decide("ctx", context=[40, 0])["arm_id"] in {"a", "b"}


def continuous(engine: Engine, exp_id: str = "c") -> None:
    engine.create_experiment(
        {
            "id": exp_id,
            "policy": {"type": "thompson"},
            "reward": {"type": "continuous"},
            "arms": [{"id": "a"}, {"id": "b"}],
        }
    )


def refused(engine: Engine, call: Any, status: int, field: str | None = None) -> str:
    """``call()`` raises an error of ``status`` naming ``field``; the event log is unchanged."""
    before = list(engine.storage.events())
    stats_before = [
        (a.rewards, a.reward_sum, a.reward_sq_sum) for a in engine.get_experiment("c").arms
    ]
    with pytest.raises(OctobanditError) as info:
        call()
    assert http_status(info.value) == status, info.value.message
    if field is not None:
        assert isinstance(info.value, InvalidInput) and info.value.field == field
    assert list(engine.storage.events()) == before
    after = [(a.rewards, a.reward_sum, a.reward_sq_sum) for a in engine.get_experiment("c").arms]
    assert after == stats_before
    return info.value.message


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"reward": 1e200}, "reward"),
        ({"reward": None}, "reward"),  # the SDK door: not a number at all
        ({"reward": "1"}, "reward"),
        ({"reward": 10**400}, "reward"),  # an int beyond the float range
        ({"reward": -1e300, "count": 10}, "reward"),
        ({"reward": math.nextafter(MAX_ABS_REWARD, math.inf)}, "reward"),
        ({"reward": 1.0, "count": 2**64}, "count"),
        ({"reward": 1e300, "count": 10**10}, "reward"),
        ({"reward": 1.0, "count": 10**10}, "count"),
        ({"reward": 1.0, "count": MAX_COUNT + 1}, "count"),
        ({"reward": 1.0, "count": 1.5}, "count"),
        ({"reward": 1.0, "count": 0}, "count"),
    ],
)
def test_rewards_and_counts_out_of_bounds_are_422(
    engine: Engine, item: dict[str, Any], field: str
) -> None:
    continuous(engine)
    bad = RewardItem(arm_id="a", **item)
    refused(engine, lambda: engine.reward("c", [bad]), 422, field)
    # in a bulk request the whole request is refused, naming the item
    good = RewardItem(1.0, arm_id="b")
    refused(engine, lambda: engine.reward("c", [good, bad]), 422, f"rewards[1].{field}")


def test_the_largest_accepted_rewards_keep_every_statistic_finite(engine: Engine) -> None:
    continuous(engine)
    for sign in (1.0, -1.0):
        engine.reward("c", [RewardItem(sign * MAX_ABS_REWARD, arm_id="a", count=MAX_COUNT)])
    engine.reward("c", [RewardItem(MAX_ABS_REWARD, arm_id="b", count=MAX_COUNT)])
    d = engine.decide("c", n=50)
    for x in d["decisions"]:
        assert 0 < x["propensity"] <= 1
    stats = engine.stats("c")
    for arm in stats["arms"]:
        assert all(math.isfinite(v) for v in arm["ci95"] + [arm["mean_reward"], arm["reward_sum"]])
    view = engine.conclusion("c")
    for arm in view["arms"]:
        assert all(v is not None and math.isfinite(v) for v in [arm["mean"], *arm["ci95"]])
        assert arm["prob_best"] is not None and arm["expected_loss"] is not None


def test_a_total_beyond_the_exact_range_is_409(engine: Engine) -> None:
    continuous(engine)
    engine.set_arm_stats("c", "a", {"rewards": MAX_TOTAL - 1, "reward_sum": 0.0})
    engine.reward("c", [RewardItem(1.0, arm_id="a")])  # exactly MAX_TOTAL: accepted
    assert engine.get_experiment("c").arms[0].rewards == MAX_TOTAL
    message = refused(engine, lambda: engine.reward("c", [RewardItem(1.0, arm_id="a")]), 409)
    assert "exceed" in message
    with pytest.raises(Conflict) as info:
        engine.reward("c", [RewardItem(1.0, arm_id="b"), RewardItem(1.0, arm_id="a")])
    assert info.value.code == "total_exceeded"
    assert engine.get_experiment("c").arms[1].rewards == 0  # the request wrote nothing
    engine.reward("c", [RewardItem(1.0, arm_id="b")])  # the other arm is fine


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"decisions": 2**63}, "body.decisions"),
        ({"decisions": 10**400}, "body.decisions"),
        ({"decisions": MAX_TOTAL + 1}, "body.decisions"),
        ({"decisions": 1.5}, "body.decisions"),
        ({"rewards": 1e-320, "reward_sum": 0.0}, "body.rewards"),
        ({"rewards": MIN_COUNT / 2}, "body.rewards"),
        ({"rewards": 2.0**64}, "body.rewards"),
        ({"rewards": 2.0, "reward_sum": 3e12}, "body.reward_sum"),
        ({"rewards": 2.0, "reward_sum": 2.0, "reward_sq_sum": 3e24}, "body.reward_sq_sum"),
        ({"rewards": 1.0, "reward_sum": 1e300}, "body.reward_sum"),
    ],
)
def test_admin_statistics_are_validated_and_a_refusal_logs_nothing(
    engine: Engine, values: dict[str, Any], field: str
) -> None:
    continuous(engine)
    refused(engine, lambda: engine.set_arm_stats("c", "a", values), 422, field)
    assert not [e for e in engine.storage.events() if e.kind == "set_stats"]
    assert engine.stats("c")["arms"][0]["rewards"] == 0


def test_admin_statistics_at_the_bounds_are_accepted_and_readable(engine: Engine) -> None:
    continuous(engine)
    engine.set_arm_stats("c", "a", {"decisions": MAX_TOTAL, "rewards": MIN_COUNT})
    engine.set_arm_stats(
        "c",
        "b",
        {
            "decisions": 3,
            "rewards": float(MAX_TOTAL),
            "reward_sum": MAX_TOTAL * MAX_ABS_REWARD,
            "reward_sq_sum": MAX_TOTAL * MAX_ABS_REWARD**2,
        },
    )
    stats = engine.stats("c")
    assert [a["decisions"] for a in stats["arms"]] == [MAX_TOTAL, 3]
    assert stats["arms"][1]["mean_reward"] == pytest.approx(MAX_ABS_REWARD)
    view = engine.conclusion("c")
    assert all(math.isfinite(a["prob_best"]) for a in view["arms"])
    assert engine.decide("c")["arm_id"] in {"a", "b"}
    assert len([e for e in engine.storage.events() if e.kind == "set_stats"]) == 2


@pytest.mark.parametrize(
    ("prior", "field"),
    [
        ({"rewards": 1e-320}, "arms[0].prior.rewards"),
        ({"rewards": 2.0**64}, "arms[0].prior.rewards"),
        ({"rewards": 1.0, "reward_sum": 1e200}, "arms[0].prior.reward_sum"),
        (
            {"rewards": 1.0, "reward_sum": 1.0, "reward_sq_sum": 1e300},
            "arms[0].prior.reward_sq_sum",
        ),
    ],
)
def test_arm_priors_have_the_same_bounds(engine: Engine, prior: dict[str, Any], field: str) -> None:
    spec = {
        "id": "p",
        "reward": {"type": "continuous"},
        "arms": [{"id": "a", "prior": prior}],
    }
    with pytest.raises(InvalidInput) as info:
        engine.create_experiment(spec)
    assert info.value.field == field
    assert engine.list_experiments() == []


def test_alpha_beta_priors_are_bounded(engine: Engine) -> None:
    spec = {"id": "p", "arms": [{"id": "a", "prior": {"alpha": 1e300, "beta": 1.0}}]}
    with pytest.raises(InvalidInput) as info:
        engine.create_experiment(spec)
    assert info.value.field == "arms[0].prior.alpha"
