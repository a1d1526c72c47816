"""The device page as the app serves it from plain rows (storage/sites.list_device_tuples,
api/fastjson.from_rows: the metadata written as PostgreSQL's jsonb text) is the page FastAPI writes
for DeviceOut built from the typed rows (storage/sites.list_devices), on the real database: metadata
of every JSON shape (nested, non-ASCII, escapes, big integers, floats written with an exponent), the
scope and the cursor unchanged. The checks that only need the device's community (telemetry, metrics,
events) still answer 404 for another community's device and an unknown one."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb
from pydantic import TypeAdapter
from test_api_fastjson import same_json
from test_api_support import World, client, world

from api.devices.schemas import DeviceOut
from storage import sites
from storage.db import connect

__all__ = ["client", "world"]  # fixtures used by name

V1 = "/api/v1"

METADATA: list[dict[str, Any]] = [
    {},
    {"floor_plan": "A3", "sn": 12345},
    {"上游": "消防控制室", "note": 'quoted "x" \\ / \t \u0001 \u2028 😀'},
    {"big": 10**30, "neg": -(2**63), "zero": 0, "minus_zero": -0.0},
    {"tiny": 1.5e-7, "huge": 1e16, "third": 1 / 3, "tenth": 0.1, "whole": 150.0},
    {"nested": {"a": [1, 2.5, {"b": None}], "c": [True, False, []], "d": {}}},
    {"": "empty key", "long": "x" * 300},
]


def _model_page(url: str, community_ids: list[int] | None, after_id: int | None, limit: int) -> bytes:
    """The page of the model path: typed rows validated into DeviceOut, as FastAPI writes them."""
    with connect(url) as conn:
        rows = sites.list_devices(conn, community_ids=community_ids, after_id=after_id, limit=limit)
    adapter = TypeAdapter(list[DeviceOut])
    return adapter.dump_json(adapter.validate_python(rows, from_attributes=True))


def test_the_device_page_is_the_models_page(client: TestClient, world: World) -> None:
    with connect(world.url, autocommit=True) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM devices WHERE community_id = %s ORDER BY id", (world.ids["comm_a"],)
            ).fetchall()
        ]
        assert len(ids) >= 2
        for i, device_id in enumerate(ids):
            conn.execute(
                "UPDATE devices SET metadata = %s WHERE id = %s",
                (Jsonb(METADATA[i % len(METADATA)]), device_id),
            )
        extra = [m for i, m in enumerate(METADATA) if i >= len(ids)]
        # every shape on some device: the rest on the first one, merged
        merged = {f"m{i}": m for i, m in enumerate(extra)}
        conn.execute("UPDATE devices SET metadata = metadata || %s WHERE id = %s", (Jsonb(merged), ids[0]))
        # a date and the optional texts set on one device, presence on another (the fixture's)
        conn.execute(
            "UPDATE devices SET install_date = '2024-05-01', model = 'JTY-GD-01', vendor = '海康' "
            "WHERE id = %s",
            (ids[-1],),
        )
        assert conn.execute(
            "SELECT count(*) FROM device_presence WHERE device_id = ANY(%s) AND last_seen IS NOT NULL", (ids,)
        ).fetchone() != (0,)

    for who, scope in (("manager_a", [world.ids["comm_a"]]), ("admin", None)):
        r = client.get(f"{V1}/devices?limit=500", headers=world.auth(who))
        assert r.status_code == 200, r.text
        assert r.json()["next_cursor"] is None
        served = json.dumps(r.json()["items"]).encode()
        assert same_json(served, _model_page(world.url, scope, None, 500)), who

    # a page and the next one from its cursor: the same rows as the model path's pages
    first = client.get(f"{V1}/devices?limit=1", headers=world.auth("manager_a")).json()
    assert first["next_cursor"] and [d["id"] for d in first["items"]] == ids[:1]
    assert same_json(
        json.dumps(first["items"]).encode(), _model_page(world.url, [world.ids["comm_a"]], None, 1)
    )
    rest = client.get(
        f"{V1}/devices?limit=500&cursor={first['next_cursor']}", headers=world.auth("manager_a")
    ).json()
    assert same_json(
        json.dumps(rest["items"]).encode(), _model_page(world.url, [world.ids["comm_a"]], ids[0], 500)
    )
    assert {d["community_id"] for d in rest["items"]} == {world.ids["comm_a"]}


def test_the_device_checks_still_hide_other_communities(client: TestClient, world: World) -> None:
    mgr = world.auth("manager_a")
    for device in (world.ids["smk-b1"], 987654):
        for tail in ("/telemetry?metric=x", "/metrics", "/events"):
            r = client.get(f"{V1}/devices/{device}{tail}", headers=mgr)
            assert r.status_code == 404 and r.json()["error"] == "not_found", (device, tail, r.text)
    own = world.ids["chg-a1"]
    for tail in ("/telemetry?metric=port_temperature_c&channel=1", "/metrics", "/events"):
        assert client.get(f"{V1}/devices/{own}{tail}", headers=mgr).status_code == 200, tail
