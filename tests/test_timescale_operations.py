"""TimescaleDB for real operations (issue 14): policies kept in place, job health, the upkeep's own
runs of failing policies, late data in the rollup (both modes), the compressed rollup.

Hypertable-only tests skip, saying why, where TimescaleDB is not installed and preloaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from harness import ServiceSet
from ingest_support import wait_for
from points_support import seed_device
from prometheus_client import CollectorRegistry
from psycopg import sql

from storage.db import connection
from storage.messages import IngestWriter, TelemetryRow, WriteBatch
from storage.migrate import migrate
from storage.timeseries import ROLLUP_REFRESH_WINDOW, queue_late_points, run_maintenance
from storage.tsdb import job_health
from yiju.doctor import _job_checks
from yiju.settings import DatabaseSettings
from yiju.upkeep import FallbackMetrics, StorageUpkeep

HOUR = timedelta(hours=1)
NO_TIMESCALEDB = (
    "TimescaleDB is not usable on this PostgreSQL (not installed, or not in shared_preload_libraries); "
    "hypertable mode not testable here"
)


def _needs_timescaledb(services: ServiceSet) -> None:
    if not services.timescaledb:
        pytest.skip(NO_TIMESCALEDB)


def _rows(device: int, times: list[datetime], seq0: int = 0) -> list[TelemetryRow]:
    """One telemetry message per time with one point whose value is the hour's index."""
    return [
        TelemetryRow(ts, device, seq0 + i, ts, b'{"battery_pct": 1}', (("battery_pct", 0, float(i)),))
        for i, ts in enumerate(times)
    ]


def _rollup_matches_raw(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(buckets in points_hourly, buckets whose samples/min/max differ from the raw points or are missing)."""
    raw = {
        (r[0], r[1]): r[2:]
        for r in conn.execute(
            "SELECT device_id, date_trunc('hour', ts), count(*), min(value), max(value) FROM points "
            "GROUP BY 1, 2"
        ).fetchall()
    }
    rolled = {
        (r[0], r[1]): r[2:]
        for r in conn.execute("SELECT device_id, bucket, samples, min_value, max_value FROM points_hourly")
    }
    differ = sum(1 for key, value in raw.items() if rolled.get(key) != value)
    return len(rolled), differ


def _policy_ids(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], int]:
    return {(j.proc_name, j.target): j.job_id for j in job_health(conn)}


def test_migrate_again_keeps_job_ids_and_alters_only_what_changed(
    services: ServiceSet, make_db: Callable[[str | None], str]
) -> None:
    _needs_timescaledb(services)
    url = make_db("timescaledb")
    with connection(url, autocommit=True) as conn:
        before = _policy_ids(conn)
        # compression + retention for the 3 raw tables (points_legacy: points from before migration
        # 0028) and for the rollup table
        assert len(before) == 8
        assert ("policy_compression", "points_rollup") in before
        enabled = conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'points_rollup'"
        ).fetchone()
        assert enabled == (True,)
    migrate(url, DatabaseSettings())
    changed = DatabaseSettings(telemetry_retention=timedelta(days=30))
    migrate(url, changed)
    with connection(url, autocommit=True) as conn:
        assert _policy_ids(conn) == before
        drop_after = dict(
            conn.execute(
                "SELECT hypertable_name, (config->>'drop_after')::interval FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_retention' AND hypertable_schema = 'public'"
            ).fetchall()
        )
    assert drop_after == {
        "telemetry": timedelta(days=30),
        "points_legacy": timedelta(days=30),
        "device_events": timedelta(days=400),
        "points_rollup": timedelta(days=800),
    }


def _scheduler_runs_all(conn: psycopg.Connection[Any], ids: list[int], timeout_s: float = 60.0) -> None:
    """Ask the scheduler to run the jobs now and wait until each has been attempted."""
    asked = conn.execute("SELECT now()").fetchone()
    assert asked is not None
    for job_id in ids:
        conn.execute("SELECT alter_job(%s, next_start => now())", (job_id,))

    def attempted() -> bool:
        row = conn.execute(
            "SELECT count(*) FROM timescaledb_information.job_stats "
            "WHERE job_id = ANY(%s) AND last_run_started_at >= %s AND job_status <> 'Running' "
            "AND last_run_status IS NOT NULL",
            (ids, asked[0]),
        ).fetchone()
        return row is not None and row[0] == len(ids)

    wait_for(attempted, timeout_s, "the scheduler to attempt every policy job")


@contextmanager
def _scheduled_runs_fail(conn: psycopg.Connection[Any], ids: list[int]) -> Iterator[None]:
    """Make the scheduler's runs of these jobs fail before they do anything.

    The scheduler runs a job as its owner, in a new session that takes the owner's settings; a
    `CALL run_job` runs it in the caller's session. So the jobs are given to a role whose sessions in
    this database are read-only. (On PostgreSQL 15.20 + TimescaleDB 2.28.3 the scheduled runs also
    fail by themselves, with SQLSTATE 24000, but only after they committed their work chunk by chunk,
    so that failure alone cannot show that the fallback does the work.)
    """
    db = conn.info.dbname
    role = f"yiju_jobs_{db}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = on").format(
                sql.Identifier(role), sql.Identifier(db)
            )
        )
        conn.execute(
            "UPDATE _timescaledb_config.bgw_job SET owner = %s::regrole WHERE id = ANY(%s)", (role, ids)
        )
        yield
    finally:
        conn.execute(
            "UPDATE _timescaledb_config.bgw_job SET owner = current_user::regrole WHERE id = ANY(%s)", (ids,)
        )
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_upkeep_runs_the_policies_whose_scheduled_runs_fail(
    services: ServiceSet, make_db: Callable[[str | None], str]
) -> None:
    """With the scheduler's runs failing, one upkeep round still compresses, expires and rolls up."""
    _needs_timescaledb(services)
    url = make_db("timescaledb")
    settings = DatabaseSettings(telemetry_retention=timedelta(days=9), compress_after=timedelta(days=4))
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    times = [now - timedelta(days=12) + h * HOUR + timedelta(minutes=20) for h in range(12 * 24)]
    with connection(url, autocommit=True) as conn:
        ids = sorted(_policy_ids(conn).values())
    with connection(url, autocommit=True) as conn, _scheduled_runs_fail(conn, ids):
        # from here on no scheduled run can do anything (the scheduler starts a new database's jobs
        # at once, and again after they are altered)
        migrate(url, settings)
        assert sorted(_policy_ids(conn).values()) == ids
        device = seed_device(conn)
        writer = IngestWriter(url, settings)
        writer._late_due = time.monotonic() + 3600  # leave the late hours queued for the upkeep round
        try:
            writer.write(WriteBatch(telemetry=_rows(device, times)))
        finally:
            writer.close()

        _scheduler_runs_all(conn, ids)
        jobs = job_health(conn)
        assert [j.last_run_status for j in jobs] == ["Failed"] * len(ids)
        assert all(j.last_error for j in jobs), [(j.job_id, j.last_error) for j in jobs]

        # doctor: failing since moments ago is within twice the interval; three days on it is not
        checks = _job_checks(url, datetime.now(UTC))
        assert [c.ok for c in checks] == [True], [c.message for c in checks]
        later = datetime.now(UTC) + timedelta(days=3)
        lines = [c for c in _job_checks(url, later) if not c.ok]
        assert {int(c.message.split()[1]) for c in lines} == set(ids)
        assert all("never succeeded" in c.message and "last error" in c.message for c in lines)

        # before the upkeep: nothing compressed, expired or rolled up
        oldest = conn.execute("SELECT min(ts) FROM points").fetchone()
        assert oldest is not None and oldest[0] < now - timedelta(days=11)
        compressed = conn.execute(
            "SELECT count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks"
        ).fetchone()
        assert compressed == (0,)
        assert conn.execute("SELECT count(*) FROM points_rollup").fetchone() == (0,)

        registry = CollectorRegistry()
        upkeep = StorageUpkeep(url, settings, FallbackMetrics.create(registry))
        report = upkeep.step()
        assert sorted(r.job_id for r in report.fallback_runs) == ids
        assert all(r.ok for r in report.fallback_runs), [r.error for r in report.fallback_runs if not r.ok]
        sample = registry.get_sample_value(
            "yiju_storage_policy_fallback_runs_total",
            {"policy": "policy_compression", "target": "telemetry", "outcome": "ok"},
        )
        assert sample == 1.0

        # retention: nothing older than 9 days (+ one chunk) is left of the raw points
        oldest = conn.execute("SELECT min(ts) FROM points").fetchone()
        assert oldest is not None and oldest[0] >= now - timedelta(days=10)
        # compression: every chunk of telemetry (with its points) older than compress_after is compressed
        chunks = conn.execute(
            "SELECT range_end, is_compressed FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'telemetry' ORDER BY range_start"
        ).fetchall()
        old = [c for end, c in chunks if end <= now - settings.compress_after]
        assert old and all(old)
        # the rollup: all 12 days materialised, equal to the raw points where they are still kept
        n_buckets, differ = _rollup_matches_raw(conn)
        assert n_buckets == len(times)
        assert differ == 0
        recorded = conn.execute("SELECT count(*), bool_and(ok) FROM tsdb_job_runs").fetchone()
        assert recorded == (len(ids), True)
        assert all(j.fallback_ok for j in job_health(conn))

        # the next round does not run them again before their interval has passed
        assert upkeep.step().fallback_runs == []


def test_late_points_refresh_exactly_their_hours(
    services: ServiceSet, make_db: Callable[[str | None], str], storage_mode: str
) -> None:
    """Late points (older than ROLLUP_RECENT_WINDOW) reach points_hourly once the writer or upkeep
    refreshes their queued hours."""
    url = make_db(storage_mode)
    settings = DatabaseSettings()
    now = datetime.now(UTC)
    late = [
        now - timedelta(days=5, minutes=10),  # a backfill, well behind the refresh window
        now - timedelta(days=5, minutes=5),  # same hour or the next: one range either way
        now - ROLLUP_REFRESH_WINDOW + timedelta(minutes=1),  # just inside ingest's 3-day window
        now - timedelta(minutes=5),  # recent: not queued
    ]
    with connection(url, autocommit=True) as conn:
        device = seed_device(conn)
        if storage_mode == "partitioned":
            run_maintenance(conn, settings)
        with conn.transaction(), conn.cursor() as cur:
            queued = queue_late_points(cur, late, now)
            ranges = cur.execute("SELECT lo, hi FROM rollup_pending ORDER BY lo").fetchall()
            raise psycopg.Rollback
        hour = lambda ts: ts.replace(minute=0, second=0, microsecond=0)  # noqa: E731
        expected = [(hour(late[0]), hour(late[1]) + HOUR), (hour(late[2]), hour(late[2]) + HOUR)]
        assert queued == 2
        assert ranges == expected

    writer = IngestWriter(url, settings)
    try:
        writer.write(WriteBatch(telemetry=_rows(device, late)))
    finally:
        writer.close()
    with connection(url, autocommit=True) as conn:
        report = run_maintenance(conn, settings)
        assert report.late_ranges == []  # the writer already refreshed them after its commit
        assert conn.execute("SELECT count(*) FROM rollup_pending").fetchone() == (0,)
        buckets = {
            r[0]: r[1]
            for r in conn.execute("SELECT bucket, samples FROM points_hourly WHERE bucket < %s", (hour(now),))
        }
        assert set(buckets) >= {hour(t) for t in late[:3]}
        _, differ = _rollup_matches_raw(conn)
        assert differ == 0


def test_queued_late_ranges_survive_a_writer_that_stopped(
    make_db: Callable[[str | None], str], storage_mode: str
) -> None:
    """The queue is in the database: the upkeep refreshes what a writer queued but did not refresh."""
    url = make_db(storage_mode)
    settings = DatabaseSettings()
    now = datetime.now(UTC)
    ts = now - timedelta(days=4)
    with connection(url, autocommit=True) as conn:
        device = seed_device(conn)
        if storage_mode == "partitioned":
            run_maintenance(conn, settings)
    writer = IngestWriter(url, settings)
    writer._late_due = time.monotonic() + 3600  # as if it had just refreshed: it will not do it now
    try:
        writer.write(WriteBatch(telemetry=_rows(device, [ts])))
    finally:
        writer.close()
    with connection(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM rollup_pending").fetchone() == (1,)
        report = run_maintenance(conn, settings)
        bucket = ts.replace(minute=0, second=0, microsecond=0)
        assert report.late_ranges == [(bucket, bucket + HOUR)]
        assert conn.execute("SELECT samples FROM points_hourly WHERE bucket = %s", (bucket,)).fetchone() == (
            1,
        )
