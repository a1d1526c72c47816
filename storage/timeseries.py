"""Time-series upkeep in both storage modes.

TimescaleDB mode: hypertables with compression and retention, driven by TimescaleDB's own background
jobs (set up by `apply_policies`).

Partitioned mode: native `PARTITION BY RANGE (ts)` tables; this module creates partitions ahead of
time and drops whole partitions for retention.

Both modes: the hourly rollup `points_rollup` is maintained here (`refresh_recent`, `refresh_pending`),
since a message's points are arrays in its telemetry row (migration 0028) and TimescaleDB's continuous
aggregates cannot unnest. The `points_hourly` view reads it up to the watermark and the raw rows after
it. The application runs `run_maintenance` periodically (an owned background task) and `yiju db
maintain` runs it once.
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
# How far back late data (devices flushing buffers after an outage) is accepted and still rolled up
# (ingest's max_past); it must stay shorter than the raw-data retention, which refreshing relies on.
ROLLUP_REFRESH_WINDOW = timedelta(days=3)
# Points older than this when written are late: the writer queues their hours (rollup_pending).
ROLLUP_RECENT_WINDOW = timedelta(hours=2)
# An hour is materialised once it ended this long before the refresh: a batch whose points were not
# late (younger than ROLLUP_RECENT_WINDOW when it took `now`) and that commits after the refresh read
# its hour would otherwise be left out of it; the margin is far above a batch's write time.
ROLLUP_SETTLE = timedelta(minutes=15)
# a guard against an endless loop should the catalogue hold a bound we cannot parse
MAX_PARTITION_ATTEMPTS = 10_000


@dataclass(frozen=True)
class SeriesTable:
    name: str
    compress_segmentby: str
    compress_orderby: str


# the tables ingest writes (partitions are made ahead for these)
WRITTEN_TABLES = (
    SeriesTable("telemetry", "device_id", "ts DESC, seq"),
    SeriesTable("device_events", "device_id", "ts DESC, seq"),
)
# points written before migration 0028, read through the `points` view until retention drops them
LEGACY_POINTS = SeriesTable("points_legacy", "device_id, metric", "ts DESC, channel")
SERIES_TABLES = (*WRITTEN_TABLES, LEGACY_POINTS)  # retention and compression
ROLLUP_TABLE = "points_rollup"
# the hourly rollup is compressed too (TimescaleDB mode): ~68 MB per compound and day uncompressed
ROLLUP_COMPRESSION = SeriesTable(ROLLUP_TABLE, "device_id, metric", "bucket DESC, channel")


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
    if table == ROLLUP_TABLE:
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
        for table in WRITTEN_TABLES:
            ensure_partitions(conn, table.name, now - settings.chunk_interval, now, settings)


def _apply_timescaledb_policies(conn: psycopg.Connection[Any], settings: DatabaseSettings) -> None:
    for table in [*SERIES_TABLES, ROLLUP_COMPRESSION]:
        enabled = conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
            (table.name,),
        ).fetchone()
        if enabled is not None and not enabled[0]:
            conn.execute(
                sql.SQL(
                    "ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = {}, "
                    "timescaledb.compress_orderby = {})"
                ).format(
                    sql.Identifier(table.name),
                    sql.Literal(table.compress_segmentby),
                    sql.Literal(table.compress_orderby),
                )
            )
    ensure_policies(conn, timescaledb_policies(settings))


def timescaledb_policies(settings: DatabaseSettings) -> list[Policy]:
    """Compression and retention of each time-series table and of the rollup (issue 14 item 4)."""
    wanted: list[Policy] = []
    for table in SERIES_TABLES:
        wanted.append(Policy("policy_compression", table.name, {"compress_after": settings.compress_after}))
        wanted.append(
            Policy("policy_retention", table.name, {"drop_after": retention_for(table.name, settings)})
        )
    wanted.append(Policy("policy_retention", ROLLUP_TABLE, {"drop_after": settings.rollup_retention}))
    # compressed once late data can no longer arrive for it: a late range is refreshed by
    # refresh_pending into the compressed chunks all the same (TimescaleDB supports DML on them)
    wanted.append(
        Policy(
            "policy_compression",
            ROLLUP_TABLE,
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
            "SELECT drop_chunks(%s::regclass, older_than => %s)", (ROLLUP_TABLE, rollup_cutoff)
        ).fetchall()
        dropped.extend(str(r[0]) for r in rows)
    else:
        conn.execute("DELETE FROM points_rollup WHERE bucket < %s", (rollup_cutoff,))
    return dropped


def _aligned_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    lo = _align_down(start, ROLLUP_BUCKET)
    hi = _align_down(end, ROLLUP_BUCKET)
    if hi < end:
        hi += ROLLUP_BUCKET
    return lo, hi


def _recompute(conn: psycopg.Connection[Any], lo: datetime, hi: datetime) -> None:
    """Replace the rollup's hours [lo, hi) by the raw points', in the caller's transaction. The raw
    rows are read through the `points` view: messages' arrays and the legacy table alike."""
    conn.execute("DELETE FROM points_rollup WHERE bucket >= %s AND bucket < %s", (lo, hi))
    conn.execute(
        "INSERT INTO points_rollup (device_id, metric, channel, bucket, samples, min_value, max_value, "
        "avg_value, sum_value) "
        "SELECT device_id, metric, channel, date_trunc('hour', ts, 'UTC'), count(*), min(value), "
        "max(value), avg(value), sum(value) FROM points WHERE ts >= %s AND ts < %s "
        "GROUP BY device_id, metric, channel, date_trunc('hour', ts, 'UTC')",
        (lo, hi),
    )


def refresh_rollup(conn: psycopg.Connection[Any], start: datetime, end: datetime) -> None:
    """Recompute `points_rollup` for the hours overlapping [start, end). `conn` must be autocommit."""
    lo, hi = _aligned_range(start, end)
    with conn.transaction():
        _recompute(conn, lo, hi)


def rollup_upto(conn: psycopg.Connection[Any]) -> datetime:
    """The watermark: `points_hourly` reads hours before it from the rollup, later ones from raw rows."""
    row = conn.execute("SELECT upto FROM rollup_watermark").fetchone()
    if row is None:
        raise StorageError("rollup_watermark is empty: the database was not migrated by Yiju")
    upto: datetime = row[0]
    return upto


def refresh_recent(conn: psycopg.Connection[Any], now: datetime) -> tuple[datetime, datetime] | None:
    """Materialise the hours that have settled since the watermark and move it; `conn` autocommit.

    Each hour is computed once here; points written into an hour after that were late when written
    (`late_cutoff`) and queued, so `refresh_pending` recomputes their hours. Returns the range done.
    """
    hi = _align_down(now - ROLLUP_RECENT_WINDOW - ROLLUP_SETTLE, ROLLUP_BUCKET)
    with conn.transaction():
        # the row lock serialises two upkeeps refreshing at once (the second then finds nothing to do)
        row = conn.execute("SELECT upto FROM rollup_watermark FOR UPDATE").fetchone()
        if row is None:
            raise StorageError("rollup_watermark is empty: the database was not migrated by Yiju")
        lo: datetime = row[0]
        if hi <= lo:
            return None
        # hours from the watermark on were never materialised by this (the view read them raw), so
        # after a long stop of the upkeep they are all computed now, however many
        _recompute(conn, lo, hi)
        conn.execute("UPDATE rollup_watermark SET upto = %s", (hi,))
    return lo, hi


def late_cutoff(now: datetime) -> datetime:
    """Points older than this are late: their hour may already be materialised (`refresh_recent`
    waits until an hour ended ROLLUP_RECENT_WINDOW + ROLLUP_SETTLE ago), so their hours are queued."""
    return now - ROLLUP_RECENT_WINDOW


def queue_late_points(cur: psycopg.Cursor[Any], times: list[datetime], now: datetime) -> int:
    """Queue the rollup hours of late points (`late_cutoff`), in the caller's transaction.

    Contiguous hours become one range, so a device flushing a long outage buffer queues one row and
    the refresh recomputes exactly those hours (issue 14 item 3). Returns the ranges queued.
    """
    cutoff = late_cutoff(now)
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
    """Recompute the queued rollup ranges (merged where they overlap) and dequeue them, each in one
    transaction.

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
        with conn.transaction():
            _recompute(conn, *_aligned_range(lo, hi))
            conn.execute("DELETE FROM rollup_pending WHERE id = ANY(%s)", (ids,))
        done.append((lo, hi))
    return done


@dataclass(frozen=True)
class MaintenanceReport:
    mode: StorageMode
    partitions_created: int
    dropped: list[str]
    late_ranges: list[tuple[datetime, datetime]] = field(default_factory=list)
    rolled_up: tuple[datetime, datetime] | None = None  # the hours refresh_recent materialised
    # TimescaleDB mode: the policy jobs, and the ones Yiju ran itself because the scheduler's failed
    jobs: list[JobHealth] = field(default_factory=list)
    fallback_runs: list[FallbackRun] = field(default_factory=list)


def run_maintenance(
    conn: psycopg.Connection[Any], settings: DatabaseSettings, now: datetime | None = None
) -> MaintenanceReport:
    """One round of upkeep. Both modes: the settled hours into the rollup, then the ranges that late
    data made stale.

    Partitioned mode: partitions ahead and retention. TimescaleDB mode: its background jobs do that,
    and this runs the policy jobs whose scheduled runs fail (storage/tsdb.py).
    """
    now = now or datetime.now(UTC)
    mode = storage_mode(conn)
    if mode == "timescaledb":
        rolled = refresh_recent(conn, now)
        late = refresh_pending(conn)
        jobs = job_health(conn)
        runs = [run_job(conn, job) for job in jobs if needs_fallback(job, now)]
        return MaintenanceReport(mode, 0, [], late, rolled, jobs, runs)
    created = 0
    for table in WRITTEN_TABLES:
        created += len(ensure_partitions(conn, table.name, now - settings.chunk_interval, now, settings))
    dropped = drop_expired(conn, settings, now)
    rolled = refresh_recent(conn, now)
    late = refresh_pending(conn)
    return MaintenanceReport(mode, created, dropped, late, rolled_up=rolled)
