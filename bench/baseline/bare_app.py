"""The baseline for bench/http.py: a bare Starlette endpoint that parses a small
JSON body and returns a small JSON body (orjson), nothing else."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    body = await request.body()
    data = orjson.loads(body) if body else {}
    out = {"ok": True, "keys": len(data)}
    return Response(orjson.dumps(out), media_type="application/json")


app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
