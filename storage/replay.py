"""Crash recovery of the alert engine: the stored messages received after its checkpoint.

Ingest commits a message before acknowledging it, and hands it to the engine as soon as it is
decoded; the engine writes its rule state behind. After a crash, the messages ingest committed but
the engine had not evaluated (or whose state was not yet written) exist only here. The engine reads
them back in receipt order and evaluates them again; its sequence window skips what it had already
evaluated, and its outputs are idempotent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

PAGE_ROWS = 5000


@dataclass(frozen=True, slots=True)
class StoredMessage:
    received_at: datetime
    device_id: int
    ts: datetime
    seq: int
    kind: str  # "telemetry", or the device_events kind ("status", "cmd_ack", an event type)
    payload: bytes  # the envelope as stored


_QUERY = """
    SELECT received_at, device_id, ts, seq, kind, payload FROM (
        SELECT received_at, device_id, ts, seq, 'telemetry' AS kind, body::text AS payload
        FROM telemetry WHERE ts >= %(ts_floor)s AND received_at >= %(since)s
        UNION ALL
        SELECT received_at, device_id, ts, seq, kind, body::text
        FROM device_events WHERE ts >= %(ts_floor)s AND received_at >= %(since)s
    ) m
    WHERE (received_at, device_id, ts, seq) > (%(k_rx)s, %(k_dev)s, %(k_ts)s, %(k_seq)s)
    ORDER BY received_at, device_id, ts, seq
    LIMIT %(limit)s
"""


def received_since(
    conn: psycopg.Connection[Any], since: datetime, *, ts_lookback: timedelta, page_rows: int = PAGE_ROWS
) -> Iterator[StoredMessage]:
    """Telemetry and device events received at or after `since`, in receipt order (then device, ts,
    seq), whose device time is at most `ts_lookback` older than `since` (the tables are partitioned
    by device time: this bounds the scan). Read in keyset pages."""
    key: tuple[Any, ...] = (
        since - timedelta(microseconds=1),
        -1,
        datetime.min.replace(tzinfo=since.tzinfo),
        -1,
    )
    while True:
        rows = conn.execute(
            _QUERY,
            {
                "ts_floor": since - ts_lookback,
                "since": since,
                "k_rx": key[0],
                "k_dev": key[1],
                "k_ts": key[2],
                "k_seq": key[3],
                "limit": page_rows,
            },
        ).fetchall()
        for r in rows:
            yield StoredMessage(r[0], r[1], r[2], r[3], r[4], r[5].encode())
        if len(rows) < page_rows:
            return
        last = rows[-1]
        key = (last[0], last[1], last[2], last[3])
