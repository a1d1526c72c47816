"""Downlink commands: recording them, claiming the pending ones for sending, marking them sent or
failed, applying device acknowledgements, and reading requests back (one or a scoped, newest-first
page, with their acknowledgements).

Every command is recorded here (`insert_command`), by the engine and by the API alike, and marked
sent or failed here (`mark_sent`). The engine publishes its own commands right after its commit;
commands requested through the API are recorded `pending` and the dispatcher (alerts.commands)
claims them here, publishes them and marks them. Device acknowledgements arrive as `cmd_ack` device
events (stored by ingest) and are applied to their command by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString
from uuid import UUID

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from storage.sites import scope_params


@dataclass(frozen=True)
class PendingCommand:
    id: int
    command_uuid: UUID
    device_uid: str
    community_code: str
    name: str
    params: dict[str, Any]
    requested_at: datetime


# The engine records its commands `pending` and publishes them itself right after the commit; the
# dispatcher must leave those alone or it could send them a second time in between.
ENGINE_ACTOR = "engine"


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
    """Record a command `pending`; None if this command (same uuid) was recorded before (a
    redelivery: the engine's command ids are derived from what caused them)."""
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


def claim_pending(conn: psycopg.Connection[Any], limit: int = 100) -> list[PendingCommand]:
    """Pending commands not owned by the engine, oldest first, locked until the caller's transaction
    ends (SKIP LOCKED, so two dispatchers never send the same command)."""
    rows = conn.execute(
        """
        SELECT c.id, c.command_uuid, d.uid, co.code, c.name, c.params, c.requested_at
        FROM commands c JOIN devices d ON d.id = c.device_id JOIN communities co ON co.id = d.community_id
        WHERE c.status = 'pending' AND c.requested_by <> %s
        ORDER BY c.requested_at, c.id
        LIMIT %s
        FOR UPDATE OF c SKIP LOCKED
        """,
        (ENGINE_ACTOR, limit),
    ).fetchall()
    return [PendingCommand(*row) for row in rows]


def mark_sent(conn: psycopg.Connection[Any], command_id: int, *, ok: bool) -> None:
    """After a publish attempt: `sent` (with the time) if the broker took it, else `failed`."""
    conn.execute(
        "UPDATE commands SET status = %s, sent_at = CASE WHEN %s THEN now() ELSE sent_at END WHERE id = %s",
        ("sent" if ok else "failed", ok, command_id),
    )


def apply_acks(conn: psycopg.Connection[Any], since: datetime) -> tuple[int, datetime]:
    """Apply `cmd_ack` events with device time >= `since` to their commands (idempotent).

    Returns how many acknowledgements were new and the newest event time seen (the next `since`).
    """
    row = conn.execute(
        """
        WITH acks AS (
            SELECT e.ts, e.received_at, e.body, c.id AS command_id
            FROM device_events e
            JOIN commands c ON c.command_uuid::text = e.body->>'id' AND c.device_id = e.device_id
            WHERE e.kind = 'cmd_ack' AND e.ts >= %s
        ), inserted AS (
            INSERT INTO command_acks (command_id, received_at, ok, code, body)
            SELECT a.command_id, a.received_at, (a.body->>'ok')::boolean, a.body->>'code', a.body
            FROM acks a
            WHERE NOT EXISTS (
                SELECT 1 FROM command_acks k
                WHERE k.command_id = a.command_id AND k.received_at = a.received_at
            )
            RETURNING command_id, ok
        ), updated AS (
            UPDATE commands c SET status = CASE WHEN i.ok THEN 'acknowledged' ELSE 'rejected' END
            FROM inserted i
            WHERE c.id = i.command_id AND c.status IN ('pending', 'sent', 'failed')
            RETURNING c.id
        )
        SELECT (SELECT count(*) FROM inserted), (SELECT max(ts) FROM acks)
        """,
        (since,),
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1] or since


# ---------------------------------------------------------------------------------------------
# Reading requests back


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """A command as read back, with its device's acknowledgements in arrival order (each the JSON object
    `{"received_at", "ok", "code"}`)."""

    id: int
    command_uuid: UUID
    device_id: int
    device_uid: str
    community_id: int
    name: str
    params: dict[str, Any]
    requested_by: str
    requested_at: datetime
    sent_at: datetime | None
    status: str
    alarm_id: int | None
    details: dict[str, Any]
    acks: list[dict[str, Any]]


_COMMAND: LiteralString = """
    SELECT c.id, c.command_uuid, c.device_id, d.uid AS device_uid, d.community_id, c.name, c.params,
           c.requested_by, c.requested_at, c.sent_at, c.status, c.alarm_id, c.details,
           coalesce((SELECT json_agg(json_build_object('received_at', k.received_at, 'ok', k.ok,
                                                       'code', k.code) ORDER BY k.id)
                     FROM command_acks k WHERE k.command_id = c.id), '[]'::json) AS acks
    FROM commands c JOIN devices d ON d.id = c.device_id
"""


def get_command(conn: psycopg.Connection[Any], command_id: int) -> CommandRequest | None:
    rows = _requests(conn, _COMMAND + " WHERE c.id = %s", (command_id,))
    return rows[0] if rows else None


def list_commands(
    conn: psycopg.Connection[Any],
    *,
    community_ids: Sequence[int] | None,
    device_id: int | None,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> list[CommandRequest]:
    """Newest first."""
    return _requests(
        conn,
        _COMMAND
        + """ WHERE (%(all)s OR d.community_id = ANY(%(cids)s))
          AND (%(device)s::integer IS NULL OR c.device_id = %(device)s)
          AND (%(status)s::text IS NULL OR c.status = %(status)s)
          AND (%(before)s::bigint IS NULL OR c.id < %(before)s)
          ORDER BY c.id DESC LIMIT %(limit)s""",
        {
            **scope_params(community_ids),
            "device": device_id,
            "status": status,
            "before": before_id,
            "limit": limit,
        },
    )


def _requests(conn: psycopg.Connection[Any], query: LiteralString, params: Any) -> list[CommandRequest]:
    with conn.cursor(row_factory=class_row(CommandRequest)) as cur:
        cur.execute(query, params)
        return cur.fetchall()
