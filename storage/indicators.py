"""The evidence extract behind an indicator report (indicators.md, domain.md §7).

One function, `extract()`, reads everything a community's report needs for a period in one REPEATABLE
READ transaction, so the extract is a consistent snapshot and the same data give the same extract:
- the registry (devices with their location), and presence at the time of reading;
- alarms that were open at some point of the period;
- compliance findings of the period, aggregated per device, channel, check and kind (never scanned
  row by row in Python: a month of daily CCTV evaluations of a 7,000-device compound is ~10⁴ rows);
- the newest inspection / test / maintenance record per device and kind before the period's end, and
  the newest self-test a device reported over MQTT (device_events kind `self_test`);
- the assessor's manual evidence.

Rows are frozen and ordered deterministically (by id), so a fingerprint of the extract is stable.
Nothing here scans raw telemetry or points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from devices.alarms import Check

# Self-tests older than this before the period's end are not read (bounds the device_events scan; the
# longest test interval a community may set is a year, see alerts.indicators.config).
SELF_TEST_LOOKBACK = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: int
    uid: str
    family: str
    retrofit: bool
    enabled: bool
    location: str | None  # location name, e.g. "1号楼2单元" or "3号车棚"
    building: str | None
    online: bool | None  # None: never reported
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class AlarmRow:
    id: int
    device_id: int
    type: str
    severity: str
    first_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    channels: tuple[int, ...]  # CCTV alarms name their channels in details.channels (numbers or {channel})


@dataclass(frozen=True, slots=True)
class FindingAgg:
    device_id: int
    channel: int
    check_name: Check
    kind: str
    total: int
    compliant: int
    worst_measured_s: float | None
    latest_measured_s: float | None  # measured value of the newest finding (e.g. retention now)
    latest_compliant: bool
    failing_ids: tuple[int, ...]  # up to five ids of non-compliant findings, oldest first


@dataclass(frozen=True, slots=True)
class RecordRow:
    """Newest record of one kind for a device (device_id set) or for a whole family (device_id None)."""

    device_id: int | None
    family: str
    kind: str  # inspection | test | maintenance
    performed_at: datetime
    record_id: int | None  # None for a device-reported self-test
    source: str  # manual | import | device


@dataclass(frozen=True, slots=True)
class ManualRow:
    id: int
    scheme: str
    item: str
    verdict: str | None
    finding: str
    observed_on: str
    attachments: tuple[int, ...]
    recorded_by: str


@dataclass(frozen=True, slots=True)
class Extract:
    community_id: int
    community_code: str
    community_name: str
    timezone: str
    start: datetime
    end: datetime
    devices: tuple[DeviceRow, ...]
    alarms: tuple[AlarmRow, ...]
    findings: tuple[FindingAgg, ...]
    cutoff_delays_s: tuple[float, ...]  # measured delays of auto-cutoff findings, in order of decision
    records: tuple[RecordRow, ...]
    manual: tuple[ManualRow, ...]
    records_in_period: int


def extract(conn: psycopg.Connection[Any], community_id: int, start: datetime, end: datetime) -> Extract:
    """The evidence for [start, end) of one community (caller checked the scope), as one snapshot."""
    fresh = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if fresh:  # a snapshot for every query below; inside a caller's transaction, its own isolation
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        head = conn.execute(
            "SELECT code, name, timezone FROM communities WHERE id = %s", (community_id,)
        ).fetchone()
        if head is None:
            raise LookupError(f"community {community_id}")
        devices = tuple(
            DeviceRow(*r)
            for r in conn.execute(
                """
                SELECT d.id, d.uid, d.family, d.retrofit, d.enabled, l.name, b.name, p.online, p.last_seen
                FROM devices d
                LEFT JOIN locations l ON l.id = d.location_id
                LEFT JOIN buildings b ON b.id = l.building_id
                LEFT JOIN device_presence p ON p.device_id = d.id
                WHERE d.community_id = %s
                ORDER BY d.id
                """,
                (community_id,),
            ).fetchall()
        )
        alarms = tuple(
            AlarmRow(i, dev, typ, sev, first, cleared, acked, tuple(int(c) for c in (chans or ())))
            for i, dev, typ, sev, first, cleared, acked, chans in conn.execute(
                """
                SELECT a.id, a.device_id, a.type, a.severity, a.first_at, a.cleared_at, a.acknowledged_at,
                       CASE WHEN jsonb_typeof(a.details -> 'channels') = 'array'
                            THEN ARRAY(
                                SELECT n::int FROM (
                                    SELECT CASE
                                        WHEN jsonb_typeof(c) = 'number' THEN (c #>> '{}')::numeric
                                        WHEN jsonb_typeof(c -> 'channel') = 'number'
                                            THEN (c ->> 'channel')::numeric
                                    END AS n
                                    FROM jsonb_array_elements(a.details -> 'channels') c
                                ) ch
                                WHERE n BETWEEN 0 AND 32767)
                       END
                FROM alarms a
                WHERE a.community_id = %s AND a.first_at < %s AND (a.cleared_at IS NULL OR a.cleared_at >= %s)
                ORDER BY a.id
                """,
                (community_id, end, start),
            ).fetchall()
        )
        findings = tuple(
            FindingAgg(
                dev, ch, Check(check), kind, total, ok, worst, latest, bool(latest_ok), tuple(failing or ())
            )
            for dev, ch, check, kind, total, ok, worst, latest, latest_ok, failing in conn.execute(
                """
                SELECT device_id, channel, check_name, kind, count(*), count(*) FILTER (WHERE compliant),
                       max(measured_s),
                       (array_agg(measured_s ORDER BY observed_at DESC, id DESC))[1],
                       (array_agg(compliant ORDER BY observed_at DESC, id DESC))[1],
                       (array_agg(id ORDER BY observed_at, id) FILTER (WHERE NOT compliant))[1:5]
                FROM compliance_findings
                WHERE community_id = %s AND observed_at >= %s AND observed_at < %s
                GROUP BY device_id, channel, check_name, kind
                ORDER BY device_id, channel, check_name, kind
                """,
                (community_id, start, end),
            ).fetchall()
        )
        delays = tuple(
            float(r[0])
            for r in conn.execute(
                """
                SELECT measured_s FROM compliance_findings
                WHERE community_id = %s AND check_name = 'auto_cutoff' AND measured_s IS NOT NULL
                  AND observed_at >= %s AND observed_at < %s
                ORDER BY observed_at, id
                """,
                (community_id, start, end),
            ).fetchall()
        )
        records = [
            RecordRow(dev, fam, kind, at, rid, src)
            for dev, fam, kind, at, rid, src in conn.execute(
                """
                SELECT DISTINCT ON (device_id, family, kind) device_id, family, kind, performed_at, id, source
                FROM maintenance_records
                WHERE community_id = %s AND performed_at < %s AND result <> 'fail'
                ORDER BY device_id, family, kind, performed_at DESC, id DESC
                """,
                (community_id, end),
            ).fetchall()
        ]
        records += [
            RecordRow(dev, "smoke_alarm", "test", at, None, "device")
            for dev, at in conn.execute(
                """
                SELECT e.device_id, max(e.ts)
                FROM device_events e JOIN devices d ON d.id = e.device_id
                WHERE d.community_id = %s AND e.kind = 'self_test' AND e.ts >= %s AND e.ts < %s
                  -- a failed self-test is no test record
                  AND coalesce(e.body -> 'event' ->> 'ok', 'true') = 'true'
                GROUP BY e.device_id
                ORDER BY e.device_id
                """,
                (community_id, end - SELF_TEST_LOOKBACK, end),
            ).fetchall()
        ]
        in_period = conn.execute(
            "SELECT count(*) FROM maintenance_records WHERE community_id = %s AND performed_at >= %s "
            "AND performed_at < %s",
            (community_id, start, end),
        ).fetchone()
        manual = tuple(
            ManualRow(i, scheme, item, verdict, finding, observed.isoformat(), tuple(att or ()), by)
            for i, scheme, item, verdict, finding, observed, att, by in conn.execute(
                """
                SELECT id, scheme, item, verdict, finding, observed_on, attachments, recorded_by
                FROM manual_evidence
                WHERE community_id = %s AND observed_on < %s::date + 1
                ORDER BY scheme, item, observed_on, id
                """,
                (community_id, end),
            ).fetchall()
        )
    return Extract(
        community_id=community_id,
        community_code=head[0],
        community_name=head[1],
        timezone=head[2],
        start=start,
        end=end,
        devices=devices,
        alarms=alarms,
        findings=findings,
        cutoff_delays_s=delays,
        records=tuple(sorted(records, key=_record_key)),
        manual=manual,
        records_in_period=int(in_period[0]) if in_period else 0,
    )


def overrides(conn: psycopg.Connection[Any], community_id: int) -> dict[str, Any] | None:
    """The community's indicator settings overrides (`communities.settings["indicators"]`), if any."""
    row = conn.execute(
        "SELECT settings -> 'indicators' FROM communities WHERE id = %s", (community_id,)
    ).fetchone()
    value = row[0] if row else None
    return value if isinstance(value, dict) else None


def _record_key(r: RecordRow) -> tuple[int, str, str, datetime]:
    return (r.device_id or 0, r.family, r.kind, r.performed_at)
