"""The layers of the package: which part may import which (checked on the source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import octobandit

SRC = Path(octobandit.__file__).parent

#: the parts of the package that need the server's dependencies (and the records)
SERVER_PARTS = (
    "octobandit.api",
    "octobandit.engine",
    "octobandit.policies",
    "octobandit.stats",
    "octobandit.storage",
    "octobandit.simulation",
    "octobandit.model",
    "octobandit.compose",
    "octobandit.config",
    "octobandit.cli",
    "octobandit.checks",
    "octobandit.offline",
)

#: part of the package → the imports it must not make (at the top or in a function);
#: the errors and the records import nothing of the package
FORBIDDEN = {
    "errors": ("octobandit.",),
    "model": ("octobandit.",),
    # the fixtures' format, read by the CLI and the Telegram example: plain data only
    "fixtures": ("octobandit.",),
    "checks": ("octobandit.api", "octobandit.engine", "octobandit.policies", "octobandit.stats"),
    "stats": ("octobandit.policies", "octobandit.engine", "octobandit.storage", "octobandit.api"),
    "policies": ("octobandit.engine", "octobandit.storage", "octobandit.api"),
    "storage": ("octobandit.engine", "octobandit.policies", "octobandit.api"),
    "engine": ("octobandit.api",),
    # off-policy estimators on plain arrays: the log adapter lives elsewhere
    "evaluation": ("octobandit.storage", "octobandit.engine", "octobandit.api", "octobandit.cli"),
    # the log adapter and candidates: a door over the engine and the estimators
    "offline": ("octobandit.api", "octobandit.cli", "octobandit.client"),
    # a door over the engine or the SDK; of the HTTP door only its JSON views
    "integrations": (
        "octobandit.api.app",
        "octobandit.api.hot",
        "octobandit.api.guards",
        "octobandit.cli",
    ),
    # ``octobandit import``'s readers and batches: a door over the engine
    "imports": ("octobandit.api", "octobandit.cli"),
    # the dashboard: static files over the public API, and the function mounting them
    "dashboard": ("octobandit.",),
    # the wire types and the client import nothing heavy: a client install has no server
    "wire": (*SERVER_PARTS, "octobandit.client"),
    "client": SERVER_PARTS,
    # local decisions run the service's policy code (NumPy, SciPy), loaded only by
    # Client.local: nothing else of the server
    "client/local": tuple(
        p for p in SERVER_PARTS if p not in ("octobandit.policies", "octobandit.stats")
    ),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _within(name: str, prefix: str) -> bool:
    """``octobandit.`` covers every module; ``octobandit.cli`` that module and those below
    it (not ``octobandit.client``)."""
    return (
        name.startswith(prefix)
        if prefix.endswith(".")
        else (name == prefix or name.startswith(prefix + "."))
    )


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_a_part_does_not_import_the_layers_above_it(part: str) -> None:
    module = SRC / f"{part}.py"
    files = [module] if module.exists() else sorted((SRC / part).rglob("*.py"))
    files = [f for f in files if f.stem != "local" or part == "client/local"]
    assert files
    wrong = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in files
        for name in sorted(_imports(path))
        if any(_within(name, prefix) for prefix in FORBIDDEN[part])
    ]
    assert wrong == []
