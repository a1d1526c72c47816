"""The site plan (issue 13 §5): a community's buildings and outdoor places with the state of their
devices, and each place's devices with where they are (unit, floor, room, post) and their state.

A device's state is the worst of: an alarm on the board (active, or cleared but not acknowledged —
the board's rule, api/static/board.js `onBoard`) by severity, then offline, then never reported, then
online. "Never reported" (no presence row, or one that has never seen the device) is its own state,
not folded into offline: a smoke alarm that reports once a day has simply not spoken yet.

Reads only; callers check the community scope (an id outside it is the caller's 404). Buildings come
in their real order (`natural_key`: 2号楼 before 10号楼), not by id or as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from storage.sites import BuildingRow, CommunityRow, LocationRow

Presence = Literal["offline", "never_reported", "online", "disabled"]
DeviceState = Literal[
    "critical", "major", "minor", "warning", "offline", "never_reported", "online", "disabled"
]
# worst first: what a tile shows as its colour (a building with one fire is red whatever else it holds)
STATES: tuple[DeviceState, ...] = (
    "critical", "major", "minor", "warning", "offline", "never_reported", "online", "disabled",
)  # fmt: skip

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the numbers inside a name by value: b2 < b10, 2号楼 < 10号楼."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _DIGITS.split(text) if p)


@dataclass(frozen=True, slots=True)
class StateCounts:
    """Devices by state, and the alarms on the board by severity (one device may hold several)."""

    devices: int
    online: int
    offline: int
    never_reported: int
    disabled: int
    critical: int
    major: int
    minor: int
    warning: int

    @property
    def worst(self) -> DeviceState | None:
        for state in STATES:
            if getattr(self, state):
                return state
        return None


@dataclass(frozen=True, slots=True)
class PlaceTile:
    """A building (kind 'building') or an outdoor place (a location outside any building: a shed,
    a road, an entrance, the duty room) with its counts."""

    kind: str
    id: int
    code: str
    name: str
    floors: int | None
    units: int | None
    high_rise: bool
    counts: StateCounts


@dataclass(frozen=True, slots=True)
class PlacedDevice:
    id: int
    uid: str
    family: str
    enabled: bool
    location_id: int
    location_kind: str
    location_name: str
    unit: str | None
    floor: int | None
    room: str | None
    post: str | None
    online: bool | None
    last_seen: datetime | None
    open_alarms: int  # alarms on the board
    worst_severity: str | None
    worst_alarm_id: int | None  # the worst alarm on the board (oldest first among equals)
    critical: int = 0  # its alarms on the board by severity
    major: int = 0
    minor: int = 0
    warning: int = 0

    @property
    def presence(self) -> Presence:
        if not self.enabled:
            return "disabled"
        if self.online:
            return "online"
        return "never_reported" if self.last_seen is None else "offline"

    @property
    def state(self) -> DeviceState:
        """The worst alarm on the board, else the presence."""
        if self.worst_severity in ("critical", "major", "minor", "warning"):
            return self.worst_severity  # type: ignore[return-value]  # narrowed by the test above
        return self.presence


_RANK: LiteralString = "array_position(ARRAY['critical','major','minor','warning'], a.severity)"
# Alarms on the board per device of one community, worst first; uses alarms_community_status.
_BOARD: LiteralString = """
    SELECT a.device_id, count(*) AS open_alarms,
           count(*) FILTER (WHERE a.severity = 'critical') AS critical,
           count(*) FILTER (WHERE a.severity = 'major') AS major,
           count(*) FILTER (WHERE a.severity = 'minor') AS minor,
           count(*) FILTER (WHERE a.severity = 'warning') AS warning,
           (array_agg(a.severity ORDER BY {rank}, a.first_at, a.id))[1] AS worst_severity,
           (array_agg(a.id ORDER BY {rank}, a.first_at, a.id))[1] AS worst_alarm_id
    FROM alarms a
    WHERE a.community_id = %(community)s AND (a.status = 'active' OR NOT a.acknowledged)
    GROUP BY a.device_id
"""

_DEVICES = sql.SQL(
    """
    WITH board AS ({board})
    SELECT d.id, d.uid, d.family, d.enabled, d.location_id, l.kind AS location_kind,
           l.name AS location_name, l.unit, l.floor, d.room, d.post, p.online, p.last_seen,
           coalesce(bd.open_alarms, 0) AS open_alarms, bd.worst_severity, bd.worst_alarm_id,
           coalesce(bd.critical, 0) AS critical, coalesce(bd.major, 0) AS major,
           coalesce(bd.minor, 0) AS minor, coalesce(bd.warning, 0) AS warning
    FROM devices d
    JOIN locations l ON l.id = d.location_id
    LEFT JOIN device_presence p ON p.device_id = d.id
    LEFT JOIN board bd ON bd.device_id = d.id
    WHERE d.community_id = %(community)s
    """
).format(board=sql.SQL(_BOARD).format(rank=sql.SQL(_RANK)))


def _placed(
    conn: psycopg.Connection[Any], where: LiteralString, params: dict[str, Any]
) -> list[PlacedDevice]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_DEVICES + sql.SQL(where), params).fetchall()
    devices = [PlacedDevice(**r) for r in rows]
    return sorted(
        devices,
        key=lambda d: (
            d.floor if d.floor is not None else -(10**6),
            natural_key(d.unit or ""),
            natural_key(d.room or d.post or ""),
            d.uid,
        ),
    )


def building_devices(
    conn: psycopg.Connection[Any], community_id: int, building_id: int
) -> list[PlacedDevice]:
    """Every device placed in the building (at any of its locations)."""
    return _placed(
        conn, " AND l.building_id = %(building)s", {"community": community_id, "building": building_id}
    )


def location_devices(
    conn: psycopg.Connection[Any], community_id: int, location_id: int
) -> list[PlacedDevice]:
    """Every device at one location (an outdoor place: a shed's posts, a road's lamps)."""
    return _placed(conn, " AND l.id = %(location)s", {"community": community_id, "location": location_id})


def counts_of(devices: Sequence[PlacedDevice]) -> StateCounts:
    """The same counts as a tile's, for devices already read (a plan's)."""
    presence = [d.presence for d in devices]
    return StateCounts(
        devices=len(devices),
        online=presence.count("online"),
        offline=presence.count("offline"),
        never_reported=presence.count("never_reported"),
        disabled=presence.count("disabled"),
        critical=sum(d.critical for d in devices),
        major=sum(d.major for d in devices),
        minor=sum(d.minor for d in devices),
        warning=sum(d.warning for d in devices),
    )


def total(counts: Iterable[StateCounts]) -> StateCounts:
    """The sum of several places' counts (a community's)."""
    rows = list(counts)
    return StateCounts(**{f: sum(getattr(c, f) for c in rows) for f in _COUNT_FIELDS})


_TILES: LiteralString = """
    WITH dev AS (
        SELECT d.id, l.building_id, CASE WHEN l.building_id IS NULL THEN l.id END AS area_id,
               CASE WHEN NOT d.enabled THEN 'disabled' WHEN p.online THEN 'online'
                    WHEN p.last_seen IS NULL THEN 'never_reported' ELSE 'offline' END AS presence
        FROM devices d
        JOIN locations l ON l.id = d.location_id
        LEFT JOIN device_presence p ON p.device_id = d.id
        WHERE d.community_id = %(community)s
    ), al AS (
        SELECT a.device_id, a.severity FROM alarms a
        WHERE a.community_id = %(community)s AND (a.status = 'active' OR NOT a.acknowledged)
    ), per_device AS (
        SELECT dev.building_id, dev.area_id, dev.presence,
               count(al.device_id) FILTER (WHERE al.severity = 'critical') AS critical,
               count(al.device_id) FILTER (WHERE al.severity = 'major') AS major,
               count(al.device_id) FILTER (WHERE al.severity = 'minor') AS minor,
               count(al.device_id) FILTER (WHERE al.severity = 'warning') AS warning
        FROM dev LEFT JOIN al ON al.device_id = dev.id
        GROUP BY dev.id, dev.building_id, dev.area_id, dev.presence
    ), agg AS (
        SELECT building_id, area_id, count(*) AS devices,
               count(*) FILTER (WHERE presence = 'online') AS online,
               count(*) FILTER (WHERE presence = 'offline') AS offline,
               count(*) FILTER (WHERE presence = 'never_reported') AS never_reported,
               count(*) FILTER (WHERE presence = 'disabled') AS disabled,
               sum(critical)::int AS critical, sum(major)::int AS major,
               sum(minor)::int AS minor, sum(warning)::int AS warning
        FROM per_device GROUP BY building_id, area_id
    )
    SELECT 'building' AS kind, b.id, b.code, b.name, b.floors, b.units, b.high_rise,
           coalesce(agg.devices, 0) AS devices, coalesce(agg.online, 0) AS online,
           coalesce(agg.offline, 0) AS offline, coalesce(agg.never_reported, 0) AS never_reported,
           coalesce(agg.disabled, 0) AS disabled, coalesce(agg.critical, 0) AS critical,
           coalesce(agg.major, 0) AS major, coalesce(agg.minor, 0) AS minor,
           coalesce(agg.warning, 0) AS warning
    FROM buildings b LEFT JOIN agg ON agg.building_id = b.id
    WHERE b.community_id = %(community)s
    UNION ALL
    SELECT l.kind, l.id, l.code, l.name, NULL, NULL, false,
           agg.devices, agg.online, agg.offline, agg.never_reported, agg.disabled,
           agg.critical, agg.major, agg.minor, agg.warning
    FROM agg JOIN locations l ON l.id = agg.area_id
"""

_COUNT_FIELDS = (
    "devices",
    "online",
    "offline",
    "never_reported",
    "disabled",
    "critical",
    "major",
    "minor",
    "warning",
)


def community_tiles(
    conn: psycopg.Connection[Any], community_id: int
) -> tuple[list[PlaceTile], list[PlaceTile]]:
    """(buildings, outdoor places) of the community, each in its real order, with their counts.
    Buildings without devices are listed too; outdoor places only when they hold a device."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_TILES, {"community": community_id}).fetchall()
    tiles = [
        PlaceTile(
            kind=r["kind"], id=r["id"], code=r["code"], name=r["name"], floors=r["floors"], units=r["units"],
            high_rise=r["high_rise"], counts=StateCounts(**{k: int(r[k]) for k in _COUNT_FIELDS}),
        )
        for r in rows
    ]  # fmt: skip
    buildings = sorted((t for t in tiles if t.kind == "building"), key=lambda t: (natural_key(t.code), t.id))
    # outdoor places grouped by kind (sheds together, then roads, …), each group in its real order
    areas = sorted(
        (t for t in tiles if t.kind != "building"), key=lambda t: (t.kind, natural_key(t.code), t.id)
    )
    return buildings, areas


def get_community(conn: psycopg.Connection[Any], community_id: int) -> CommunityRow | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT id, code, name FROM communities WHERE id = %s", (community_id,)).fetchone()
    return CommunityRow(**row) if row else None


def get_building(conn: psycopg.Connection[Any], building_id: int) -> BuildingRow | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, community_id, code, name, floors, units, high_rise FROM buildings WHERE id = %s",
            (building_id,),
        ).fetchone()
    return BuildingRow(**row) if row else None


def get_location(conn: psycopg.Connection[Any], location_id: int) -> LocationRow | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, community_id, building_id, kind, code, name FROM locations WHERE id = %s",
            (location_id,),
        ).fetchone()
    return LocationRow(**row) if row else None
