"""/docs renders in a real browser with no network but the service (optional: needs chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("OCTOBANDIT_REQUIRE_SERVICES") == "1"  # CI installs chromium
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None and not REQUIRED, reason="needs chromium (apt-get install chromium)"
    ),
]


def test_swagger_ui_renders_the_operations_offline(server_factory: Any, tmp_path: Path) -> None:
    assert CHROMIUM is not None, "needs chromium (apt-get install chromium)"
    server = server_factory(tmp_path / "d.db").start()
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        # no network but the service: a CDN reference would leave the page blank
        "--proxy-server=http://127.0.0.1:9", f"--proxy-bypass-list=127.0.0.1:{server.port}",
        "--virtual-time-budget=10000", "--dump-dom", server.url + "/docs",
    ]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert "Unable to render" not in dom
    assert "/v1/experiments/{experiment_id}/decisions" in dom, dom[-2000:]
    assert "opblock" in dom  # Swagger UI drew the operations
