"""The data-plane routes: decisions and rewards.

These two routes carry nearly all the traffic, so they are plain Starlette
endpoints: msgspec decodes and validates the body in one pass and encodes the
answer, and requests are grouped into one transaction by the
:class:`~octobandit.engine.GroupCommitter`. Their OpenAPI description is
generated from the same msgspec types (see :func:`openapi_paths`).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from octobandit.engine import GroupCommitter, RewardItem
from octobandit.errors import OctobanditError


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


_encode = msgspec.json.Encoder().encode
_decode_decision = msgspec.json.Decoder(DecisionRequest).decode
_decode_reward = msgspec.json.Decoder(RewardRequest).decode
_EMPTY_DECISION = DecisionRequest()


def json_response(content: Any, status: int = 200) -> Response:
    return Response(_encode(content), status_code=status, media_type="application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status)


def _bad_body(exc: msgspec.MsgspecError, body: bytes) -> Response:
    if isinstance(exc, msgspec.ValidationError):
        try:  # a typed decoder may stop at a type error before it sees broken syntax
            msgspec.json.decode(body)
        except msgspec.DecodeError as syntax:
            exc = syntax
        else:
            return error_response(422, "invalid", str(exc))
    try:  # NaN, Infinity or a number too large for a float: valid to Python, not to JSON
        json.loads(body)
    except ValueError:
        return error_response(400, "invalid_json", f"request body is not valid JSON: {exc}")
    return error_response(422, "invalid", "numbers must be finite (no NaN or Infinity)")


def data_plane_routes(committer: GroupCommitter) -> list[Route]:
    # body size is limited for every route by octobandit.api.limits.BodyLimit
    async def decisions(request: Request) -> Response:
        body = await request.body()
        try:
            req = _decode_decision(body) if body.strip() else _EMPTY_DECISION
        except msgspec.MsgspecError as exc:
            return _bad_body(exc, body)
        try:
            result = await committer.decide(
                request.path_params["experiment_id"],
                n=req.n,
                unit_id=req.unit_id,
                context=req.context,
            )
        except OctobanditError as exc:
            return error_response(exc.status, exc.code, exc.message)
        return json_response(result)

    async def rewards(request: Request) -> Response:
        body = await request.body()
        try:
            req = _decode_reward(body)
        except msgspec.MsgspecError as exc:
            return _bad_body(exc, body)
        if req.rewards is not None:
            if req.reward is not None or req.decision_id is not None or req.arm_id is not None:
                return error_response(
                    422, "invalid", "give either one reward or `rewards`, not both"
                )
            items = [RewardItem(r.reward, r.decision_id, r.arm_id, r.count) for r in req.rewards]
        elif req.reward is None:
            return error_response(422, "invalid", "Object missing required field `reward`")
        else:
            items = [RewardItem(req.reward, req.decision_id, req.arm_id, req.count)]
        try:
            result = await committer.reward(request.path_params["experiment_id"], items)
        except OctobanditError as exc:
            return error_response(exc.status, exc.code, exc.message)
        return json_response({"accepted": result.accepted, "duplicates": result.duplicates})

    return [
        Route("/v1/experiments/{experiment_id}/decisions", decisions, methods=["POST"]),
        Route("/v1/experiments/{experiment_id}/rewards", rewards, methods=["POST"]),
    ]


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """OpenAPI path items and component schemas of the data-plane routes."""
    (req_d, dec, batch, req_r, ans, err), components = msgspec.json.schema_components(
        [DecisionRequest, Decision, DecisionBatch, RewardRequest, RewardAnswer, ErrorBody],
        ref_template="#/components/schemas/{name}",
    )
    param = {
        "name": "experiment_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }

    def errors(*codes: int) -> dict[str, Any]:
        return {
            str(c): {"description": "error", "content": {"application/json": {"schema": err}}}
            for c in codes
        }

    paths = {
        "/v1/experiments/{experiment_id}/decisions": {
            "post": {
                "tags": ["data plane"],
                "summary": "Choose an arm (or n arms)",
                "description": (
                    'Returns one decision, or `{"decisions": [...]}` when `n` is given. '
                    "With `unit_id` the unit keeps its arm while that arm stays enabled. "
                    "A paused experiment serves its best arm (greedy, propensity 1.0) and "
                    "keeps logging decisions and accepting rewards."
                ),
                "operationId": "decide",
                "parameters": [param],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": req_d}},
                },
                "responses": {
                    "200": {
                        "description": "the decision(s)",
                        "content": {"application/json": {"schema": {"anyOf": [dec, batch]}}},
                    },
                    **errors(400, 404, 409, 413, 422),
                },
            }
        },
        "/v1/experiments/{experiment_id}/rewards": {
            "post": {
                "tags": ["data plane"],
                "summary": "Report rewards",
                "description": (
                    "`{decision_id, reward}` rewards one decision (a second reward for the "
                    "same decision is counted in `duplicates` and ignored); `{arm_id, "
                    "reward, count}` adds `count` pulls whose mean reward is `reward`; "
                    "`{rewards: [...]}` sends either form in bulk, all or nothing."
                ),
                "operationId": "reward",
                "parameters": [param],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": req_r}},
                },
                "responses": {
                    "200": {
                        "description": "how many rewards were accepted",
                        "content": {"application/json": {"schema": ans}},
                    },
                    **errors(400, 404, 413, 422),
                },
            }
        },
    }
    return paths, components
