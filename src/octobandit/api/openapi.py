"""The OpenAPI document: what the service really answers, errors and limits included.

FastAPI describes the control-plane requests from their pydantic models; this
module adds what it cannot know: the answers' schemas (the routes answer
``Response`` objects), every error an operation can give (all of them
``{"error": {"code", "message"}}``, in place of FastAPI's ``{"detail"}``), the
id patterns of the path parameters and the documented limits.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from octobandit.api.hot import openapi_paths
from octobandit.engine.conclusions import MAX_SNAPSHOT_INTERVAL, MIN_SNAPSHOT_INTERVAL
from octobandit.engine.specs import ARM_ID, EXPERIMENT_ID, Limits
from octobandit.policies import POLICIES

ERROR = {"$ref": "#/components/schemas/ErrorBody"}
_NUM = {"type": "number"}
_NULLABLE_NUM = {"anyOf": [{"type": "number"}, {"type": "null"}]}
_STR = {"type": "string"}

_ERRORS = {
    "400": "malformed request: invalid JSON, nested too deep, bad Content-Length",
    "403": "Host header not allowed (the service is bound to a loopback address)",
    "404": "no such experiment, arm or route",
    "405": "method not allowed",
    "408": "the request body did not arrive in time",
    "409": "conflicts with the experiment's state",
    "413": "request body too large",
    "415": "a body needs Content-Type: application/json",
    "422": "a value is out of range or malformed; the message names the field",
    "500": "internal error (a bug): nothing was written",
    "503": "too many open connections, or storage unavailable",
}


def _schemas() -> dict[str, Any]:
    arm = {
        "type": "object",
        "required": ["id", "payload", "enabled", "deleted"],
        "properties": {
            "id": _STR,
            "payload": {"description": "any JSON value returned with decisions"},
            "enabled": {"type": "boolean"},
            "deleted": {"type": "boolean"},
            "prior": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        },
    }
    nullable_obj = {"anyOf": [{"type": "object"}, {"type": "null"}]}
    experiment = {
        "type": "object",
        "required": ["id", "name", "status", "policy", "reward", "arms", "created_at"],
        "properties": {
            "id": _STR,
            "name": _STR,
            "status": {"type": "string", "enum": ["running", "paused", "concluded"]},
            "policy": {"type": "object"},
            "reward": {"type": "object"},
            "arms": {"type": "array", "items": {"$ref": "#/components/schemas/Arm"}},
            "context": nullable_obj,
            "stopping": nullable_obj,
            "snapshot_interval": _NULLABLE_NUM,
            "conclusion": nullable_obj,
            "version": {"type": "integer"},
            "created_at": _STR,
            "updated_at": _STR,
        },
    }
    stats_arm = {
        "type": "object",
        "required": ["arm_id", "decisions", "rewards"],
        "properties": {
            "arm_id": _STR,
            "enabled": {"type": "boolean"},
            "deleted": {"type": "boolean"},
            "decisions": {"type": "integer"},
            "rewards": _NUM,
            "reward_sum": _NUM,
            "mean_reward": _NULLABLE_NUM,
            "ci95": {"anyOf": [{"type": "array", "items": _NUM}, {"type": "null"}]},
        },
    }
    return {
        "Arm": arm,
        "Experiment": experiment,
        "ExperimentList": {
            "type": "object",
            "required": ["experiments"],
            "properties": {
                "experiments": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Experiment"},
                }
            },
        },
        "Deleted": {
            "type": "object",
            "required": ["deleted"],
            "properties": {"deleted": {"type": "integer", "minimum": 0}},
        },
        "Stats": {
            "type": "object",
            "required": ["experiment_id", "status", "total_decisions", "total_reward", "arms"],
            "properties": {
                "experiment_id": _STR,
                "status": _STR,
                "total_decisions": {"type": "integer"},
                "total_reward": _NUM,
                "reward_gain_vs_equal_split": {
                    "description": "estimated gain over an equal split, with its interval"
                },
                "arms": {"type": "array", "items": stats_arm},
            },
        },
        "Conclusion": {
            "type": "object",
            "required": ["experiment_id", "status", "met", "winner", "reason", "arms"],
            "properties": {
                "experiment_id": _STR,
                "status": _STR,
                "rule": nullable_obj,
                "concluded": nullable_obj,
                "met": {"type": "boolean"},
                "winner": {"anyOf": [_STR, {"type": "null"}]},
                "leader": {"anyOf": [_STR, {"type": "null"}]},
                "reason": _STR,
                "failed": {"type": "array", "items": _STR},
                "prob_best": _NULLABLE_NUM,
                "expected_loss": _NULLABLE_NUM,
                "loss_threshold": _NULLABLE_NUM,
                "arms": {"type": "array", "items": {"type": "object"}},
            },
        },
        "History": {
            "type": "object",
            "required": ["experiment_id", "at", "reason", "arms"],
            "properties": {
                "experiment_id": _STR,
                "snapshot_interval": _NULLABLE_NUM,
                "at": {"type": "array", "items": _STR},
                "reason": {
                    "type": "array",
                    "items": _STR,
                    "description": "why each snapshot was taken: created, interval, conclusion",
                },
                "arms": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "array"},
                    },
                    "description": "per arm, one series per field, aligned with `at`",
                },
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": _STR},
        },
    }


#: (path, method) → (success status, response schema name or None for no body, error statuses)
_ROUTES: dict[tuple[str, str], tuple[str, str | None, tuple[int, ...]]] = {
    ("/healthz", "get"): ("200", "Health", (503,)),
    ("/v1/experiments", "post"): ("201", "Experiment", (400, 408, 409, 413, 415, 422)),
    ("/v1/experiments", "get"): ("200", "ExperimentList", ()),
    ("/v1/experiments", "delete"): ("200", "Deleted", (400, 415, 422)),
    ("/v1/experiments/{experiment_id}", "get"): ("200", "Experiment", (404,)),
    ("/v1/experiments/{experiment_id}", "patch"): (
        "200", "Experiment", (400, 404, 408, 409, 413, 415, 422),
    ),
    ("/v1/experiments/{experiment_id}", "delete"): ("204", None, (404, 415)),
    ("/v1/experiments/{experiment_id}/reset", "post"): (
        "200", "Experiment", (400, 404, 408, 413, 415),
    ),
    ("/v1/experiments/{experiment_id}/arms", "post"): (
        "201", "Arm", (400, 404, 408, 409, 413, 415, 422),
    ),
    ("/v1/experiments/{experiment_id}/arms/{arm_id}", "patch"): (
        "200", "Arm", (400, 404, 408, 409, 413, 415, 422),
    ),
    ("/v1/experiments/{experiment_id}/arms/{arm_id}", "delete"): ("204", None, (404, 415)),
    ("/v1/experiments/{experiment_id}/arms/{arm_id}/stats", "put"): (
        "200", "Stats", (400, 404, 408, 409, 413, 415, 422),
    ),
    ("/v1/experiments/{experiment_id}/stats", "get"): ("200", "Stats", (404,)),
    ("/v1/experiments/{experiment_id}/conclusion", "get"): ("200", "Conclusion", (404,)),
    ("/v1/experiments/{experiment_id}/history", "get"): ("200", "History", (404, 422)),
}  # fmt: skip

_PATH_PARAMS = {
    "experiment_id": {
        "type": "string",
        "pattern": f"^{EXPERIMENT_ID.pattern}$",
        "maxLength": 64,
        "description": "the experiment's id (lower-case slug)",
    },
    "arm_id": {
        "type": "string",
        "pattern": f"^{ARM_ID.pattern}$",
        "maxLength": 128,
        "description": "the arm's id",
    },
}


def _error_responses(codes: tuple[int, ...] | list[int]) -> dict[str, Any]:
    return {
        str(c): {"description": _ERRORS[str(c)], "content": {"application/json": {"schema": ERROR}}}
        for c in codes
    }


def _limit_request_schemas(schemas: dict[str, Any], limits: Limits) -> None:
    """Write the engine's limits into the request schemas FastAPI generated."""

    def prop(model: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = schemas.get(model, {}).get("properties", {}).get(name, {})
        return found

    def constrain(target: dict[str, Any], **rules: Any) -> None:
        variants = target.get("anyOf")
        if variants:  # optional field: constrain the non-null variant
            for v in variants:
                if v.get("type") not in (None, "null"):
                    v.update(rules)
        else:
            target.update(rules)

    constrain(prop("ExperimentIn", "id"), pattern=f"^{EXPERIMENT_ID.pattern}$", maxLength=64)
    for model in ("ExperimentIn", "ExperimentPatch"):
        constrain(prop(model, "name"), maxLength=limits.max_name_chars)
    constrain(prop("ExperimentIn", "arms"), maxItems=limits.max_arms)
    for model in ("PolicyIn", "PolicyPatch"):
        constrain(prop(model, "type"), enum=sorted(POLICIES))
    for model in ("ExperimentIn", "ExperimentPatch"):
        constrain(
            prop(model, "snapshot_interval"),
            minimum=MIN_SNAPSHOT_INTERVAL,
            maximum=MAX_SNAPSHOT_INTERVAL,
        )
    constrain(prop("ArmIn", "id"), pattern=f"^{ARM_ID.pattern}$", maxLength=128)
    constrain(prop("StoppingIn", "prob_best"), exclusiveMinimum=0, exclusiveMaximum=1)
    constrain(prop("StoppingIn", "max_expected_loss"), exclusiveMinimum=0)
    constrain(prop("StoppingIn", "min_rewards_per_arm"), minimum=0, maximum=1e15)
    constrain(prop("ArmStatsIn", "decisions"), minimum=0)
    constrain(prop("ArmStatsIn", "rewards"), minimum=0)
    prior = prop("ArmIn", "prior")
    for variant in prior.get("anyOf", []):
        if variant.get("type") == "object":
            variant["additionalProperties"] = False
            variant["properties"] = {
                k: {"type": "number"}
                for k in ("rewards", "reward_sum", "reward_sq_sum", "alpha", "beta")
            }
    for model in ("ArmIn", "ArmPatch"):
        p = prop(model, "payload")
        if p is not None:
            p["description"] = (
                f"any JSON value returned with decisions, at most {limits.max_payload_bytes} "
                "bytes as compact JSON"
            )


def openapi_document(app: FastAPI, limits: Limits) -> dict[str, Any]:
    """The whole document: FastAPI's, the data plane's, answers, errors and limits."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=(
            f'{app.description}\n\nEvery error is `{{"error": {{"code", "message"}}}}`. '
            f"Limits: request body {limits.max_body_bytes} bytes, JSON nesting "
            f"{limits.max_json_depth} levels, arm payload {limits.max_payload_bytes} bytes, "
            f"decision context {limits.max_context_bytes} bytes, one decision request's "
            f"answer (n × largest payload) and logged contexts (n × context) "
            f"{limits.max_decision_bytes} bytes each, n ≤ {limits.max_decisions_per_request}, "
            f"{limits.max_rewards_per_request} rewards per request, {limits.max_arms} arms. "
            "Bodies need `Content-Type: application/json` (a request without a body may omit it)."
        ),
        routes=app.routes,
    )
    paths, components = openapi_paths(limits)
    schema.setdefault("paths", {}).update(paths)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    schemas.update(_schemas())
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    _limit_request_schemas(schemas, limits)
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses: dict[str, Any] = op["responses"]
            route = _ROUTES.get((path, method))
            if route is not None:
                status, body, errors = route
                for code in ("200", "201", "204"):
                    if code != status:
                        responses.pop(code, None)
                ok = responses.setdefault(status, {"description": "success"})
                if body is None:
                    ok.pop("content", None)
                else:
                    ok["content"] = {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
                    }
                codes = set(errors)
            else:
                codes = {int(c) for c in responses if c.isdigit() and int(c) >= 400}
            codes |= {403, 500}  # any route: Host check; a bug is still JSON
            if method in ("post", "put", "patch", "delete"):
                codes |= {415}
            responses.pop("422", None)
            responses.update(_error_responses(sorted(codes)))
            for param in op.get("parameters", []):
                if (path, method, param.get("name")) == ("/v1/experiments", "delete", "confirm"):
                    param["required"] = True  # without ?confirm=true: 400
                    param["schema"] = {"type": "string", "enum": ["true"]}
                rule = _PATH_PARAMS.get(param.get("name", ""))
                if param.get("in") == "path" and rule is not None:
                    param["schema"] = {**param.get("schema", {}), **rule}
                    param["schema"].pop("title", None)
    return schema
