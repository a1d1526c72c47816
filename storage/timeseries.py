"""Time-series upkeep in both storage modes.

TimescaleDB mode: hypertables with compression, retention and a continuous aggregate, all driven by
TimescaleDB's own background jobs (set up by `apply_policies`).

Partitioned mode: native `PARTITION BY RANGE (ts)` tables; this module creates partitions ahead of
time, drops whole partitions for retention and maintains the `points_hourly` rollup table. The
application runs `run_maintenance` periodically (an owned background task) and `yiju db maintain`
runs it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql

from storage.config import DatabaseSettings
from storage.tsdb import FallbackRun, JobHealth, Policy, ensure_policies, job_health, needs_fallback, run_job
from yiju.errors import StorageError

StorageMode = Literal["timescaledb", "partitioned"]

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # TimescaleDB's bucket origin; partitions align to it too
ROLLUP_BUCKET = timedelta(hours=1)
# The continuous aggregate re-materialises this far back, so late data (devices flushing buffers
# after an outage) lands in the rollup; it must stay shorter than the raw-data retention.
ROLLUP_REFRESH_WINDOW = timedelta(days=3)
ROLLUP_RECENT_WINDOW = timedelta(hours=2)
ROLLUP_SCHEDULE = timedelta(minutes=15)
# a guard against an endless loop should the catalogue hold a bound we cannot parse
MAX_PARTITION_ATTEMPTS = 10_000


@dataclass(frozen=True)
class SeriesTable:
    name: str
    compress_segmentby: str
    compress_orderby: str


SERIES_TABLES = (
    SeriesTable("telemetry", "device_id", "ts DESC, seq"),
    SeriesTable("points", "device_id, metric", "ts DESC, channel"),
    SeriesTable("device_events", "device_id", "ts DESC, seq"),
)
ROLLUP_VIEW = "points_hourly"
# the hourly rollup is compressed too (TimescaleDB mode): ~68 MB per compound and day uncompressed
ROLLUP_COMPRESSION = SeriesTable(ROLLUP_VIEW, "device_id, metric", "bucket DESC, channel")


def storage_mode(conn: psycopg.Connection[Any]) -> StorageMode:
    row = conn.execute("SELECT value FROM yiju_meta WHERE key = 'storage_mode'").fetchone()
    if row is None:
        raise StorageError("the database has not been migrated yet: run `yiju db migrate`")
    if row[0] == "timescaledb":
        return "timescaledb"
    return "partitioned"


def retention_for(table: str, settings: DatabaseSettings) -> timedelta:
    if table == "device_events":
        return settings.events_retention
    if table == ROLLUP_VIEW:
        return settings.rollup_retention
    return settings.telemetry_retention


def _check_retention(settings: DatabaseSettings) -> None:
    if settings.telemetry_retention <= ROLLUP_REFRESH_WINDOW:
        raise StorageError(
            f"telemetry_retention ({settings.telemetry_retention}) must be longer than the rollup refresh "
            f"window ({ROLLUP_REFRESH_WINDOW}), or refreshing would erase rolled-up history"
        )


def apply_policies(
    conn: psycopg.Connection[Any], settings: DatabaseSettings, now: datetime | None = None
) -> None:
    """Make the background upkeep match the settings. Idempotent; runs after every migrate.

    `conn` must be in autocommit mode (TimescaleDB policy calls cannot run in a transaction block).
    """
    _check_retention(settings)
    if storage_mode(conn) == "timescaledb":
        _apply_timescaledb_policies(conn, settings)
    else:
        now = now or datetime.now(UTC)
        for table in SERIES_TABLES:
            ensure_partitions(conn, table.name, now - settings.chunk_interval, now, settings)


def _apply_timescaledb_policies(conn: psycopg.Connection[Any], settings: DatabaseSettings) -> None:
    for table in [*SERIES_TABLES, ROLLUP_COMPRESSION]:
        enabled = conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
            (table.name,),
        ).fetchone()
        if table.name == ROLLUP_VIEW:
            enabled = conn.execute(
                "SELECT compression_enabled FROM timescaledb_information.continuous_aggregates "
                "WHERE view_name = %s",
                (ROLLUP_VIEW,),
            ).fetchone()
        if enabled is not None and not enabled[0]:
            kind = "MATERIALIZED VIEW" if table.name == ROLLUP_VIEW else "TABLE"
            conn.execute(
                sql.SQL(
                    "ALTER " + kind + " {} SET (timescaledb.compress, timescaledb.compress_segmentby = {}, "
                    "timescaledb.compress_orderby = {})"
                ).format(
                    sql.Identifier(table.name),
                    sql.Literal(table.compress_segmentby),
                    sql.Literal(table.compress_orderby),
                )
            )
    ensure_policies(conn, timescaledb_policies(settings))


def timescaledb_policies(settings: DatabaseSettings) -> list[Policy]:
    """The eight policies of TimescaleDB mode, plus the rollup's compression (issue 14 item 4)."""
    wanted: list[Policy] = []
    for table in SERIES_TABLES:
        wanted.append(Policy("policy_compression", table.name, {"compress_after": settings.compress_after}))
        wanted.append(
            Policy("policy_retention", table.name, {"drop_after": retention_for(table.name, settings)})
        )
    wanted.append(
        Policy(
            "policy_refresh_continuous_aggregate",
            ROLLUP_VIEW,
            {"start_offset": ROLLUP_REFRESH_WINDOW, "end_offset": ROLLUP_BUCKET},
            ROLLUP_SCHEDULE,
        )
    )
    wanted.append(Policy("policy_retention", ROLLUP_VIEW, {"drop_after": settings.rollup_retention}))
    # compressed once the refresh window has passed it: late data past the window is refreshed by
    # refresh_pending into the compressed chunks (TimescaleDB supports DML on them)
    wanted.append(
        Policy(
            "policy_compression",
            ROLLUP_VIEW,
            {"compress_after": max(settings.compress_after, ROLLUP_REFRESH_WINDOW + ROLLUP_BUCKET)},
        )
    )
    return wanted


# --------------------------------------------------------------------------------------------------
# Native partitions


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime


_BOUND_RE = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def partitions(conn: psycopg.Connection[Any], table: str) -> list[Partition]:
    """The partitions of `table`, oldest first (empty in TimescaleDB mode)."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        (table,),
    ).fetchall()
    found: list[Partition] = []
    for name, bound in rows:
        match = _BOUND_RE.search(bound or "")
        if match is None:
            continue  # a DEFAULT partition added by hand; retention leaves it alone
        found.append(Partition(name, _parse_ts(match.group(1)), _parse_ts(match.group(2))))
    return sorted(found, key=lambda p: p.start)


def _parse_ts(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _align_down(ts: datetime, width: timedelta) -> datetime:
    return EPOCH + ((ts - EPOCH) // width) * width


def ensure_partitions(
    conn: psycopg.Connection[Any],
    table: str,
    start: datetime,
    end: datetime,
    settings: DatabaseSettings,
) -> list[Partition]:
    """Create the partitions of `table` covering [start, end] plus `partitions_ahead` beyond now.

    Only gaps are filled, so a changed partition width never collides with existing partitions.
    Safe to run concurrently: a partition created meanwhile by another process is skipped.
    """
    width = settings.chunk_interval
    now = datetime.now(UTC)
    end = max(end, now + settings.partitions_ahead * width)
    existing = partitions(conn, table)
    created: list[Partition] = []
    cursor = _align_down(start, width)
    attempts = 0
    while cursor <= end:
        attempts += 1
        if attempts > MAX_PARTITION_ATTEMPTS:
            raise StorageError(f"could not lay out partitions of {table} up to {end:%Y-%m-%d %H:%M}")
        upper = cursor + width
        lo, hi = cursor, upper
        for part in existing:  # clip the new range to the gaps between existing partitions
            if part.start <= lo < part.end:
                lo = part.end
            if lo < part.start < hi:
                hi = part.start
        if lo < hi:
            name = f"{table}_p{lo:%Y%m%d_%H%M}"
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                            sql.Identifier(name), sql.Identifier(table), sql.Literal(lo), sql.Literal(hi)
                        )
                    )
            except (psycopg.errors.DuplicateTable, psycopg.errors.InvalidObjectDefinition):
                existing = partitions(conn, table)  # someone else created it meanwhile
                continue
            part = Partition(name, lo, hi)
            existing.append(part)
            created.append(part)
            if hi < upper:
                continue  # fill the rest of this aligned range on the next turn
        cursor = upper
    return created


def drop_expired(conn: psycopg.Connection[Any], settings: DatabaseSettings, now: datetime) -> list[str]:
    """Apply retention now. Partitioned mode drops whole partitions; TimescaleDB mode drops chunks."""
    dropped: list[str] = []
    mode = storage_mode(conn)
    for table in SERIES_TABLES:
        cutoff = now - retention_for(table.name, settings)
        if mode == "timescaledb":
            rows = conn.execute(
                "SELECT drop_chunks(%s::regclass, older_than => %s)", (table.name, cutoff)
            ).fetchall()
            dropped.extend(str(r[0]) for r in rows)
            continue
        for part in partitions(conn, table.name):
            if part.end <= cutoff:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(part.name)))
                dropped.append(part.name)
    rollup_cutoff = now - settings.rollup_retention
    if mode == "timescaledb":
        rows = conn.execute(
            "SELECT drop_chunks(%s::regclass, older_than => %s)", (ROLLUP_VIEW, rollup_cutoff)
        ).fetchall()
        dropped.extend(str(r[0]) for r in rows)
    else:
        conn.execute("DELETE FROM points_hourly WHERE bucket < %s", (rollup_cutoff,))
    return dropped


def refresh_rollup(conn: psycopg.Connection[Any], start: datetime, end: datetime) -> None:
    """Recompute `points_hourly` for the hours overlapping [start, end). `conn` must be autocommit."""
    lo = _align_down(start, ROLLUP_BUCKET)
    hi = _align_down(end, ROLLUP_BUCKET)
    if hi < end:
        hi += ROLLUP_BUCKET
    if storage_mode(conn) == "timescaledb":
        conn.execute("CALL refresh_continuous_aggregate(%s::regclass, %s, %s)", (ROLLUP_VIEW, lo, hi))
        return
    with conn.transaction():
        conn.execute("DELETE FROM points_hourly WHERE bucket >= %s AND bucket < %s", (lo, hi))
        conn.execute(
            "INSERT INTO points_hourly (device_id, metric, channel, bucket, samples, min_value, max_value, "
            "avg_value, sum_value) "
            "SELECT device_id, metric, channel, date_trunc('hour', ts), count(*), min(value), max(value), "
            "avg(value), sum(value) FROM points WHERE ts >= %s AND ts < %s "
            "GROUP BY device_id, metric, channel, date_trunc('hour', ts)",
            (lo, hi),
        )


def late_cutoff(mode: str, now: datetime) -> datetime:
    """Points older than this are late: nothing else would bring them into the rollup.

    Partitioned mode: the upkeep recomputes only the recent window. TimescaleDB mode: the refresh
    policy (or the upkeep running it when the scheduler fails) covers [now - 3 days, now - 1 hour]
    every 15 minutes, so a point older than 3 days less two schedule intervals may fall out of the
    window before the next run (a point just inside ingest's 3-day window was skipped, issue 14).
    """
    if mode == "timescaledb":
        return now - (ROLLUP_REFRESH_WINDOW - 2 * ROLLUP_SCHEDULE)
    return now - ROLLUP_RECENT_WINDOW


def queue_late_points(
    cur: psycopg.Cursor[Any], times: list[datetime], now: datetime, mode: str = "partitioned"
) -> int:
    """Queue the rollup hours of late points (`late_cutoff`), in the caller's transaction.

    Contiguous hours become one range, so a device flushing a long outage buffer queues one row and
    the refresh recomputes exactly those hours (issue 14 item 3). Returns the ranges queued.
    """
    cutoff = late_cutoff(mode, now)
    hours = sorted({_align_down(ts, ROLLUP_BUCKET) for ts in times if ts < cutoff})
    ranges: list[list[datetime]] = []
    for hour in hours:
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + ROLLUP_BUCKET
        else:
            ranges.append([hour, hour + ROLLUP_BUCKET])
    if ranges:
        cur.executemany("INSERT INTO rollup_pending (lo, hi) VALUES (%s, %s)", [tuple(r) for r in ranges])
    return len(ranges)


def refresh_pending(conn: psycopg.Connection[Any]) -> list[tuple[datetime, datetime]]:
    """Recompute the queued rollup ranges (merged where they overlap) and dequeue them.

    `conn` must be autocommit. A range is dequeued only after its refresh, so a failure leaves it
    queued for the next round; two processes refreshing the same range at once only repeat work.
    """
    rows = conn.execute("SELECT id, lo, hi FROM rollup_pending ORDER BY lo, hi").fetchall()
    merged: list[tuple[datetime, datetime, list[int]]] = []
    for row_id, lo, hi in rows:
        if merged and lo <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], hi), [*last[2], row_id])
        else:
            merged.append((lo, hi, [row_id]))
    done: list[tuple[datetime, datetime]] = []
    for lo, hi, ids in merged:
        refresh_rollup(conn, lo, hi)
        conn.execute("DELETE FROM rollup_pending WHERE id = ANY(%s)", (ids,))
        done.append((lo, hi))
    return done


@dataclass(frozen=True)
class MaintenanceReport:
    mode: StorageMode
    partitions_created: int
    dropped: list[str]
    late_ranges: list[tuple[datetime, datetime]] = field(default_factory=list)
    # TimescaleDB mode: the policy jobs, and the ones Yiju ran itself because the scheduler's failed
    jobs: list[JobHealth] = field(default_factory=list)
    fallback_runs: list[FallbackRun] = field(default_factory=list)


def run_maintenance(
    conn: psycopg.Connection[Any], settings: DatabaseSettings, now: datetime | None = None
) -> MaintenanceReport:
    """One round of upkeep. Both modes: the rollup ranges that late data made stale.

    Partitioned mode: partitions ahead, retention, the recent rollup buckets. TimescaleDB mode: its
    background jobs do that, and this runs the policy jobs whose scheduled runs fail (storage/tsdb.py).
    """
    now = now or datetime.now(UTC)
    mode = storage_mode(conn)
    if mode == "timescaledb":
        late = refresh_pending(conn)
        jobs = job_health(conn)
        runs = [run_job(conn, job) for job in jobs if needs_fallback(job, now)]
        return MaintenanceReport(mode, 0, [], late, jobs, runs)
    created = 0
    for table in SERIES_TABLES:
        created += len(ensure_partitions(conn, table.name, now - settings.chunk_interval, now, settings))
    dropped = drop_expired(conn, settings, now)
    refresh_rollup(conn, now - ROLLUP_RECENT_WINDOW, now)
    late = refresh_pending(conn)
    return MaintenanceReport(mode, created, dropped, late)
