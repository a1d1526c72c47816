"""The compliance summary read from the daily pre-aggregate equals counting every finding (issue 14
item 7): whole days from compliance_daily, the partial days at the edges from the findings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from devices.alarms import Check, Finding
from storage.db import connection
from storage.findings import FindingRow, compliance_summary, insert_findings

CHECKS = (Check.AUTO_CUTOFF, Check.FAULT_ALARM, Check.CCTV_RETENTION)

_NAIVE = """
    SELECT f.check_name, d.family, f.device_id, d.uid, count(*), count(*) FILTER (WHERE f.compliant),
           max(f.measured_s),
           coalesce(array_agg(DISTINCT f.channel ORDER BY f.channel)
                    FILTER (WHERE NOT f.compliant AND f.channel > 0), '{}')
    FROM compliance_findings f JOIN devices d ON d.id = f.device_id
    WHERE f.community_id = %s AND f.observed_at >= %s AND f.observed_at < %s
    GROUP BY GROUPING SETS ((f.check_name), (f.check_name, d.family), (f.check_name, f.device_id, d.uid))
"""


def _naive(
    conn: psycopg.Connection[Any], community: int, start: datetime, end: datetime
) -> set[tuple[Any, ...]]:
    return {(*r[:7], tuple(r[7])) for r in conn.execute(_NAIVE, (community, start, end)).fetchall()}


def _summary(
    conn: psycopg.Connection[Any], community: int, start: datetime, end: datetime
) -> set[tuple[Any, ...]]:
    s = compliance_summary(conn, community, start, end)
    lines = [*s.by_check, *s.by_family]
    out = {
        (
            x.check_name,
            x.family,
            x.device_id,
            x.device_uid,
            x.total,
            x.compliant,
            x.worst_measured_s,
            x.failing_channels,
        )
        for x in lines
    }
    # the summary lists only failing devices; compare those with the naive per-device lines that fail
    out |= {
        (
            x.check_name,
            x.family,
            x.device_id,
            x.device_uid,
            x.total,
            x.compliant,
            x.worst_measured_s,
            x.failing_channels,
        )
        for x in s.failing_devices
    }
    return out


def _setup(conn: psycopg.Connection[Any], now: datetime) -> tuple[int, list[int]]:
    rows = conn.execute(
        "INSERT INTO communities (code, name) VALUES ('c1', '一区'), ('c2', '二区') RETURNING id"
    ).fetchall()
    c1, c2 = int(rows[0][0]), int(rows[1][0])
    devices: list[tuple[int, int]] = []
    for community in (c1, c2):
        for i, family in enumerate(("ebike_charger", "smoke_alarm", "cctv_recorder") * 3):
            row = conn.execute(
                "INSERT INTO devices (uid, community_id, family) VALUES (%s, %s, %s) RETURNING id",
                (f"d{community}-{i}", community, family),
            ).fetchone()
            assert row is not None
            devices.append((community, int(row[0])))
    rnd = random.Random(14)
    findings: list[FindingRow] = []
    for _ in range(2000):
        community, device = rnd.choice(devices)
        # spread over 40 days, with some right at UTC midnight and right before it
        day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=rnd.randrange(40))
        at = rnd.choice(
            [day, day - timedelta(microseconds=1), day + timedelta(seconds=rnd.uniform(0, 86_399))]
        )
        findings.append(
            FindingRow(community, device, Finding(
                rnd.choice(CHECKS), "k", rnd.random() < 0.9, at,
                measured_s=round(rnd.uniform(0, 60), 3) if rnd.random() < 0.5 else None,
                channel=rnd.choice((0, 0, 1, 2, 7)),
            ))
        )  # fmt: skip
    # several statements, as the engine writes them
    for i in range(0, len(findings), 500):
        insert_findings(conn, findings[i : i + 500])
    conn.commit()
    return c1, [d for c, d in devices if c == c1]


def test_summary_equals_counting_every_finding(db_url: str) -> None:
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with connection(db_url) as conn:
        community, devices = _setup(conn, now)
        windows = [
            (now - timedelta(days=30), now),  # the report: partial days at both edges
            (midnight - timedelta(days=30), midnight),  # whole days only
            (now - timedelta(hours=5), now),  # no whole day
            (midnight - timedelta(hours=3), midnight + timedelta(hours=3)),  # across one midnight
            (now - timedelta(days=100), now + timedelta(days=1)),  # everything
        ]
        for start, end in windows:
            naive = _naive(conn, community, start, end)
            wanted = {r for r in naive if r[2] is None or r[5] < r[4]}  # per-device lines: failing only
            assert _summary(conn, community, start, end) == wanted, (start, end)

        # an edited finding and a removed device are recounted, so the pre-aggregate cannot drift
        conn.execute(
            "UPDATE compliance_findings SET compliant = NOT compliant, "
            "observed_at = observed_at - interval '1 day' WHERE id IN "
            "(SELECT id FROM compliance_findings WHERE community_id = %s ORDER BY id LIMIT 50)",
            (community,),
        )
        conn.execute("DELETE FROM devices WHERE id = %s", (devices[0],))
        conn.commit()
        start, end = windows[0]
        naive = _naive(conn, community, start, end)
        assert _summary(conn, community, start, end) == {r for r in naive if r[2] is None or r[5] < r[4]}


_SPANS_FROM_DAYS = """
    SELECT s.span_days, s.day, s.check_name, s.device_id, s.total, s.compliant, s.worst_measured_s,
           s.failing_channels, sum(d.total), sum(d.compliant), max(d.worst_measured_s),
           yiju_failing_channels(yiju_smallint_array_union(d.failing_channels))
    FROM compliance_span s LEFT JOIN compliance_daily d
      ON d.community_id = s.community_id AND d.check_name = s.check_name AND d.device_id = s.device_id
     AND d.day >= s.day AND d.day < s.day + make_interval(days => s.span_days)
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
"""


def _spans_match_days(conn: psycopg.Connection[Any]) -> None:
    """Every span row is the sum of the days inside it, and every day is inside one span of each length."""
    for row in conn.execute(_SPANS_FROM_DAYS).fetchall():
        assert row[4:8] == (row[8], row[9], row[10], row[11]), row
    missing = conn.execute(
        "SELECT count(*) FROM compliance_daily d, unnest('{2,4,8,16,32,64}'::smallint[]) l(n) "
        "WHERE NOT EXISTS (SELECT 1 FROM compliance_span s WHERE s.community_id = d.community_id "
        "AND s.span_days = l.n AND s.day = yiju_span_start(d.day, l.n) AND s.check_name = d.check_name "
        "AND s.device_id = d.device_id)"
    ).fetchone()
    assert missing == (0,)


def test_spans_stay_exact_for_late_findings_and_a_retention_purge(db_url: str) -> None:
    """Migration 0025's spans: a late finding for a day weeks ago lands in its day and its spans; a
    purge of old findings (what a retention job would do, cutting through spans) recounts both levels;
    reports of 1 to 100 days equal counting every finding before and after."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    windows = [(now - timedelta(days=n), now) for n in (1, 2, 7, 30, 45, 63, 100)]
    windows += [(midnight - timedelta(days=n), midnight - timedelta(days=3)) for n in (10, 33, 64)]
    with connection(db_url) as conn:
        community, devices = _setup(conn, now)
        _spans_match_days(conn)

        def same() -> None:
            for start, end in windows:
                wanted = {r for r in _naive(conn, community, start, end) if r[2] is None or r[5] < r[4]}
                assert _summary(conn, community, start, end) == wanted, (start, end)

        same()
        # late data: a device flushing an outage buffer, findings 20 and 35 days old
        late = [
            FindingRow(community, devices[1],
                       Finding(Check.CCTV_RETENTION, "k", False, now - timedelta(days=d),
                               measured_s=99.0, channel=5))
            for d in (20, 35, 35)
        ]  # fmt: skip
        assert insert_findings(conn, late) == 3
        conn.commit()
        _spans_match_days(conn)
        same()
        # retention: findings older than 25 days and 7 hours go, cutting a day and every long span
        conn.execute(
            "DELETE FROM compliance_findings WHERE observed_at < %s", (now - timedelta(days=25, hours=7),)
        )
        conn.commit()
        _spans_match_days(conn)
        same()
        oldest = conn.execute("SELECT min(day) FROM compliance_daily").fetchone()
        assert oldest is not None and oldest[0] >= midnight - timedelta(days=26)
