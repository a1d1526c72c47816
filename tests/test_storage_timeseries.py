"""Time-series storage in both modes: rows across partitions/chunks, range queries, retention, rollup."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import psycopg
import pytest
from points_support import insert_points, seed_device

from storage import timeseries
from storage.db import connection
from storage.timeseries import drop_expired, ensure_partitions, partitions, refresh_recent, run_maintenance
from yiju.settings import DatabaseSettings

HOUR = timedelta(hours=1)


def _insert_points(conn: psycopg.Connection, device: int, start: datetime, hours: int) -> None:
    """Two points per hour: values h and h + 1, so hour h averages to h + 0.5."""
    insert_points(
        conn,
        [
            (start + h * HOUR + timedelta(minutes=minute), device, "battery_pct", 0, h + delta)
            for h in range(hours)
            for minute, delta in ((10, 0.0), (40, 1.0))
        ],
    )


def test_rows_across_partitions_query_retention_and_rollup(
    make_db: Callable[[str | None], str], storage_mode: str
) -> None:
    url = make_db(storage_mode)
    settings = DatabaseSettings(telemetry_retention=timedelta(days=4), events_retention=timedelta(days=400))
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=6)
    hours = 6 * 24
    with connection(url, autocommit=True) as conn:
        assert timeseries.storage_mode(conn) == storage_mode
        device = seed_device(conn)
        if storage_mode == "partitioned":
            # data older than the partitions made at migration time needs partitions first
            ensure_partitions(conn, "telemetry", start, now, settings)
        _insert_points(conn, device, start, hours)

        # the rows really are spread over several partitions / chunks
        if storage_mode == "partitioned":
            counts = conn.execute(
                "SELECT tableoid::regclass::text, count(*) FROM telemetry GROUP BY 1"
            ).fetchall()
        else:
            counts = conn.execute("SELECT c, 1 FROM show_chunks('telemetry') c").fetchall()
        assert len(counts) >= 6

        # a time-range query sees exactly the rows in the range
        in_range = conn.execute(
            "SELECT count(*), min(value), max(value) FROM points "
            "WHERE device_id = %s AND ts >= %s AND ts < %s",
            (device, start + 24 * HOUR, start + 48 * HOUR),
        ).fetchone()
        assert in_range == (48, 24.0, 48.0)

        # the hourly rollup, read the same way in both modes: the settled hours materialised, the
        # last ones (after the watermark) aggregated from the raw rows by the view
        done = refresh_recent(conn, now)
        assert done is not None and start < done[1] < now - 2 * HOUR
        assert conn.execute("SELECT count(*) FROM points_rollup").fetchone() == ((done[1] - start) // HOUR,)
        rollup = conn.execute(
            "SELECT bucket, samples, min_value, max_value, avg_value FROM points_hourly "
            "WHERE device_id = %s AND metric = 'battery_pct' ORDER BY bucket",
            (device,),
        ).fetchall()
        assert len(rollup) == hours
        assert rollup[5] == (start + 5 * HOUR, 2, 5.0, 6.0, 5.5)

        # retention drops what is older than 4 days, and only that
        dropped = drop_expired(conn, settings, now)
        assert dropped
        oldest = conn.execute("SELECT min(ts) FROM points").fetchone()
        assert oldest is not None and oldest[0] >= now - timedelta(days=4) - settings.chunk_interval
        remaining = conn.execute("SELECT count(*) FROM points").fetchone()
        assert remaining is not None and 0 < remaining[0] < hours * 2
        # rolled-up history outlives the raw rows
        kept = conn.execute(
            "SELECT count(*) FROM points_hourly WHERE bucket < %s", (now - timedelta(days=5),)
        ).fetchone()
        assert kept is not None and kept[0] == 24


def test_partitions_are_created_ahead_and_gaps_filled(make_db: Callable[[str | None], str]) -> None:
    url = make_db("partitioned")
    settings = DatabaseSettings(partitions_ahead=3)
    with connection(url, autocommit=True) as conn:
        report = run_maintenance(conn, settings)
        assert report.mode == "partitioned"
        parts = partitions(conn, "telemetry")
        now = datetime.now(UTC)
        assert parts[-1].end >= now + 3 * settings.chunk_interval
        # contiguous: no holes between consecutive partitions
        assert all(a.end == b.start for a, b in pairwise(parts))
        # a second round creates nothing new
        assert run_maintenance(conn, settings).partitions_created == 0


def test_insert_outside_partitions_is_refused_not_lost(make_db: Callable[[str | None], str]) -> None:
    """Partitioned mode has no catch-all partition: a row with no partition is an error the writer sees."""
    url = make_db("partitioned")
    with connection(url, autocommit=True) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO telemetry (ts, device_id, seq, received_at, body) VALUES (%s, 1, 1, %s, '{}')",
            (datetime(2001, 1, 1, tzinfo=UTC),) * 2,
        )
