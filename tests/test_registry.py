"""The registry on a real database: upserts by natural codes, bulk speed, reads, credentials."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import psycopg
import pytest

from storage import registry
from storage.db import connection
from yiju.errors import InputError

FAMILIES = ("smoke_alarm", "gas_alarm", "light", "elevator", "access_door", "ebike_charger", "cctv_recorder")
BULK_DEVICES = 7_000
BULK_BUDGET_S = 10.0  # "a few seconds" on a quiet machine; generous for a shared 2-core box


def _compound(conn: psycopg.Connection[Any], code: str = "c1") -> None:
    registry.upsert_organisation(conn, registry.OrganisationIn("org1", "宜居物业"))
    registry.upsert_community(conn, registry.CommunityIn(code, "一号小区", organisation="org1", city="杭州"))


def test_upsert_and_read_back(db_url: str) -> None:
    with connection(db_url, autocommit=True) as conn:
        _compound(conn)
        assert registry.get_community(conn, "c1") is not None
        assert registry.get_community(conn, "c1").organisation == "org1"  # type: ignore[union-attr]
        counts = registry.upsert_buildings(
            conn, [registry.BuildingIn("c1", "B1", "1号楼", floors=18, units=2, high_rise=True)]
        )
        assert counts == registry.UpsertCounts(1, 0)
        registry.upsert_locations(
            conn,
            [
                registry.LocationIn(
                    "c1", "B1-ENT", "entrance", "1号楼大堂", building="B1", floor=1, evacuation_route=True
                ),
                registry.LocationIn("c1", "SHED-1", "shed", "1号车棚"),
            ],
        )
        counts = registry.upsert_devices(
            conn,
            [
                registry.DeviceIn(
                    "DOOR-1",
                    "c1",
                    "access_door",
                    location="B1-ENT",
                    vendor="V",
                    install_date=date(2024, 1, 2),
                ),
                registry.DeviceIn("CHG-1", "c1", "ebike_charger", location="SHED-1", metadata={"ports": 10}),
                registry.DeviceIn("OLD-1", "c1", "light", enabled=False),
            ],
        )
        assert counts == registry.UpsertCounts(3, 0)
        door = registry.get_device(conn, "DOOR-1")
        assert door is not None
        assert (door.community, door.building, door.location, door.location_kind, door.floor) == (
            "c1",
            "B1",
            "B1-ENT",
            "entrance",
            1,
        )
        assert door.evacuation_route and door.install_date == date(2024, 1, 2) and not door.has_credentials
        assert registry.get_device(conn, "CHG-1").metadata == {"ports": 10}  # type: ignore[union-attr]
        assert [d.uid for d in registry.list_devices(conn, family="ebike_charger")] == ["CHG-1"]

        # an update moves the device and keeps its id
        again = registry.upsert_devices(
            conn, [registry.DeviceIn("CHG-1", "c1", "ebike_charger", location=None, model="X10P")]
        )
        assert again == registry.UpsertCounts(0, 1)
        moved = registry.get_device(conn, "CHG-1")
        assert (
            moved is not None and moved.id == registry.get_device(conn, "CHG-1").id and moved.location is None
        )  # type: ignore[union-attr]

        refs = {r.ref.uid: r for r in registry.load_device_refs(conn)}
        assert set(refs) == {"DOOR-1", "CHG-1", "OLD-1"}
        assert refs["DOOR-1"].ref.community == "c1" and refs["DOOR-1"].ref.family == "access_door"
        assert refs["OLD-1"].enabled is False and refs["DOOR-1"].enabled is True
        assert refs["CHG-1"].ref.id == moved.id

        registry.set_credentials_hash(conn, "DOOR-1", "$7$101$abc$def")
        assert registry.get_device(conn, "DOOR-1").has_credentials  # type: ignore[union-attr]
        # disabled devices get no broker account
        assert [(u, h) for u, _, h in registry.credentials(conn)] == [
            ("CHG-1", None),
            ("DOOR-1", "$7$101$abc$def"),
        ]


def test_unknown_references_and_bad_values_are_refused(db_url: str) -> None:
    with connection(db_url, autocommit=True) as conn:
        _compound(conn)
        with pytest.raises(registry.UnknownReference, match="community: nope"):
            registry.upsert_devices(conn, [registry.DeviceIn("X-1", "nope", "light")])
        with pytest.raises(registry.UnknownReference, match="location: c1/L404"):
            registry.upsert_devices(conn, [registry.DeviceIn("X-1", "c1", "light", location="L404")])
        with pytest.raises(registry.UnknownReference, match="building: c1/B9"):
            registry.upsert_locations(conn, [registry.LocationIn("c1", "L1", "floor", "x", building="B9")])
        with pytest.raises(InputError, match="location kind"):
            registry.upsert_locations(conn, [registry.LocationIn("c1", "L1", "garden", "x")])
        with pytest.raises(InputError, match="refused"):
            registry.upsert_devices(conn, [registry.DeviceIn("X-1", "c1", "toaster")])
        with pytest.raises(registry.UnknownReference):
            registry.set_credentials_hash(conn, "ghost", "h")
        with pytest.raises(registry.UnknownReference, match="device: ghost"):
            registry.set_credentials_hashes(conn, {"ghost": "h"})
        assert registry.list_devices(conn) == []  # nothing half-written


def test_bulk_registration_of_a_typical_compound(db_url: str) -> None:
    with connection(db_url, autocommit=True) as conn:
        _compound(conn)
        buildings = [registry.BuildingIn("c1", f"B{b}", f"{b}号楼", floors=30) for b in range(1, 41)]
        locations = [
            registry.LocationIn("c1", f"B{b}-{f}", "floor", f"{b}号楼{f}层", building=f"B{b}", floor=f)
            for b in range(1, 41)
            for f in range(1, 31)
        ]
        devices = [
            registry.DeviceIn(
                f"D{i:05d}", "c1", FAMILIES[i % len(FAMILIES)], location=f"B{i % 40 + 1}-{i % 30 + 1}"
            )
            for i in range(BULK_DEVICES)
        ]
        t0 = time.perf_counter()
        registry.upsert_buildings(conn, buildings)
        registry.upsert_locations(conn, locations)
        counts = registry.upsert_devices(conn, devices)
        elapsed = time.perf_counter() - t0
        assert counts == registry.UpsertCounts(BULK_DEVICES, 0)
        assert elapsed < BULK_BUDGET_S, f"{elapsed:.1f} s"
        t0 = time.perf_counter()
        assert registry.upsert_devices(conn, devices) == registry.UpsertCounts(0, BULK_DEVICES)
        refs = {r.ref.uid: r for r in registry.load_device_refs(conn)}
        assert len(refs) == BULK_DEVICES and refs["D00007"].ref.family == FAMILIES[0]
        hashes = {uid: f"h-{uid}" for uid in list(refs)[:3000]}
        assert registry.set_credentials_hashes(conn, hashes) == 3000
        assert time.perf_counter() - t0 < BULK_BUDGET_S
        print(f"registered {BULK_DEVICES} devices in {elapsed:.2f} s")
