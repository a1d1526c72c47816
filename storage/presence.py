"""Device presence (`device_presence`), maintained by ingest in batches, never a write per message.

Ordering is by the time ingest received a message, not the device's clock: a Last Will is published
by the broker at disconnect time but carries the timestamp of the connect that registered it.
Silence is receive time too, so a device whose clock is wrong is swept like any other; the offline
rule is its family's (heartbeat × misses, as the alert engine's), not one number for every family.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import dict_row

from storage import pgbinary


class PresenceRow(NamedTuple):  # a tuple: one per device seen, thousands a presence flush (issue 18)
    """The net effect of one batch's messages of one device."""

    device_id: int
    last_seen: datetime  # receive time of its newest message
    last_seq: int
    online: bool  # False only when its newest message is an offline status (or Last Will)
    status: str  # "online", "offline" or the offline reason the device gave
    heartbeat_s: int | None  # announced in its status message, if any


_by_device = operator.attrgetter("device_id")

_UPSERT = """
INSERT INTO device_presence AS p
    (device_id, online, status, last_seen, last_seq, status_changed_at, heartbeat_s, updated_at)
SELECT d, o, s, l, q, l, h, now()
FROM unnest(%b::int4[], %b::bool[], %b::text[], %b::timestamptz[], %b::int8[], %b::int4[])
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
    order stable between concurrent ingest processes). The arrays go in binary form, built with
    struct (storage.pgbinary): psycopg's list dumping was ≈ 7.5 µs per row (issue 18)."""
    rows = sorted(rows, key=_by_device)
    pgbinary.register(cur.adapters)
    cur.execute(
        _UPSERT,
        (
            pgbinary.int4_array([r.device_id for r in rows]),
            pgbinary.bool_array([r.online for r in rows]),
            pgbinary.text_array([r.status for r in rows]),
            pgbinary.timestamptz_array([r.last_seen for r in rows]),
            pgbinary.int8_array([r.last_seq for r in rows]),
            pgbinary.int4_array([r.heartbeat_s for r in rows]),
        ),
    )


@dataclass(frozen=True, slots=True)
class OfflineRule:
    """When a silent device of `family` counts as offline: after `misses` × its heartbeat, the period
    the device announced in its status message or else `heartbeat_s`. `community_id` None: the rule
    of every community without one of its own."""

    family: str
    heartbeat_s: int
    misses: int
    community_id: int | None = None


_SWEEP = """
WITH fam AS (SELECT * FROM unnest(%(ff)s::text[], %(fh)s::int4[], %(fm)s::int4[]) AS t(family, hb, misses)),
     com AS (SELECT * FROM unnest(%(cc)s::int4[], %(cf)s::text[], %(ch)s::int4[], %(cm)s::int4[])
             AS t(community_id, family, hb, misses))
UPDATE device_presence p
SET online = false, status = 'heartbeat_timeout', status_changed_at = %(now)s, updated_at = now()
FROM devices d
JOIN fam ON fam.family = d.family
LEFT JOIN com ON com.community_id = d.community_id AND com.family = d.family
WHERE p.device_id = d.id AND p.online
  AND p.last_seen < %(now)s - make_interval(
        secs => COALESCE(p.heartbeat_s, com.hb, fam.hb) * COALESCE(com.misses, fam.misses))
RETURNING p.device_id
"""


def mark_silent_offline(
    conn: psycopg.Connection[Any], rules: Sequence[OfflineRule], now: datetime
) -> list[int]:
    """Devices online whose last message (receive time) is older than their family's offline rule
    become offline with status 'heartbeat_timeout'; returns their ids. A family without a rule is
    never swept. Idempotent, safe from several processes."""
    fam = [r for r in rules if r.community_id is None]
    com = [r for r in rules if r.community_id is not None]
    with conn.transaction():
        rows = conn.execute(
            _SWEEP,
            {
                "ff": [r.family for r in fam],
                "fh": [r.heartbeat_s for r in fam],
                "fm": [r.misses for r in fam],
                "cc": [r.community_id for r in com],
                "cf": [r.family for r in com],
                "ch": [r.heartbeat_s for r in com],
                "cm": [r.misses for r in com],
                "now": now,
            },
        ).fetchall()
    return [int(r[0]) for r in rows]


def community_alert_overrides(conn: psycopg.Connection[Any]) -> dict[int, dict[str, Any]]:
    """Per-community alert-setting overrides (`communities.settings -> 'alerts'`)."""
    rows = conn.execute(
        "SELECT id, settings -> 'alerts' FROM communities WHERE settings ? 'alerts'"
    ).fetchall()
    return {int(r[0]): r[1] for r in rows if isinstance(r[1], dict)}


def presence_of(conn: psycopg.Connection[Any], device_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM device_presence WHERE device_id = %s", (device_id,))
        return cur.fetchone()
