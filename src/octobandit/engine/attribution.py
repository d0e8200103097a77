"""Attribution windows: decisions whose reward never comes get a default, once.

An experiment created with ``reward.attribution_window`` (seconds) gives each
decision that long to be rewarded. While its window is open the decision is
*pending*: neither the policy nor the conclusions count it, as a success or as a
failure. Rewards inside the window are logged as ``part`` events. When the window
closes, the service's tick counts the decision's outcome, once: its first reward
(``aggregation: first``) or the sum of its rewards (``sum``), logged as a ``reward``
event with ``{"parts": m}``, or, when none came, the default (``reward.default``, 0
unless set) as a ``default`` event. A reward after the window closed is answered
as ``late`` and never counted.

Counting every outcome at the close keeps the estimates free of a feedback loop:
counting successes on arrival but failures only at the close would make the arms
being played look better than they are (their pending decisions would add
successes and no failures). See docs/rewards.md and docs/delayed-feedback.md.

The tick's settlement is in :mod:`octobandit.engine.settlement`.

>>> a = Attribution.parse({"attribution_window": 3600}, "binary")
>>> (a.window, a.default, a.aggregation)
(3600.0, 0.0, 'first')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from octobandit.errors import InvalidInput
from octobandit.model import ExperimentRecord

#: the longest attribution window: a year
MAX_WINDOW = 365 * 24 * 3600.0
AGGREGATIONS = ("first", "sum")
REWARD_FIELDS = ("type", "attribution_window", "default", "aggregation")


@dataclass(frozen=True, slots=True)
class Attribution:
    """An experiment's attribution settings (``options["reward"]``)."""

    window: float
    default: float = 0.0
    aggregation: str = "first"

    @classmethod
    def of(cls, record: ExperimentRecord) -> Attribution | None:
        """The record's settings, or ``None`` without an attribution window."""
        spec = record.options.get("reward")
        if not spec or spec.get("attribution_window") is None:
            return None
        return cls(
            float(spec["attribution_window"]),
            float(spec.get("default", 0.0)),
            str(spec.get("aggregation", "first")),
        )

    @classmethod
    def parse(cls, spec: Mapping[str, Any], reward_type: str) -> Attribution | None:
        """Check the ``reward`` object's window fields (``None``: no window asked for).

        ``default`` and ``aggregation`` only make sense with a window; ``sum`` is
        for real-valued rewards (a sum of 0/1 rewards is not binary).
        """
        window = spec.get("attribution_window")
        if window is None:
            for name in ("default", "aggregation"):
                if spec.get(name) is not None:
                    raise InvalidInput(
                        f"{name} needs reward.attribution_window", field=f"reward.{name}"
                    )
            return None
        if (
            isinstance(window, bool)
            or not isinstance(window, int | float)
            or not 0 < window <= MAX_WINDOW
        ):
            raise InvalidInput(
                f"must be a number of seconds above 0, at most {MAX_WINDOW:.0f} (a year)",
                field="reward.attribution_window",
            )
        default = spec.get("default")
        default = 0.0 if default is None else default
        if (
            isinstance(default, bool)
            or not isinstance(default, int | float)
            or not math.isfinite(default)
            or abs(default) > 1e12
        ):
            raise InvalidInput("must be a finite number", field="reward.default")
        if reward_type == "binary" and not 0.0 <= default <= 1.0:
            raise InvalidInput("a binary experiment's default is in [0, 1]", field="reward.default")
        aggregation = spec.get("aggregation")
        aggregation = "first" if aggregation is None else aggregation
        if aggregation not in AGGREGATIONS:
            raise InvalidInput(f"must be one of {list(AGGREGATIONS)}", field="reward.aggregation")
        if aggregation == "sum" and reward_type == "binary":
            raise InvalidInput(
                "sum adds rewards up, which a binary experiment cannot hold:"
                " use a continuous reward",
                field="reward.aggregation",
            )
        return cls(float(window), float(default), aggregation)

    def params(self) -> dict[str, Any]:
        return {
            "attribution_window": self.window,
            "default": self.default,
            "aggregation": self.aggregation,
        }
