"""Dependencies run one way: the services, libs/, tools/ and bench/ import nothing from tests/, and no
library imports a service (tests may import everything)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registry", "router", "deliverer")
MODULE_PATH = re.compile(r"[a-z_]+(\.[a-z_]+)+(:\w+)?")


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


def named_modules(source: str) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every string that reads like a dotted module path (`pkg.mod` or
    `pkg.mod:Attr`): what importlib or an entry point would load by name."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_PATH.fullmatch(node.value)
        ):
            yield node.lineno, node.value.split(".")[0]


def test_no_library_loads_a_service_by_name_either() -> None:
    # whctl's settings table finds the services' settings classes through entry points they declare
    found = [
        f"{path.relative_to(ROOT)}:{line} names {module}"
        for path in sorted((ROOT / "libs").rglob("*.py"))
        if ".venv" not in path.parts
        for line, module in named_modules(path.read_text())
        if module in SERVICES
    ]
    assert found == []
    assert list(named_modules('x = "router.settings:RouterSettings"\ny = "a sentence."')) == [(1, "router")]


def test_the_dev_tooling_library_imports_no_service_and_nothing_that_uses_it() -> None:
    assert offenders(("libs/devtools",), (*SERVICES, "tests", "webhooks_cli", "tools", "bench")) == []
