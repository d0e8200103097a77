"""Wire types of the data plane, defined once: request and answer bodies.

The HTTP door, the engine process and (later) the SDK share these msgspec
types; the OpenAPI description of the data-plane routes is generated from
them. Decoding validates a body in one pass.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from octobandit.errors import BadRequest, InvalidInput, OctobanditError


class DecisionRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of ``POST /v1/experiments/{id}/decisions`` (all fields optional)."""

    unit_id: str | None = None
    n: int | None = None
    context: dict[str, Any] | list[float] | None = None


class Decision(msgspec.Struct):
    decision_id: str
    experiment_id: str
    arm_id: str
    payload: Any
    propensity: float


class DecisionBatch(msgspec.Struct):
    decisions: list[Decision]


class Reward(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A reward for one decision, or the mean reward over ``count`` pulls of an arm."""

    reward: float
    decision_id: str | None = None
    arm_id: str | None = None
    count: int = 1


class RewardRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One reward (``decision_id`` or ``arm_id`` + ``count``) or ``rewards`` in bulk."""

    reward: float | None = None
    decision_id: str | None = None
    arm_id: str | None = None
    count: int = 1
    rewards: list[Reward] | None = None


class RewardAnswer(msgspec.Struct):
    accepted: int
    duplicates: int


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


encode = msgspec.json.Encoder().encode
_decode_decision = msgspec.json.Decoder(DecisionRequest).decode
_decode_reward = msgspec.json.Decoder(RewardRequest).decode
EMPTY_DECISION = DecisionRequest()


def error_body(code: str, message: str) -> bytes:
    """``{"error": {"code": ..., "message": ...}}`` as JSON bytes."""
    return encode({"error": {"code": code, "message": message}})


def _bad_body(exc: msgspec.MsgspecError, body: bytes) -> OctobanditError:
    """:class:`BadRequest` for a body that is not JSON, :class:`InvalidInput` for a bad one."""
    if isinstance(exc, msgspec.ValidationError):
        try:  # a typed decoder may stop at a type error before it sees broken syntax
            msgspec.json.decode(body)
        except msgspec.DecodeError as syntax:
            exc = syntax
        else:
            return InvalidInput(str(exc))
    try:  # NaN, Infinity or a number too large for a float: valid to Python, not to JSON
        json.loads(body)
    except ValueError:
        return BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json")
    return InvalidInput("numbers must be finite (no NaN or Infinity)")


def decode_decision(raw: bytes) -> DecisionRequest:
    """A decision request from its body (empty or blank: all defaults)."""
    if not raw.strip():
        return EMPTY_DECISION
    try:
        return _decode_decision(raw)
    except msgspec.MsgspecError as exc:
        raise _bad_body(exc, raw) from None


def decode_reward(raw: bytes) -> list[Reward]:
    """The rewards of a reward request: one, or the ``rewards`` given in bulk."""
    try:
        req = _decode_reward(raw)
    except msgspec.MsgspecError as exc:
        raise _bad_body(exc, raw) from None
    if req.rewards is not None:
        if req.reward is not None or req.decision_id is not None or req.arm_id is not None:
            raise InvalidInput("give either one reward or `rewards`, not both")
        return req.rewards
    if req.reward is None:
        raise InvalidInput("Object missing required field `reward`")
    return [Reward(req.reward, req.decision_id, req.arm_id, req.count)]
