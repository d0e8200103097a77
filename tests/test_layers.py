"""The layers of the package: which part may import which (checked on the source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import octobandit

SRC = Path(octobandit.__file__).parent

#: part of the package → the imports it must not make (at the top or in a function);
#: the errors and the records import nothing of the package
FORBIDDEN = {
    "errors": ("octobandit.",),
    "model": ("octobandit.",),
    "checks": ("octobandit.api", "octobandit.engine", "octobandit.policies", "octobandit.stats"),
    "stats": ("octobandit.policies", "octobandit.engine", "octobandit.storage", "octobandit.api"),
    "policies": ("octobandit.engine", "octobandit.storage", "octobandit.api"),
    "storage": ("octobandit.engine", "octobandit.policies", "octobandit.api"),
    "engine": ("octobandit.api",),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_a_part_does_not_import_the_layers_above_it(part: str) -> None:
    module = SRC / f"{part}.py"
    files = [module] if module.exists() else sorted((SRC / part).rglob("*.py"))
    assert files
    wrong = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in files
        for name in sorted(_imports(path))
        if name.startswith(FORBIDDEN[part])
    ]
    assert wrong == []
