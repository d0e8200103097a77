"""Fixtures ("cheater mode"): arms' statistics and new arms with priors, from YAML or JSON.

One format, read by ``octobandit fixtures load`` and the Telegram example's ``/cheat``::

    # replaces the arms' observed statistics (PUT .../arms/{arm}/stats)
    stats:
      arm1: {decisions: 100, rewards: 100, reward_sum: 10}
      arm2: {decisions: 100, rewards: 100, reward_sum: 80}
    # adds arms (POST .../arms), each with an optional prior; an existing arm is kept
    arms:
      - {id: arm3, payload: {text: "new"}, prior: {rewards: 10, reward_sum: 8}}

Both keys are optional, nothing else is allowed at the top. A statistics entry has
``decisions``, ``rewards``, ``reward_sum`` and optionally ``reward_sq_sum`` (missing
ones are 0, as the API takes them); an arm is ``id`` with optional ``payload``,
``enabled`` and ``prior``. This module only checks the shape: the values are checked
by the service when the fixture is applied. It imports nothing of the package.

>>> parse_fixture({"stats": {"a": {"decisions": 3, "rewards": 2, "reward_sum": 1}}}).stats
{'a': {'decisions': 3, 'rewards': 2, 'reward_sum': 1}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAT_FIELDS = ("decisions", "rewards", "reward_sum", "reward_sq_sum")
ARM_FIELDS = ("id", "payload", "enabled", "prior")
SUFFIXES = (".yaml", ".yml", ".json")


class FixtureError(ValueError):
    """The file cannot be read or is not a fixture (the message says where)."""


@dataclass(frozen=True, slots=True)
class Fixture:
    #: arm id → its statistics, replacing the arm's (``set_arm_stats``)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: arms to add (``add_arm``): ``{"id", "payload"?, "enabled"?, "prior"?}``
    arms: list[dict[str, Any]] = field(default_factory=list)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_fixture(data: Any, source: str = "fixture") -> Fixture:
    """Check the shape of a fixture already decoded from YAML or JSON."""
    if not isinstance(data, dict) or set(data) - {"stats", "arms"}:
        raise FixtureError(f"{source}: a mapping with 'stats' and/or 'arms'")
    stats_in = data.get("stats") or {}
    if not isinstance(stats_in, dict):
        raise FixtureError(f"{source}: 'stats' maps arm ids to statistics")
    stats: dict[str, dict[str, Any]] = {}
    for arm_id, row in stats_in.items():
        where = f"{source}: stats.{arm_id}"
        if not isinstance(row, dict) or not row or set(row) - set(STAT_FIELDS):
            raise FixtureError(f"{where}: a mapping of {', '.join(STAT_FIELDS)}")
        bad = [k for k, v in row.items() if not _number(v)]
        if bad:
            raise FixtureError(f"{where}.{bad[0]}: must be a number")
        stats[str(arm_id)] = dict(row)
    arms_in = data.get("arms") or []
    if not isinstance(arms_in, list):
        raise FixtureError(f"{source}: 'arms' is a list of arms")
    arms: list[dict[str, Any]] = []
    for i, arm in enumerate(arms_in):
        where = f"{source}: arms[{i}]"
        if not isinstance(arm, dict) or not isinstance(arm.get("id"), str):
            raise FixtureError(f"{where}: a mapping with an 'id' (a string)")
        if set(arm) - set(ARM_FIELDS):
            raise FixtureError(f"{where}: only {', '.join(ARM_FIELDS)}")
        if "prior" in arm and not isinstance(arm["prior"], dict):
            raise FixtureError(f"{where}.prior: a mapping")
        if "enabled" in arm and not isinstance(arm["enabled"], bool):
            raise FixtureError(f"{where}.enabled: true or false")
        arms.append(dict(arm))
    return Fixture(stats=stats, arms=arms)


def load_fixture(path: str | Path) -> Fixture:
    """Read a fixture file: ``.json`` is JSON, anything else YAML (needs PyYAML, which
    comes with ``uvicorn[standard]``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FixtureError(f"{path}: cannot be read ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FixtureError(f"{path.name}: not JSON ({exc})") from None
    else:
        try:
            import yaml
        except ImportError:  # pragma: no cover - it comes with uvicorn[standard]
            raise FixtureError(f"{path.name}: YAML needs PyYAML (pip install pyyaml)") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FixtureError(f"{path.name}: not YAML ({exc})") from None
    return parse_fixture(data, path.name)
