"""A message's points in its own telemetry row (migration 0028, issue 18), in both storage modes: points
written before the migration stay readable (and expire), the writer's arrays read back through the
`points` view, and `points_hourly` is the materialised rollup up to the watermark plus the raw tail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from harness import ServiceSet
from points_support import seed_device, write_rows

from storage import migrate as migrate_module
from storage import readings
from storage.db import connection, ensure_database
from storage.messages import IngestWriter, TelemetryRow, WriteBatch
from storage.migrate import load_migrations, migrate
from storage.timeseries import (
    ROLLUP_RECENT_WINDOW,
    ROLLUP_SETTLE,
    drop_expired,
    ensure_partitions,
    rollup_upto,
    run_maintenance,
)
from yiju.settings import DatabaseSettings

HOUR = timedelta(hours=1)


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _raw_hours(conn: psycopg.Connection[Any]) -> dict[tuple[int, str, int, datetime], tuple[Any, ...]]:
    """Every hour of every series aggregated straight from the raw points."""
    return {
        (r[0], r[1], r[2], r[3]): r[4:]
        for r in conn.execute(
            "SELECT device_id, metric, channel, date_trunc('hour', ts, 'UTC'), count(*), min(value), "
            "max(value), sum(value) FROM points GROUP BY 1, 2, 3, 4"
        ).fetchall()
    }


def _view_hours(conn: psycopg.Connection[Any]) -> dict[tuple[int, str, int, datetime], tuple[Any, ...]]:
    return {
        (r[0], r[1], r[2], r[3]): r[4:]
        for r in conn.execute(
            "SELECT device_id, metric, channel, bucket, samples, min_value, max_value, sum_value "
            "FROM points_hourly"
        ).fetchall()
    }


def test_0028_keeps_the_points_and_rollup_written_before_it(
    services: ServiceSet, monkeypatch: pytest.MonkeyPatch, storage_mode: str
) -> None:
    """An installation migrated from the one-row-per-point layout: its points, its rolled-up hours and
    its late-hours queue all read as before through the views, beside the new messages' points, and
    retention still expires the old points."""
    name = f"yiju_mig_0028_{storage_mode[:4]}"
    url = services.admin_url.rsplit("/", 1)[0] + "/" + name
    services.drop_database(url)
    ensure_database(services.admin_url, name)
    settings = DatabaseSettings(timeseries_mode=storage_mode)
    # applied by hand at the end (TimescaleDB's scheduler runs a new retention policy at once)
    short = DatabaseSettings(timeseries_mode=storage_mode, telemetry_retention=timedelta(days=4))
    now = datetime.now(UTC)
    old_hours = [_hour(now) - timedelta(days=6) + h * HOUR for h in range(3)]  # expire at 4 days
    recent = _hour(now) - 5 * HOUR  # rolled up by the old layout, kept
    try:
        everything = load_migrations()
        monkeypatch.setattr(
            migrate_module, "load_migrations", lambda: [m for m in everything if m.version < 28]
        )
        # this code's policies name the tables of 0028; the old schema gets none (as if made by the old code)
        monkeypatch.setattr(migrate_module, "apply_policies", lambda conn, settings: None)
        migrate(url, settings)
        with connection(url, autocommit=True) as conn:
            device = seed_device(conn, "chg-1", "ebike_charger")
            if storage_mode == "partitioned":
                for table in ("telemetry", "points", "device_events"):
                    ensure_partitions(conn, table, old_hours[0], now, settings)
            # the old writer: a telemetry row without arrays and one points row per (metric, channel)
            for i, ts in enumerate([*old_hours, recent]):
                conn.execute(
                    "INSERT INTO telemetry (ts, device_id, seq, received_at, body) "
                    "VALUES (%s, %s, %s, %s, '{}')",
                    (ts + timedelta(minutes=10), device, i, ts),
                )
                conn.cursor().executemany(
                    "INSERT INTO points (ts, device_id, metric, channel, value) VALUES (%s, %s, %s, %s, %s)",
                    [
                        (ts + timedelta(minutes=10), device, "port_temp_c", 1, 40.0 + i),
                        (ts + timedelta(minutes=10), device, "power_w", 1, 300.0 + i),
                    ],
                )
            # the old rollup of those hours, and a late range still queued
            if storage_mode == "timescaledb":
                conn.execute(
                    "CALL refresh_continuous_aggregate('points_hourly', %s, %s)", (old_hours[0], _hour(now))
                )
            else:
                conn.execute(
                    "INSERT INTO points_hourly (device_id, metric, channel, bucket, samples, min_value, "
                    "max_value, avg_value, sum_value) SELECT device_id, metric, channel, "
                    "date_trunc('hour', ts), count(*), min(value), max(value), avg(value), sum(value) "
                    "FROM points GROUP BY 1, 2, 3, 4"
                )
            conn.execute("INSERT INTO rollup_pending (lo, hi) VALUES (%s, %s)", (recent, recent + HOUR))
            if storage_mode == "timescaledb":
                # old chunks compressed, as the old policies would have: the migration adds columns to a
                # compressed hypertable and the view reads compressed legacy points
                for table, segment in (("telemetry", "device_id"), ("points", "device_id, metric")):
                    conn.execute(
                        f"ALTER TABLE {table} SET (timescaledb.compress, "
                        f"timescaledb.compress_segmentby = '{segment}')"
                    )
                    conn.execute(
                        "SELECT compress_chunk(c) FROM show_chunks(%s::regclass, older_than => %s) c",
                        (table, now - timedelta(days=5)),
                    )
                compressed = conn.execute(
                    "SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed "
                    "AND hypertable_name IN ('telemetry', 'points')"
                ).fetchone()
                assert compressed is not None and compressed[0] >= 2
            before = conn.execute(
                "SELECT device_id, metric, channel, bucket, samples, min_value, max_value, sum_value "
                "FROM points_hourly ORDER BY 1, 2, 3, 4"
            ).fetchall()
            assert len(before) == 8

        monkeypatch.undo()
        migrate(url, settings)  # with this code's policies, as `yiju db migrate` runs it

        # a new message after the migration, written by the new writer
        new_ts = now - timedelta(minutes=2)
        write_rows(
            url, settings, [TelemetryRow(new_ts, device, 99, new_ts, b"{}", (("port_temp_c", 1, 55.5),))]
        )
        with connection(url, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('points_legacy') IS NOT NULL").fetchone() == (True,)
            series = readings.points_range(
                conn, device, metric="port_temp_c", channel=1, since=old_hours[0], until=now + HOUR
            )
            assert [(p.ts, p.value) for p in series] == [
                *((ts + timedelta(minutes=10), 40.0 + i) for i, ts in enumerate([*old_hours, recent])),
                (new_ts, 55.5),
            ]
            seen = {
                (m.metric, m.channel): m.last_value
                for m in readings.device_metrics(conn, device, old_hours[0])
            }
            assert seen == {("port_temp_c", 1): 55.5, ("power_w", 1): 303.0}
            after = conn.execute(
                "SELECT device_id, metric, channel, bucket, samples, min_value, max_value, sum_value "
                "FROM points_hourly WHERE bucket < %s ORDER BY 1, 2, 3, 4",
                (_hour(new_ts),),
            ).fetchall()
            assert after == before  # every rolled-up hour kept, with the same figures
            hourly = readings.hourly_range(
                conn, device, metric="port_temp_c", channel=1, since=_hour(new_ts), until=now + HOUR
            )
            assert [(b.bucket, b.samples, b.max_value) for b in hourly] == [(_hour(new_ts), 1, 55.5)]
            if storage_mode == "timescaledb":
                cagg = conn.execute("SELECT count(*) FROM timescaledb_information.continuous_aggregates")
                assert cagg.fetchone() == (0,)
                targets = {
                    r[0]
                    for r in conn.execute(
                        "SELECT hypertable_name FROM timescaledb_information.jobs "
                        "WHERE proc_name IN ('policy_retention', 'policy_compression')"
                    )
                }
                assert targets == {"telemetry", "device_events", "points_legacy", "points_rollup"}

            # the upkeep: the queued range recomputed from the legacy rows, old points expired by
            # retention, the rolled-up history kept
            run_maintenance(conn, settings)
            assert drop_expired(conn, short, now)
            assert conn.execute("SELECT count(*) FROM rollup_pending").fetchone() == (0,)
            oldest = conn.execute("SELECT min(ts) FROM points_legacy").fetchone()
            assert oldest is not None and oldest[0] >= now - timedelta(days=4) - short.chunk_interval
            kept = conn.execute(
                "SELECT device_id, metric, channel, bucket, samples, min_value, max_value, sum_value "
                "FROM points_hourly WHERE bucket < %s ORDER BY 1, 2, 3, 4",
                (_hour(new_ts),),
            ).fetchall()
            assert kept == before
    finally:
        services.drop_database(url)


def test_points_view_reads_the_writers_arrays(
    make_db: Callable[[str | None], str], storage_mode: str
) -> None:
    """Fast path, slow path (a redelivery) and a message without points: the view has each point once."""
    url = make_db(storage_mode)
    settings = DatabaseSettings()
    now = datetime.now(UTC) - timedelta(minutes=30)
    with connection(url, autocommit=True) as conn:
        device = seed_device(conn, "chg-1", "ebike_charger")
    points = (("port_temp_c", 1, 41.5), ("port_temp_c", 2, 39.0), ("power_w", 1, 250.0))
    rows = [
        TelemetryRow(now, device, 1, now, b'{"a": 1}', points),
        TelemetryRow(now + timedelta(seconds=1), device, 2, now, b"{}", ()),
    ]
    writer = IngestWriter(url, settings)
    try:
        first = writer.write(WriteBatch(telemetry=rows))
        again = writer.write(
            WriteBatch(telemetry=[*rows, TelemetryRow(now, device, 3, now, b"{}", points[:1])])
        )
    finally:
        writer.close()
    assert (first.telemetry, first.points, first.slow_path) == (2, 3, False)
    assert (again.telemetry, again.points, again.duplicates, again.slow_path) == (1, 1, 2, True)
    with connection(url, autocommit=True) as conn:
        got = conn.execute(
            "SELECT ts, device_id, metric, channel, value FROM points ORDER BY metric, channel, value"
        ).fetchall()
        assert got == [
            (now, device, "port_temp_c", 1, 41.5),
            (now, device, "port_temp_c", 1, 41.5),
            (now, device, "port_temp_c", 2, 39.0),
            (now, device, "power_w", 1, 250.0),
        ]
        stored = conn.execute("SELECT point_metrics, point_channels FROM telemetry WHERE seq = 1").fetchone()
        assert stored == (["port_temp_c", "port_temp_c", "power_w"], [1, 2, 1])
        assert conn.execute("SELECT point_values FROM telemetry WHERE seq = 2").fetchone() == (None,)


def test_rollup_materialises_settled_hours_and_reads_the_tail_raw(
    make_db: Callable[[str | None], str], storage_mode: str
) -> None:
    """After a refresh the hours before the watermark come from points_rollup, the later ones from the
    raw rows; a point written into the tail shows at once, a late one once its hour is refreshed."""
    url = make_db(storage_mode)
    settings = DatabaseSettings()
    now = datetime.now(UTC)
    start = _hour(now) - 8 * HOUR
    times = [start + timedelta(minutes=20 * i) for i in range(int((now - start) / timedelta(minutes=20)))]
    with connection(url, autocommit=True) as conn:
        device = seed_device(conn, "chg-1", "ebike_charger")
        # an upkeep round a day ago (partitions; the watermark before the data)
        run_maintenance(conn, settings, now - timedelta(days=1))
        before = rollup_upto(conn)
        assert before < start
    rows = [TelemetryRow(ts, device, i, ts, b"{}", (("power_w", 1, float(i)),)) for i, ts in enumerate(times)]
    write_rows(url, settings, rows)
    with connection(url, autocommit=True) as conn:
        report = run_maintenance(conn, settings, now)
        upto = rollup_upto(conn)
        assert report.rolled_up == (before, upto)
        assert upto == _hour(now - ROLLUP_RECENT_WINDOW - ROLLUP_SETTLE)
        materialised = conn.execute(
            "SELECT min(bucket), max(bucket), count(*) FROM points_rollup WHERE bucket < %s", (upto,)
        ).fetchone()
        assert materialised == (start, upto - HOUR, (upto - start) // HOUR)
        assert _view_hours(conn) == _raw_hours(conn)  # the tail's hours too, each exactly once
        tail = [h for (_, _, _, h) in _view_hours(conn) if h >= upto]
        assert tail and min(tail) == upto

    # one point in the tail, one late (its hour is materialised): the writer queues and refreshes it
    tail_ts, late_ts = now - timedelta(minutes=1), start + timedelta(minutes=5)
    write_rows(
        url,
        settings,
        [
            TelemetryRow(tail_ts, device, 1000, tail_ts, b"{}", (("power_w", 1, 1000.0),)),
            TelemetryRow(late_ts, device, 1001, late_ts, b"{}", (("power_w", 1, -5.0),)),
        ],
    )
    with connection(url, autocommit=True) as conn:
        hours = _view_hours(conn)
        assert hours[(device, "power_w", 1, _hour(tail_ts))][2] == 1000.0
        assert hours[(device, "power_w", 1, start)][1] == -5.0  # refreshed by the writer after commit
        assert conn.execute("SELECT count(*) FROM rollup_pending").fetchone() == (0,)
        assert hours == _raw_hours(conn)
        # a second round materialises nothing new within the same hour
        assert run_maintenance(conn, settings, now).rolled_up is None


def test_points_the_database_cannot_hold_refuse_only_their_message(
    make_db: Callable[[str | None], str],
) -> None:
    """A channel beyond smallint is refused with its row (to be dead-lettered); the batch's other
    messages are stored."""
    url = make_db(None)
    settings = DatabaseSettings()
    ts = datetime.now(UTC) - timedelta(minutes=5)
    with connection(url, autocommit=True) as conn:
        device = seed_device(conn, "chg-1", "ebike_charger")
    rows = [
        TelemetryRow(ts, device, 1, ts, b"{}", (("power_w", 1, 1.0),)),
        TelemetryRow(ts, device, 2, ts, b"{}", (("power_w", 70_000, 2.0),)),
        TelemetryRow(ts, device, 3, ts, b"{}", (("power_w", 2, 3.0),)),
    ]
    writer = IngestWriter(url, settings)
    try:
        result = writer.write(WriteBatch(telemetry=rows))
    finally:
        writer.close()
    assert [(r.kind, r.index) for r in result.rejected] == [("telemetry", 1)]
    assert (result.telemetry, result.points) == (2, 2)
    with connection(url, autocommit=True) as conn:
        assert conn.execute("SELECT channel, value FROM points ORDER BY value").fetchall() == [
            (1, 1.0),
            (2, 3.0),
        ]
