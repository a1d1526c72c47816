"""Compliance findings (domain.md §5) and the compliance summary over a window.

A finding is one decided obligation, compliant or not (a cutoff in time, a silent fault, a channel's
retention verdict…). Findings carry an idempotency key so that a redelivered message cannot record
the same decision twice.

Invariants, and what enforces them:
- one row per obligation and decision: the unique index compliance_findings_dedup on
  (device_id, dedup_key) — a redelivered finding is skipped (`insert_findings`);
- a decision is revised only by adding its measurement: a finding whose row exists without
  `measured_s` (an auto-cutoff decided `not_cut` at its deadline) takes the measured delay and
  details of a later one with the same key (the cut seen after the deadline: outcome `late`);
  nothing else of a stored row changes (`insert_findings`' ON CONFLICT … WHERE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from devices.alarms import Check, Finding

# what the triggers of migrations 0031/0032 notify after a statement that changed the findings or
# their pre-aggregates (the summaries the API keeps, api/compliance/pages.py)
NOTIFY_CHANNEL = "yiju_compliance"


@dataclass(frozen=True, slots=True)
class FindingRow:
    """A finding as stored: the rule core's decision as it made it, and whose it is. `dedup_key` is
    the idempotency key (the engine's is `finding.dedup_key`); None records the finding whatever is
    stored already (findings made elsewhere than by the engine, which no redelivery repeats)."""

    community_id: int
    device_id: int
    finding: Finding
    dedup_key: str | None = None


def insert_findings(conn: psycopg.Connection[Any], rows: Sequence[FindingRow]) -> int:
    """Insert findings, skipping ones already recorded (same device and dedup key) unless the new one
    adds the measurement the stored one lacks (see the module's invariants); returns how many rows
    were inserted or revised."""
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO compliance_findings (community_id, device_id, check_name, kind, compliant,
                observed_at, trigger_at, deadline_s, measured_s, channel, details, dedup_key)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (device_id, dedup_key) WHERE dedup_key IS NOT NULL DO UPDATE
                SET measured_s = EXCLUDED.measured_s, details = EXCLUDED.details
                WHERE compliance_findings.measured_s IS NULL AND EXCLUDED.measured_s IS NOT NULL
            """,
            [_params(r) for r in rows],
        )
        return max(cur.rowcount, 0)


def _params(row: FindingRow) -> tuple[Any, ...]:
    f = row.finding
    return (
        row.community_id,
        row.device_id,
        f.check.value,
        f.kind,
        f.compliant,
        f.observed_at,
        f.trigger_at,
        f.deadline_s,
        f.measured_s,
        f.channel,
        Jsonb(f.details),
        row.dedup_key,
    )


def list_findings(
    conn: psycopg.Connection[Any],
    community_id: int,
    window_start: datetime,
    window_end: datetime,
    *,
    compliant: bool | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT f.id, f.device_id, d.uid AS device_uid, d.family, f.check_name, f.kind, f.compliant,
                   f.observed_at, f.trigger_at, f.deadline_s, f.measured_s, f.channel, f.details
            FROM compliance_findings f JOIN devices d ON d.id = f.device_id
            WHERE f.community_id = %s AND f.observed_at >= %s AND f.observed_at < %s
              AND (%s::boolean IS NULL OR f.compliant = %s)
            ORDER BY f.observed_at, f.id LIMIT %s
            """,
            (community_id, window_start, window_end, compliant, compliant, limit),
        )
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class SummaryLine:
    """Counts of one check (per community, per family, or per device)."""

    check_name: Check
    total: int
    compliant: int
    family: str | None = None
    device_id: int | None = None
    device_uid: str | None = None
    worst_measured_s: float | None = None
    # device lines: the channels (recorder channels, charger ports) with a non-compliant finding
    failing_channels: tuple[int, ...] = ()
    late: int = 0  # non-compliant auto-cutoffs whose cut was seen after the deadline (measured)
    not_cut: int = 0  # non-compliant auto-cutoffs never seen cut

    @property
    def failed(self) -> int:
        return self.total - self.compliant

    @property
    def share(self) -> float:
        """Share of obligations met (1.0 when there were none to meet)."""
        return 1.0 if self.total == 0 else self.compliant / self.total


@dataclass(frozen=True, slots=True)
class ComplianceSummary:
    community_id: int
    window_start: datetime
    window_end: datetime
    by_check: list[SummaryLine]
    by_family: list[SummaryLine]
    failing_devices: list[SummaryLine]  # devices with at least one non-compliant finding


def compliance_summary(
    conn: psycopg.Connection[Any], community_id: int, window_start: datetime, window_end: datetime
) -> ComplianceSummary:
    """Compliance per check, per family and check, and the failing devices, over [start, end).

    Whole UTC days come from the pre-aggregates kept by triggers in the findings' own transaction:
    the run of whole days is split into aligned spans of 64, 32, …, 2 days (`compliance_span`,
    migration 0025) and single days (`compliance_daily`, migration 0012); only the partial days at
    the window's edges come from the findings themselves. The counts are exact, and a 30-day report
    on a 7,000-device compound reads ~6 rows per device and check instead of every finding, or 29
    daily rows (bench/compliance.py).
    """
    first_day, last_day = _whole_days(window_start, window_end)
    days, span_lengths, span_starts = _spans(first_day, last_day)
    rows = conn.execute(
        """
        WITH per_device AS (
            SELECT check_name, device_id, sum(total) AS total, sum(compliant) AS ok, max(worst) AS worst,
                   yiju_smallint_array_union(channels) AS channels
            FROM (
                SELECT check_name, device_id, total, compliant, worst_measured_s AS worst,
                       failing_channels AS channels
                FROM compliance_daily
                WHERE community_id = %(c)s AND day = ANY(%(days)s::timestamptz[])
                UNION ALL
                SELECT s.check_name, s.device_id, s.total, s.compliant, s.worst_measured_s,
                       s.failing_channels
                FROM unnest(%(span_days)s::smallint[], %(span_starts)s::timestamptz[]) AS b(span_days, day)
                JOIN compliance_span s
                  ON s.community_id = %(c)s AND s.span_days = b.span_days AND s.day = b.day
                UNION ALL
                SELECT check_name, device_id, 1, compliant::int, measured_s,
                       CASE WHEN NOT compliant AND channel > 0 THEN ARRAY[channel] ELSE '{}' END
                FROM compliance_findings
                WHERE community_id = %(c)s
                  AND ((observed_at >= %(start)s AND observed_at < %(d0)s)
                    OR (observed_at >= %(d1)s AND observed_at < %(end)s))
            ) x
            GROUP BY check_name, device_id
        )
        SELECT p.check_name, d.family, p.device_id, d.uid, sum(p.total)::bigint, sum(p.ok)::bigint,
               max(p.worst),
               (SELECT array_agg(DISTINCT c ORDER BY c) FROM unnest(yiju_smallint_array_union(p.channels)) c)
        FROM per_device p JOIN devices d ON d.id = p.device_id
        GROUP BY GROUPING SETS ((p.check_name), (p.check_name, d.family), (p.check_name, p.device_id, d.uid))
        ORDER BY 1, 2 NULLS FIRST, 4 NULLS FIRST
        """,
        {
            "c": community_id,
            "start": window_start,
            "end": window_end,
            "d0": first_day,
            "d1": last_day,
            "days": days,
            "span_days": span_lengths,
            "span_starts": span_starts,
        },
    ).fetchall()
    by_check: list[SummaryLine] = []
    by_family: list[SummaryLine] = []
    failing: list[SummaryLine] = []
    outcomes = _outcomes(conn, community_id, window_start, window_end)
    for check, family, device_id, uid, total, ok, worst, channels in rows:
        late, not_cut = outcomes.get((check, family, device_id), (0, 0))
        line = SummaryLine(
            Check(check), total, ok, family, device_id, uid, worst, tuple(channels or ()), late, not_cut
        )
        if device_id is not None:
            if ok < total:
                failing.append(line)
        elif family is not None:
            by_family.append(line)
        else:
            by_check.append(line)
    failing.sort(key=lambda s: (-s.failed, s.device_uid or ""))
    return ComplianceSummary(community_id, window_start, window_end, by_check, by_family, failing)


def _outcomes(
    conn: psycopg.Connection[Any], community_id: int, window_start: datetime, window_end: datetime
) -> dict[tuple[str, str | None, int | None], tuple[int, int]]:
    """(late, not_cut) of the non-compliant auto-cutoffs in [start, end) per check, family and device
    (the grouping sets of the summary). Read from the findings themselves: they are few, and the
    daily rollup does not keep outcomes."""
    rows = conn.execute(
        """
        SELECT f.check_name, d.family, f.device_id,
               count(*) FILTER (WHERE f.details->>'outcome' = 'late'),
               count(*) FILTER (WHERE f.details->>'outcome' = 'not_cut')
        FROM compliance_findings f JOIN devices d ON d.id = f.device_id
        WHERE f.community_id = %s AND f.check_name = 'auto_cutoff' AND NOT f.compliant
          AND f.observed_at >= %s AND f.observed_at < %s
        GROUP BY GROUPING SETS ((f.check_name), (f.check_name, d.family), (f.check_name, f.device_id))
        """,
        (community_id, window_start, window_end),
    ).fetchall()
    return {(check, family, device_id): (late, not_cut) for check, family, device_id, late, not_cut in rows}


def _whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[first, last): the UTC days wholly inside [start, end); first == last when there are none."""
    day = timedelta(days=1)
    first = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if first < start:
        first += day
    last = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if last <= first:
        return end, end  # no whole day: everything from the findings, [start, end)
    return first, last


# span lengths of compliance_span (migration 0025), longest first; 1 is a day of compliance_daily
SPAN_DAYS = (64, 32, 16, 8, 4, 2)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _spans(first: datetime, last: datetime) -> tuple[list[datetime], list[int], list[datetime]]:
    """The UTC days [first, last) as single days and aligned spans: (days, span lengths, span starts).

    Greedy from `first`: at each day take the longest span that starts there (its day number since
    1970-01-01 is a multiple of its length, as migration 0025 aligns them) and ends by `last`. That is
    at most two spans of each length, so 29 days take at most ~10 pieces, usually 5-7."""
    days: list[datetime] = []
    lengths: list[int] = []
    starts: list[datetime] = []
    n, end = (first - _EPOCH).days, (last - _EPOCH).days
    while n < end:
        length = next((s for s in SPAN_DAYS if n % s == 0 and n + s <= end), 1)
        at = _EPOCH + timedelta(days=n)
        if length == 1:
            days.append(at)
        else:
            lengths.append(length)
            starts.append(at)
        n += length
    return days, lengths, starts
