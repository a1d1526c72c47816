"""The site tree as people read it: communities → buildings → locations → devices, each with the
live counts the duty room needs (devices online/offline, open alarms by severity) and devices with
their location and presence. The registry's writes and natural-code lookups are `storage.registry`.

Every list takes `community_ids`: None means every community (an admin), otherwise only those. Lists
are ordered by id and paged with `after_id` (the last id of the previous page) and `limit`.

Rows are frozen dataclasses whose fields are the queries' columns, name for name (`record_row` builds
them, so a column the query does not select fails at once rather than in a router).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, LiteralString, TypeVar

import psycopg

from devices.contract import Family
from storage.db import record_row


@dataclass(frozen=True, slots=True)
class CommunityRow:
    """A community as the registry holds it (its own columns)."""

    id: int
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class BuildingRow:
    """A building as the registry holds it (its own columns)."""

    id: int
    community_id: int
    code: str
    name: str
    floors: int | None
    units: int | None
    high_rise: bool


@dataclass(frozen=True, slots=True)
class LocationRow:
    """A location as the registry holds it (the columns the site plan needs)."""

    id: int
    community_id: int
    building_id: int | None
    kind: str
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Community(CommunityRow):
    """A community with its place, time zone and counts."""

    city: str | None
    address: str | None
    timezone: str
    latitude: float | None
    longitude: float | None
    created_at: datetime
    buildings: int
    devices: int
    open_alarms: int


@dataclass(frozen=True, slots=True)
class Building(BuildingRow):
    """A building and its live status: devices at its locations by presence, open alarms by severity."""

    devices: int
    online: int
    offline: int
    unknown: int  # never reported
    critical: int
    major: int
    minor: int
    warning: int
    unacknowledged: int


@dataclass(frozen=True, slots=True)
class Location(LocationRow):
    """A location with its floor and unit."""

    floor: int | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class SiteDevice:
    """A device with where it is, its presence and its open alarms."""

    id: int
    uid: str
    community_id: int
    family: Family
    model: str | None
    vendor: str | None
    install_date: date | None
    retrofit: bool
    enabled: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    location_id: int | None
    location_name: str | None
    floor: int | None
    unit: str | None
    building_id: int | None
    building_name: str | None
    online: bool | None  # None: never reported
    presence_status: str | None
    last_seen: datetime | None
    last_seq: int | None
    open_alarms: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "family", Family(self.family))  # the column is text


_Row = TypeVar("_Row")


def _rows(conn: psycopg.Connection[Any], row: type[_Row], query: LiteralString, params: Any) -> list[_Row]:
    with conn.cursor(row_factory=record_row(row)) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _one(conn: psycopg.Connection[Any], row: type[_Row], query: LiteralString, params: Any) -> _Row | None:
    rows = _rows(conn, row, query, params)
    return rows[0] if rows else None


def scope_params(community_ids: Sequence[int] | None) -> dict[str, Any]:
    return {"all": community_ids is None, "cids": list(community_ids or ())}


# ---------------------------------------------------------------------------------------------
# Communities and buildings

_COMMUNITY: LiteralString = """
    SELECT c.id, c.code, c.name, c.city, c.address, c.timezone, c.latitude, c.longitude, c.created_at,
           (SELECT count(*) FROM buildings b WHERE b.community_id = c.id) AS buildings,
           (SELECT count(*) FROM devices d WHERE d.community_id = c.id) AS devices,
           (SELECT count(*) FROM alarms a WHERE a.community_id = c.id AND a.status = 'active') AS open_alarms
    FROM communities c
"""


def list_communities(
    conn: psycopg.Connection[Any], *, community_ids: Sequence[int] | None, after_id: int | None, limit: int
) -> list[Community]:
    return _rows(
        conn,
        Community,
        _COMMUNITY
        + " WHERE (%(all)s OR c.id = ANY(%(cids)s)) AND (%(after)s::bigint IS NULL OR c.id > %(after)s)"
        " ORDER BY c.id LIMIT %(limit)s",
        {**scope_params(community_ids), "after": after_id, "limit": limit},
    )


def get_community(conn: psycopg.Connection[Any], community_id: int) -> Community | None:
    return _one(conn, Community, _COMMUNITY + " WHERE c.id = %s", (community_id,))


# Per building: devices (online/offline/never seen) and open alarms by severity, so the duty room sees
# at a glance where something is wrong.
_BUILDING: LiteralString = """
    SELECT b.id, b.community_id, b.code, b.name, b.floors, b.units, b.high_rise,
           coalesce(ds.devices, 0) AS devices, coalesce(ds.online, 0) AS online,
           coalesce(ds.offline, 0) AS offline, coalesce(ds.unknown, 0) AS unknown,
           coalesce(al.critical, 0) AS critical, coalesce(al.major, 0) AS major,
           coalesce(al.minor, 0) AS minor, coalesce(al.warning, 0) AS warning,
           coalesce(al.unacknowledged, 0) AS unacknowledged
    FROM buildings b
    LEFT JOIN LATERAL (
        SELECT count(*) AS devices,
               count(*) FILTER (WHERE p.online) AS online,
               count(*) FILTER (WHERE p.online = false) AS offline,
               count(*) FILTER (WHERE p.device_id IS NULL) AS unknown
        FROM devices d JOIN locations l ON l.id = d.location_id
        LEFT JOIN device_presence p ON p.device_id = d.id
        WHERE l.building_id = b.id
    ) ds ON true
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE a.severity = 'critical') AS critical,
               count(*) FILTER (WHERE a.severity = 'major') AS major,
               count(*) FILTER (WHERE a.severity = 'minor') AS minor,
               count(*) FILTER (WHERE a.severity = 'warning') AS warning,
               count(*) FILTER (WHERE NOT a.acknowledged) AS unacknowledged
        FROM alarms a JOIN devices d ON d.id = a.device_id JOIN locations l ON l.id = d.location_id
        WHERE l.building_id = b.id AND a.status = 'active'
    ) al ON true
"""


def list_buildings(
    conn: psycopg.Connection[Any],
    *,
    community_ids: Sequence[int] | None,
    after_id: int | None,
    limit: int,
) -> list[Building]:
    return _rows(
        conn,
        Building,
        _BUILDING + " WHERE (%(all)s OR b.community_id = ANY(%(cids)s))"
        " AND (%(after)s::bigint IS NULL OR b.id > %(after)s) ORDER BY b.id LIMIT %(limit)s",
        {**scope_params(community_ids), "after": after_id, "limit": limit},
    )


def get_building(conn: psycopg.Connection[Any], building_id: int) -> Building | None:
    return _one(conn, Building, _BUILDING + " WHERE b.id = %s", (building_id,))


def find_building(conn: psycopg.Connection[Any], community_id: int, code: str) -> Building | None:
    return _one(
        conn, Building, _BUILDING + " WHERE b.community_id = %s AND b.code = %s", (community_id, code)
    )


def find_location(conn: psycopg.Connection[Any], community_id: int, code: str) -> Location | None:
    return _one(
        conn,
        Location,
        "SELECT id, community_id, building_id, kind, code, name, floor, unit FROM locations "
        "WHERE community_id = %s AND code = %s",
        (community_id, code),
    )


# ---------------------------------------------------------------------------------------------
# Devices with presence

_DEVICE: LiteralString = """
    SELECT d.id, d.uid, d.community_id, d.family, d.model, d.vendor, d.install_date, d.retrofit,
           d.enabled, d.metadata, d.created_at, d.updated_at,
           d.location_id, l.name AS location_name, l.floor, l.unit, l.building_id, b.name AS building_name,
           p.online, p.status AS presence_status, p.last_seen, p.last_seq,
           (SELECT count(*) FROM alarms a WHERE a.device_id = d.id AND a.status = 'active') AS open_alarms
    FROM devices d
    LEFT JOIN locations l ON l.id = d.location_id
    LEFT JOIN buildings b ON b.id = l.building_id
    LEFT JOIN device_presence p ON p.device_id = d.id
"""


_DEVICE_FILTERS: LiteralString = """ WHERE (%(all)s OR d.community_id = ANY(%(cids)s))
          AND (%(building)s::bigint IS NULL OR l.building_id = %(building)s)
          AND (%(family)s::text IS NULL OR d.family = %(family)s)
          AND (%(online)s::boolean IS NULL OR coalesce(p.online, false) = %(online)s)
          AND (%(search)s::text IS NULL OR d.uid ILIKE '%%' || %(search)s || '%%'
               OR l.name ILIKE '%%' || %(search)s || '%%')
          AND (%(after)s::integer IS NULL OR d.id > %(after)s)
          ORDER BY d.id LIMIT %(limit)s"""


def _device_params(
    *,
    community_ids: Sequence[int] | None,
    building_id: int | None,
    family: str | None,
    online: bool | None,
    search: str | None,
    after_id: int | None,
    limit: int,
) -> dict[str, Any]:
    return {
        **scope_params(community_ids),
        "building": building_id,
        "family": family,
        "online": online,
        "search": search,
        "after": after_id,
        "limit": limit,
    }


def list_devices(
    conn: psycopg.Connection[Any],
    *,
    community_ids: Sequence[int] | None,
    building_id: int | None = None,
    family: str | None = None,
    online: bool | None = None,
    search: str | None = None,
    after_id: int | None,
    limit: int,
) -> list[SiteDevice]:
    return _rows(
        conn,
        SiteDevice,
        _DEVICE + _DEVICE_FILTERS,
        _device_params(
            community_ids=community_ids,
            building_id=building_id,
            family=family,
            online=online,
            search=search,
            after_id=after_id,
            limit=limit,
        ),
    )


# the columns of `list_device_tuples`' rows: SiteDevice's fields, in order
DEVICE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SiteDevice))
# `_DEVICE` with the metadata as its JSON text: decoding the jsonb into a dict (psycopg calls
# json.loads per row through a Python loader) was most of the page's client CPU, and the API writes it
# out again unchanged. Anything but a JSON object is NULL here, which the page refuses, as SiteDevice's
# dict-typed field refuses it.
_DEVICE_TEXT_METADATA: LiteralString = _DEVICE.replace(
    " d.metadata,", " CASE WHEN jsonb_typeof(d.metadata) = 'object' THEN d.metadata::text END AS metadata,"
)
assert _DEVICE_TEXT_METADATA != _DEVICE


def list_device_tuples(
    conn: psycopg.Connection[Any],
    *,
    community_ids: Sequence[int] | None,
    building_id: int | None = None,
    family: str | None = None,
    online: bool | None = None,
    search: str | None = None,
    after_id: int | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """`list_devices` as plain tuples, columns `DEVICE_COLUMNS`: the family as its text (unchecked),
    the metadata as its JSON text (None unless it is an object).

    Why: for the API's device page, which checks and encodes them in C (api/fastjson.py `from_rows`).
    Building a frozen dataclass per row (23 fields, each set through `object.__setattr__`) and
    reading it back by attribute cost about as much server CPU as the rest of the request
    (bench/api.py, 100 devices a page). In binary: the times, dates and numbers are read without
    parsing their text (the same values; a fifth less client CPU for the page)."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            _DEVICE_TEXT_METADATA + _DEVICE_FILTERS,
            _device_params(
                community_ids=community_ids,
                building_id=building_id,
                family=family,
                online=online,
                search=search,
                after_id=after_id,
                limit=limit,
            ),
        )
        if tuple(c.name for c in cur.description or ()) != DEVICE_COLUMNS:
            raise RuntimeError("the device query's columns are not SiteDevice's fields")
        return cur.fetchall()


def get_device(conn: psycopg.Connection[Any], device_id: int) -> SiteDevice | None:
    return _one(conn, SiteDevice, _DEVICE + " WHERE d.id = %s", (device_id,))


def device_community(conn: psycopg.Connection[Any], device_id: int) -> int | None:
    """The community of a device (None: no such device)."""
    row = conn.execute("SELECT community_id FROM devices WHERE id = %s", (device_id,)).fetchone()
    return int(row[0]) if row else None


def device_id_by_uid(conn: psycopg.Connection[Any], uid: str) -> tuple[int, int] | None:
    """(device id, community id) of a uid, whatever the community."""
    row = conn.execute("SELECT id, community_id FROM devices WHERE uid = %s", (uid,)).fetchone()
    return (int(row[0]), int(row[1])) if row else None
