"""Compliance findings (domain.md §5) and the engine's commands; the compliance summary over a window.

A finding is one decided obligation, compliant or not (a cutoff in time, a silent fault, a channel's
retention verdict…). Findings carry an idempotency key so that a redelivered message cannot record
the same decision twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True, slots=True)
class FindingRow:
    community_id: int
    device_id: int
    check_name: str
    kind: str
    compliant: bool
    observed_at: datetime
    trigger_at: datetime | None = None
    deadline_s: float | None = None
    measured_s: float | None = None
    channel: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    dedup_key: str | None = None


def insert_findings(conn: psycopg.Connection[Any], rows: Sequence[FindingRow]) -> int:
    """Insert findings, skipping ones already recorded (same device and dedup key); returns how many."""
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO compliance_findings (community_id, device_id, check_name, kind, compliant,
                observed_at, trigger_at, deadline_s, measured_s, channel, details, dedup_key)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (device_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
            """,
            [
                (
                    r.community_id,
                    r.device_id,
                    r.check_name,
                    r.kind,
                    r.compliant,
                    r.observed_at,
                    r.trigger_at,
                    r.deadline_s,
                    r.measured_s,
                    r.channel,
                    Jsonb(r.details),
                    r.dedup_key,
                )
                for r in rows
            ],
        )
        return max(cur.rowcount, 0)


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

    check_name: str
    total: int
    compliant: int
    family: str | None = None
    device_id: int | None = None
    device_uid: str | None = None
    worst_measured_s: float | None = None
    # device lines: the channels (recorder channels, charger ports) with a non-compliant finding
    failing_channels: tuple[int, ...] = ()

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
    """Compliance per check, per family and check, and the failing devices, over [start, end)."""
    params = (community_id, window_start, window_end)
    rows = conn.execute(
        """
        SELECT f.check_name, d.family, f.device_id, d.uid, count(*), count(*) FILTER (WHERE f.compliant),
               max(f.measured_s),
               array_agg(DISTINCT f.channel ORDER BY f.channel)
                   FILTER (WHERE NOT f.compliant AND f.channel > 0)
        FROM compliance_findings f JOIN devices d ON d.id = f.device_id
        WHERE f.community_id = %s AND f.observed_at >= %s AND f.observed_at < %s
        GROUP BY GROUPING SETS ((f.check_name), (f.check_name, d.family), (f.check_name, f.device_id, d.uid))
        ORDER BY 1, 2 NULLS FIRST, 4 NULLS FIRST
        """,
        params,
    ).fetchall()
    by_check: list[SummaryLine] = []
    by_family: list[SummaryLine] = []
    failing: list[SummaryLine] = []
    for check, family, device_id, uid, total, ok, worst, channels in rows:
        line = SummaryLine(check, total, ok, family, device_id, uid, worst, tuple(channels or ()))
        if device_id is not None:
            if ok < total:
                failing.append(line)
        elif family is not None:
            by_family.append(line)
        else:
            by_check.append(line)
    failing.sort(key=lambda s: (-s.failed, s.device_uid or ""))
    return ComplianceSummary(community_id, window_start, window_end, by_check, by_family, failing)


# ---------------------------------------------------------------------------------------------
# Commands requested by the engine (recorded here, published by the MQTT owner)


def insert_command(
    conn: psycopg.Connection[Any],
    *,
    command_uuid: UUID,
    device_id: int,
    name: str,
    params: dict[str, Any],
    requested_by: str,
    requested_at: datetime,
    alarm_id: int | None,
    details: dict[str, Any] | None = None,
) -> int | None:
    """Record a command; None if this command (same uuid) was recorded before (a redelivery)."""
    row = conn.execute(
        """
        INSERT INTO commands
            (command_uuid, device_id, name, params, requested_by, requested_at, alarm_id, details)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (command_uuid) DO NOTHING RETURNING id
        """,
        (
            command_uuid,
            device_id,
            name,
            Jsonb(params),
            requested_by,
            requested_at,
            alarm_id,
            Jsonb(details or {}),
        ),
    ).fetchone()
    return None if row is None else int(row[0])


def mark_command(conn: psycopg.Connection[Any], command_id: int, status: str, *, sent: bool = False) -> None:
    conn.execute(
        "UPDATE commands SET status = %s, sent_at = CASE WHEN %s THEN now() ELSE sent_at END WHERE id = %s",
        (status, sent, command_id),
    )
