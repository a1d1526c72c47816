"""Device presence (`device_presence`), maintained by ingest in batches, never a write per message.

Ordering is by the time ingest received a message, not the device's clock: a Last Will is published
by the broker at disconnect time but carries the timestamp of the connect that registered it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row


@dataclass(frozen=True, slots=True)
class PresenceRow:
    """The net effect of one batch's messages of one device."""

    device_id: int
    last_seen: datetime  # receive time of its newest message
    last_seq: int
    online: bool  # False only when its newest message is an offline status (or Last Will)
    status: str  # "online", "offline" or the offline reason the device gave
    heartbeat_s: int | None  # announced in its status message, if any


_UPSERT = """
INSERT INTO device_presence AS p
    (device_id, online, status, last_seen, last_seq, status_changed_at, heartbeat_s, updated_at)
SELECT d, o, s, l, q, l, h, now()
FROM unnest(%s::int4[], %s::bool[], %s::text[], %s::timestamptz[], %s::int8[], %s::int4[])
    AS u(d, o, s, l, q, h)
ON CONFLICT (device_id) DO UPDATE SET
    online = CASE WHEN p.last_seen IS NULL OR EXCLUDED.last_seen >= p.last_seen
                  THEN EXCLUDED.online ELSE p.online END,
    status = CASE WHEN p.last_seen IS NULL OR EXCLUDED.last_seen >= p.last_seen
                  THEN EXCLUDED.status ELSE p.status END,
    status_changed_at = CASE
        WHEN (p.last_seen IS NULL OR EXCLUDED.last_seen >= p.last_seen) AND EXCLUDED.online <> p.online
        THEN EXCLUDED.last_seen ELSE p.status_changed_at END,
    last_seq = CASE WHEN p.last_seen IS NULL OR EXCLUDED.last_seen >= p.last_seen
                    THEN EXCLUDED.last_seq ELSE p.last_seq END,
    last_seen = GREATEST(p.last_seen, EXCLUDED.last_seen),
    heartbeat_s = COALESCE(EXCLUDED.heartbeat_s, p.heartbeat_s),
    updated_at = now()
"""


def upsert_presence(cur: psycopg.Cursor[Any], rows: list[PresenceRow]) -> None:
    """One statement for the whole batch (rows must have distinct device ids; sorted to keep lock
    order stable between concurrent ingest processes)."""
    rows = sorted(rows, key=lambda r: r.device_id)
    cur.execute(
        _UPSERT,
        (
            [r.device_id for r in rows],
            [r.online for r in rows],
            [r.status for r in rows],
            [r.last_seen for r in rows],
            [r.last_seq for r in rows],
            [r.heartbeat_s for r in rows],
        ),
    )


def mark_silent_offline(
    conn: psycopg.Connection[Any], default_heartbeat_s: int, misses: int, now: datetime
) -> list[int]:
    """Devices online whose last message is older than `misses` heartbeat periods become offline
    with status 'heartbeat_timeout'; returns their ids. Idempotent, safe from several processes."""
    with conn.transaction():
        rows = conn.execute(
            "UPDATE device_presence SET online = false, status = 'heartbeat_timeout', "
            "status_changed_at = %(now)s, updated_at = now() "
            "WHERE online AND last_seen < %(now)s - make_interval(secs => "
            "COALESCE(heartbeat_s, %(hb)s) * %(misses)s) RETURNING device_id",
            {"now": now, "hb": default_heartbeat_s, "misses": misses},
        ).fetchall()
    return [int(r[0]) for r in rows]


def presence_of(conn: psycopg.Connection[Any], device_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM device_presence WHERE device_id = %s", (device_id,))
        return cur.fetchone()
