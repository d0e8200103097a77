"""The REST API v1: a thin door over the engine.

Control-plane routes are FastAPI path operations (validated by pydantic,
documented at ``/docs``); the two data-plane routes are plain Starlette
endpoints (see :mod:`octobandit.api.hot`), described in the same OpenAPI
document at ``/openapi.json``. Every error is JSON
``{"error": {"code": ..., "message": ...}}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal, TypeVar

import msgspec
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse

import octobandit
from octobandit import wire
from octobandit.api.docs import install_docs
from octobandit.api.errors import http_status
from octobandit.api.guards import JsonDepthLimit, allowed_host_set, is_loopback_address
from octobandit.api.hot import Backend, DataPlane, error_response, json_response
from octobandit.api.limits import BodyLimit
from octobandit.api.metrics import Metrics
from octobandit.api.openapi import openapi_document
from octobandit.api.views import arm_view, experiment_view
from octobandit.compose import build_engine
from octobandit.config import Settings
from octobandit.dashboard import install_dashboard
from octobandit.engine import Engine, GroupCommitter
from octobandit.engine.eventlog import DEFAULT_PAGE, EVENT_KINDS, MAX_PAGE, MAX_SEQ
from octobandit.engine.remote import RemoteEngine
from octobandit.errors import Conflict, InvalidInput, OctobanditError, StorageUnavailable
from octobandit.evaluation import EvaluationError
from octobandit.model import OUTCOME_KINDS
from octobandit.offline import RoundJoiner, evaluate_log, parse_candidates
from octobandit.offline.report import SWITCH_TAU
from octobandit.policies import POLICIES

log = logging.getLogger("octobandit.api")

_Answer = TypeVar("_Answer", bound=msgspec.Struct)


def _as(kind: type[_Answer], report: Any) -> _Answer:
    """An engine report (a dict) as its wire type: the answer carries exactly its fields."""
    return msgspec.convert(report, kind)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ArmIn(_Strict):
    id: str = Field(description="1-128 characters: letters, digits and . _ : -")
    payload: Any = Field(default=None, description="any JSON value returned with decisions")
    enabled: bool = True
    prior: dict[str, Any] | None = Field(
        default=None,
        description="warm start: pseudo-observations {rewards, reward_sum, reward_sq_sum}, "
        "or {alpha, beta} for binary rewards",
    )


class ArmStatsIn(_Strict):
    decisions: int = 0
    rewards: float = 0
    reward_sum: float = 0
    reward_sq_sum: float | None = None


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str = Field(
        description=f"policy family, one of {sorted(POLICIES)}; its parameters sit beside "
        "`type` (see docs/policies.md), e.g. epsilon_greedy: epsilon, initial_value, decay, "
        "rate, floor; ucb1: c; thompson: alpha, beta (binary), mu0, kappa0, a0, b0 (continuous)"
    )


class RewardSpecIn(_Strict):
    type: Literal["binary", "continuous"] = "binary"
    attribution_window: float | None = Field(
        default=None,
        description="seconds a decision waits for its reward; when it closes without one,"
        " the decision gets `default` (see docs/rewards.md). Without it, only the rewards"
        " sent are counted",
    )
    default: float | None = Field(
        default=None, description="the reward of a decision never rewarded in its window (0)"
    )
    aggregation: Literal["first", "sum"] | None = Field(
        default=None,
        description="`first`: a decision's first reward counts (default); `sum`: its rewards"
        " within the window add up, counted when the window closes (continuous rewards)",
    )


class StoppingIn(_Strict):
    prob_best: float | None = Field(default=None, description="P(best) threshold (0.999)")
    max_expected_loss: float | None = Field(
        default=None, description="expected-loss cap (0.01: 1% of the best mean when relative)"
    )
    relative_loss: bool | None = Field(default=None, description="cap relative to the best mean")
    min_rewards_per_arm: int | None = Field(default=None, description="minimum rewards (2000)")
    auto_conclude: bool | None = Field(default=None, description="conclude when met (false)")
    after_conclusion: Literal["serve_winner", "keep_learning"] | None = None


class ContextIn(_Strict):
    features: list[str] = Field(description="names of the context features, in vector order")


class ExperimentIn(_Strict):
    id: str | None = Field(default=None, description="slug [a-z0-9][a-z0-9_-]{0,63}")
    name: str | None = None
    policy: PolicyIn | None = Field(default=None, description="default: thompson")
    arms: list[ArmIn] | None = None
    reward: RewardSpecIn | None = None
    context: ContextIn | None = Field(
        default=None, description="declared context features; decisions must then carry them"
    )
    stopping: StoppingIn | None = Field(default=None, description="stopping rule")
    snapshot_interval: float | None = Field(
        default=None, description="seconds between posterior snapshots (300)"
    )


class PolicyPatch(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str | None = Field(default=None, description=f"one of {sorted(POLICIES)}")


class ExperimentPatch(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["running", "paused", "concluded"] | None = Field(
        default=None,
        description="`concluded` concludes it now (alone, with an optional `winner`); "
        "`running` or `paused` re-opens a concluded experiment",
    )
    winner: str | None = Field(
        default=None,
        description="with status `concluded`: the winning arm (default: the arm with the "
        "largest P(best))",
    )
    policy: PolicyPatch | None = None
    stopping: StoppingIn | None = None
    snapshot_interval: float | None = None


class ArmPatch(_Strict):
    enabled: bool | None = None
    payload: Any = None


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_unset=True, exclude_none=True)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods or set()
    return sorted(methods)


#: the evaluation route: candidates per request, and decisions evaluated
MAX_CANDIDATES = 8
DEFAULT_EVALUATED = 10_000
MAX_EVALUATED = 100_000
_POLICY_QUERY = Query(
    [],
    description=f"a candidate (repeat it, 1 to {MAX_CANDIDATES}): a policy type or its JSON spec "
    '(optionally with a "name"), or {"action_dist": [...]} over the arms',
)
_KIND_QUERY = Query(None, description=f"only these kinds (repeat it), of {EVENT_KINDS}")


def create_app(engine: Engine | None = None, settings: Settings | None = None) -> DataPlane:
    """Build the ASGI app: over ``engine``, else over the engine process named by
    ``settings.engine_socket`` (as ``octobandit serve`` runs it), else over an
    engine made from ``settings`` in this process.

    The result is the data-plane front door; the FastAPI app (control plane,
    docs, OpenAPI) sits behind it as ``.app``, the engine's front as ``.backend``.
    With ``settings.auth`` the auth layer (:mod:`octobandit.api.auth`) is the
    outermost part of its ``.entry``, in front of the guards and every route.
    """
    settings = settings or Settings.from_env()
    owned: Engine | None = None
    backend: Backend
    if engine is None and settings.engine_socket:
        backend = RemoteEngine(settings.engine_socket)
    else:
        if engine is None:
            engine = owned = build_engine(settings)
        backend = GroupCommitter(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = None
        if isinstance(backend, GroupCommitter):  # the engine process ticks by itself
            task = asyncio.create_task(_snapshots(backend, settings.tick_seconds))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            backend.close()
            if owned is not None:  # a clean close checkpoints and removes the WAL
                owned.storage.close()

    app = FastAPI(
        lifespan=lifespan,
        title="octobandit",
        version=octobandit.__version__,
        description="Adaptive experiments (multi-armed bandits) over HTTP.",
        docs_url=None,  # served from the package's own files: see install_docs
        redoc_url=None,
    )
    app.state.backend = backend
    call = backend.call  # every engine call runs on the storage thread or the engine process
    limits = backend.limits
    app.add_middleware(JsonDepthLimit, max_depth=limits.max_json_depth)
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    install_docs(app)
    install_dashboard(app)  # GET /ui/: static files over the public /v1 API

    @app.exception_handler(OctobanditError)
    async def _domain_error(request: Request, exc: OctobanditError) -> Response:
        field = exc.field if isinstance(exc, InvalidInput) else None
        return error_response(http_status(exc), exc.code, exc.message, field)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid" or (
            tuple(first.get("loc", ())) == ("body",) and not _is_json(await request.body())
        ):
            return error_response(
                400,
                "invalid_json",
                "request body is not valid JSON (Content-Type: application/json)",
            )
        field = _field(tuple(first.get("loc", ())))
        message = f"{field}: {first.get('msg', 'invalid value')}"
        return error_response(422, "invalid", message, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 408: "timeout", 413: "too_large"}
        response = error_response(
            exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail)
        )
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            response.headers["allow"] = ", ".join(_allowed_methods(app, request.url.path))
        return response

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> Response:
        """A bug: JSON like every other answer (Starlette would send plain text)."""
        return error_response(500, "internal", "internal error")

    @app.get("/healthz", tags=["service"])
    async def healthz() -> Response:
        """``ok``, or 503 ``degraded`` with the reason (``storage_full``, ``storage_lost``).

        Answered from flags (no storage call), so it stays quick while the
        storage is busy or stalled; ``engine_unavailable`` when the engine
        process does not answer.
        """
        problem = await backend.health()
        if problem is None:
            return json_response(wire.Health("ok"))
        return json_response(wire.Health("degraded", **problem), 503)

    @app.post("/v1/experiments", status_code=201, tags=["experiments"])
    async def create_experiment(body: ExperimentIn) -> Response:
        record = await call("create_experiment", _dump(body))
        return json_response(experiment_view(record), 201)

    @app.get("/v1/experiments", tags=["experiments"])
    async def list_experiments() -> Response:
        return json_response(
            wire.ExperimentList([experiment_view(r) for r in await call("list_experiments")])
        )

    @app.delete("/v1/experiments", tags=["experiments"])
    async def delete_all(
        confirm: str = Query("", description="must be `true`: deletes every experiment"),
    ) -> Response:
        if confirm != "true":  # exactly: not yes, 1, on ...
            return error_response(
                400, "confirmation_required", "deleting every experiment needs ?confirm=true"
            )
        return json_response(wire.Deleted(await call("delete_all")))

    @app.get("/v1/experiments/{experiment_id}", tags=["experiments"])
    async def get_experiment(experiment_id: str) -> Response:
        return json_response(experiment_view(await call("get_experiment", experiment_id)))

    @app.patch("/v1/experiments/{experiment_id}", tags=["experiments"])
    async def patch_experiment(experiment_id: str, body: ExperimentPatch) -> Response:
        return json_response(
            experiment_view(await call("update_experiment", experiment_id, _dump(body)))
        )

    @app.delete("/v1/experiments/{experiment_id}", status_code=204, tags=["experiments"])
    async def delete_experiment(experiment_id: str) -> Response:
        await call("delete_experiment", experiment_id)
        return Response(status_code=204)

    @app.post("/v1/experiments/{experiment_id}/reset", tags=["experiments"])
    async def reset_experiment(experiment_id: str) -> Response:
        return json_response(experiment_view(await call("reset", experiment_id)))

    @app.post("/v1/experiments/{experiment_id}/arms", status_code=201, tags=["arms"])
    async def add_arm(experiment_id: str, body: ArmIn) -> Response:
        return json_response(arm_view(await call("add_arm", experiment_id, _dump(body))), 201)

    @app.patch("/v1/experiments/{experiment_id}/arms/{arm_id}", tags=["arms"])
    async def patch_arm(experiment_id: str, arm_id: str, body: ArmPatch) -> Response:
        return json_response(arm_view(await call("update_arm", experiment_id, arm_id, _dump(body))))

    @app.put("/v1/experiments/{experiment_id}/arms/{arm_id}/stats", tags=["arms"])
    async def set_arm_stats(experiment_id: str, arm_id: str, body: ArmStatsIn) -> Response:
        """Admin: overwrite an arm's statistics (fixtures, migrations); logged as an event."""
        await call("set_arm_stats", experiment_id, arm_id, _dump(body))
        return json_response(_as(wire.Stats, await call("stats", experiment_id)))

    @app.delete("/v1/experiments/{experiment_id}/arms/{arm_id}", status_code=204, tags=["arms"])
    async def delete_arm(experiment_id: str, arm_id: str) -> Response:
        await call("delete_arm", experiment_id, arm_id)
        return Response(status_code=204)

    @app.get("/v1/experiments/{experiment_id}/stats", tags=["statistics"])
    async def stats(experiment_id: str) -> Response:
        return json_response(_as(wire.Stats, await call("stats", experiment_id)))

    @app.get("/v1/experiments/{experiment_id}/policy-snapshot", tags=["local decisions"])
    async def policy_snapshot(experiment_id: str) -> Response:
        """The policy's state for local decisions (``client.local``), with its ``version``."""
        return json_response(_as(wire.PolicySnapshot, await call("policy_snapshot", experiment_id)))

    @app.post("/v1/experiments/{experiment_id}/decisions/logged", tags=["local decisions"])
    async def logged_decisions(experiment_id: str, request: Request) -> Response:
        """Record decisions made locally on a policy snapshot (all accepted, or none;
        a decision id already recorded counts as a duplicate)."""
        # decoded (and validated) by the engine: the body crosses to the engine process as is
        result = await call("log_decisions", experiment_id, await request.body())
        return json_response(wire.LoggedAnswer(result.accepted, result.duplicates))

    @app.get("/v1/experiments/{experiment_id}/conclusion", tags=["statistics"])
    async def conclusion(experiment_id: str) -> Response:
        """Is the stopping rule met, which arm wins, and why (P(best), expected loss)."""
        return json_response(_as(wire.Conclusion, await call("conclusion", experiment_id)))

    @app.get("/v1/experiments/{experiment_id}/history", tags=["statistics"])
    async def history(
        experiment_id: str,
        limit: int = Query(1000, ge=1, le=10_000, description="most recent snapshots"),
    ) -> Response:
        """Posterior snapshots as time series per arm."""
        return json_response(_as(wire.History, await call("history", experiment_id, limit)))

    @app.get("/v1/experiments/{experiment_id}/events", tags=["event log"])
    async def events(
        experiment_id: str,
        after: int = Query(0, ge=0, le=MAX_SEQ, description="cursor: events with seq > after"),
        limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="events per page"),
        kind: list[str] | None = _KIND_QUERY,
        since: str | None = Query(None, description="ts >= since: epoch seconds or ISO 8601"),
        until: str | None = Query(None, description="ts < until: epoch seconds or ISO 8601"),
        format: Literal["json", "jsonl"] = Query(
            "json", description="`jsonl`: every (filtered) event from `after` on, streamed"
        ),
    ) -> Response:
        """The event log, one page at a time (``next``: the cursor of the next page), or
        with ``format=jsonl`` all of it as JSON Lines, read page by page (``limit`` events
        each) as the client takes them: memory stays bounded whatever the log's size."""
        page = await call("events", experiment_id, after, limit, kind, since, until)
        if format == "json":
            return json_response(_as(wire.EventPage, page))

        async def lines() -> AsyncIterator[bytes]:
            current = page
            while True:
                if current["events"]:
                    yield b"".join(wire.encode(e) + b"\n" for e in current["events"])
                if current["next"] is None:
                    return
                current = await call(
                    "events", experiment_id, current["next"], limit, kind, since, until
                )

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.get("/v1/experiments/{experiment_id}/evaluation", tags=["event log"])
    async def evaluation(
        experiment_id: str,
        policy: list[str] = _POLICY_QUERY,
        limit: int = Query(
            DEFAULT_EVALUATED, ge=1, le=MAX_EVALUATED, description="most recent decisions"
        ),
        bootstrap: int = Query(1000, ge=10, le=10_000, description="bootstrap resamples"),
        switch_tau: float = Query(
            SWITCH_TAU, ge=0, le=1e12, description="Switch-DR's largest corrected weight"
        ),
    ) -> Response:
        """Candidate policies (``policy``, repeated: a type or a JSON spec) evaluated
        off-policy on the most recent ``limit`` decisions with an outcome: IPS, SNIPS, DM,
        DR, SNDR, Switch-DR and the replay method with its curves, each with a 95%
        interval. The log is read page by page; the estimation runs off the event loop."""
        if not 1 <= len(policy) <= MAX_CANDIDATES:
            raise InvalidInput(f"1 to {MAX_CANDIDATES} candidates", field="policy")
        record = await call("get_experiment", experiment_id)
        candidates = parse_candidates(policy, record.reward_type)
        joiner = RoundJoiner(
            [a.arm_id for a in record.arms],
            features=record.options.get("context_features"),
            limit=limit,
        )
        after, kinds = 0, ["decision", *OUTCOME_KINDS]
        while True:
            page = await call("events", experiment_id, after, MAX_PAGE, kinds, None, None)
            joiner.add(page["events"])
            if page["next"] is None:
                break
            after = page["next"]

        def run() -> dict[str, Any]:
            rounds = joiner.rounds()
            return evaluate_log(
                rounds, candidates, switch_tau=switch_tau, n_bootstrap_samples=bootstrap
            )

        try:
            result = await asyncio.to_thread(run)
        except EvaluationError as exc:
            if exc.array == "action_dist":  # a candidate that does not fit the arms
                raise InvalidInput(str(exc), field="policy") from None
            # the log cannot be evaluated (yet): no outcome, a missing propensity, no contexts
            raise Conflict(str(exc), code="not_evaluable") from None
        return json_response(_as(wire.Evaluation, result))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = openapi_document(app, limits)
            if settings.auth:
                from octobandit.api.auth import document_security

                document_security(document, public_metrics=settings.public_metrics)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    hosts = allowed_host_set(settings.allowed_hosts) if is_loopback_address(settings.host) else None
    body_timeout = settings.body_timeout if settings.body_timeout > 0 else None
    metrics = Metrics(lambda: call("metrics")) if settings.metrics else None
    plane = DataPlane(app, backend, hosts=hosts, body_timeout=body_timeout, metrics=metrics)
    if settings.auth:  # outermost: in front of the guards, the data plane and the app
        plane.entry = _auth_layer(plane.entry, backend, settings)
    return plane


def _auth_layer(inner: Any, backend: Backend, settings: Settings) -> Any:
    from octobandit.api.auth import Auth, FailureLimiter, JwtVerifier, KeyCache

    async def load() -> Any:
        return await backend.call("api_keys")

    verifier = None
    if settings.jwt_secret or settings.jwks_file:
        verifier = JwtVerifier(
            secret=settings.jwt_secret,
            jwks_file=settings.jwks_file,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            scope_claim=settings.jwt_scope_claim,
            experiments_claim=settings.jwt_experiments_claim,
        )
    return Auth(
        inner,
        keys=KeyCache(load, settings.auth_cache_seconds, warn_if_empty=verifier is None),
        jwt=verifier,
        failures=FailureLimiter(settings.auth_failure_burst),
        public_metrics=settings.public_metrics,
    )


async def _snapshots(committer: GroupCommitter, every: float) -> None:
    """Take due posterior snapshots (and check stopping rules) every ``every`` seconds."""
    while True:
        await asyncio.sleep(every)
        try:
            await committer.call("tick")
        except StorageUnavailable:  # disk full or file lost: /healthz says so; retry next time
            pass
        except Exception:  # keep ticking; the next round retries
            log.exception("snapshot tick failed")


def app_from_env() -> DataPlane:
    """Factory for ``uvicorn --factory`` (used by ``octobandit serve --workers N``)."""
    return create_app()
