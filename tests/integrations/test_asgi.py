"""FastAPI and Starlette (octobandit.integrations.asgi): a real FastAPI app through httpx."""

# no "from __future__ import annotations": FastAPI reads the views' annotations, which
# name the local bandit

import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import msgspec
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from octobandit import wire
from octobandit.integrations import connect
from octobandit.integrations.aio import AsyncBandits, ThreadedBandits, connect_async
from octobandit.integrations.asgi import (
    DECISION_HEADER,
    UNIT_COOKIE,
    Assignment,
    Bandit,
    BanditMiddleware,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def spec(exp_id: str, window: float = 3600.0) -> dict[str, Any]:
    return {
        "id": exp_id,
        "arms": [{"id": "red", "payload": "Red"}, {"id": "blue", "payload": "Blue"}],
        "reward": {"type": "binary", "attribution_window": window, "default": 0},
    }


def make_app(bandit: Bandit, *, middleware: bool = True) -> FastAPI:
    app = FastAPI()
    if middleware:
        app.add_middleware(BanditMiddleware)

    @app.get("/")
    async def home(arm: Annotated[Assignment, Depends(bandit)]) -> dict[str, str]:
        return {"arm": arm.arm_id, "text": arm.payload, "decision": arm.decision_id}

    @app.get("/plain")
    async def plain(arm: Annotated[Assignment, Depends(bandit)]) -> PlainTextResponse:
        return PlainTextResponse(arm.arm_id)  # a Response of its own: the middleware's case

    @app.post("/convert")
    async def convert(request: Request) -> dict[str, Any]:
        answer = await bandit.reward(request, 1.0)
        return {"answer": None if answer is None else msgspec.to_builtins(answer)}

    @app.post("/buy")
    async def buy(
        answer: Annotated[wire.RewardAnswer | None, Depends(bandit.rewarder(1.0))],
    ) -> dict[str, Any]:
        return {"accepted": None if answer is None else answer.accepted}

    return app


@pytest.fixture(params=["embedded", "remote"])
async def bandits(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncBandits]:
    if request.param == "embedded":
        b = connect_async(str(tmp_path / "asgi.db"), tick_seconds=0.05, seed=7)
    else:
        b = connect_async(request.getfixturevalue("module_server").url)
    yield b
    await b.aclose()


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_cookie_keeps_a_visitor_on_its_arm(bandits: AsyncBandits, exp_id: str) -> None:
    bandit = Bandit(bandits, spec(exp_id))
    app = make_app(bandit)
    for _ in range(6):  # six visitors, each back five times
        async with client(app) as c:
            first = await c.get("/")
            assert first.status_code == 200
            unit = c.cookies[UNIT_COOKIE]
            assert first.headers[DECISION_HEADER] == first.json()["decision"]
            assert c.cookies[f"octobandit_{exp_id}"] == first.json()["decision"]
            decisions = {first.json()["decision"]}
            for path in ["/", "/plain", "/", "/plain"]:
                again = await c.get(path)
                arm = again.json()["arm"] if path == "/" else again.text
                assert arm == first.json()["arm"]
                assert UNIT_COOKIE not in again.headers.get("set-cookie", "")
                assert c.cookies[UNIT_COOKIE] == unit
                decisions.add(again.headers[DECISION_HEADER])
            assert len(decisions) == 5  # each serving is a decision of its own
    stats = await bandits.stats(exp_id)
    assert stats.total_decisions == 30


async def test_a_header_names_the_unit(bandits: AsyncBandits, exp_id: str) -> None:
    bandit = Bandit(bandits, spec(exp_id), unit_header="X-User-Id")
    app = make_app(bandit)
    for user in ["alice", "bob", "carol", "dave"]:
        seen = set()
        for _ in range(4):  # a fresh client each time: no cookie, only the header
            async with client(app) as c:
                r = await c.get("/", headers={"X-User-Id": user})
                assert UNIT_COOKIE not in c.cookies
                seen.add(r.json()["arm"])
        assert len(seen) == 1
    async with client(app) as c:  # without the header, the cookie
        await c.get("/")
        assert UNIT_COOKIE in c.cookies


async def test_a_long_unit_id_stays_sticky_within_the_limit(
    bandits: AsyncBandits, exp_id: str
) -> None:
    bandit = Bandit(bandits, spec(exp_id), unit_header="X-User-Id")
    app = make_app(bandit)
    long_user = "u" * 5000
    seen = set()
    for _ in range(4):
        async with client(app) as c:
            r = await c.get("/", headers={"X-User-Id": long_user})
            assert r.status_code == 200
            seen.add(r.json()["arm"])
    assert len(seen) == 1
    async with client(app) as c:
        c.cookies.set(UNIT_COOKIE, "c" * 5000)
        assert (await c.get("/")).status_code == 200


async def test_rewards_go_to_the_right_decision_once(bandits: AsyncBandits, exp_id: str) -> None:
    bandit = Bandit(bandits, spec(exp_id))
    app = make_app(bandit)
    async with client(app) as c:
        first = (await c.get("/")).json()
        second = (await c.get("/")).json()
        # the cookie names the last decision served
        assert (await c.post("/convert")).json()["answer"] == {
            "accepted": 1,
            "duplicates": 0,
            "late": 0,
        }
        assert (await c.post("/convert")).json()["answer"] == {
            "accepted": 0,
            "duplicates": 1,
            "late": 0,
        }
        assert (await c.post("/buy")).json()["accepted"] == 0
    async with client(app) as api:  # no cookies: an API client sends the decision header
        r = await api.post("/buy", headers={DECISION_HEADER: first["decision"]})
        assert r.json()["accepted"] == 1
        assert (await api.post("/convert")).json()["answer"] is None  # names none
        forged = {DECISION_HEADER: "0" * 32}
        assert (await api.post("/convert", headers=forged)).json()["answer"] is None
    stats = await bandits.stats(exp_id)
    by_arm = {a.arm_id: a for a in stats.arms}
    # one visitor: both decisions on its arm; received, counted when the window closes
    assert by_arm[first["arm"]].pending_reward_sum == 2
    assert stats.pending_decisions == 2 and stats.total_decisions == 2
    assert second["decision"] != first["decision"]


async def test_a_reward_after_the_window_is_late(tmp_path: Path, exp_id: str) -> None:
    bandits = connect_async(str(tmp_path / "late.db"), tick_seconds=0.05)
    app = make_app(Bandit(bandits, spec(exp_id, window=0.1)))
    try:
        async with client(app) as c:
            arm = (await c.get("/")).json()["arm"]
            await anyio.sleep(0.3)
            answer = (await c.post("/convert")).json()["answer"]
            assert answer == {"accepted": 0, "duplicates": 0, "late": 1}
        deadline = time.monotonic() + 30
        while (await bandits.stats(exp_id)).pending_decisions:
            assert time.monotonic() < deadline, "window not settled"
            await anyio.sleep(0.05)
        by_arm = {a.arm_id: a for a in (await bandits.stats(exp_id)).arms}
        assert (by_arm[arm].rewards, by_arm[arm].reward_sum) == (1, 0)  # the default
    finally:
        await bandits.aclose()


async def test_without_the_middleware_fastapi_carries_the_cookies(
    tmp_path: Path, exp_id: str
) -> None:
    sync = connect(str(tmp_path / "s.db"), tick_seconds=0)  # a synchronous Bandits works too
    bandit = Bandit(sync, spec(exp_id))
    assert isinstance(bandit.bandits, ThreadedBandits)
    app = make_app(bandit, middleware=False)
    try:
        async with client(app) as c:
            r = await c.get("/")
            assert UNIT_COOKIE in c.cookies and r.headers[DECISION_HEADER]
            assert (await c.post("/convert")).json()["answer"]["accepted"] == 1
    finally:
        sync.close()


async def test_a_starlette_app(tmp_path: Path, exp_id: str) -> None:
    bandits = connect_async(str(tmp_path / "st.db"), tick_seconds=0)
    bandit = Bandit(bandits, spec(exp_id))

    async def home(request: Request) -> JSONResponse:
        response = JSONResponse({})
        arm = await bandit.assign(request, response)
        response.body = response.render({"arm": arm.arm_id})
        response.headers["content-length"] = str(len(response.body))
        return response

    async def convert(request: Request) -> JSONResponse:
        answer = await bandit.reward(request)
        return JSONResponse({"accepted": answer.accepted if answer else None})

    app = Starlette(routes=[Route("/", home), Route("/convert", convert, methods=["POST"])])
    try:
        async with client(app) as c:
            arm = (await c.get("/")).json()["arm"]
            assert (await c.get("/")).json()["arm"] == arm
            assert (await c.post("/convert")).json() == {"accepted": 1}
    finally:
        await bandits.aclose()


async def test_the_app_converges_and_the_stats_add_up(tmp_path: Path, exp_id: str) -> None:
    """Two arms converting at 5% and 30%; only conversions are reported; a 0.2 s
    window counts the rest as failures."""
    rates = {"red": 0.05, "blue": 0.30}
    bandits = connect_async(str(tmp_path / "c.db"), tick_seconds=0.05, seed=11)
    bandit = Bandit(bandits, spec(exp_id, window=0.2))
    app = make_app(bandit)
    rng = random.Random(3)
    decided: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    try:
        async with client(app) as shared:
            for _ in range(600):  # 600 visitors, one visit each
                shared.cookies.clear()
                arm = (await shared.get("/")).json()["arm"]
                decided[arm] += 1
                if rng.random() < rates[arm]:
                    answer = (await shared.post("/convert")).json()["answer"]
                    assert answer == {"accepted": 1, "duplicates": 0, "late": 0}
                    converted[arm] += 1
                await anyio.sleep(0.002)
        deadline = time.monotonic() + 30
        while (await bandits.stats(exp_id)).pending_decisions:
            assert time.monotonic() < deadline, "windows not settled"
            await anyio.sleep(0.05)
        stats = await bandits.stats(exp_id)
        by_arm = {a.arm_id: a for a in stats.arms}
        for arm in rates:
            assert by_arm[arm].decisions == decided[arm]
            assert by_arm[arm].rewards == decided[arm]  # every decision has its outcome
            assert by_arm[arm].reward_sum == converted[arm]
            assert by_arm[arm].pending == 0
        assert decided["blue"] > 0.6 * 600, decided
    finally:
        await bandits.aclose()
