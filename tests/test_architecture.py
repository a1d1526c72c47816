"""The import rules of docs/architecture.md, enforced."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("yiju", "storage", "devices", "ingest", "alerts", "api", "simulators")
LEAVES = {"yiju.errors", "yiju.settings"}
ALLOWED: dict[str, set[str]] = {
    "storage": set(),
    "devices": set(),
    "ingest": {"devices", "storage", "alerts"},
    "alerts": {"devices", "storage"},
    "api": {"devices", "storage", "alerts"},
    "simulators": {"devices"},
    "yiju": set(PACKAGES),
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    violations: list[str] = []
    for path in (ROOT / package).rglob("*.py"):
        for module in _imports(path):
            top = module.split(".")[0]
            if top not in PACKAGES or top == package or module in LEAVES:
                continue
            if top not in ALLOWED[package]:
                violations.append(f"{path.relative_to(ROOT)} imports {module}")
    assert violations == []


def test_paho_stays_in_its_adapters() -> None:
    allowed = {ROOT / "ingest" / "mqtt_adapter.py", ROOT / "simulators" / "mqtt_publisher.py"}
    users = [
        path.relative_to(ROOT)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if any(m.split(".")[0] == "paho" for m in _imports(path)) and path not in allowed
    ]
    assert users == []
