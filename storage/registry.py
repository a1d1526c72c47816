"""The device registry: organisations → communities → buildings → locations, and devices (0001_core.sql).

Everything is addressed by its natural codes (community code, building code, location code, device
uid), so imports and the simulator can upsert without knowing database ids. Bulk upserts go through a
temporary table filled with COPY and one `INSERT … SELECT … ON CONFLICT`, which registers a
7,000-device compound in well under a second of database time.

Storage sits below `devices` and reads its pure vocabulary (docs/architecture.md): ingest's registry
cache gets `devices.contract.DeviceRef`s (`load_device_refs`), and a parsed CSV import
(`devices.csv_import.ImportPlan`) is written by `import_plan`; the upserts take families as strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from devices.contract import DeviceRef, Family
from devices.csv_import import ImportPlan
from storage.db import first_line
from yiju.errors import DatabaseUnavailable, InputError, StorageError

LOCATION_KINDS = (
    "building", "floor", "unit", "stairwell", "lobby", "basement", "shed",
    "road", "entrance", "parking", "plant_room", "duty_room", "other",
)  # fmt: skip


class UnknownReference(InputError):
    """An upsert names a community, building or location that is not registered."""


@dataclass(frozen=True, slots=True)
class OrganisationIn:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class CommunityIn:
    code: str
    name: str
    organisation: str | None = None  # organisation code
    city: str | None = None
    address: str | None = None
    timezone: str = "Asia/Shanghai"
    latitude: float | None = None  # both or neither (0009_site_facts.sql): sunset for lamp schedules
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class BuildingIn:
    community: str
    code: str
    name: str
    floors: int | None = None
    units: int | None = None
    high_rise: bool = False


@dataclass(frozen=True, slots=True)
class LocationIn:
    community: str
    code: str
    kind: str
    name: str
    building: str | None = None  # building code
    floor: int | None = None
    unit: str | None = None
    evacuation_route: bool = False


@dataclass(frozen=True, slots=True)
class DeviceIn:
    uid: str
    community: str
    family: str
    location: str | None = None  # location code within the community
    model: str | None = None
    vendor: str | None = None
    install_date: date | None = None
    retrofit: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    room: str | None = None  # 房号 of a household device on its floor (0023_device_places.sql)
    post: str | None = None  # 桩号 of a charging post in its shed


@dataclass(frozen=True, slots=True)
class Community:
    id: int
    code: str
    name: str
    organisation: str | None
    city: str | None
    address: str | None
    timezone: str
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Device:
    id: int
    uid: str
    community: str
    community_id: int
    family: str
    location: str | None
    location_kind: str | None
    building: str | None
    floor: int | None
    unit: str | None
    evacuation_route: bool
    model: str | None
    vendor: str | None
    install_date: date | None
    retrofit: bool
    enabled: bool
    has_credentials: bool
    metadata: dict[str, Any]
    room: str | None = None
    post: str | None = None


@dataclass(frozen=True, slots=True)
class RegisteredDevice:
    """A device as ingest's registry cache holds it: its contract reference, and whether it is enabled
    (a disabled device's messages are refused as device_disabled rather than unknown_device)."""

    ref: DeviceRef
    enabled: bool


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    inserted: int
    updated: int
    # uids not written: registered in another community (moving needs `move=True`), or an MQTT
    # service-account username (`mqtt_reserved_usernames`); callers report them row by row
    refused: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Upserts


def upsert_organisation(conn: psycopg.Connection[Any], org: OrganisationIn) -> int:
    row = conn.execute(
        "INSERT INTO organisations (code, name) VALUES (%s, %s) "
        "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (org.code, org.name),
    ).fetchone()
    assert row is not None
    return int(row[0])


def upsert_community(conn: psycopg.Connection[Any], c: CommunityIn) -> int:
    if (c.latitude is None) != (c.longitude is None):
        raise InputError(f"community {c.code!r}: give both latitude and longitude, or neither")
    with conn.transaction():
        org_id = None
        if c.organisation is not None:
            found = conn.execute("SELECT id FROM organisations WHERE code = %s", (c.organisation,)).fetchone()
            if found is None:
                raise UnknownReference(f"organisation {c.organisation!r} is not registered")
            org_id = found[0]
        row = conn.execute(
            """
            INSERT INTO communities
                (organisation_id, code, name, city, address, timezone, latitude, longitude)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (code) DO UPDATE SET
                organisation_id = COALESCE(EXCLUDED.organisation_id, communities.organisation_id),
                name = EXCLUDED.name, city = EXCLUDED.city, address = EXCLUDED.address,
                timezone = EXCLUDED.timezone,
                latitude = COALESCE(EXCLUDED.latitude, communities.latitude),
                longitude = COALESCE(EXCLUDED.longitude, communities.longitude)
            RETURNING id
            """,
            (org_id, c.code, c.name, c.city, c.address, c.timezone, c.latitude, c.longitude),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _copy_in(
    conn: psycopg.Connection[Any], table: LiteralString, columns: LiteralString, rows: Iterable[Sequence[Any]]
) -> None:
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(r)


def _missing(conn: psycopg.Connection[Any], query: LiteralString, what: str) -> None:
    missing = [r[0] for r in conn.execute(query).fetchall()]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise UnknownReference(f"unknown {what}: {shown}")


def _counts(rows: list[tuple[Any, ...]]) -> UpsertCounts:
    inserted = sum(1 for (was_insert,) in rows if was_insert)
    return UpsertCounts(inserted=inserted, updated=len(rows) - inserted)


def upsert_buildings(conn: psycopg.Connection[Any], buildings: Sequence[BuildingIn]) -> UpsertCounts:
    if not buildings:
        return UpsertCounts(0, 0)
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE _buildings_in (community text, code text, name text, floors integer, "
            "units integer, high_rise boolean) ON COMMIT DROP"
        )
        _copy_in(
            conn,
            "_buildings_in",
            "community, code, name, floors, units, high_rise",
            ((b.community, b.code, b.name, b.floors, b.units, b.high_rise) for b in buildings),
        )
        _missing(
            conn,
            "SELECT DISTINCT community FROM _buildings_in EXCEPT SELECT code FROM communities",
            "community",
        )
        rows = conn.execute(
            """
            INSERT INTO buildings (community_id, code, name, floors, units, high_rise)
            SELECT DISTINCT ON (c.id, i.code) c.id, i.code, i.name, i.floors, i.units, i.high_rise
            FROM _buildings_in i JOIN communities c ON c.code = i.community
            ON CONFLICT (community_id, code) DO UPDATE SET
                name = EXCLUDED.name, floors = COALESCE(EXCLUDED.floors, buildings.floors),
                units = COALESCE(EXCLUDED.units, buildings.units), high_rise = EXCLUDED.high_rise
            RETURNING (xmax = 0)
            """
        ).fetchall()
    return _counts(rows)


def upsert_locations(conn: psycopg.Connection[Any], locations: Sequence[LocationIn]) -> UpsertCounts:
    if not locations:
        return UpsertCounts(0, 0)
    bad = sorted({loc.kind for loc in locations} - set(LOCATION_KINDS))
    if bad:
        raise InputError(
            f"unknown location kind(s) {', '.join(bad)}; expected one of {', '.join(LOCATION_KINDS)}"
        )
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE _locations_in (community text, code text, kind text, name text, "
            "building text, floor integer, unit text, evacuation_route boolean) ON COMMIT DROP"
        )
        _copy_in(
            conn,
            "_locations_in",
            "community, code, kind, name, building, floor, unit, evacuation_route",
            (
                (x.community, x.code, x.kind, x.name, x.building, x.floor, x.unit, x.evacuation_route)
                for x in locations
            ),
        )
        _missing(
            conn,
            "SELECT DISTINCT community FROM _locations_in EXCEPT SELECT code FROM communities",
            "community",
        )
        _missing(
            conn,
            """
            SELECT DISTINCT i.community || '/' || i.building FROM _locations_in i
            JOIN communities c ON c.code = i.community
            LEFT JOIN buildings b ON b.community_id = c.id AND b.code = i.building
            WHERE i.building IS NOT NULL AND b.id IS NULL
            """,
            "building",
        )
        rows = conn.execute(
            """
            INSERT INTO locations (community_id, building_id, kind, code, name, floor, unit, evacuation_route)
            SELECT DISTINCT ON (c.id, i.code) c.id, b.id, i.kind, i.code, i.name, i.floor, i.unit,
                   i.evacuation_route
            FROM _locations_in i
            JOIN communities c ON c.code = i.community
            LEFT JOIN buildings b ON b.community_id = c.id AND b.code = i.building
            ON CONFLICT (community_id, code) DO UPDATE SET
                building_id = EXCLUDED.building_id, kind = EXCLUDED.kind, name = EXCLUDED.name,
                floor = EXCLUDED.floor, unit = EXCLUDED.unit, evacuation_route = EXCLUDED.evacuation_route
            RETURNING (xmax = 0)
            """
        ).fetchall()
    return _counts(rows)


def upsert_devices(
    conn: psycopg.Connection[Any], devices: Sequence[DeviceIn], *, move: bool = False
) -> UpsertCounts:
    """Insert or update devices by uid. Credentials are never touched here (`set_credentials_hash`).

    Tenant rule (issue 10 §1): a uid registered in another community is never taken over; it is
    refused (`UpsertCounts.refused`) unless `move=True`, which only an admin's explicit move passes
    (the caller writes the audit row). Enforced by the `WHERE` of the `ON CONFLICT … DO UPDATE`, so a
    concurrent import cannot slip past it; the query before it only names the refused uids.
    Reserved MQTT usernames are refused too (also enforced by the `devices_uid_not_reserved` trigger).
    """
    if not devices:
        return UpsertCounts(0, 0)
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE _devices_in (uid text, community text, location text, family text, "
            "model text, vendor text, install_date date, retrofit boolean, metadata jsonb, enabled boolean, "
            "room text, post text) "
            "ON COMMIT DROP"
        )
        _copy_in(
            conn,
            "_devices_in",
            "uid, community, location, family, model, vendor, install_date, retrofit, metadata, enabled, "
            "room, post",
            (
                (
                    d.uid, d.community, d.location, d.family, d.model, d.vendor, d.install_date,
                    d.retrofit, Jsonb(d.metadata), d.enabled, d.room, d.post,
                )
                for d in devices
            ),
        )  # fmt: skip
        _missing(
            conn,
            "SELECT DISTINCT community FROM _devices_in EXCEPT SELECT code FROM communities",
            "community",
        )
        _missing(
            conn,
            """
            SELECT DISTINCT i.community || '/' || i.location FROM _devices_in i
            JOIN communities c ON c.code = i.community
            LEFT JOIN locations l ON l.community_id = c.id AND l.code = i.location
            WHERE i.location IS NOT NULL AND l.id IS NULL
            """,
            "location",
        )
        refused = [
            r[0]
            for r in conn.execute(
                """
                SELECT DISTINCT i.uid FROM _devices_in i JOIN communities c ON c.code = i.community
                WHERE EXISTS (SELECT 1 FROM mqtt_reserved_usernames r WHERE r.username = i.uid)
                   OR (NOT %(move)s AND EXISTS (
                        SELECT 1 FROM devices d WHERE d.uid = i.uid AND d.community_id <> c.id))
                ORDER BY i.uid
                """,
                {"move": move},
            ).fetchall()
        ]
        try:
            rows = conn.execute(
                """
                INSERT INTO devices (uid, community_id, location_id, family, model, vendor, install_date,
                                     retrofit, metadata, enabled, room, post)
                SELECT DISTINCT ON (i.uid) i.uid, c.id, l.id, i.family, i.model, i.vendor, i.install_date,
                       i.retrofit, i.metadata, i.enabled, i.room, i.post
                FROM _devices_in i
                JOIN communities c ON c.code = i.community
                LEFT JOIN locations l ON l.community_id = c.id AND l.code = i.location
                WHERE NOT EXISTS (SELECT 1 FROM mqtt_reserved_usernames r WHERE r.username = i.uid)
                ON CONFLICT (uid) DO UPDATE SET
                    community_id = EXCLUDED.community_id, location_id = EXCLUDED.location_id,
                    family = EXCLUDED.family, model = EXCLUDED.model, vendor = EXCLUDED.vendor,
                    install_date = EXCLUDED.install_date, retrofit = EXCLUDED.retrofit,
                    metadata = EXCLUDED.metadata, enabled = EXCLUDED.enabled, room = EXCLUDED.room,
                    post = EXCLUDED.post, updated_at = now()
                WHERE devices.community_id = EXCLUDED.community_id OR %(move)s
                RETURNING (xmax = 0)
                """,
                {"move": move},
            ).fetchall()
        except psycopg.errors.CheckViolation as exc:
            raise InputError(f"device refused by the registry: {exc.diag.message_primary}") from exc
        counts = _counts(rows)
    return UpsertCounts(counts.inserted, counts.updated, tuple(refused))


def set_credentials_hash(conn: psycopg.Connection[Any], uid: str, credentials_hash: str | None) -> None:
    cur = conn.execute(
        "UPDATE devices SET credentials_hash = %s, updated_at = now() WHERE uid = %s", (credentials_hash, uid)
    )
    if cur.rowcount != 1:
        raise UnknownReference(f"device {uid!r} is not registered")


def set_credentials_hashes(conn: psycopg.Connection[Any], hashes: dict[str, str]) -> int:
    """Bulk form of `set_credentials_hash`; returns how many devices were updated."""
    if not hashes:
        return 0
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE _creds_in (uid text, credentials_hash text) ON COMMIT DROP")
        _copy_in(conn, "_creds_in", "uid, credentials_hash", hashes.items())
        _missing(conn, "SELECT uid FROM _creds_in EXCEPT SELECT uid FROM devices", "device")
        cur = conn.execute(
            "UPDATE devices d SET credentials_hash = i.credentials_hash, updated_at = now() "
            "FROM _creds_in i WHERE d.uid = i.uid"
        )
    return cur.rowcount


def reserve_mqtt_usernames(conn: psycopg.Connection[Any], usernames: Iterable[str], reason: str) -> None:
    """Reserve MQTT service-account usernames so that no device can be registered under them.

    Raises InputError naming any that already is a device uid: the broker has one user namespace, and
    a device logging in as a service account would read every community's telemetry (issue 10 §2).
    """
    names = sorted(set(usernames))
    if not names:
        return
    with conn.transaction():
        clash = [
            r[0]
            for r in conn.execute(
                "SELECT uid FROM devices WHERE uid = ANY(%s) ORDER BY uid", (names,)
            ).fetchall()
        ]
        if clash:
            raise InputError(f"MQTT username(s) already used by a device: {', '.join(clash)}")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO mqtt_reserved_usernames (username, reason) VALUES (%s, %s) "
                "ON CONFLICT (username) DO NOTHING",
                [(n, reason) for n in names],
            )


# ---------------------------------------------------------------------------------------------
# Reads

_COMMUNITY_SELECT: LiteralString = """
    SELECT c.id, c.code, c.name, o.code AS organisation, c.city, c.address, c.timezone, c.settings
    FROM communities c LEFT JOIN organisations o ON o.id = c.organisation_id
"""

_DEVICE_SELECT: LiteralString = """
    SELECT d.id, d.uid, c.code AS community, d.community_id, d.family, l.code AS location,
           l.kind AS location_kind, b.code AS building, l.floor, l.unit,
           COALESCE(l.evacuation_route, false) AS evacuation_route, d.model, d.vendor, d.install_date,
           d.retrofit, d.enabled, d.credentials_hash IS NOT NULL AS has_credentials, d.metadata,
           d.room, d.post
    FROM devices d
    JOIN communities c ON c.id = d.community_id
    LEFT JOIN locations l ON l.id = d.location_id
    LEFT JOIN buildings b ON b.id = l.building_id
"""


def get_community(conn: psycopg.Connection[Any], code: str) -> Community | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_COMMUNITY_SELECT + " WHERE c.code = %s", (code,)).fetchone()
    return Community(**row) if row else None


def list_communities(conn: psycopg.Connection[Any]) -> list[Community]:
    with conn.cursor(row_factory=dict_row) as cur:
        return [Community(**r) for r in cur.execute(_COMMUNITY_SELECT + " ORDER BY c.code").fetchall()]


def get_device(conn: psycopg.Connection[Any], uid: str) -> Device | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_DEVICE_SELECT + " WHERE d.uid = %s", (uid,)).fetchone()
    return Device(**row) if row else None


def list_devices(
    conn: psycopg.Connection[Any], *, community: str | None = None, family: str | None = None
) -> list[Device]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            _DEVICE_SELECT
            + " WHERE (%(community)s::text IS NULL OR c.code = %(community)s)"
            + " AND (%(family)s::text IS NULL OR d.family = %(family)s) ORDER BY d.uid",
            {"community": community, "family": family},
        ).fetchall()
    return [Device(**r) for r in rows]


def credentials(
    conn: psycopg.Connection[Any], *, community: str | None = None
) -> list[tuple[str, str, str | None]]:
    """(uid, community code, credentials hash or None) of enabled devices, for broker files."""
    rows = conn.execute(
        "SELECT d.uid, c.code, d.credentials_hash FROM devices d JOIN communities c ON c.id = d.community_id "
        "WHERE d.enabled AND (%(community)s::text IS NULL OR c.code = %(community)s) ORDER BY d.uid",
        {"community": community},
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def require_community(conn: psycopg.Connection[Any], code: str) -> Community:
    found = get_community(conn, code)
    if found is None:
        raise UnknownReference(f"community {code!r} is not registered")
    return found


def import_plan(conn: psycopg.Connection[Any], plan: ImportPlan) -> UpsertCounts:
    """Write a parsed CSV import (its buildings, locations and devices) in one transaction: the API's
    upload and `yiju devices import` share this one mapping of the plan onto the registry."""
    c = plan.community
    with conn.transaction():
        upsert_buildings(conn, [BuildingIn(c, b.code, b.name) for b in plan.buildings])
        upsert_locations(
            conn,
            [
                LocationIn(c, x.code, x.kind, x.name, x.building, x.floor, x.unit, x.evacuation_route)
                for x in plan.locations
            ],
        )
        return upsert_devices(
            conn,
            [
                DeviceIn(
                    uid=d.uid,
                    community=c,
                    family=d.family.value,
                    location=d.location,
                    model=d.model,
                    vendor=d.vendor,
                    install_date=d.install_date,
                    retrofit=d.retrofit,
                    metadata=d.metadata,
                    room=d.room,
                    post=d.post,
                )
                for d in plan.devices
            ],
        )


# --------------------------------------------------------------------------------------------------
# The registry as ingest sees it


def load_device_refs(
    conn: psycopg.Connection[Any], uids: Sequence[str] | None = None
) -> list[RegisteredDevice]:
    """Every device with its community code, for ingest's cached registry (disabled ones included,
    so that their messages are refused as device_disabled rather than unknown_device); or only the
    devices `uids` (a cache miss, a change notification). A row whose family the contract does not know
    is left out (its messages read as unknown_device). Raises `DatabaseUnavailable`/`StorageError`."""
    query = (
        "SELECT d.uid, d.id, c.code, c.id, d.family, d.enabled "
        "FROM devices d JOIN communities c ON c.id = d.community_id"
    )
    try:
        if uids is None:
            rows = conn.execute(query).fetchall()
        else:
            rows = conn.execute(query + " WHERE d.uid = ANY(%s)", (list(uids),)).fetchall()
    except psycopg.Error as exc:
        raise _registry_error(exc) from exc
    known = {f.value: f for f in Family}
    return [
        RegisteredDevice(DeviceRef(int(r[1]), r[0], r[2], int(r[3]), known[r[4]]), bool(r[5]))
        for r in rows
        if r[4] in known
    ]


def load_community_ids(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Community code → id (to attribute dead letters that name no registered device)."""
    try:
        rows = conn.execute("SELECT code, id FROM communities").fetchall()
    except psycopg.Error as exc:
        raise _registry_error(exc) from exc
    return {r[0]: int(r[1]) for r in rows}


def _registry_error(exc: psycopg.Error) -> DatabaseUnavailable | StorageError:
    if isinstance(exc, psycopg.OperationalError) or exc.sqlstate is None:
        return DatabaseUnavailable(f"registry not read: {first_line(exc)}")
    return StorageError(f"registry not read: {first_line(exc)}")
