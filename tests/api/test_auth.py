"""``serve --auth``: API keys, scopes, experiment limits, JWTs, rate limits, on real servers.

Keys are made as ``octobandit keys create`` makes them (:func:`new_key`) and
written to the server's store by another store object, as the CLI does while the
service runs; the service must see them within twice its key cache time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from octobandit.api.keys import new_key
from octobandit.storage import SQLiteStorage

CACHE = 0.2  # OCTOBANDIT_AUTH_CACHE_SECONDS of the servers here: keys apply within 2 × CACHE
SETTLE = 2 * CACHE + 0.6  # and a margin for a loaded machine
SECRET = "a test secret of enough length for HS256 " * 2
AUDIENCE = "octobandit-tests"


def add_key(db: Path, *scopes: str, experiments: list[str] | None = None, **kw: Any) -> str:
    key, record = new_key("test", scopes, experiments, **kw)
    store = SQLiteStorage(str(db))
    try:
        store.add_api_key(record)
    finally:
        store.close()
    return key


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def wait_for(check: Any, timeout: float = 10.0) -> None:
    """Until ``check()`` is true (keys reach the workers within 2 × CACHE)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the service did not pick up the key change"
        time.sleep(0.05)


def _jwks(tmp_path: Path) -> tuple[Path, Any, Any]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = []
    for kid, private, alg in (("r1", rsa_key, "RS256"), ("e1", ec_key, "ES256")):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
        keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return path, rsa_key, ec_key


@pytest.fixture
def secured(server_factory: Any, tmp_path: Path) -> Any:
    """A service under --auth (key cache CACHE s, JWTs by secret and JWKS, audience set)."""
    jwks, rsa_key, ec_key = _jwks(tmp_path)
    db = tmp_path / "auth.db"
    admin = add_key(db, "admin")
    server = server_factory(
        db,
        env={
            "OCTOBANDIT_AUTH": "1",
            "OCTOBANDIT_AUTH_CACHE_SECONDS": str(CACHE),
            "OCTOBANDIT_AUTH_FAILURE_BURST": "100000",
            "OCTOBANDIT_JWT_SECRET": SECRET,
            "OCTOBANDIT_JWKS": str(jwks),
            "OCTOBANDIT_JWT_AUDIENCE": AUDIENCE,
        },
    ).start()
    server.admin = admin
    server.rsa_key, server.ec_key = rsa_key, ec_key
    return server


def create(server: Any, experiment_id: str) -> None:
    r = httpx.post(
        server.url + "/v1/experiments",
        json={"id": experiment_id, "arms": [{"id": "a"}, {"id": "b"}]},
        headers=bearer(server.admin),
    )
    assert r.status_code == 201, r.text


def decide(server: Any, token: str | None, experiment_id: str = "exp") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/experiments/{experiment_id}/decisions", json={}, headers=bearer(token)
    )


def event_count(server: Any, experiment_id: str) -> int:
    r = httpx.get(
        f"{server.url}/v1/experiments/{experiment_id}/events",
        params={"limit": 10_000},
        headers=bearer(server.admin),
    )
    assert r.status_code == 200, r.text
    return len(r.json()["events"])


def operations(server: Any) -> list[tuple[str, str]]:
    """Every (method, concrete path) of the OpenAPI document, on a missing experiment."""
    doc = httpx.get(server.url + "/openapi.json", headers=bearer(server.admin)).json()
    out = []
    for path, item in doc["paths"].items():
        concrete = path.replace("{experiment_id}", "missing").replace("{arm_id}", "a")
        out.extend((method.upper(), concrete) for method in item)
    assert len(out) >= 19  # the control plane, the data plane, /healthz
    return out


def call(server: Any, method: str, path: str, token: str | None) -> httpx.Response:
    body = None if method in ("GET", "HEAD", "DELETE") else b'{"bogus": 1}'
    headers = {**bearer(token), **({"Content-Type": "application/json"} if body else {})}
    return httpx.request(method, server.url + path, content=body, headers=headers)


def scope_of(method: str, path: str) -> str:
    """What the docs (docs/security.md) say a route needs."""
    if method == "GET":
        return "read"
    if method == "POST" and re.search(r"/(decisions|rewards|decisions/logged)$", path):
        return "decide"
    return "admin"


def assert_refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.json()["error"]["code"] == code
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_every_route_needs_a_key_and_each_scope_allows_only_what_it_names(secured: Any) -> None:
    db = secured.db
    keys = {scope: add_key(db, scope) for scope in ("read", "decide")}
    keys["admin"] = secured.admin
    wait_for(lambda: decide(secured, keys["decide"]).status_code == 404)
    checked = 0
    for method, path in operations(secured):
        if path == "/healthz":
            assert call(secured, method, path, None).status_code == 200
            continue
        for token in (None, "ob_" + "x" * 43, "not-a-key", keys["read"] + "x"):
            assert_refused(call(secured, method, path, token), 401, "unauthorized")
        need = scope_of(method, path)
        for scope, key in keys.items():
            r = call(secured, method, path, key)
            if scope == "admin" or scope == need:
                # past the auth layer: the route's own answer (the experiment is missing,
                # or the body is invalid), never a refusal by the auth layer
                assert r.status_code not in (401, 403, 429), (scope, method, path, r.text)
            else:
                assert_refused(r, 403, "insufficient_scope")
            checked += 1
    assert checked >= 3 * 18
    # the OpenAPI document says the same
    doc = httpx.get(secured.url + "/openapi.json", headers=bearer(keys["read"])).json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if path == "/healthz":
                assert operation["security"] == []
            else:
                assert operation["security"] == [{"bearer": [scope_of(method.upper(), path)]}]
                assert {"401", "403"} <= set(operation["responses"])
    # the docs need a key too
    for path in ("/docs", "/openapi.json"):
        assert_refused(httpx.get(secured.url + path), 401, "unauthorized")
        assert httpx.get(secured.url + path, headers=bearer(keys["read"])).status_code == 200


def test_a_refused_request_writes_nothing(secured: Any) -> None:
    create(secured, "exp")
    read = add_key(secured.db, "read")
    limited = add_key(secured.db, "decide", "admin", experiments=["other"])
    wait_for(lambda: httpx.get(secured.url + "/v1/experiments", headers=bearer(read)).is_success)
    assert decide(secured, secured.admin).status_code == 200
    before = event_count(secured, "exp")
    for token in (None, "ob_wrong", read, limited):
        assert decide(secured, token).status_code in (401, 403)
        r = httpx.post(
            f"{secured.url}/v1/experiments/exp/rewards",
            json={"arm_id": "a", "reward": 1, "count": 5},
            headers=bearer(token),
        )
        assert r.status_code in (401, 403)
        r = httpx.delete(f"{secured.url}/v1/experiments/exp", headers=bearer(token))
        assert r.status_code in (401, 403)
    assert event_count(secured, "exp") == before
    stats = httpx.get(f"{secured.url}/v1/experiments/exp/stats", headers=bearer(read)).json()
    assert sum(a["decisions"] for a in stats["arms"]) == before


def test_a_key_limited_to_experiments_uses_only_those(secured: Any) -> None:
    for eid in ("mine", "theirs"):
        create(secured, eid)
    key = add_key(secured.db, "read", "decide", experiments=["mine"])
    wait_for(lambda: decide(secured, key, "mine").status_code == 200)
    assert_refused(decide(secured, key, "theirs"), 403, "forbidden")
    r = httpx.get(f"{secured.url}/v1/experiments/theirs/stats", headers=bearer(key))
    assert_refused(r, 403, "forbidden")
    listed = httpx.get(secured.url + "/v1/experiments", headers=bearer(key))
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["experiments"]] == ["mine"]
    everything = httpx.get(secured.url + "/v1/experiments", headers=bearer(secured.admin))
    assert {e["id"] for e in everything.json()["experiments"]} == {"mine", "theirs"}
    # a limited admin key cannot create experiments or delete them all
    boss = add_key(secured.db, "admin", experiments=["mine"])
    wait_for(lambda: decide(secured, boss, "mine").status_code == 200)
    r = httpx.post(secured.url + "/v1/experiments", json={"id": "new"}, headers=bearer(boss))
    assert_refused(r, 403, "forbidden")
    r = httpx.delete(secured.url + "/v1/experiments?confirm=true", headers=bearer(boss))
    assert_refused(r, 403, "forbidden")
    assert len(everything.json()["experiments"]) == 2


def test_revoked_and_expired_keys_are_refused_after_the_cache_time(secured: Any) -> None:
    create(secured, "exp")
    doomed = add_key(secured.db, "decide")
    short = add_key(secured.db, "decide", expires_at=time.time() + 2.5)
    wait_for(lambda: decide(secured, doomed).status_code == 200)
    assert decide(secured, short).status_code == 200
    out = subprocess.run(
        [sys.executable, "-m", "octobandit.cli", "keys", "list", "--db", str(secured.db), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    listed = json.loads(out.stdout)["keys"]
    assert all(doomed not in json.dumps(k) for k in listed)  # the key itself is never shown
    victim = next(k for k in listed if doomed.startswith(k["prefix"]))
    subprocess.run(
        [sys.executable, "-m", "octobandit.cli", "keys", "revoke", victim["id"], "--db",
         str(secured.db)],
        check=True, capture_output=True,
    )  # fmt: skip
    time.sleep(SETTLE)
    assert_refused(decide(secured, doomed), 401, "unauthorized")
    time.sleep(max(0.0, 2.6 - SETTLE))
    assert_refused(decide(secured, short), 401, "unauthorized")


def _token(key: Any, alg: str, **claims: Any) -> str:
    payload = {"sub": "svc", "aud": AUDIENCE, "exp": int(time.time()) + 300, **claims}
    headers = {"kid": {"RS256": "r1", "ES256": "e1"}[alg]} if alg != "HS256" else None
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def test_jwts_signed_with_the_secret_or_a_jwks_key_carry_their_scopes(secured: Any) -> None:
    create(secured, "exp")
    keys = {"HS256": SECRET, "RS256": secured.rsa_key, "ES256": secured.ec_key}
    for alg, key in keys.items():
        assert decide(secured, _token(key, alg, scope="read decide")).status_code == 200
        as_list = _token(key, alg, scopes=["decide"])
        assert decide(secured, as_list).status_code == 200
        reader = _token(key, alg, scope="read openid")
        assert_refused(decide(secured, reader), 403, "insufficient_scope")
        limited = _token(key, alg, scope="decide", experiments=["other"])
        assert_refused(decide(secured, limited), 403, "forbidden")
        for bad in (
            _token(key, alg, scope="decide", exp=int(time.time()) - 5),  # expired
            _token(key, alg, scope="decide", aud="someone-else"),  # wrong audience
            _token(key, alg, scope="decide", nbf=int(time.time()) + 600),  # not yet valid
        ):
            assert_refused(decide(secured, bad), 401, "unauthorized")
    # signed by a key the service does not know, or without an expiry
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_refused(decide(secured, _token(stranger, "RS256", scope="decide")), 401, "unauthorized")
    forged = _token("another secret" * 3, "HS256", scope="decide")
    assert_refused(decide(secured, forged), 401, "unauthorized")
    no_exp = jwt.encode({"sub": "x", "aud": AUDIENCE, "scope": "decide"}, SECRET, "HS256")
    assert_refused(decide(secured, no_exp), 401, "unauthorized")
    none_alg = jwt.encode(
        {"aud": AUDIENCE, "scope": "admin", "exp": time.time() + 60}, None, "none"
    )
    assert_refused(decide(secured, none_alg), 401, "unauthorized")


def test_repeated_failures_are_rate_limited_per_address(
    server_factory: Any, tmp_path: Path
) -> None:
    db = tmp_path / "limited.db"
    key = add_key(db, "read")
    server = server_factory(
        db, env={"OCTOBANDIT_AUTH": "1", "OCTOBANDIT_AUTH_FAILURE_BURST": "5"}
    ).start()
    statuses = [
        httpx.get(server.url + "/v1/experiments", headers=bearer("ob_guess")).status_code
        for _ in range(8)
    ]
    # 5 failures a minute refill one each 12 s: the 6th to 8th come well within it
    assert statuses == [401] * 5 + [429] * 3
    r = httpx.get(server.url + "/v1/experiments")
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 12
    assert r.json()["error"]["code"] == "too_many_failures"
    # a valid key still works from that address
    assert httpx.get(server.url + "/v1/experiments", headers=bearer(key)).status_code == 200


def test_two_workers_see_new_and_revoked_keys(server_factory: Any, tmp_path: Path) -> None:
    db = tmp_path / "workers.db"
    admin = add_key(db, "admin")
    server = server_factory(
        db,
        workers=2,
        env={"OCTOBANDIT_AUTH": "1", "OCTOBANDIT_AUTH_CACHE_SECONDS": str(CACHE),
             "OCTOBANDIT_AUTH_FAILURE_BURST": "100000"},
    ).start()  # fmt: skip
    server.admin = admin
    create(server, "exp")
    late = add_key(db, "decide")
    time.sleep(SETTLE)
    # a new connection each time: the kernel spreads them over both workers' accepts
    assert all(decide(server, late).status_code == 200 for _ in range(20))
    store = SQLiteStorage(str(db))
    try:
        (record,) = [k for k in store.api_keys() if late.startswith(k.prefix)]
        store.revoke_api_key(record.id, time.time())
    finally:
        store.close()
    time.sleep(SETTLE)
    assert all(decide(server, late).status_code == 401 for _ in range(20))
    assert decide(server, admin).status_code == 200


def _serve(tmp_path: Path, *flags: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "octobandit.cli", "serve", "--port", "0",
        "--db", str(tmp_path / "bind.db"), "--log-level", "warning", *flags,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_a_non_loopback_bind_without_auth_is_refused(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "--host", "0.0.0.0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "refusing" in err and "--auth" in err and "--insecure" in err
    assert not (tmp_path / "bind.db").exists()  # refused before anything was opened


def test_the_sdk_and_the_integrations_send_the_key(secured: Any) -> None:
    from octobandit.client import Client
    from octobandit.integrations import connect

    create(secured, "exp")
    key = add_key(secured.db, "decide", "read")
    time.sleep(SETTLE)
    with Client(secured.url, api_key=key) as client:
        assert client.decide("exp").arm_id in ("a", "b")
    bandits = connect(secured.url, api_key=key)
    try:
        assert bandits.stats("exp").experiment_id == "exp"
    finally:
        bandits.close()


def test_replicas_on_postgresql_and_redis_share_the_keys(
    postgres_url: str, redis_url: str, server_factory: Any
) -> None:
    """Keys made with the CLI on the PostgreSQL store reach two replicas; a revocation too."""
    env = {
        "OCTOBANDIT_AUTH": "1",
        "OCTOBANDIT_AUTH_CACHE_SECONDS": str(CACHE),
        "OCTOBANDIT_AUTH_FAILURE_BURST": "100000",
        "OCTOBANDIT_STATE": redis_url,
    }
    replicas = [server_factory(postgres_url, env=env).start() for _ in range(2)]
    cli = [sys.executable, "-m", "octobandit.cli", "keys"]
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOBANDIT_")}
    made = subprocess.run(
        [*cli, "create", "--name", "ops", "--scope", "admin", "--store", postgres_url, "--json"],
        capture_output=True, text=True, check=True, env=cli_env,
    )  # fmt: skip
    created = json.loads(made.stdout)
    for replica in replicas:
        replica.admin = created["key"]
    wait_for(lambda: all(decide(r, created["key"]).status_code == 404 for r in replicas))
    create(replicas[0], "exp")
    assert all(decide(r, created["key"]).status_code == 200 for r in replicas)
    subprocess.run(
        [*cli, "revoke", created["id"], "--store", postgres_url],
        capture_output=True, check=True, env=cli_env,
    )  # fmt: skip
    time.sleep(SETTLE)
    for replica in replicas:
        assert_refused(decide(replica, created["key"]), 401, "unauthorized")
