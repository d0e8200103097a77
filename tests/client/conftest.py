"""Fixtures of the client tests: both clients over one real service per module."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from octobandit.client import AsyncClient, Client


class Blocking:
    """An :class:`AsyncClient` driven from plain test code: every coroutine method runs
    to completion on a private event loop, so one test body covers both clients."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.loop.run_until_complete(attr(*args, **kwargs))

        return call

    def shut(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.client.close())
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``make_client(url, **options)``: a :class:`Client`, or an :class:`AsyncClient`
    behind :class:`Blocking`; closed after the test."""
    made: list[Any] = []

    def make(url: str, **options: Any) -> Any:
        if request.param == "sync":
            made.append(Client(url, **options))
        else:
            made.append(Blocking(AsyncClient(url, **options)))
        return made[-1]

    yield make
    for c in made:
        c.shut() if isinstance(c, Blocking) else c.close()


@pytest.fixture
def api(make_client: Callable[..., Any], module_server: Any) -> Any:
    """A client (sync or async) of the module's service."""
    return make_client(module_server.url)


@pytest.fixture
def exp_id() -> str:
    """A fresh experiment id (tests share the module's service)."""
    return f"t-{uuid.uuid4().hex[:10]}"
