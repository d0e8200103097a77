"""The client is light (no server dependency is imported) and its two forms agree."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

from octobandit.client import AsyncClient, Client

#: the server's dependencies (and the heavy numeric ones): none may be imported
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "numpy",
    "scipy",
    "psycopg",
    "psycopg_pool",
    "redis",
    "typer",
    "matplotlib",
    "fastapi_offline",
)
#: the only parts of the package the client may load
ALLOWED = ("octobandit", "octobandit.errors", "octobandit.wire", "octobandit.client")


def test_importing_the_client_loads_no_server_dependency() -> None:
    code = "import sys, json, octobandit.client; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(out.stdout)
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []
    ours = [m for m in modules if m == "octobandit" or m.startswith("octobandit.")]
    assert [m for m in ours if not m.startswith(ALLOWED)] == []
    assert "octobandit.client" in ours and "httpx" in modules and "msgspec" in modules


def test_local_mode_loads_the_policy_code_and_no_server_part() -> None:
    code = "import sys, json, octobandit.client.local; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(out.stdout)
    server = [m for m in modules if m.split(".")[0] in HEAVY and m.split(".")[0] not in
              ("numpy", "scipy")]  # fmt: skip
    assert server == []
    allowed = (*ALLOWED, "octobandit.policies", "octobandit.stats", "octobandit.checks")
    ours = [m for m in modules if m == "octobandit" or m.startswith("octobandit.")]
    assert [m for m in ours if not m.startswith(allowed)] == []


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member)
    }


def test_the_async_client_has_the_same_methods_and_signatures() -> None:
    sync, aio = _public(Client), _public(AsyncClient)
    sync.pop("local")  # local decisions: a decider with its own thread, made by Client only
    assert set(aio) - {"aclose"} == set(sync)
    for name, signature in sync.items():
        assert aio[name].parameters == signature.parameters, name
        assert aio[name].return_annotation == signature.return_annotation, name
        member = getattr(AsyncClient, name)
        assert inspect.iscoroutinefunction(member) == (name != "buffer_stats"), name
    assert {"decide", "decide_batch", "reward", "reward_arm", "rewards", "flush"} <= set(sync)
