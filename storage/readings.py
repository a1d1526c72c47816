"""Readings as read back: the metrics a device reported, raw points from `points`, hourly buckets from
`points_hourly` and device events, each over a time range of one device. Written by
`storage.messages` (batch COPY); kept and rolled up by `storage.timeseries`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.rows import class_row

# Raw points returned at most per request; beyond that the caller asks for hourly buckets.
RAW_POINTS_MAX = 5000


@dataclass(frozen=True, slots=True)
class MetricSeen:
    """A metric (and channel) a device reported, with its latest value."""

    metric: str
    channel: int
    last_ts: datetime
    last_value: float


@dataclass(frozen=True, slots=True)
class Point:
    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class HourBucket:
    bucket: datetime  # start of the hour
    samples: int
    min_value: float | None
    max_value: float | None
    avg_value: float | None


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    ts: datetime
    seq: int
    kind: str
    code: str | None
    channel: int
    body: dict[str, Any]


_Row = TypeVar("_Row")


def _rows(conn: psycopg.Connection[Any], row: type[_Row], query: LiteralString, params: Any) -> list[_Row]:
    with conn.cursor(row_factory=class_row(row)) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def device_metrics(conn: psycopg.Connection[Any], device_id: int, since: datetime) -> list[MetricSeen]:
    """The metrics (and channels) a device reported since `since`, with the latest value of each."""
    return _rows(
        conn,
        MetricSeen,
        """SELECT DISTINCT ON (metric, channel) metric, channel, ts AS last_ts, value AS last_value
           FROM points WHERE device_id = %s AND ts >= %s ORDER BY metric, channel, ts DESC""",
        (device_id, since),
    )


def points_range(
    conn: psycopg.Connection[Any],
    device_id: int,
    *,
    metric: str,
    channel: int,
    since: datetime,
    until: datetime,
    limit: int = RAW_POINTS_MAX,
) -> list[Point]:
    """Raw points in [since, until), oldest first, at most `limit`."""
    return _rows(
        conn,
        Point,
        """SELECT ts, value FROM points
           WHERE device_id = %s AND metric = %s AND channel = %s AND ts >= %s AND ts < %s
           ORDER BY ts LIMIT %s""",
        (device_id, metric, channel, since, until, limit),
    )


def hourly_range(
    conn: psycopg.Connection[Any],
    device_id: int,
    *,
    metric: str,
    channel: int,
    since: datetime,
    until: datetime,
) -> list[HourBucket]:
    """Hourly buckets (min, max, avg, samples) from the rollup, oldest first: the buckets starting in
    [the hour of `since`, `until`), each with all its samples.

    The `points_hourly` view's own two parts (migration 0028: the materialised hours before the
    watermark, the later ones aggregated from the raw points), written out with the range as
    constants on the raw rows' time: PostgreSQL then drops the time partitions outside it while
    planning, instead of planning every partition of `points` and dropping them when the query
    starts (the view's bound is the watermark, known only then) — half the planning and a third
    less execution for a week's buckets (bench/api.py). tests/test_readings_hourly.py holds it to
    the view's answer."""
    first = _hour(since)
    # a bucket starting before `until` keeps all its samples, up to the end of its hour
    last = _hour(until) if _hour(until) == until else _hour(until) + timedelta(hours=1)
    return _rows(
        conn,
        HourBucket,
        """SELECT bucket, samples, min_value, max_value, avg_value FROM points_rollup
           WHERE device_id = %(device)s AND metric = %(metric)s AND channel = %(channel)s
             AND bucket < yiju_rollup_upto() AND bucket >= %(first)s AND bucket < %(until)s
           UNION ALL
           SELECT date_trunc('hour', ts, 'UTC') AS bucket, count(*) AS samples, min(value) AS min_value,
                  max(value) AS max_value, avg(value) AS avg_value
           FROM points
           WHERE device_id = %(device)s AND metric = %(metric)s AND channel = %(channel)s
             AND ts >= yiju_rollup_upto() AND ts >= %(first)s AND ts < %(last)s
           GROUP BY 1 HAVING date_trunc('hour', ts, 'UTC') < %(until)s
           ORDER BY bucket""",
        {
            "device": device_id,
            "metric": metric,
            "channel": channel,
            "first": first,
            "until": until,
            "last": last,
        },
    )


def _hour(at: datetime) -> datetime:
    """The start of the UTC hour of `at`."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def recent_events(
    conn: psycopg.Connection[Any], device_id: int, since: datetime, until: datetime, limit: int
) -> list[DeviceEvent]:
    """Device events in [since, until), newest first."""
    return _rows(
        conn,
        DeviceEvent,
        """SELECT ts, seq, kind, code, channel, body FROM device_events
           WHERE device_id = %s AND ts >= %s AND ts < %s ORDER BY ts DESC LIMIT %s""",
        (device_id, since, until, limit),
    )
