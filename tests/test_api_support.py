"""Shared fixtures of the API tests: two communities with buildings, devices, alarms and users of
every role, and a client of the real application on the real database (no mocks)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from points_support import insert_points

from api.app import create_app
from storage import alarms, users
from storage.db import connect
from storage.users import Role
from yiju.embedded import free_port
from yiju.settings import Settings

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
PASSWORD = "correct-horse-battery"


@dataclass
class World:
    url: str
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def seed(url: str) -> World:
    """Communities A and B (plain SQL: fixture data), one building, a location, devices, points,
    alarms raised through storage.alarms, and a user of each role."""
    world = World(url)
    ids = world.ids
    with connect(url, autocommit=True) as conn:
        for key in ("a", "b"):
            cid = conn.execute(
                "INSERT INTO communities (code, name, city) VALUES (%s, %s, '杭州') RETURNING id",
                (f"comm-{key}", f"小区{key.upper()}"),
            ).fetchone()
            assert cid
            ids[f"comm_{key}"] = cid[0]
            bid = conn.execute(
                "INSERT INTO buildings (community_id, code, name, floors) VALUES (%s, 'B1', '1号楼', 18) "
                "RETURNING id",
                cid,
            ).fetchone()
            assert bid
            ids[f"bldg_{key}"] = bid[0]
            lid = conn.execute(
                "INSERT INTO locations (community_id, building_id, kind, code, name, floor) "
                "VALUES (%s, %s, 'floor', 'B1-F6', '1号楼 6层', 6) RETURNING id",
                (cid[0], bid[0]),
            ).fetchone()
            assert lid
            for family, uid in (("smoke_alarm", f"smk-{key}1"), ("ebike_charger", f"chg-{key}1")):
                did = conn.execute(
                    "INSERT INTO devices (uid, community_id, location_id, family) VALUES (%s, %s, %s, %s) "
                    "RETURNING id",
                    (uid, cid[0], lid[0], family),
                ).fetchone()
                assert did
                ids[uid] = did[0]
            conn.execute(
                "INSERT INTO device_presence (device_id, online, status, last_seen) "
                "VALUES (%s, true, 'online', %s)",
                (ids[f"smk-{key}1"], T0),
            )
        # telemetry points for charts: one per minute for an hour on port 1
        insert_points(
            conn,
            [
                (T0 + timedelta(minutes=i), ids["chg-a1"], "port_temperature_c", 1, 30.0 + i / 10)
                for i in range(60)
            ],
        )
        change = alarms.raise_or_update(
            conn,
            community_id=ids["comm_a"],
            device_id=ids["smk-a1"],
            type="fire_alarm",
            severity="critical",
            at=T0,
            source="device",
        )
        ids["alarm_a"] = change.alarm.id
        change = alarms.raise_or_update(
            conn,
            community_id=ids["comm_a"],
            device_id=ids["chg-a1"],
            type="charger_over_temperature",
            severity="major",
            at=T0 + timedelta(minutes=5),
        )
        ids["alarm_a2"] = change.alarm.id
        change = alarms.raise_or_update(
            conn,
            community_id=ids["comm_b"],
            device_id=ids["smk-b1"],
            type="fire_alarm",
            severity="critical",
            at=T0,
        )
        ids["alarm_b"] = change.alarm.id
        for name, role, scope in (
            ("admin", Role.ADMIN, ()),
            ("manager_a", Role.MANAGER, ("comm_a",)),
            ("operator_a", Role.OPERATOR, ("comm_a",)),
            ("viewer_a", Role.VIEWER, ("comm_a",)),
            ("manager_b", Role.MANAGER, ("comm_b",)),
        ):
            user = users.create_user(
                conn, username=name, role=role, password=None, community_ids=frozenset(ids[s] for s in scope)
            )
            # one scrypt hash for every fixture user and every test (each costs ~0.1-0.5 s of CPU)
            conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (_password_hash(), user.id))
            ids[f"user_{name}"] = user.id
            world.tokens[name], _ = users.issue_token(conn, user.id, timedelta(hours=1))
    return world


@functools.cache
def _password_hash() -> str:
    return users.hash_password(PASSWORD)


@pytest.fixture
def world(settings: Settings) -> World:
    assert settings.database.url
    return seed(settings.database.url)


@pytest.fixture
def client(settings: Settings, world: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def audit_rows(url: str, action: str) -> list[dict[str, Any]]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT actor, target_id, community_id FROM audit_log WHERE action = %s ORDER BY id", (action,)
        ).fetchall()
    return [{"actor": r[0], "target_id": r[1], "community_id": r[2]} for r in rows]


@dataclass
class LiveServer:
    """The application under uvicorn on a free loopback port, in a thread this fixture owns."""

    base: str
    app: Any


def wait_for(condition: Any, deadline_s: float, what: str) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")


@contextmanager
def serve(settings: Settings) -> Iterator[LiveServer]:
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 15, "uvicorn to start")
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def live(settings: Settings, world: World) -> Iterator[LiveServer]:
    with serve(settings) as server:
        yield server
