"""The pure-ASGI guards: JSON depth, Content-Type, Host (DNS rebinding), JSON 500, body deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from octobandit.api.app import create_app
from octobandit.api.guards import Guard, allowed_host_set, is_loopback_address
from octobandit.api.jsondepth import too_deep
from octobandit.config import Settings
from octobandit.engine import Engine

JSON_CT = {"content-type": "application/json"}
DEPTH = 32  # Limits.max_json_depth, documented in docs/api.md


def error(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()["error"]
    if code is not None:
        assert body["code"] == code, body
    return str(body["message"])


def create(client: TestClient, **extra: Any) -> None:
    body = {"id": "exp", "arms": [{"id": "a"}, {"id": "b"}], **extra}
    r = client.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text


def nested(depth: int, leaf: str = "1") -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


# --------------------------------------------------------------------- depth
def test_depth_scan_counts_brackets_outside_strings_only() -> None:
    assert not too_deep(nested(DEPTH), DEPTH)
    assert too_deep(nested(DEPTH + 1), DEPTH)
    assert not too_deep(b'{"a": "' + b"[" * 1000 + b'"}', DEPTH)  # inside a string
    assert not too_deep(b'["\\"[[[[", ' + b"[1]," * 2000 + b"[]]", DEPTH)  # escaped quote
    assert too_deep(b'{"a": "\\\\", "b": ' + nested(DEPTH), DEPTH)  # an escaped backslash
    # an unterminated string still counts nothing after it, in linear time
    assert not too_deep(b'"' + b'\\"[' * 200_000, DEPTH)


@pytest.mark.parametrize(
    "path",
    ["/v1/experiments/exp/decisions", "/v1/experiments/exp/rewards"],
)
def test_data_plane_refuses_deep_json_with_400(client: TestClient, path: str) -> None:
    create(client)
    body = b'{"context": ' + nested(10_000) + b"}"
    assert "32" in error(client.post(path, content=body, headers=JSON_CT), 400, "too_deep")
    assert client.get("/v1/experiments/exp/stats").json()["total_decisions"] == 0
    # at the limit it is decoded as usual (logged as context, or a validation error)
    ok_depth = b'{"context": {"a": ' + nested(DEPTH - 2) + b"}}"
    r = client.post(path, content=ok_depth, headers=JSON_CT)
    assert r.status_code == (200 if path.endswith("decisions") else 422), r.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/experiments"),
        ("PATCH", "/v1/experiments/exp"),
        ("POST", "/v1/experiments/exp/arms"),
        ("PATCH", "/v1/experiments/exp/arms/a"),
        ("PUT", "/v1/experiments/exp/arms/a/stats"),
        ("POST", "/v1/experiments/exp/reset"),
    ],
)
def test_control_plane_refuses_deep_json_with_400(
    client: TestClient, method: str, path: str
) -> None:
    create(client)
    before = client.get("/v1/experiments/exp").json()
    body = b'{"payload": ' + nested(10_000) + b"}"
    r = client.request(method, path, content=body, headers=JSON_CT)
    error(r, 400, "too_deep")
    r = client.request(method, path, content=nested(10_000, "{}"), headers=JSON_CT)
    error(r, 400, "too_deep")
    assert client.get("/v1/experiments/exp").json() == before  # nothing written


def test_an_arm_payload_at_the_depth_limit_is_accepted(client: TestClient) -> None:
    payload: Any = 1
    for _ in range(DEPTH - 3):  # body object, arms list, arm object: 3 levels
        payload = [payload]
    r = client.post("/v1/experiments/exp-d", json=None)  # route absent: 404/405, not 500
    assert r.status_code in (404, 405)
    r = client.post("/v1/experiments", json={"id": "d", "arms": [{"id": "a", "payload": payload}]})
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------- content type
BODY_ROUTES = [
    ("POST", "/v1/experiments"),
    ("PATCH", "/v1/experiments/exp"),
    ("DELETE", "/v1/experiments/exp"),
    ("DELETE", "/v1/experiments?confirm=true"),
    ("POST", "/v1/experiments/exp/reset"),
    ("POST", "/v1/experiments/exp/arms"),
    ("PATCH", "/v1/experiments/exp/arms/a"),
    ("DELETE", "/v1/experiments/exp/arms/a"),
    ("PUT", "/v1/experiments/exp/arms/a/stats"),
    ("POST", "/v1/experiments/exp/decisions"),
    ("POST", "/v1/experiments/exp/rewards"),
]
SAFELISTED = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("ctype", SAFELISTED)
def test_form_and_text_bodies_get_415_on_every_route(
    client: TestClient, method: str, path: str, ctype: str
) -> None:
    create(client)
    before = client.get("/v1/experiments/exp").json()
    body = b'{"arm_id": "a", "reward": 1, "id": "x"}'
    for content in (body, b""):  # refused even without a body
        r = client.request(method, path, content=content, headers={"content-type": ctype})
        assert "application/json" in error(r, 415, "unsupported_media_type")
    assert client.get("/v1/experiments/exp").json() == before
    assert client.get("/v1/experiments/exp/stats").json()["total_decisions"] == 0


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_a_body_without_content_type_gets_415(client: TestClient, method: str, path: str) -> None:
    create(client)
    r = client.request(method, path, content=b'{"reward": 1, "arm_id": "a"}')
    error(r, 415, "unsupported_media_type")


def test_json_with_parameters_and_bodyless_posts_are_accepted(client: TestClient) -> None:
    create(client)
    ct = {"content-type": "Application/JSON; charset=utf-8"}
    r = client.post("/v1/experiments/exp/rewards", content=b'{"arm_id":"a","reward":1}', headers=ct)
    assert r.status_code == 200, r.text
    # no body, no content type: accepted (documented)
    assert client.post("/v1/experiments/exp/decisions").status_code == 200
    assert client.post("/v1/experiments/exp/reset").status_code == 200
    assert client.delete("/v1/experiments/exp/arms/b").status_code == 204


# ------------------------------------------------------------------- host check
def test_loopback_names_and_bind_addresses() -> None:
    assert is_loopback_address("127.0.0.1") and is_loopback_address("::1")
    assert is_loopback_address("localhost") and is_loopback_address("127.0.0.2")
    assert not is_loopback_address("0.0.0.0") and not is_loopback_address("192.168.1.5")
    assert allowed_host_set(["*"]) is None
    hosts = allowed_host_set(["Example.com:8000", " api.test "])
    assert hosts is not None and {"example.com", "api.test", "localhost"} <= hosts


def _asgi_client(app: Any, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")


@pytest.mark.parametrize(
    ("host", "allowed", "status"),
    [
        ("localhost:8000", (), 200),
        ("127.0.0.1", (), 200),
        ("[::1]:9", (), 200),
        ("127.0.0.5:80", (), 200),
        ("attacker.example", (), 403),
        ("attacker.example:8000", (), 403),
        ("localhost.attacker.example", (), 403),
        ("attacker.example", ("attacker.example",), 200),
        ("other.example", ("attacker.example",), 403),
        ("anything.example", ("*",), 200),
    ],
)
def test_host_check_on_a_loopback_bind(
    engine: Engine, host: str, allowed: tuple[str, ...], status: int
) -> None:
    app = create_app(engine, Settings(host="127.0.0.1", allowed_hosts=allowed))

    async def go() -> None:
        async with _asgi_client(app, host) as c:
            for method, path in [("GET", "/v1/experiments"), ("POST", "/v1/experiments/x/reset")]:
                r = await c.request(method, path, headers={"host": host})
                if status == 403:
                    assert "--allowed-hosts" in error(r, 403, "forbidden_host")
                else:
                    assert r.status_code in (200, 404), r.text

    asyncio.run(go())


def test_no_host_check_on_a_non_loopback_bind(engine: Engine) -> None:
    app = create_app(engine, Settings(host="0.0.0.0"))

    async def go() -> None:
        async with _asgi_client(app, "attacker.example") as c:
            assert (await c.get("/v1/experiments")).status_code == 200

    asyncio.run(go())


# --------------------------------------------------------------------- JSON 500
def test_an_unexpected_error_in_a_control_route_is_json_500(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(engine, "list_experiments", broken)
    app = create_app(engine, Settings())
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as c:
        error(c.get("/v1/experiments"), 500, "internal")


def test_the_outermost_guard_answers_json_500_for_anything_that_escapes() -> None:
    async def broken_app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("escaped")

    async def half_sent(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        raise RuntimeError("after the answer")

    async def go() -> None:
        guard = Guard(broken_app, hosts=None, body_timeout=None)
        async with _asgi_client(guard, "localhost") as c:
            error(await c.get("/"), 500, "internal")
        guard = Guard(half_sent, hosts=None, body_timeout=None)
        async with _asgi_client(guard, "localhost") as c:
            assert (await c.get("/")).status_code == 200  # started: nothing else to say

    asyncio.run(go())


# ------------------------------------------------------------------ body deadline
def test_a_stalled_body_gets_408_in_process(engine: Engine) -> None:
    app = create_app(engine, Settings(body_timeout=0.2))
    engine.create_experiment({"id": "exp", "arms": [{"id": "a"}]})

    async def go() -> None:
        async def stalled() -> AsyncIterator[bytes]:
            yield b'{"arm_id": "a",'
            await asyncio.sleep(5)
            yield b'"reward": 1}'

        async with _asgi_client(app, "localhost") as c:
            for path in ("/v1/experiments/exp/rewards", "/v1/experiments/exp/arms"):
                r = await asyncio.wait_for(
                    c.post(path, content=stalled(), headers=JSON_CT), timeout=3
                )
                error(r, 408, "timeout")
                assert r.headers["connection"] == "close"

    asyncio.run(go())
    assert engine.stats("exp")["total_reward"] == 0


def test_a_slow_but_timely_body_is_served(engine: Engine) -> None:
    app = create_app(engine, Settings(body_timeout=2))
    engine.create_experiment({"id": "exp", "arms": [{"id": "a"}]})

    async def go() -> None:
        async def slow() -> AsyncIterator[bytes]:
            for part in (b'{"arm_id": "a",', b' "reward": 1', b"}"):
                yield part
                await asyncio.sleep(0.05)

        async with _asgi_client(app, "localhost") as c:
            r = await c.post("/v1/experiments/exp/rewards", content=slow(), headers=JSON_CT)
            assert r.status_code == 200, r.text
            r = await c.post("/v1/experiments/exp/arms", content=slow(), headers=JSON_CT)
            assert r.status_code == 422, r.text  # decoded in full: a validation error
            await asyncio.sleep(2.5)  # no timer left behind cancels anything later
            assert (await c.get("/v1/experiments/exp/stats")).status_code == 200

    asyncio.run(go())
    assert engine.stats("exp")["total_reward"] == 1


def test_405_lists_the_allowed_methods(client: TestClient) -> None:
    r = client.request("TRACE", "/v1/experiments")
    error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "DELETE, GET, POST"
    r = client.get("/v1/experiments/exp/decisions")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
