"""/ui/: the dashboard's files, served by the app with a strict Content-Security-Policy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from octobandit.api.app import create_app
from octobandit.dashboard import STATIC
from octobandit.engine import Engine


@pytest.fixture
def web(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine), base_url="http://localhost") as c:
        yield c


def test_the_page_is_served_with_a_strict_content_security_policy(web: TestClient) -> None:
    page = web.get("/ui/")
    assert page.status_code == 200 and "<main" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    script = web.get("/ui/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "content-security-policy" in script.headers


def test_ui_redirects_and_a_missing_file_is_a_json_404(web: TestClient) -> None:
    moved = web.get("/ui", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/ui/"
    missing = web.get("/ui/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert "/ui" not in web.get("/openapi.json").json()["paths"]


def test_the_files_reference_nothing_outside_the_service() -> None:
    """No CDN, no inline script or style (the CSP would block them), only local files."""
    for path in sorted(Path(STATIC).iterdir()):
        text = path.read_text()
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text), path.name
        assert "cdn" not in text.lower(), path.name
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline script"
            assert "style=" not in text and "<style" not in text, "inline style"
            for ref in re.findall(r"(?:src|href)=\"([^\"#.][^\"]*)\"", text):
                assert (Path(STATIC) / ref).is_file(), ref
