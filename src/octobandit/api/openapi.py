"""The OpenAPI document: what the service really answers, errors and limits included.

FastAPI describes the control-plane requests from their pydantic models; this
module adds what it cannot know: the answers' schemas (the routes answer
``Response`` objects), every error an operation can give (all of them
``{"error": {"code", "message"}}``, in place of FastAPI's ``{"detail"}``), the
id patterns of the path parameters and the documented limits.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from octobandit import wire
from octobandit.api.hot import openapi_paths
from octobandit.engine.attribution import MAX_WINDOW
from octobandit.engine.conclusions import MAX_SNAPSHOT_INTERVAL, MIN_SNAPSHOT_INTERVAL
from octobandit.engine.eventlog import EVENT_KINDS
from octobandit.engine.specs import ARM_ID, EXPERIMENT_ID, Limits
from octobandit.policies import POLICIES

ERROR = {"$ref": "#/components/schemas/ErrorBody"}

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
    """The answers' schemas, generated from their wire types (:mod:`octobandit.wire`)."""
    _, components = msgspec.json.schema_components(
        wire.ANSWERS, ref_template="#/components/schemas/{name}"
    )
    return components


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
    ("/v1/experiments/{experiment_id}/events", "get"): ("200", "EventPage", (404, 422)),
    ("/v1/experiments/{experiment_id}/evaluation", "get"): (
        "200", "Evaluation", (404, 409, 422),
    ),
    ("/v1/experiments/{experiment_id}/policy-snapshot", "get"): ("200", "PolicySnapshot", (404,)),
    ("/v1/experiments/{experiment_id}/decisions/logged", "post"): (
        "200", "LoggedAnswer", (400, 404, 408, 413, 415, 422),
    ),
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
    constrain(prop("RewardSpecIn", "attribution_window"), exclusiveMinimum=0, maximum=MAX_WINDOW)
    constrain(prop("RewardSpecIn", "default"), minimum=-1e12, maximum=1e12)
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


def _event_param(param: dict[str, Any]) -> None:
    """The exact schemas of the event log's query parameters (FastAPI's allow null)."""
    name = param.get("name")
    if name == "kind":
        param["schema"] = {"type": "array", "items": {"type": "string", "enum": list(EVENT_KINDS)}}
        param["style"], param["explode"] = "form", True
    elif name in ("since", "until"):
        param["schema"] = {
            "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
            "description": "epoch seconds, or an ISO 8601 / RFC 3339 date-time (UTC if no offset)",
        }


def _policy_param(param: dict[str, Any]) -> None:
    """The evaluation's candidates: the schema lists the policy types; a JSON spec (as in
    experiment creation) or ``{"action_dist": [...]}`` is accepted too (docs/api.md)."""
    param["required"] = True
    param["schema"] = {
        "type": "array",
        "items": {"type": "string", "enum": sorted(POLICIES)},
        "minItems": 1,
        "maxItems": 8,
    }
    param["style"], param["explode"] = "form", True


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
                if body == "EventPage":
                    ok["content"]["application/x-ndjson"] = {
                        "schema": {"$ref": "#/components/schemas/LogEvent"}
                    }
                codes = set(errors)
            else:
                codes = {int(c) for c in responses if c.isdigit() and int(c) >= 400}
            codes |= {403, 500}  # any route: Host check; a bug is still JSON
            if method in ("post", "put", "patch", "delete"):
                codes |= {415}
            responses.pop("422", None)
            responses.update(_error_responses(sorted(codes)))
            if path.endswith("/decisions/logged") and method == "post":
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/LoggedDecisions"}
                        }
                    },
                }
            for param in op.get("parameters", []):
                if (path, method, param.get("name")) == ("/v1/experiments", "delete", "confirm"):
                    param["required"] = True  # without ?confirm=true: 400
                    param["schema"] = {"type": "string", "enum": ["true"]}
                if path.endswith("/events") and method == "get":
                    _event_param(param)
                if path.endswith("/evaluation") and param.get("name") == "policy":
                    _policy_param(param)
                rule = _PATH_PARAMS.get(param.get("name", ""))
                if param.get("in") == "path" and rule is not None:
                    param["schema"] = {**param.get("schema", {}), **rule}
                    param["schema"].pop("title", None)
    return schema
