"""The fixtures' format (octobandit.fixtures), shared by the CLI and the Telegram example."""

from __future__ import annotations

from pathlib import Path

import pytest

from octobandit.fixtures import Fixture, FixtureError, load_fixture, parse_fixture

EXAMPLE = Path(__file__).parents[1] / "examples" / "telegram_bot" / "fixtures"


def test_the_examples_fixtures_parse() -> None:
    wins = load_fixture(EXAMPLE / "arm2_wins.yaml")
    assert wins.arms == []
    assert wins.stats == {
        "arm1": {"decisions": 100, "rewards": 100, "reward_sum": 10},
        "arm2": {"decisions": 100, "rewards": 100, "reward_sum": 80},
    }
    prior = load_fixture(EXAMPLE / "arm3_prior.json")
    assert prior.stats == {} and [a["id"] for a in prior.arms] == ["arm3"]
    assert prior.arms[0]["prior"] == {"rewards": 10, "reward_sum": 8}


def test_yaml_and_json_give_the_same_fixture(tmp_path: Path) -> None:
    (tmp_path / "f.yml").write_text("stats:\n  a: {decisions: 3, rewards: 2.5, reward_sum: 1}\n")
    (tmp_path / "f.json").write_text(
        '{"stats": {"a": {"decisions": 3, "rewards": 2.5, "reward_sum": 1}}}'
    )
    assert load_fixture(tmp_path / "f.yml") == load_fixture(tmp_path / "f.json")
    assert parse_fixture({}) == Fixture()


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([1, 2], "a mapping with 'stats' and/or 'arms'"),
        ({"stats": {}, "experiment": "x"}, "a mapping with 'stats' and/or 'arms'"),
        ({"stats": [1]}, "'stats' maps arm ids"),
        ({"stats": {"a": {"decisions": 1, "wins": 2}}}, "stats.a: a mapping of"),
        ({"stats": {"a": {}}}, "stats.a: a mapping of"),
        ({"stats": {"a": {"decisions": "many"}}}, "stats.a.decisions: must be a number"),
        ({"stats": {"a": {"decisions": True}}}, "stats.a.decisions: must be a number"),
        ({"arms": {"id": "x"}}, "'arms' is a list"),
        ({"arms": [{"payload": 1}]}, r"arms\[0\]: a mapping with an 'id'"),
        ({"arms": [{"id": "x", "colour": 1}]}, r"arms\[0\]: only id"),
        ({"arms": [{"id": "x", "prior": 3}]}, r"arms\[0\]\.prior: a mapping"),
        ({"arms": [{"id": "x", "enabled": "yes"}]}, r"arms\[0\]\.enabled: true or false"),
    ],
)
def test_a_wrong_shape_is_refused_with_where(data: object, where: str) -> None:
    with pytest.raises(FixtureError, match=where):
        parse_fixture(data, "f.yaml")


def test_unreadable_or_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="cannot be read"):
        load_fixture(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(FixtureError, match="not JSON"):
        load_fixture(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("stats: [\n")
    with pytest.raises(FixtureError, match="not YAML"):
        load_fixture(tmp_path / "bad.yaml")
