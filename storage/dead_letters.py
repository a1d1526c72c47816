"""The dead-letter table: every inbound message that could not be accepted, with the reason.

Rows are written by the ingest writer in the same transaction as the batch they arrived in, so a
refused message is acknowledged to the broker only once its dead letter is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from devices.contract import Refusal

DEAD_LETTER_COLUMNS = (
    "received_at, topic, payload, payload_size, reason, detail, device_uid, family, community_id, device_id"
)
DEAD_LETTER_TYPES = ["timestamptz", "text", "bytea", "int4", "text", "text", "text", "text", "int8", "int4"]
DETAIL_MAX_CHARS = 2000


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    received_at: datetime
    topic: str
    payload: bytes  # already truncated by the caller
    payload_size: int  # the original size
    refusal: Refusal  # why, and whose it is (API scope): the device the topic names, else its community


def _text(value: str | None, limit: int = DETAIL_MAX_CHARS) -> str | None:
    # PostgreSQL text cannot hold NUL; refused input may contain anything
    return None if value is None else value.replace("\x00", "\\x00")[:limit]


def dead_letter_record(row: DeadLetterRow) -> tuple[Any, ...]:
    r = row.refusal
    return (
        row.received_at,
        _text(row.topic, 1000),
        row.payload,
        row.payload_size,
        r.reason.value,
        _text(r.detail) or "",
        _text(r.device_uid, 200),
        _text(r.family, 64),
        r.community_id,
        r.device_id,
    )


def insert_dead_letter(conn: psycopg.Connection[Any], row: DeadLetterRow) -> None:
    """One dead letter outside ingest's COPY batches (the engine's refused outputs)."""
    conn.execute(
        f"INSERT INTO dead_letters ({DEAD_LETTER_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})",  # noqa: S608
        dead_letter_record(row),
    )


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """What `list_dead_letters` returns. `community_ids` None: every community and the dead letters
    that belong to none (an admin); otherwise only those communities'."""

    community_ids: Sequence[int] | None
    device_id: int | None = None
    device_uid: str | None = None
    reasons: Sequence[str] | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: int
    received_at: datetime
    topic: str
    payload: bytes
    payload_size: int
    reason: str
    detail: str
    device_uid: str | None
    family: str | None
    community_id: int | None
    device_id: int | None


def list_dead_letters(
    conn: psycopg.Connection[Any], f: DeadLetterFilter, *, before_id: int | None, limit: int
) -> list[StoredDeadLetter]:
    """Newest first (by id: the order ingest wrote them), keyset-paged with `before_id`."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, received_at, topic, payload, payload_size, reason, detail, device_uid, family, "
            "community_id, device_id FROM dead_letters "
            "WHERE (%(all)s OR community_id = ANY(%(cids)s)) "
            "AND (%(device_id)s::integer IS NULL OR device_id = %(device_id)s) "
            "AND (%(uid)s::text IS NULL OR device_uid = %(uid)s) "
            "AND (%(reasons)s::text[] IS NULL OR reason = ANY(%(reasons)s)) "
            "AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s) "
            "AND (%(until)s::timestamptz IS NULL OR received_at < %(until)s) "
            "AND (%(before)s::bigint IS NULL OR id < %(before)s) "
            "ORDER BY id DESC LIMIT %(limit)s",
            {
                "all": f.community_ids is None,
                "cids": list(f.community_ids or ()),
                "device_id": f.device_id,
                "uid": f.device_uid,
                "reasons": list(f.reasons) if f.reasons else None,
                "since": f.since,
                "until": f.until,
                "before": before_id,
                "limit": limit,
            },
        )
        rows = cur.fetchall()
    return [StoredDeadLetter(**{**r, "payload": bytes(r["payload"])}) for r in rows]
