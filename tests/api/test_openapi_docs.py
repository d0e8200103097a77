"""The OpenAPI document describes real answers; /docs works offline."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from octobandit.engine.core import Limits

OPS = [
    ("get", "/healthz", "/healthz", None),
    ("post", "/v1/experiments", "/v1/experiments", {"id": "e", "arms": [{"id": "a"}]}),
    ("get", "/v1/experiments", "/v1/experiments", None),
    ("get", "/v1/experiments/{experiment_id}", "/v1/experiments/e", None),
    ("patch", "/v1/experiments/{experiment_id}", "/v1/experiments/e", {"name": "n"}),
    ("post", "/v1/experiments/{experiment_id}/arms", "/v1/experiments/e/arms", {"id": "b"}),
    (
        "patch",
        "/v1/experiments/{experiment_id}/arms/{arm_id}",
        "/v1/experiments/e/arms/b",
        {"payload": {"k": 1}},
    ),
    ("post", "/v1/experiments/{experiment_id}/decisions", "/v1/experiments/e/decisions", {}),
    (
        "post",
        "/v1/experiments/{experiment_id}/rewards",
        "/v1/experiments/e/rewards",
        {"arm_id": "a", "reward": 1},
    ),
    (
        "put",
        "/v1/experiments/{experiment_id}/arms/{arm_id}/stats",
        "/v1/experiments/e/arms/a/stats",
        {"decisions": 3, "rewards": 2, "reward_sum": 1},
    ),
    ("get", "/v1/experiments/{experiment_id}/stats", "/v1/experiments/e/stats", None),
    ("get", "/v1/experiments/{experiment_id}/conclusion", "/v1/experiments/e/conclusion", None),
    ("get", "/v1/experiments/{experiment_id}/history", "/v1/experiments/e/history", None),
    ("post", "/v1/experiments/{experiment_id}/reset", "/v1/experiments/e/reset", None),
    ("delete", "/v1/experiments/{experiment_id}/arms/{arm_id}", "/v1/experiments/e/arms/b", None),
    ("get", "/v1/experiments/{experiment_id}", "/v1/experiments/nope", None),
    ("post", "/v1/experiments", "/v1/experiments", {"id": "e"}),
    ("post", "/v1/experiments", "/v1/experiments", {"id": "BAD"}),
    ("delete", "/v1/experiments", "/v1/experiments", None),
    ("delete", "/v1/experiments/{experiment_id}", "/v1/experiments/e", None),
]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _conforms(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    """A small check of the answer against its schema: type, required keys, one level down."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema:
        return any(_conforms(spec, s, value) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict) or not set(schema.get("required", [])) <= set(value):
            return False
        props = schema.get("properties", {})
        return all(_conforms(spec, props[k], v) for k, v in value.items() if k in props)
    if kind == "array":
        items = schema.get("items", {})
        return isinstance(value, list) and all(_conforms(spec, items, v) for v in value)
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
    if kind in types:
        return isinstance(value, types[kind]) and not (kind != "boolean" and value is True)
    if kind == "null":
        return value is None
    return True


def test_every_answer_is_documented_with_its_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(spec) and '"detail"' not in json.dumps(spec)
    for method, template, url, body in OPS:
        r = (
            client.request(method, url, json=body)
            if body is not None
            else client.request(method, url)
        )
        op = spec["paths"][template][method]
        documented = op["responses"]
        assert str(r.status_code) in documented, (method, url, r.status_code, r.text)
        content = documented[str(r.status_code)].get("content")
        if r.status_code == 204:
            assert content is None and r.content == b""
            continue
        assert content is not None, (method, template, r.status_code)
        schema = content["application/json"]["schema"]
        assert _conforms(spec, schema, r.json()), (method, url, r.text, schema)


def test_errors_ids_and_limits_are_documented(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    limits = Limits()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert {"403", "500"} <= set(responses), (path, method)
            if method in ("post", "put", "patch", "delete"):
                assert "415" in responses, (path, method)
            if "{experiment_id}" in path:
                assert "404" in responses, (path, method)
            for code, answer in responses.items():
                if int(code) >= 400:
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (path, method, code)
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    pattern = param["schema"]["pattern"]
                    assert re.fullmatch(pattern.strip("^$"), "exp-1"), pattern
                    assert not re.fullmatch(pattern.strip("^$"), "a/b")
    schemas = spec["components"]["schemas"]
    n = schemas["DecisionRequest"]["properties"]["n"]["anyOf"][0]
    assert n["maximum"] == limits.max_decisions_per_request
    assert schemas["ExperimentIn"]["properties"]["id"]["anyOf"][0]["maxLength"] == 64
    described = spec["info"]["description"]
    for value in (limits.max_body_bytes, limits.max_payload_bytes, limits.max_json_depth):
        assert str(value) in described


def test_docs_reference_only_local_assets_and_they_are_served(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page.text), "external URL"
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(ref.endswith(".js") for ref in refs) and any(ref.endswith(".css") for ref in refs)
    for ref in refs:
        assert ref.startswith("/"), ref
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 100, ref
    assert "url: '/openapi.json'" in page.text
    assert client.get("/redoc").status_code == 404  # redoc would need a CDN: not served


@pytest.mark.parametrize("path", ["/docs/assets/../../../etc/passwd", "/docs/assets/nope.js"])
def test_docs_assets_do_not_leak_files(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404
