"""Inspection, testing and maintenance records (巡检/检测/维保), manual evidence and their attachments.

Invariants and what enforces them:
- a record belongs to one community, and its device (if any) to the same community: `add_record`
  checks the device inside the insert (`INSERT … SELECT … WHERE community_id = %s`), so a device id of
  another community inserts nothing and reads as unknown;
- an attachment is named by its SHA-256 within a community (unique index): uploading the same file
  twice returns the first row;
- a record or finding may cite only attachments of its own community (`_own_attachments`).
One transaction per operation; rows are frozen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from storage.registry import UnknownReference  # a device or attachment not of this community

KINDS = ("inspection", "test", "maintenance")
RESULTS = ("pass", "fail", "fixed")
VERDICTS = ("met", "not_met", "partly")


@dataclass(frozen=True, slots=True)
class Attachment:
    id: int
    sha256: str
    filename: str
    content_type: str
    size_bytes: int
    uploaded_by: str
    uploaded_at: datetime


@dataclass(frozen=True, slots=True)
class Record:
    id: int
    community_id: int
    device_id: int | None
    device_uid: str | None
    family: str
    kind: str
    performed_at: datetime
    performed_by: str
    result: str
    notes: str
    attachments: tuple[int, ...]
    source: str
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class NewRecord:
    family: str
    kind: str
    performed_at: datetime
    performed_by: str
    result: str
    device_uid: str | None = None
    notes: str = ""
    attachments: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Manual:
    id: int
    community_id: int
    scheme: str
    item: str
    verdict: str | None
    finding: str
    observed_on: date
    attachments: tuple[int, ...]
    recorded_by: str
    recorded_at: datetime


def add_attachment(
    conn: psycopg.Connection[Any],
    community_id: int,
    *,
    filename: str,
    content_type: str,
    content: bytes,
    uploaded_by: str,
) -> Attachment:
    digest = hashlib.sha256(content).hexdigest()
    with conn.transaction():
        row = conn.execute(
            """
            INSERT INTO evidence_attachments
                (community_id, sha256, filename, content_type, size_bytes, content, uploaded_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (community_id, sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
            RETURNING id, sha256, filename, content_type, size_bytes, uploaded_by, uploaded_at
            """,
            (community_id, digest, filename, content_type, len(content), content, uploaded_by),
        ).fetchone()
    assert row is not None
    return Attachment(*row)


def get_attachment(
    conn: psycopg.Connection[Any], community_id: int, attachment_id: int
) -> tuple[Attachment, bytes] | None:
    row = conn.execute(
        """
        SELECT id, sha256, filename, content_type, size_bytes, uploaded_by, uploaded_at, content
        FROM evidence_attachments WHERE id = %s AND community_id = %s
        """,
        (attachment_id, community_id),
    ).fetchone()
    if row is None:
        return None
    return Attachment(*row[:7]), bytes(row[7])


def _own_attachments(conn: psycopg.Connection[Any], community_id: int, ids: Sequence[int]) -> None:
    if not ids:
        return
    row = conn.execute(
        "SELECT count(*) FROM evidence_attachments WHERE community_id = %s AND id = ANY(%s)",
        (community_id, list(set(ids))),
    ).fetchone()
    if row is None or int(row[0]) != len(set(ids)):
        raise UnknownReference("unknown attachment id (not found in this community)")


_RECORD_COLUMNS = """
    r.id, r.community_id, r.device_id, d.uid, r.family, r.kind, r.performed_at, r.performed_by, r.result,
    r.notes, r.attachments, r.source, r.recorded_by, r.recorded_at
"""


def _record(row: tuple[Any, ...]) -> Record:
    values = list(row)
    values[10] = tuple(values[10] or ())
    return Record(*values)


def add_records(
    conn: psycopg.Connection[Any],
    community_id: int,
    records: Sequence[NewRecord],
    *,
    source: str,
    recorded_by: str,
) -> list[Record]:
    """Insert records in one transaction; any unknown device or attachment refuses them all."""
    out: list[Record] = []
    with conn.transaction():
        for r in records:
            _own_attachments(conn, community_id, r.attachments)
            device_id: int | None = None
            family = r.family
            if r.device_uid is not None:
                dev = conn.execute(
                    "SELECT id, family FROM devices WHERE uid = %s AND community_id = %s",
                    (r.device_uid, community_id),
                ).fetchone()
                if dev is None:
                    raise UnknownReference(
                        f"unknown device {r.device_uid!r} (not registered in this community)"
                    )
                device_id, family = int(dev[0]), str(dev[1])
            row = conn.execute(
                f"""
                WITH r AS (
                    INSERT INTO maintenance_records (community_id, device_id, family, kind, performed_at,
                        performed_by, result, notes, attachments, source, recorded_by)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    RETURNING *
                )
                SELECT {_RECORD_COLUMNS} FROM r LEFT JOIN devices d ON d.id = r.device_id
                """,  # noqa: S608 - the column list is a constant
                (
                    community_id,
                    device_id,
                    family,
                    r.kind,
                    r.performed_at,
                    r.performed_by,
                    r.result,
                    r.notes,
                    list(r.attachments),
                    source,
                    recorded_by,
                ),
            ).fetchone()
            assert row is not None
            out.append(_record(row))
    return out


def list_records(
    conn: psycopg.Connection[Any],
    community_id: int,
    *,
    family: str | None = None,
    device_uid: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[Record]:
    """Records of a community, newest id first, keyset-paginated by id."""
    rows = conn.execute(
        f"""
        SELECT {_RECORD_COLUMNS}
        FROM maintenance_records r LEFT JOIN devices d ON d.id = r.device_id
        WHERE r.community_id = %s
          AND (%s::text IS NULL OR r.family = %s)
          AND (%s::text IS NULL OR d.uid = %s)
          AND (%s::timestamptz IS NULL OR r.performed_at >= %s)
          AND (%s::timestamptz IS NULL OR r.performed_at < %s)
          AND (%s::bigint IS NULL OR r.id < %s)
        ORDER BY r.id DESC LIMIT %s
        """,  # noqa: S608 - the column list is a constant
        (
            community_id,
            family,
            family,
            device_uid,
            device_uid,
            since,
            since,
            until,
            until,
            after_id,
            after_id,
            limit,
        ),
    ).fetchall()
    return [_record(r) for r in rows]


def add_manual(
    conn: psycopg.Connection[Any],
    community_id: int,
    *,
    scheme: str,
    item: str,
    verdict: str | None,
    finding: str,
    observed_on: date,
    attachments: Sequence[int],
    recorded_by: str,
) -> Manual:
    with conn.transaction():
        _own_attachments(conn, community_id, attachments)
        row = conn.execute(
            """
            INSERT INTO manual_evidence (community_id, scheme, item, verdict, finding, observed_on,
                attachments, recorded_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING id, community_id, scheme, item, verdict, finding, observed_on, attachments,
                      recorded_by, recorded_at
            """,
            (community_id, scheme, item, verdict, finding, observed_on, list(attachments), recorded_by),
        ).fetchone()
    assert row is not None
    values = list(row)
    values[7] = tuple(values[7] or ())
    return Manual(*values)


def list_manual(conn: psycopg.Connection[Any], community_id: int) -> list[Manual]:
    rows = conn.execute(
        """
        SELECT id, community_id, scheme, item, verdict, finding, observed_on, attachments, recorded_by,
               recorded_at
        FROM manual_evidence WHERE community_id = %s ORDER BY scheme, item, observed_on DESC, id DESC
        LIMIT 1000
        """,
        (community_id,),
    ).fetchall()
    out = []
    for row in rows:
        values = list(row)
        values[7] = tuple(values[7] or ())
        out.append(Manual(*values))
    return out
