"""Persisted rule state of the alert engine, and the device context the engine evaluates with.

State is written behind in batches (`save_states`), never per message: a restart resumes timers,
counters and open triggers from the last flush; messages since then are redelivered by the broker
(at-least-once) and the engine's duplicate detection and idempotent writes absorb the overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True, slots=True)
class DeviceContextRow:
    device_id: int
    uid: str
    community_id: int
    community_code: str
    family: str
    building_id: int | None
    location_id: int | None
    evacuation_route: bool
    timezone: str
    enabled: bool
    latitude: float | None = None  # the community's location (0009_site_facts.sql)
    longitude: float | None = None
    building_floors: int | None = None
    metadata: dict[str, Any] | None = None  # the device's rule parameters are read from it


_CONTEXT_QUERY = """
    SELECT d.id, d.uid, d.community_id, c.code, d.family, l.building_id, d.location_id,
           COALESCE(l.evacuation_route, false), c.timezone, d.enabled,
           c.latitude, c.longitude, b.floors, d.metadata
    FROM devices d
    JOIN communities c ON c.id = d.community_id
    LEFT JOIN locations l ON l.id = d.location_id
    LEFT JOIN buildings b ON b.id = l.building_id
"""


def load_contexts(
    conn: psycopg.Connection[Any],
    device_ids: Sequence[int] | None = None,
    *,
    community_ids: Sequence[int] | None = None,
) -> list[DeviceContextRow]:
    """Every device's context (or only the given devices, or only those of the given communities)."""
    if device_ids is not None:
        rows = conn.execute(_CONTEXT_QUERY + " WHERE d.id = ANY(%s)", (list(device_ids),)).fetchall()
    elif community_ids is not None:
        rows = conn.execute(
            _CONTEXT_QUERY + " WHERE d.community_id = ANY(%s)", (list(community_ids),)
        ).fetchall()
    else:
        rows = conn.execute(_CONTEXT_QUERY).fetchall()
    return [DeviceContextRow(*r) for r in rows]


def registry_revision(conn: psycopg.Connection[Any]) -> int:
    """The registry's revision (migration 0027): it moves with every write of a device, location,
    building or community, so an unchanged number means there is nothing to re-read."""
    row = conn.execute("SELECT revision FROM registry_revision").fetchone()
    return int(row[0]) if row else 0


def community_overrides(conn: psycopg.Connection[Any]) -> dict[int, dict[str, Any]]:
    """Per-community alert-setting overrides: `communities.settings -> 'alerts'`."""
    rows = conn.execute(
        "SELECT id, settings -> 'alerts' FROM communities WHERE settings ? 'alerts'"
    ).fetchall()
    return {r[0]: r[1] for r in rows if isinstance(r[1], dict)}


def load_states(conn: psycopg.Connection[Any]) -> dict[int, dict[str, Any]]:
    return {r[0]: r[1] for r in conn.execute("SELECT device_id, state FROM rule_state").fetchall()}


def save_states(conn: psycopg.Connection[Any], states: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Upsert many device states in one statement."""
    if not states:
        return
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO rule_state (device_id, state, updated_at)
            SELECT s.device_id, s.state, now()
            FROM unnest(%s::integer[], %s::jsonb[]) AS s (device_id, state)
            JOIN devices d ON d.id = s.device_id
            ON CONFLICT (device_id) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
            """,
            ([d for d, _ in states], [Jsonb(s) for _, s in states]),
        )


def load_checkpoint(conn: psycopg.Connection[Any], engine: str) -> datetime | None:
    """The receipt time up to which `engine` has evaluated and checkpointed everything (None: never)."""
    row = conn.execute("SELECT received_at FROM alert_checkpoint WHERE engine = %s", (engine,)).fetchone()
    return None if row is None else row[0]


def save_checkpoint(conn: psycopg.Connection[Any], engine: str, received_at: datetime) -> None:
    """Move the checkpoint forward (never back)."""
    conn.execute(
        """
        INSERT INTO alert_checkpoint (engine, received_at) VALUES (%s, %s)
        ON CONFLICT (engine) DO UPDATE
        SET received_at = GREATEST(alert_checkpoint.received_at, EXCLUDED.received_at), updated_at = now()
        """,
        (engine, received_at),
    )
