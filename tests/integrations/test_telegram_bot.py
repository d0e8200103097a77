"""examples/telegram_bot: the python-telegram-bot Application against a fake Bot API
server on loopback (getMe, getUpdates with long polling, sendMessage,
answerCallbackQuery, editMessageReplyMarkup, deleteWebhook)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import random
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from octobandit.integrations.aio import AsyncBandits, connect_async

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).parents[2] / "examples" / "telegram_bot"
TOKEN = "123456:TEST-TOKEN"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Bandit", "username": "bandit_bot"}
ADMIN = 1000


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("telegram_bot_example", EXAMPLE / "bot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bot_example = load_example()

#: fields the bot sends JSON-encoded in its form bodies
_JSON_FIELDS = {"chat_id", "message_id", "reply_markup", "offset", "timeout", "limit"}


@dataclass
class FakeTelegram:
    """The Bot API methods the bot uses, with queued updates and a record of calls."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    new_update: asyncio.Event = field(default_factory=asyncio.Event)
    new_call: asyncio.Event = field(default_factory=asyncio.Event)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- the test's side ---------------------------------------------------------

    def push(self, update: dict[str, Any]) -> None:
        self.updates.append({"update_id": next(self.ids), **update})
        self.new_update.set()

    def command(self, user_id: int, text: str) -> None:
        name = text.split()[0]
        self.push(
            {
                "message": {
                    "message_id": next(self.ids),
                    "date": int(time.time()),
                    "chat": {"id": user_id, "type": "private"},
                    "from": {"id": user_id, "is_bot": False, "first_name": f"u{user_id}"},
                    "text": text,
                    "entities": [{"type": "bot_command", "offset": 0, "length": len(name)}],
                }
            }
        )

    def press(self, user_id: int, message: dict[str, Any], data: str) -> str:
        query_id = f"q{next(self.ids)}"
        self.push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": {"id": user_id, "is_bot": False, "first_name": f"u{user_id}"},
                    "chat_instance": f"c{user_id}",
                    "message": message,
                    "data": data,
                }
            }
        )
        return query_id

    async def wait_for(
        self, method: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        """The first call of ``method`` matching ``pred``, taken off the record."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (name, params) in enumerate(self.calls):
                if name == method and pred(params):
                    del self.calls[i]
                    return params
            self.new_call.clear()
            left = deadline - time.monotonic()
            assert left > 0, f"no {method} call came; calls: {self.calls}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.new_call.wait(), left)

    async def reply_to(self, chat_id: int) -> dict[str, Any]:
        return await self.wait_for("sendMessage", lambda p: p["chat_id"] == chat_id)

    async def answer_of(self, query_id: str) -> dict[str, Any]:
        return await self.wait_for(
            "answerCallbackQuery", lambda p: p["callback_query_id"] == query_id
        )

    # -- the bot's side ----------------------------------------------------------

    async def endpoint(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        params = await self._params(request)
        if method != "getUpdates":
            self.calls.append((method, params))
            self.new_call.set()
        handler = getattr(self, f"api_{method}", None)
        if handler is None:
            body = {"ok": False, "error_code": 404, "description": f"Not Found: {method}"}
            return JSONResponse(body, status_code=404)
        return JSONResponse({"ok": True, "result": await handler(params)})

    @staticmethod
    async def _params(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        if request.headers.get("content-type", "").startswith("application/json"):
            return dict(json.loads(raw))
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        return {k: json.loads(v) if k in _JSON_FIELDS else v for k, v in form.items()}

    async def api_getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    async def api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        return True

    async def api_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:  # long polling, at most 0.25 s here (a quick shutdown)
            self.new_update.clear()
            timeout = min(float(params.get("timeout") or 0), 0.25)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.new_update.wait(), timeout)
        return self.updates[: int(params.get("limit") or 100)]

    def _message(self, params: dict[str, Any]) -> dict[str, Any]:
        out = {
            "message_id": next(self.ids),
            "date": int(time.time()),
            "chat": {"id": params["chat_id"], "type": "private"},
            "from": BOT_USER,
            "text": params.get("text", ""),
        }
        if params.get("reply_markup"):
            out["reply_markup"] = params["reply_markup"]
        return out

    async def api_sendMessage(self, params: dict[str, Any]) -> Any:
        message = self._message(params)
        params["message"] = message  # the test presses buttons on it
        return message

    async def api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    async def api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        return self._message(params)


@dataclass
class Running:
    fake: FakeTelegram
    bandits: AsyncBandits
    experiment_id: str

    async def start(self, user_id: int) -> tuple[str, dict[str, Any]]:
        """/start: the prompt's text and the message with its buttons."""
        self.fake.command(user_id, "/start")
        sent = await self.fake.reply_to(user_id)
        return sent["text"], sent["message"]


def buttons(message: dict[str, Any]) -> dict[str, str]:
    row = message["reply_markup"]["inline_keyboard"][0]
    return {b["text"]: b["callback_data"] for b in row}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def running(tmp_path: Path, exp_id: str) -> AsyncIterator[Running]:
    fake = FakeTelegram()
    port = free_port()
    api = Starlette(routes=[Route("/bot{token}/{method}", fake.endpoint, methods=["GET", "POST"])])
    server = uvicorn.Server(
        uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    bandits = connect_async(str(tmp_path / "tg.db"), tick_seconds=0.05, seed=5)
    experiment = {
        **bot_example.EXPERIMENT,
        "id": exp_id,
        "reward": {"type": "binary", "attribution_window": 0.5, "default": 0},
    }
    application = bot_example.build_application(
        TOKEN,
        bandits,
        experiment=experiment,
        admin_ids=[ADMIN],
        base_url=f"http://127.0.0.1:{port}/bot",
        base_file_url=f"http://127.0.0.1:{port}/file/bot",
    )
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(timeout=1, drop_pending_updates=True)
    try:
        yield Running(fake, bandits, exp_id)
    finally:
        await application.updater.stop()
        await application.stop()
        await application.shutdown()
        await bandits.aclose()
        server.should_exit = True
        await serving


async def settled(bandits: AsyncBandits, exp_id: str) -> Any:
    deadline = time.monotonic() + 30
    while (stats := await bandits.stats(exp_id)).pending_decisions:
        assert time.monotonic() < deadline, "windows not settled"
        await asyncio.sleep(0.05)
    return stats


async def test_start_prompts_and_a_press_rewards_that_prompt_once(running: Running) -> None:
    fake, bandits = running.fake, running.bandits
    assert any(name == "getMe" for name, _ in fake.calls)
    text, message = await running.start(7)
    assert text in {"This is arm *1*", "This _is_ arm _2_"}
    data = buttons(message)
    assert set(data) == {"👍", "👎"} and all(len(d.encode()) <= 64 for d in data.values())
    sent_arm = "arm1" if "1" in text else "arm2"

    answer = await fake.answer_of(fake.press(7, message, data["👍"]))
    assert answer["text"] == "Thanks, counted!"
    edit = await fake.wait_for("editMessageReplyMarkup", lambda p: p["chat_id"] == 7)
    assert not edit.get("reply_markup")  # the buttons are gone
    again = await fake.answer_of(fake.press(7, message, data["👍"]))
    assert again["text"] == "Already counted."
    other = await fake.answer_of(fake.press(7, message, data["👎"]))
    assert other["text"] == "Already counted."

    stats = await bandits.stats(running.experiment_id)
    by_arm = {a.arm_id: a for a in stats.arms}
    # received, counted when the prompt's attribution window closes
    assert by_arm[sent_arm].decisions == 1 and by_arm[sent_arm].pending_reward_sum == 1
    assert stats.total_decisions == 1 and stats.pending_decisions == 1

    forged = await fake.answer_of(fake.press(7, message, "r|1|" + "0" * 32))
    assert forged["text"] == "This prompt is not known (any more)."


async def test_the_bot_converges_and_reports(running: Running) -> None:
    """The seed's scenario: two prompts, users answer 👍 to arm1 20% and to arm2 60% of
    the time, else nothing; unanswered prompts count as 0 after the window."""
    fake, bandits, exp_id = running.fake, running.bandits, running.experiment_id
    rates = {"arm1": 0.2, "arm2": 0.6}
    rng = random.Random(4)
    served: dict[str, int] = {"arm1": 0, "arm2": 0}
    liked: dict[str, int] = {"arm1": 0, "arm2": 0}
    users = range(1, 21)
    late_arm2 = 0  # prompts of arm2 in the last 10 rounds
    for round_ in range(20):  # 20 rounds of 20 users: 400 prompts
        for user in users:
            fake.command(user, "/start")
        presses = []
        for user in users:
            sent = await fake.reply_to(user)
            arm = "arm1" if sent["text"] == "This is arm *1*" else "arm2"
            served[arm] += 1
            late_arm2 += round_ >= 10 and arm == "arm2"
            if rng.random() < rates[arm]:
                liked[arm] += 1
                presses.append(fake.press(user, sent["message"], buttons(sent["message"])["👍"]))
        for query_id in presses:  # each press counted, within its prompt's window
            assert (await fake.answer_of(query_id))["text"] == "Thanks, counted!"
    stats = await settled(bandits, exp_id)
    by_arm = {a.arm_id: a for a in stats.arms}
    for arm in rates:
        assert by_arm[arm].decisions == served[arm]
        assert by_arm[arm].rewards == served[arm]  # every prompt has its outcome
        assert by_arm[arm].reward_sum == liked[arm]
    assert served["arm2"] > 0.6 * 400 and late_arm2 > 0.75 * 200, (served, late_arm2)

    fake.command(ADMIN, "/report")
    report = (await fake.reply_to(ADMIN))["text"]
    assert report.startswith(f"Experiment {exp_id} (running)")
    assert (
        f"arm2: {served['arm2']} prompts, {served['arm2']} answered, {liked['arm2']} 👍" in report
    )
    assert "Conclusion:" in report


async def test_cheater_mode_is_for_admins(running: Running) -> None:
    fake, bandits, exp_id = running.fake, running.bandits, running.experiment_id
    fake.command(42, "/cheat arm2_wins")
    assert (await fake.reply_to(42))["text"] == "Not allowed: admins only."
    assert (await bandits.stats(exp_id)).total_decisions == 0

    fake.command(ADMIN, "/cheat")
    assert (await fake.reply_to(ADMIN))["text"] == "Fixtures: arm2_wins, arm3_prior"
    fake.command(ADMIN, "/cheat ../../secrets")
    assert (await fake.reply_to(ADMIN))["text"].startswith("No fixture")

    fake.command(ADMIN, "/cheat arm2_wins")
    assert (await fake.reply_to(ADMIN))["text"].startswith("Fixture 'arm2_wins' loaded")
    by_arm = {a.arm_id: a for a in (await bandits.stats(exp_id)).arms}
    assert (by_arm["arm1"].decisions, by_arm["arm1"].reward_sum) == (100, 10)
    assert (by_arm["arm2"].decisions, by_arm["arm2"].reward_sum) == (100, 80)
    texts = [(await running.start(user))[0] for user in range(1, 31)]
    assert sum(t == "This _is_ arm _2_" for t in texts) >= 24  # ε = 0.1: arm2 ~95%

    fake.command(ADMIN, "/cheat arm3_prior")
    assert (await fake.reply_to(ADMIN))["text"] == "Fixture 'arm3_prior' loaded: arm arm3 added"
    experiment = await bandits.get_experiment(exp_id)
    arm3 = next(a for a in experiment.arms if a.id == "arm3")
    assert arm3.prior == {"rewards": 10, "reward_sum": 8, "reward_sq_sum": 8}
    fake.command(ADMIN, "/cheat arm3_prior")
    assert (await fake.reply_to(ADMIN))["text"].endswith("arm arm3 exists, kept")
