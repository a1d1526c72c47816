"""The writer's telemetry COPY stream, built by `storage.messages.telemetry_copy_data` instead of psycopg's
`write_row` (issue 18): byte for byte what psycopg formats for the same rows, and read back by
PostgreSQL as the same values — instants in any UTC offset and before 2000, microseconds, metric names
outside ASCII, rows without points — with a value its columns cannot hold refused as psycopg refused
it (a DataError, so that only its message is dead-lettered)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from points_support import seed_device
from psycopg._copy_base import BinaryFormatter  # the formatter `Copy.write_row` uses
from psycopg.adapt import Transformer
from psycopg.pq import Format

from storage.db import connection
from storage.messages import (
    EVENTS_TYPES,
    JSONB_V1,
    TELEMETRY_TYPES,
    EventRow,
    IngestWriter,
    TelemetryRow,
    WriteBatch,
    _float8_array,
    _int2_array,
    _text_array,
    events_copy_data,
    telemetry_copy_data,
)
from storage.timeseries import late_cutoff
from yiju.settings import DatabaseSettings


def _formatter(types: list[str]) -> BinaryFormatter:
    tx = Transformer()
    tx.set_dumper_types(
        [psycopg.postgres.types.get(t).oid for t in types],  # type: ignore[union-attr]
        Format.BINARY,
    )
    return BinaryFormatter(tx)


def _psycopg_events_stream(rows: list[EventRow]) -> bytes:
    formatter = _formatter(EVENTS_TYPES)
    parts = [
        bytes(
            formatter.write_row(
                (e.ts, e.device_id, e.seq, e.received_at, e.kind, e.code, e.channel, JSONB_V1 + e.body)
            )
        )
        for e in rows
    ]
    parts.append(bytes(formatter.end()))
    return b"".join(parts)


def _psycopg_stream(rows: list[TelemetryRow]) -> bytes:
    """The stream psycopg's own binary formatter makes of the rows (the writer's former path)."""
    formatter = _formatter(TELEMETRY_TYPES)
    parts = []
    for r in rows:
        arrays: tuple[bytes | None, ...] = (None, None, None)
        if r.points:
            metrics, channels, values = zip(*r.points, strict=True)
            arrays = (_text_array(metrics), _int2_array(channels), _float8_array(values))
        parts.append(
            bytes(formatter.write_row((r.ts, r.device_id, r.seq, r.received_at, JSONB_V1 + r.body, *arrays)))
        )
    parts.append(bytes(formatter.end()))
    return b"".join(parts)


_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# hypothesis takes naive bounds and attaches one of `timezones`
_instants = st.datetimes(
    min_value=datetime(1990, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=_offsets,
)
_points = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
        st.integers(min_value=-32768, max_value=32767),
        st.floats(allow_nan=False, width=64),
    ),
    max_size=8,
)
_rows = st.lists(
    st.builds(
        TelemetryRow,
        _instants,
        st.integers(min_value=1, max_value=2**31 - 1),
        st.integers(min_value=0, max_value=2**63 - 1),
        _instants,
        st.binary(max_size=64),
        _points,
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(_rows)
def test_the_stream_is_what_psycopg_formats(rows: list[TelemetryRow]) -> None:
    data, n_points = telemetry_copy_data(rows)
    assert data == _psycopg_stream(rows)
    assert n_points == sum(len(r.points) for r in rows)


_events = st.lists(
    st.builds(
        EventRow,
        _instants,
        st.integers(min_value=1, max_value=2**31 - 1),
        st.integers(min_value=0, max_value=2**63 - 1),
        _instants,
        st.sampled_from(["alarm", "status", "cmd_ack", "门禁"]),
        st.none() | st.text(max_size=20).filter(lambda s: "\x00" not in s),
        st.integers(min_value=-32768, max_value=32767),
        st.binary(max_size=64),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(_events)
def test_the_events_stream_is_what_psycopg_formats(rows: list[EventRow]) -> None:
    assert events_copy_data(rows) == _psycopg_events_stream(rows)


def test_an_event_channel_beyond_smallint_is_a_data_error() -> None:
    ts = datetime.now(UTC)
    with pytest.raises(psycopg.DataError):
        events_copy_data([EventRow(ts, 1, 1, ts, "alarm", None, 70_000, b"{}")])


@pytest.mark.parametrize(
    "points",
    [
        (("power_w", 70_000, 1.0),),  # beyond smallint
        (("power_w", 1, "2.0"),),  # not a number
        (("power_\udc80", 1, 1.0),),  # no UTF-8
        (("power_w", 1),),  # not a point
    ],
)
def test_a_value_the_columns_cannot_hold_is_a_data_error(points: tuple[tuple[object, ...], ...]) -> None:
    ts = datetime.now(UTC)
    with pytest.raises(psycopg.DataError):
        telemetry_copy_data([TelemetryRow(ts, 1, 1, ts, b"{}", points)])  # type: ignore[arg-type]


def test_postgresql_reads_back_the_values_written(make_db: Callable[[str | None], str]) -> None:
    """Instants in three offsets, to the microsecond (before 2000: the stream test above), in one
    batch with a row without points and one shared receive time; the arrays' values exactly."""
    url = make_db(None)
    with connection(url, autocommit=True) as conn:
        device = seed_device(conn, "chg-1", "ebike_charger")
    now = datetime.now(UTC).replace(microsecond=123_457)
    received = now + timedelta(microseconds=1)
    times = [
        now.astimezone(timezone(timedelta(hours=8))) - timedelta(microseconds=1),
        now.astimezone(timezone(timedelta(hours=-3, minutes=-30))) - timedelta(seconds=2),
        now - timedelta(minutes=1),
        (now - timedelta(days=2)).astimezone(timezone(timedelta(hours=8))).replace(microsecond=999_999),
    ]
    points = [
        (("温度_c", 0, -40.25), ("power_w", 32767, 1e300)),
        (),
        (("power_w", -32768, 0.1),),
        (("x", 3, 5e-324),),
    ]
    rows = [
        TelemetryRow(ts, device, k + 1, received, b'{"k": %d}' % k, pts)
        for k, (ts, pts) in enumerate(zip(times, points, strict=True))
    ]
    writer = IngestWriter(url, DatabaseSettings())
    try:
        result = writer.write(WriteBatch(telemetry=rows))
    finally:
        writer.close()
    assert (result.telemetry, result.points, result.rejected) == (4, 4, [])
    with connection(url, autocommit=True) as conn:
        got = conn.execute(
            "SELECT ts, seq, received_at, body->>'k', point_metrics, point_channels, point_values "
            "FROM telemetry ORDER BY seq"
        ).fetchall()
    assert got == [
        (
            ts,
            k + 1,
            received,
            str(k),
            [m for m, _, _ in pts] or None,
            [c for _, c, _ in pts] or None,
            [v for _, _, v in pts] or None,
        )
        for k, (ts, pts) in enumerate(zip(times, points, strict=True))
    ]


def test_late_points_are_found_in_any_offset(make_db: Callable[[str | None], str]) -> None:
    """The writer passes on the late times only, each compared with the cutoff in its own offset: a late
    message in +08:00 queues its hour; one just inside the recent window in -03:30, a late one without
    points and a recent one queue nothing."""
    url = make_db(None)
    with connection(url, autocommit=True) as conn:
        device = seed_device(conn, "chg-1", "ebike_charger")
    now = datetime.now(UTC)
    cutoff = late_cutoff(now)
    late = (cutoff - timedelta(minutes=30)).astimezone(timezone(timedelta(hours=8)))
    pts = (("power_w", 1, 1.0),)
    rows = [
        TelemetryRow(late, device, 1, now, b"{}", pts),
        TelemetryRow(late - timedelta(hours=3), device, 2, now, b"{}", ()),
        TelemetryRow(
            (cutoff + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-3, minutes=-30))),
            device,
            3,
            now,
            b"{}",
            pts,
        ),
        TelemetryRow(now, device, 4, now, b"{}", pts),
    ]
    writer = IngestWriter(url, DatabaseSettings())
    try:
        conn = writer._connection()
        with conn.cursor() as cur:
            writer._queue_late(cur, WriteBatch(telemetry=rows))
            queued = cur.execute("SELECT lo, hi FROM rollup_pending").fetchall()
        conn.rollback()
    finally:
        writer.close()
    hour = late.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    assert queued == [(hour, hour + timedelta(hours=1))]
