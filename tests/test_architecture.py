"""The import rules of docs/architecture.md, enforced."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from devices.alarms import ALARM_INFO, AlarmType, Check

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("yiju", "storage", "devices", "ingest", "alerts", "api", "simulators")

# Shared vocabulary on the ground floor: any package may import these, because each of them imports
# only other leaves (checked transitively below, with the packages' __init__ modules they load).
LEAVES = {
    "yiju.errors",
    "storage.config",
    "ingest.config",
    "alerts.config",
    "alerts.escalation.config",
    "devices.contract",
    "devices.alarms",
    "devices.families",  # and its modules: alerts.config reads the families' timing defaults
    "devices.envelope",  # the families' message envelope
    "yiju.scaleout.config",  # Settings.scale (plain values)
}
# What each package may import besides itself and the leaves: a package (and everything in it) or one
# module. A module follows the most specific entry it lies in (yiju.scaleout, not yiju). The rule holds
# for everything a module loads, directly or through others.
ALLOWED: dict[str, set[str]] = {
    "storage": {"devices"},  # the device contract, which imports nothing above itself (below)
    "devices": set(),
    "ingest": {"devices", "storage", "alerts", "yiju.settings"},
    "alerts": {"devices", "storage"},
    "api": {"devices", "storage", "alerts", "yiju.settings"},
    "simulators": {"devices"},
    # bridges and partition workers compose ingest's pipeline and the engine (docs/scale-out.md)
    "yiju.scaleout": {"devices", "storage", "ingest", "alerts", "yiju.settings"},
    "yiju": set(PACKAGES),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {
    _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def _imports(path: Path) -> set[str]:
    """Every module `path` names in an import statement (at any depth, lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _imported_modules(path: Path) -> set[str]:
    """`_imports`, plus the modules named as `from pkg import mod`."""
    found = _imports(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _loads(module: str) -> set[str]:
    """The project modules importing `module` executes directly: what it imports, and the package
    `__init__` modules Python runs on the way to each (importing `a.b.c` runs `a` and `a.b` first)."""
    direct = {name for name in _imported_modules(MODULES[module]) if name in MODULES}
    parts = module.split(".")
    direct.update(".".join(parts[:i]) for i in range(1, len(parts)))
    for name in list(direct):
        bits = name.split(".")
        direct.update(".".join(bits[:i]) for i in range(1, len(bits)))
    direct.discard(module)
    return direct


GRAPH: dict[str, set[str]] = {module: _loads(module) for module in MODULES}


def _reach(start: str) -> dict[str, str]:
    """Every module `start` loads transitively, each with the first path found to it."""
    via: dict[str, str] = {}
    todo = [(start, start)]
    while todo:
        module, path = todo.pop()
        for nxt in sorted(GRAPH[module]):
            if nxt not in via and nxt != start:
                via[nxt] = f"{path} → {nxt}"
                todo.append((nxt, via[nxt]))
    return via


def _within(module: str, rules: set[str]) -> bool:
    return any(module == rule or module.startswith(rule + ".") for rule in rules)


def _inert(module: str) -> bool:
    """A package `__init__` that imports nothing of the project: loading it on the way to a leaf is
    harmless (a docstring, `__version__`)."""
    return MODULES[module].name == "__init__.py" and not (_imports(MODULES[module]) & MODULES.keys())


def _leaf(module: str) -> bool:
    return _within(module, LEAVES) or _inert(module)


def _owner(module: str) -> str:
    return max((key for key in ALLOWED if _within(module, {key})), key=len)


def _allowed(owner: str, module: str) -> bool:
    return _within(module, {owner}) or _leaf(module) or _within(module, ALLOWED[owner])


def test_the_import_graph_is_complete() -> None:
    assert MODULES.keys() >= LEAVES
    assert {"storage.alarms", "api.app", "yiju.settings"} <= MODULES.keys()


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaves_import_only_leaves(leaf: str) -> None:
    # the package __init__ modules a leaf loads count too: one that imported the package's machinery
    # would drag it into every importer of the leaf
    above = sorted(path for module, path in _reach(leaf).items() if not _leaf(module))
    assert above == []


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    """Transitively: a module may not reach a forbidden package through an allowed one."""
    violations = sorted(
        {
            path
            for module in MODULES
            if _owner(module) == package
            for target, path in _reach(module).items()
            if not _allowed(package, target)
        }
    )
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


def test_nats_stays_in_its_adapter() -> None:
    """nats-py (asyncio) is fenced in yiju/scaleout/jetstream.py, which translates its exceptions."""
    allowed = {ROOT / "yiju" / "scaleout" / "jetstream.py"}
    users = [
        path.relative_to(ROOT)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if any(m.split(".")[0] == "nats" for m in _imports(path)) and path not in allowed
    ]
    assert users == []


def test_nothing_below_the_root_imports_scaleout() -> None:
    """Single-node mode never needs NATS: only the composition root may import yiju.scaleout."""
    users = [
        path.relative_to(ROOT)
        for package in PACKAGES
        if package != "yiju"
        for path in (ROOT / package).rglob("*.py")
        if any(_within(m, {"yiju.scaleout"}) and m != "yiju.scaleout.config" for m in _imports(path))
    ]
    assert users == []


def test_every_alarm_type_has_severity_and_labels() -> None:
    assert set(ALARM_INFO) == set(AlarmType)
    assert all(info.zh and info.en for info in ALARM_INFO.values())


def test_check_names_match_the_schema() -> None:
    # the latest CHECK on compliance_findings.check_name (0001_core.sql, then 0008_self_test_findings.sql)
    sql = (ROOT / "storage" / "migrations" / "0008_self_test_findings.sql").read_text()
    for check in Check:
        assert f"'{check.value}'" in sql


def test_the_database_driver_stays_in_storage() -> None:
    """SQL, psycopg and its pool are storage's (LISTEN connections included); everyone else names the
    connection `storage.db.Connection` and catches Yiju's errors (storage.db.translated)."""
    found = [
        f"{path.relative_to(ROOT)} imports {module}"
        for package in PACKAGES
        if package != "storage"
        for path in (ROOT / package).rglob("*.py")
        for module in _imports(path)
        if module.split(".")[0] in {"psycopg", "psycopg_pool"}
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
