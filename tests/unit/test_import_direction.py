"""Dependencies run one way: the services, libs/, tools/ and bench/ import nothing from tests/, and no
library imports a service (tests may import everything)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registry", "router", "deliverer")


def imported_modules(source: str) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import in `source`, wherever it stands (also inside
    functions)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def offenders(folders: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ".venv" in path.parts:
                continue
            for line, module in imported_modules(path.read_text()):
                if module in forbidden:
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_the_scan_sees_imports_wherever_they_stand() -> None:
    source = "import os\nfrom tests.support import x\ndef f():\n    import registry.auth\nfrom . import y\n"
    assert list(imported_modules(source)) == [(1, "os"), (2, "tests"), (4, "registry")]


def test_nothing_outside_tests_imports_from_tests() -> None:
    assert offenders(("services", "libs", "tools", "bench"), ("tests",)) == []


def test_no_library_imports_a_service() -> None:
    assert offenders(("libs",), SERVICES) == []


def test_the_dev_tooling_library_imports_no_service_and_nothing_that_uses_it() -> None:
    assert offenders(("libs/devtools",), (*SERVICES, "tests", "webhooks_cli", "tools", "bench")) == []
