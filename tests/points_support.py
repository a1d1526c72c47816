"""Points for tests, stored as ingest stores them: one telemetry row per message, its points as the
row's arrays (migration 0028). Tests read them back through the `points` view like the API does."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg

from storage.config import DatabaseSettings
from storage.messages import IngestWriter, TelemetryRow, WriteBatch
from storage.timeseries import ensure_partitions

# seq of the made-up messages: unique within a test run, so repeated calls never hit the natural key
_SEQ = itertools.count(1)

INSERT_MESSAGE = (
    "INSERT INTO telemetry (ts, device_id, seq, received_at, body, point_metrics, point_channels, "
    "point_values) VALUES (%s, %s, %s, %s, '{}', %s, %s, %s)"
)


def seed_device(conn: psycopg.Connection[Any], uid: str = "smk-1", family: str = "smoke_alarm") -> int:
    """One community with one device; returns the device's id."""
    conn.execute("INSERT INTO communities (code, name) VALUES ('c1', '宜居一区')")
    row = conn.execute(
        "INSERT INTO devices (uid, community_id, family) "
        "SELECT %s, id, %s FROM communities WHERE code = 'c1' RETURNING id",
        (uid, family),
    ).fetchone()
    assert row is not None
    return int(row[0])


def insert_points(
    conn: psycopg.Connection[Any], points: Iterable[tuple[datetime, int, str, int, float]]
) -> int:
    """Store (ts, device_id, metric, channel, value) points, one message per (device, ts); returns the
    number of messages."""
    messages: dict[tuple[int, datetime], list[tuple[str, int, float]]] = {}
    for ts, device_id, metric, channel, value in points:
        messages.setdefault((device_id, ts), []).append((metric, channel, value))
    times = [ts for _, ts in messages]
    mode = conn.execute("SELECT yiju_storage_mode()").fetchone()
    if times and mode is not None and mode[0] == "partitioned":
        # as the writer does: a time with no partition yet is refused (a test's hours ago may be the
        # day before yesterday, which the partitions made at migration do not cover)
        ensure_partitions(conn, "telemetry", min(times), max(times), DatabaseSettings())
    with conn.cursor() as cur:
        cur.executemany(
            INSERT_MESSAGE,
            [
                (
                    ts,
                    device_id,
                    next(_SEQ),
                    ts,
                    [m for m, _, _ in pts],
                    [c for _, c, _ in pts],
                    [v for _, _, v in pts],
                )
                for (device_id, ts), pts in messages.items()
            ],
        )
    return len(messages)


def write_rows(url: str, settings: DatabaseSettings, rows: list[TelemetryRow]) -> None:
    """Telemetry rows written as ingest writes them (binary COPY, one transaction)."""
    writer = IngestWriter(url, settings)
    try:
        writer.write(WriteBatch(telemetry=rows))
    finally:
        writer.close()
