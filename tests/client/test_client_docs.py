"""The Python examples of the README and docs/client.md run against the real service."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from octobandit.client import Client

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/client.md"])
def test_the_python_examples_run(doc: str, server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(tmp_path / f"{doc.replace('/', '_')}.db").start()
    blocks = _python_blocks(ROOT / doc)
    assert blocks
    out = io.StringIO()
    for block in blocks:
        code = block.replace("http://127.0.0.1:8000", server.url)
        with contextlib.redirect_stdout(out):
            exec(compile(code, doc, "exec"), {"__name__": "__example__"})
    assert out.getvalue().startswith("100 ")
    with Client(server.url) as client:
        stats = client.stats("router")
    assert stats.total_decisions == 100 + (1 if doc == "docs/client.md" else 0)
    assert stats.arms[2].mean_reward == 1.0
