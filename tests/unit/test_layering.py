"""Dependencies run one way: services use libs/, libs/ use no service (nor the tests)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("registry", "router", "deliverer", "tests")


def imported_modules(source: str) -> set[str]:
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_libs_import_no_service() -> None:
    offenders = []
    for path in sorted((ROOT / "libs").rglob("*.py")):
        for module in imported_modules(path.read_text()):
            if module.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == []


def test_the_scan_sees_lazy_imports() -> None:
    assert "registry.auth" in imported_modules("def f():\n    from registry.auth import mint_token\n")
