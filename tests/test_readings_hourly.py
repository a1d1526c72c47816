"""storage/readings.hourly_range answers what the `points_hourly` view answers (migration 0028: the
materialised hours before the watermark, the later ones from the raw points), on the real database in
both storage modes: windows starting and ending inside an hour, on an hour, across the watermark,
wholly before or after it, empty, and other devices, metrics and channels left out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from points_support import insert_points, seed_device

from storage import readings
from storage.db import connect
from storage.timeseries import refresh_recent


def _view(
    conn: Any, device_id: int, metric: str, channel: int, since: datetime, until: datetime
) -> list[Any]:
    """The view's answer, queried as hourly_range did before it wrote the view's parts out."""
    rows = conn.execute(
        """SELECT bucket, samples, min_value, max_value, avg_value FROM points_hourly
           WHERE device_id = %s AND metric = %s AND channel = %s
             AND bucket >= date_trunc('hour', %s::timestamptz, 'UTC') AND bucket < %s ORDER BY bucket""",
        (device_id, metric, channel, since, until),
    ).fetchall()
    return [readings.HourBucket(*r) for r in rows]


def test_hourly_range_is_the_views_answer(make_db: Callable[[str | None], str], storage_mode: str) -> None:
    url = make_db(storage_mode)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with connect(url, autocommit=True) as conn:
        device = seed_device(conn, "chg-1", "ebike_charger")
        other = conn.execute(
            "INSERT INTO devices (uid, community_id, family) SELECT 'chg-2', community_id, family "
            "FROM devices WHERE id = %s RETURNING id",
            (device,),
        ).fetchone()
        assert other is not None
        start = now - timedelta(hours=30)
        points = []
        for minute in range(0, 30 * 60, 7):  # every 7 minutes: hours of 8 or 9 samples
            ts = start + timedelta(minutes=minute)
            points += [
                (ts, device, "port_temperature_c", 1, 30.0 + (minute % 13)),
                (ts, device, "port_temperature_c", 2, 50.0),
                (ts, device, "ambient_temperature_c", 0, 20.0),
                (ts, other[0], "port_temperature_c", 1, 99.0),
            ]
        insert_points(conn, points)
        refresh_recent(conn, now)  # as upkeep leaves it: settled hours materialised, the rest raw
        upto = conn.execute("SELECT upto FROM rollup_watermark").fetchone()
        assert upto is not None and start < upto[0] < now
        mark: datetime = upto[0]
        windows = [
            (now - timedelta(days=7), now),  # the API's week: everything
            (start + timedelta(minutes=25), now - timedelta(minutes=5)),  # inside hours at both ends
            (mark - timedelta(hours=3), mark + timedelta(hours=1)),  # across the watermark, on hours
            (mark - timedelta(hours=3, minutes=10), mark - timedelta(minutes=30)),  # before it only
            (mark + timedelta(minutes=10), now + timedelta(hours=2)),  # after it only, into the future
            (mark - timedelta(minutes=1), mark + timedelta(minutes=1)),  # around it
            (now + timedelta(hours=1), now + timedelta(hours=5)),  # nothing yet
            (start - timedelta(days=2), start - timedelta(days=1)),  # nothing any more
        ]
        for since, until in windows:
            for metric, channel in (("port_temperature_c", 1), ("port_temperature_c", 2), ("nope", 1)):
                got = readings.hourly_range(
                    conn, device, metric=metric, channel=channel, since=since, until=until
                )
                assert got == _view(conn, device, metric, channel, since, until), (
                    since,
                    until,
                    metric,
                    channel,
                )
        week = readings.hourly_range(
            conn, device, metric="port_temperature_c", channel=1, since=now - timedelta(days=7), until=now
        )
        assert len(week) >= 30 and sum(b.samples for b in week) == len(range(0, 30 * 60, 7))
