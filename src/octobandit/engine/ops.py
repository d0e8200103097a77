"""Data-plane requests the engine executes in groups (one transaction per group)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from octobandit.errors import InvalidInput, OctobanditError
from octobandit.wire import (
    LoggedDecision,
    RewardAnswer,
    decode_decision,
    decode_reward,
    encode,
    error_body,
)

log = logging.getLogger("octobandit.engine")


@dataclass(slots=True)
class DecideOp:
    """Ask for ``n`` decisions (``n=None``: one, answered as a single decision)."""

    experiment_id: str
    n: int | None = None
    unit_id: str | None = None
    context: Any = None


@dataclass(slots=True)
class RewardItem:
    """A reward for one decision, or the mean reward of ``count`` pulls of one arm."""

    reward: float
    decision_id: str | None = None
    arm_id: str | None = None
    count: int = 1


@dataclass(slots=True)
class RewardOp:
    """One reward request: all its items are accepted, or none."""

    experiment_id: str
    items: list[RewardItem]


@dataclass(slots=True)
class RewardResult:
    accepted: int
    duplicates: int
    #: rewards that came after their decision's attribution window closed (not counted);
    #: ``None`` for an experiment without an attribution window
    late: int | None = None


@dataclass(slots=True)
class LogOp:
    """Record decisions made locally (:class:`octobandit.wire.LoggedDecision`): all of
    them are accepted, or none."""

    experiment_id: str
    items: list[LoggedDecision]


@dataclass(slots=True)
class LogResult:
    accepted: int
    duplicates: int


Op = DecideOp | RewardOp | LogOp

#: The answer to a data-plane request: the class name of the error that refused it
#: (``None``: it succeeded; ``"internal"``: an unexpected failure), and its JSON body.
#: The HTTP door turns the name into a status (:func:`octobandit.api.errors.answer_status`).
Answer = tuple[str | None, bytes]


def op_from_body(experiment_id: str, action: str, raw: bytes) -> Op:
    """The request a data-plane body asks for (``action``: ``decisions`` or ``rewards``).

    Raises :class:`~octobandit.errors.BadRequest` for a body that is not JSON and
    :class:`~octobandit.errors.InvalidInput` for one that does not validate.
    """
    if action == "decisions":
        req = decode_decision(raw)
        return DecideOp(experiment_id, req.n, req.unit_id, req.context)
    items = [RewardItem(r.reward, r.decision_id, r.arm_id, r.count) for r in decode_reward(raw)]
    return RewardOp(experiment_id, items)


def answer_body(result: Any) -> bytes:
    """The JSON answer to a data-plane request from its result."""
    if isinstance(result, RewardResult):
        return encode(RewardAnswer(result.accepted, result.duplicates, result.late))
    return encode(result)


def ok_answer(result: Any) -> Answer:
    """The answer to a data-plane request that succeeded."""
    return None, answer_body(result)


def error_answer(exc: BaseException) -> Answer:
    """The error's name and JSON body for a refused or failed data-plane request."""
    if isinstance(exc, OctobanditError):
        field = exc.field if isinstance(exc, InvalidInput) else None
        return type(exc).__name__, error_body(exc.code, exc.message, field)
    log.error("data plane failure", exc_info=exc)
    return "internal", error_body("internal", "internal error: nothing was written")
