"""The import rules of docs/architecture.md, enforced."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from devices.alarms import ALARM_INFO, AlarmType, Check

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


def test_mqtt_framing_is_written_once_and_pure() -> None:
    """MQTT 5 framing lives in `devices/mqtt_wire.py`, on the floor ingest, the simulator and the
    benchmarks may all import: it does no I/O and imports nothing of Yiju but the error tree, and no
    other module of theirs decodes a remaining length (the 7-bit continuation `& 0x7F`)."""
    codec = ROOT / "devices" / "mqtt_wire.py"
    io = {"socket", "select", "selectors", "ssl", "threading", "time", "paho", "psycopg", "subprocess"}
    imports = _imports(codec)
    assert {m for m in imports if m.split(".")[0] in io} == set()
    assert {m for m in imports if m.split(".")[0] in PACKAGES} == {"yiju.errors"}
    users = [
        *(ROOT / "ingest").rglob("*.py"),
        *(ROOT / "simulators").rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
    ]
    copies = [str(p.relative_to(ROOT)) for p in users if "& 0x7f" in p.read_text().lower()]
    assert copies == []


def test_every_alarm_type_has_severity_and_labels() -> None:
    assert set(ALARM_INFO) == set(AlarmType)
    assert all(info.zh and info.en for info in ALARM_INFO.values())


def test_check_names_match_the_schema() -> None:
    # the latest CHECK on compliance_findings.check_name (0001_core.sql, then 0008_self_test_findings.sql)
    sql = (ROOT / "storage" / "migrations" / "0008_self_test_findings.sql").read_text()
    for check in Check:
        assert f"'{check.value}'" in sql


def test_the_api_leaves_the_database_driver_to_storage() -> None:
    """SQL, psycopg and its pool are storage's (the live stream's LISTEN connection included); the
    API only names the connection type for its dependencies (api/deps.py)."""
    allowed = {ROOT / "api" / "deps.py"}
    found = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / "api").rglob("*.py")
        for module in _imports(path)
        if module.split(".")[0] in {"psycopg", "psycopg_pool"}
        and not (path in allowed and module == "psycopg")
    ]
    assert found == []


def test_pure_cores_do_no_io() -> None:
    """The rule core and the escalation core are pure (their docstrings' contract): no storage, no
    sockets, no subprocesses, no clock module."""
    banned = {"storage", "psycopg", "socket", "subprocess", "urllib", "time", "threading"}
    banned |= {"alerts.service", "alerts.commands"}  # the engine's I/O shell, its packages included
    cores = [*(ROOT / "alerts" / "core").rglob("*.py"), ROOT / "alerts" / "escalation" / "core.py"]
    users = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in cores
        for module in _imports(path)
        if any(module == b or module.startswith(b + ".") for b in banned)
    ]
    assert users == []


def test_linkage_channels_do_not_touch_the_database() -> None:
    channels = (ROOT / "alerts" / "escalation" / "channels").rglob("*.py")
    users = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in channels
        for module in _imports(path)
        if module.split(".")[0] in ("storage", "psycopg")
    ]
    assert users == []
