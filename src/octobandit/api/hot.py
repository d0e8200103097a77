"""The data-plane routes: decisions and rewards.

These two routes carry nearly all the traffic, so they are served by a small
pure-ASGI front door (:class:`DataPlane`) in front of the FastAPI app: msgspec
decodes and validates the body in one pass and encodes the answer, and
requests are grouped into one transaction by the
:class:`~octobandit.engine.GroupCommitter`. Their OpenAPI description is
generated from the same msgspec types (see :func:`openapi_paths`).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import msgspec
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from octobandit.api.errors import answer_status
from octobandit.api.jsondepth import too_deep, too_deep_message
from octobandit.api.metrics import METRICS_PATH, ROUTE_KEY, Metrics
from octobandit.engine.ops import Answer
from octobandit.engine.specs import Limits
from octobandit.wire import Decision as DecisionAnswer
from octobandit.wire import (
    DecisionBatch,
    DecisionRequest,
    ErrorBody,
    RewardAnswer,
    RewardRequest,
    encode,
    error_body,
)

_JSON = (b"content-type", b"application/json")
#: the route templates of the data plane (the metrics' ``route`` label)
_TEMPLATES = {
    "decisions": "/v1/experiments/{experiment_id}/decisions",
    "rewards": "/v1/experiments/{experiment_id}/rewards",
}
log = logging.getLogger("octobandit.api")


def json_response(content: Any, status: int = 200) -> Response:
    return Response(encode(content), status_code=status, media_type="application/json")


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    body = error_body(code, message, field)
    return Response(body, status_code=status, media_type="application/json")


class _Reject(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


class Backend(Protocol):
    """What the doors need of the engine: in this process (:class:`GroupCommitter`)
    or in the engine process (:class:`~octobandit.engine.remote.RemoteEngine`)."""

    @property
    def limits(self) -> Limits: ...

    async def data(self, experiment_id: str, action: str, raw: bytes) -> Answer: ...

    async def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any: ...

    async def health(self) -> dict[str, str] | None: ...

    def close(self) -> None: ...


class DataPlane:
    """Pure-ASGI front door: the two data-plane routes, everything else to ``app``.

    Decisions and rewards skip the framework's routing and middleware: the path
    is split by hand, the body is read with its size limit, msgspec decodes and
    validates it, and the answer is sent as two ASGI messages.
    """

    PREFIX = "/v1/experiments/"

    def __init__(
        self,
        app: ASGIApp,
        backend: Backend,
        *,
        hosts: frozenset[str] | None = None,
        body_timeout: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        from octobandit.api.guards import Guard

        self.app = app
        self.backend = backend
        self.limit = backend.limits.max_body_bytes
        self.max_depth = backend.limits.max_json_depth
        self.metrics = metrics
        #: the whole stack: guards (host, content type, body deadline, JSON 500), and
        #: around them the request metrics (when on); under ``--auth``
        #: :func:`~octobandit.api.app.create_app` puts the auth layer in front of all
        self.entry: ASGIApp = Guard(self._route, hosts=hosts, body_timeout=body_timeout)
        if metrics is not None:
            self.entry = metrics.wrap(self.entry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.entry(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(self.PREFIX):
                experiment_id, _, action = path[len(self.PREFIX) :].partition("/")
                if action in ("decisions", "rewards") and experiment_id:
                    scope[ROUTE_KEY] = _TEMPLATES[action]
                    await self._serve(scope, receive, send, experiment_id, action)
                    return
            elif path == METRICS_PATH and self.metrics is not None:
                scope[ROUTE_KEY] = METRICS_PATH
                await self.metrics.serve(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, experiment_id: str, action: str
    ) -> None:
        headers = [_JSON]
        try:
            if scope["method"] != "POST":
                headers.append((b"allow", b"POST"))
                raise _Reject(405, "method_not_allowed", "Method Not Allowed")
            raw = await self._body(scope, receive)
            error, body = await self.backend.data(experiment_id, action, raw)
            status = answer_status(error)
        except _Reject as exc:
            status, body = exc.status, error_body(exc.code, exc.message)
        except HTTPException as exc:  # raised by a guard's receive (body deadline)
            code = {408: "timeout", 413: "too_large"}.get(exc.status_code, "bad_request")
            status, body = exc.status_code, error_body(code, str(exc.detail))
        except Exception:
            log.exception("data plane failure")
            status, body = 500, error_body("internal", "internal error: nothing was written")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        too_large = _Reject(413, "too_large", f"request body exceeds {self.limit} bytes")
        for key, value in scope["headers"]:
            if key == b"content-length":
                if not value.isdigit():
                    raise _Reject(400, "bad_request", "invalid Content-Length")
                if int(value) > self.limit:
                    raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Reject(400, "bad_request", "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if too_deep(raw, self.max_depth):
                    raise _Reject(400, "too_deep", too_deep_message(self.max_depth))
                return raw


def openapi_paths(limits: Limits | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """OpenAPI path items and component schemas of the data-plane routes."""
    limits = limits or Limits()
    (req_d, dec, batch, req_r, ans, err), components = msgspec.json.schema_components(
        [DecisionRequest, DecisionAnswer, DecisionBatch, RewardRequest, RewardAnswer, ErrorBody],
        ref_template="#/components/schemas/{name}",
    )
    param = {
        "name": "experiment_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$", "maxLength": 64},
    }
    dprops = components["DecisionRequest"]["properties"]
    dprops["n"]["anyOf"][0].update(minimum=1, maximum=limits.max_decisions_per_request)
    dprops["unit_id"]["anyOf"][0].update(minLength=1, maxLength=limits.max_unit_id_chars)
    dprops["context"]["description"] = (
        f"the declared features (object or vector); at most {limits.max_context_bytes} bytes"
        " as compact JSON"
    )
    rprops = components["RewardRequest"]["properties"]
    rprops["rewards"]["anyOf"][0].update(minItems=1, maxItems=limits.max_rewards_per_request)

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
                    "description": "may be empty (then Content-Type may be omitted)",
                    "content": {"application/json": {"schema": req_d}},
                },
                "responses": {
                    "200": {
                        "description": "the decision(s)",
                        "content": {"application/json": {"schema": {"anyOf": [dec, batch]}}},
                    },
                    **errors(400, 403, 404, 408, 409, 413, 415, 422, 500, 503),
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
                    **errors(400, 403, 404, 408, 409, 413, 415, 422, 500, 503),
                },
            }
        },
    }
    return paths, components
