"""What PostgreSQL does per ingested message (migration 0030, issue 18): presence upserts are HOT
updates, and wide values are compressed with lz4 in both storage modes — in the partitions and chunks
that existed before the migration, in those made after it, and without changing what is read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from harness import ServiceSet
from points_support import seed_device, write_rows

from storage import migrate as migrate_module
from storage.db import connection, ensure_database
from storage.messages import TelemetryRow
from storage.migrate import load_migrations, migrate
from storage.presence import PresenceRow, upsert_presence
from storage.timeseries import ensure_partitions
from yiju.settings import DatabaseSettings

# a charger's widest message: 89 points, a body of ~2.5 kB (bench/RESULTS.md), so the row is compressed
METRICS = tuple(f"port_{p:02d}_metric_{m}" for p in range(1, 31) for m in ("power_w", "temp_c", "amps"))[:89]


def _wide_row(device: int, ts: datetime, seq: int) -> TelemetryRow:
    body = '{"v": 1, "data": {' + ", ".join(f'"{m}": {seq + i / 8}' for i, m in enumerate(METRICS)) + "}}"
    points = [(m, 1 + i % 30, seq + i / 8) for i, m in enumerate(METRICS)]
    return TelemetryRow(ts, device, seq, ts, body.encode(), points)


def _stored(conn: psycopg.Connection[Any]) -> dict[int, tuple[Any, ...]]:
    """seq → (compression of body, of point_metrics, of point_values, body, points via the view)."""
    rows = conn.execute(
        "SELECT seq, pg_column_compression(body), pg_column_compression(point_metrics), "
        "pg_column_compression(point_values), body, "
        "(SELECT array_agg(p.value ORDER BY p.metric) FROM points p "
        " WHERE p.device_id = t.device_id AND p.ts = t.ts) "
        "FROM telemetry t"
    ).fetchall()
    return {int(r[0]): r[1:] for r in rows}


def test_presence_upserts_are_hot_updates(db_url: str) -> None:
    """Every presence flush moves last_seen: no index may cover it, or no update is HOT (a new tuple
    on another page and an entry in each index per device per flush)."""
    now = datetime.now(UTC)
    with connection(db_url) as conn:
        device = seed_device(conn, "chg-1", "ebike_charger")
        conn.commit()
        with conn.cursor() as cur:
            for k in range(3):
                upsert_presence(
                    cur, [PresenceRow(device, now + timedelta(seconds=2 * k), k, True, "online", None)]
                )
        # this transaction's own counts: no wait for the statistics collector
        row = conn.execute(
            "SELECT pg_stat_get_xact_tuples_updated('device_presence'::regclass), "
            "pg_stat_get_xact_tuples_hot_updated('device_presence'::regclass)"
        ).fetchone()
        assert row == (2, 2)
        conn.commit()
        stored = conn.execute(
            "SELECT online, last_seen, last_seq FROM device_presence WHERE device_id = %s", (device,)
        ).fetchone()
        assert stored == (True, now + timedelta(seconds=4), 2)


def test_0030_compresses_wide_values_with_lz4_before_and_after_it(
    services: ServiceSet, monkeypatch: pytest.MonkeyPatch, storage_mode: str
) -> None:
    """Rows written before the migration read back unchanged (TimescaleDB: from a compressed chunk
    too); rows written after it into a partition or chunk that existed before it, or into one made
    after it, store their wide values with lz4."""
    name = f"yiju_mig_0030_{storage_mode[:4]}"
    url = services.admin_url.rsplit("/", 1)[0] + "/" + name
    services.drop_database(url)
    ensure_database(services.admin_url, name)
    settings = DatabaseSettings(timeseries_mode=storage_mode)
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=3)
    # beyond the partitions made ahead (partitioned mode) and the chunks there are
    later = now + settings.chunk_interval * (settings.partitions_ahead + 2)
    try:
        everything = load_migrations()
        with monkeypatch.context() as m:
            m.setattr(migrate_module, "load_migrations", lambda: [x for x in everything if x.version < 30])
            migrate(url, settings)
        with connection(url, autocommit=True) as conn:
            device = seed_device(conn, "chg-1", "ebike_charger")
            if storage_mode == "partitioned":
                for table in ("telemetry", "device_events"):
                    ensure_partitions(conn, table, old, now, settings)
        write_rows(url, settings, [_wide_row(device, old, 1), _wide_row(device, now, 2)])
        with connection(url, autocommit=True) as conn:
            before = _stored(conn)
            assert before[1][0] == before[2][0] == "pglz"  # PostgreSQL's default
            if storage_mode == "timescaledb":
                conn.execute(
                    "ALTER TABLE telemetry SET (timescaledb.compress, "
                    "timescaledb.compress_segmentby = 'device_id')"
                )
                conn.execute(
                    "SELECT compress_chunk(c) FROM show_chunks('telemetry'::regclass, older_than => %s) c",
                    (now - timedelta(days=2),),
                )
        migrate(url, settings)
        # seq 3: a partition / chunk that existed before; seq 4: one made after (the writer makes it)
        write_rows(
            url, settings, [_wide_row(device, now + timedelta(minutes=1), 3), _wide_row(device, later, 4)]
        )
        with connection(url, autocommit=True) as conn:
            after = _stored(conn)
            for seq in (1, 2):  # unchanged, readable (seq 1 from a compressed chunk in TimescaleDB mode)
                assert after[seq][3:] == before[seq][3:]
            for seq in (3, 4):
                assert after[seq][:2] == ("lz4", "lz4"), seq
                row = _wide_row(device, now, seq)
                assert after[seq][3] == json.loads(row.body)
                assert after[seq][4] == [v for _, _, v in sorted(row.points)]
            events = conn.execute(
                "SELECT count(*) FROM pg_attribute WHERE attname = 'body' AND attcompression = 'l' "
                "AND attrelid = ANY (SELECT inhrelid FROM pg_inherits "
                "WHERE inhparent = 'device_events'::regclass UNION SELECT 'device_events'::regclass)"
            ).fetchone()
            parts = conn.execute(
                "SELECT count(*) + 1 FROM pg_inherits WHERE inhparent = 'device_events'::regclass"
            ).fetchone()
            assert events == parts  # the table and every partition or chunk of it
    finally:
        services.drop_database(url)
