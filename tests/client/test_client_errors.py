"""Errors raise exceptions carrying the server's status, code, message and field."""

from __future__ import annotations

import pickle
from typing import Any

import httpx
import pytest

from octobandit import errors
from octobandit.api.errors import STATUSES
from octobandit.client import (
    BadRequestError,
    Client,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OctobanditHTTPError,
    Retry,
    ServerError,
    ServiceUnreachable,
    UnavailableError,
)
from octobandit.client.errors import error_class, from_response


def _raises(kind: type[OctobanditHTTPError], call: Any, *args: Any, **kwargs: Any) -> Any:
    with pytest.raises(kind) as info:
        call(*args, **kwargs)
    return info.value


def test_404s_name_what_is_missing(api: Any, exp_id: str) -> None:
    e = _raises(NotFoundError, api.get_experiment, exp_id)
    assert (e.status, e.code) == (404, "experiment_not_found") and exp_id in e.message
    assert isinstance(e, errors.NotFound) and isinstance(e, errors.OctobanditError)
    assert str(e) == f"404 experiment_not_found: {e.message}" and e.attempts == 1
    for call, args in [
        (api.stats, (exp_id,)),
        (api.conclusion, (exp_id,)),
        (api.history, (exp_id,)),
        (api.decide, (exp_id,)),
        (api.reset_experiment, (exp_id,)),
        (api.add_arm, (exp_id, "a")),
        (api.reward, (exp_id, "d", 1.0)),
    ]:
        assert _raises(NotFoundError, call, *args).code == "experiment_not_found", call
    api.create_experiment(exp_id, arms=["a"])
    assert _raises(NotFoundError, api.update_arm, exp_id, "zz", enabled=False).code == (
        "arm_not_found"
    )
    assert _raises(NotFoundError, api.reward, exp_id, "nope", 1.0).code == "decision_not_found"


def test_422_carries_the_field(api: Any, exp_id: str) -> None:
    e = _raises(
        InvalidInputError,
        api.create_experiment,
        exp_id,
        policy={"type": "epsilon_greedy", "epsilon": 1.5},
        arms=["a"],
    )
    assert (e.status, e.code, e.field) == (422, "invalid", "policy.epsilon")
    assert e.message.startswith("policy.epsilon: ") and isinstance(e, errors.InvalidInput)
    e = _raises(InvalidInputError, api.create_experiment, exp_id, arms=["a", "a"])
    assert e.field == "arms[1].id"
    api.create_experiment(exp_id, arms=["a"])
    d = api.decide(exp_id)
    e = _raises(InvalidInputError, api.reward, exp_id, d.decision_id, 2.0)  # binary: [0, 1]
    assert e.code == "invalid" and "reward" in e.message
    e = _raises(InvalidInputError, api.decide_batch, exp_id, 0)
    assert e.field == "n"
    e = _raises(InvalidInputError, api.reward_arm, exp_id, "a", 0.5, count=0)
    assert "count" in e.message


def test_409s_and_400s(api: Any, exp_id: str) -> None:
    api.create_experiment(exp_id, arms=["a"])
    e = _raises(ConflictError, api.create_experiment, exp_id, arms=["a"])
    assert (e.status, e.code) == (409, "already_exists") and isinstance(e, errors.Conflict)
    assert _raises(ConflictError, api.add_arm, exp_id, "a").code == "already_exists"
    api.update_arm(exp_id, "a", enabled=False)
    assert _raises(ConflictError, api.decide, exp_id).code == "no_enabled_arm"
    e = _raises(BadRequestError, api.rewards, exp_id, [])
    assert (e.status, e.code) == (400, "empty") and isinstance(e, errors.BadRequest)


def test_an_unreachable_service_raises_service_unreachable(make_client: Any) -> None:
    # nothing listens on the discard port: every try is refused
    api = make_client("http://127.0.0.1:9", retry=Retry(attempts=3, backoff=0.01), timeout=2)
    with pytest.raises(ServiceUnreachable) as info:
        api.decide("e")  # not idempotent, but the request never reached a server: retried
    assert info.value.attempts == 3 and isinstance(info.value.__cause__, httpx.ConnectError)
    assert isinstance(info.value, errors.OctobanditError)


def test_each_status_maps_to_the_class_of_the_engine_error() -> None:
    """A remote error is an instance of the engine's class for its status."""
    for cls, status in STATUSES.items():
        if cls is errors.StorageUnusable:  # raised at startup only, never answered
            continue
        assert issubclass(error_class(status), cls), (cls, status)
    assert error_class(500) is ServerError and error_class(502) is ServerError
    assert error_class(503) is UnavailableError and issubclass(UnavailableError, ServerError)
    assert error_class(415) is OctobanditHTTPError


def test_a_body_that_is_not_the_error_json_is_quoted() -> None:
    e = from_response(502, b"<html>Bad Gateway</html>", attempts=3)
    assert (e.status, e.code, e.attempts) == (502, "http_error", 3)
    assert "Bad Gateway" in e.message and isinstance(e, ServerError)
    assert from_response(404, b"").message == "HTTP 404"


def test_errors_pickle_whole() -> None:
    e = from_response(422, b'{"error": {"code": "invalid", "message": "n: bad", "field": "n"}}')
    copy = pickle.loads(pickle.dumps(e))
    assert type(copy) is InvalidInputError
    assert (copy.status, copy.code, copy.message, copy.field) == (422, "invalid", "n: bad", "n")


def test_api_key_and_headers_are_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok"})

    with Client(
        "http://svc/",
        api_key="k3y",
        headers={"x-team": "a"},
        transport=httpx.MockTransport(handler),
    ) as client:
        client.health()
    (request,) = seen
    assert request.headers["authorization"] == "Bearer k3y" and request.headers["x-team"] == "a"
    assert request.headers["user-agent"].startswith("octobandit-python/")
    assert "content-type" not in request.headers  # no body, no content type


def test_health_answers_degraded_and_raises_for_an_error_body() -> None:
    answers = iter(
        [
            httpx.Response(503, json={"status": "degraded", "reason": "storage_full"}),
            httpx.Response(503, json={"error": {"code": "too_many_connections", "message": "m"}}),
        ]
    )
    transport = httpx.MockTransport(lambda request: next(answers))
    with Client("http://svc", retry=Retry.never(), transport=transport) as client:
        health = client.health()
        assert (health.status, health.reason) == ("degraded", "storage_full")
        with pytest.raises(UnavailableError) as info:
            client.health()
    assert info.value.code == "too_many_connections"
