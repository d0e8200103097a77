"""`octobandit keys create|list|revoke` on a store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def test_the_keys_command_creates_lists_and_revokes(tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")
    cli = [sys.executable, "-m", "octobandit.cli", "keys"]
    made = subprocess.run(
        [*cli, "create", "--name", "ci", "--scope", "read,decide", "--experiment", "e1",
         "--expires", "30d", "--db", db, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    created = json.loads(made.stdout)
    assert re.fullmatch(r"ob_[A-Za-z0-9_-]{43}", created["key"])
    assert created["scopes"] == ["read", "decide"] and created["experiments"] == ["e1"]
    assert created["status"] == "active" and created["expires_at"] is not None
    bad = subprocess.run(
        [*cli, "create", "--name", "x", "--scope", "write", "--db", db],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown scope" in bad.stderr
    gone = subprocess.run([*cli, "revoke", "key_nothere", "--db", db], capture_output=True)
    assert gone.returncode == 1
    subprocess.run([*cli, "revoke", created["id"], "--db", db], check=True, capture_output=True)
    listed = subprocess.run([*cli, "list", "--db", db], capture_output=True, text=True, check=True)
    assert created["id"] in listed.stdout and "revoked" in listed.stdout
    assert created["key"] not in listed.stdout
    with open(db, "rb") as f:
        assert created["key"].encode() not in f.read()  # only the hash is stored
