"""Alarms and their lifecycle (domain.md §4), on `alarms` and `alarm_transitions` (0001_core.sql).

Lifecycle: active-unacknowledged → active-acknowledged → cleared; a cleared alarm may still be
unacknowledged, and acknowledging it afterwards is allowed. Every change writes one row in
`alarm_transitions` (who, when, optional comment) and, in the same transaction,
`pg_notify('yiju_alarm_events', <transition id>)`: a listener (the API's live stream) reads the
transition by id, and the id doubles as the stream's resumable event id (`transitions_after`).

At most one open alarm per device and type is enforced by the unique partial index
`alarms_one_open_per_device_type`; `raise_or_update` is one `INSERT … ON CONFLICT` on that index, so
concurrent duplicate triggers update the open alarm instead of creating a second one.

Each function runs in `conn.transaction()`: a transaction of its own on an idle connection, a
savepoint inside the caller's transaction (the caller's commit then covers it, NOTIFY included).

Transition ids commit in id order: every function that writes a transition first takes one
transaction-scoped advisory lock (before touching any alarm row, so the lock order is always the
same and cannot deadlock). A stream that resumes after id N therefore never misses a transition that
committed later with a smaller id. Alarm transitions are rare next to telemetry, so serialising their
writers costs nothing measurable.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from devices.alarms import SEVERITY_RANK, Severity
from yiju.errors import InputError, StorageError

NOTIFY_CHANNEL = "yiju_alarm_events"
SEVERITIES = tuple(sorted(Severity, key=SEVERITY_RANK.__getitem__))  # worst first
SOURCES = ("device", "engine", "compliance", "linkage", "operator")
LIST_LIMIT_MAX = 500

AlarmStatus = Literal["active", "cleared"]
TransitionAction = Literal[
    "raised", "updated", "acknowledged", "commented", "cleared", "escalated", "notified",
    "dispatched", "on_site", "resolved", "closed",
]  # fmt: skip
HandlingStep = Literal["dispatched", "on_site", "resolved", "closed"]
AlarmResult = Literal["real", "false_alarm", "test", "device_fault"]
RESULTS: tuple[AlarmResult, ...] = ("real", "false_alarm", "test", "device_fault")
AlarmOrder = Literal["recent", "worst"]


class AlarmNotFound(StorageError):
    """No alarm with the given id (or no open alarm for the given device and type)."""


class HandlingOutOfOrder(StorageError):
    """A handling step that does not follow the alarm's current step (see `handle`)."""


class InvalidCursor(InputError):
    """A pagination cursor that this module did not produce."""


@dataclass(frozen=True, slots=True)
class Alarm:
    id: int
    community_id: int
    device_id: int
    device_uid: str
    family: str
    location_id: int | None
    location_name: str | None
    building_id: int | None
    building_name: str | None
    type: str
    severity: str
    status: AlarmStatus
    acknowledged: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    cleared_by: str | None
    first_at: datetime
    last_at: datetime
    occurrences: int
    source: str
    details: dict[str, Any]
    handling: HandlingStep | None = None  # the handling step reached (0018_handling.sql)
    result: AlarmResult | None = None  # set by the 'resolved' step
    # where, structured (issue 13 §1): the location's kind, unit and floor, the device's room or post
    location_kind: str | None = None
    unit: str | None = None
    floor: int | None = None
    room: str | None = None
    post: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    id: int
    alarm_id: int
    at: datetime
    action: TransitionAction
    actor: str
    comment: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """The alarm after a change, and the transition that recorded it (its id is the stream event id)."""

    alarm: Alarm
    transition: Transition

    @property
    def action(self) -> TransitionAction:
        return self.transition.action


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One entry of the live stream: a transition and the alarm as it is now."""

    transition: Transition
    alarm: Alarm


@dataclass(frozen=True, slots=True)
class AlarmPage:
    items: list[Alarm]
    next_cursor: str | None


# ---------------------------------------------------------------------------------------------
# SQL pieces

_ALARM_COLUMNS: LiteralString = """
    a.id, a.community_id, a.device_id, d.uid AS device_uid, d.family,
    d.location_id, l.name AS location_name, l.building_id, b.name AS building_name,
    a.type, a.severity, a.status, a.acknowledged, a.acknowledged_at, a.acknowledged_by,
    a.cleared_at, a.cleared_by, a.first_at, a.last_at, a.occurrences, a.source, a.details,
    a.handling, a.result, l.kind AS location_kind, l.unit, l.floor, d.room, d.post
"""
_ALARM_JOINS: LiteralString = """
    JOIN devices d ON d.id = a.device_id
    LEFT JOIN locations l ON l.id = d.location_id
    LEFT JOIN buildings b ON b.id = l.building_id
"""
_SEVERITY_RANK_SQL: LiteralString = (
    "array_position(ARRAY['critical','major','minor','warning']::text[], a.severity)"
)


def _q(template: LiteralString) -> sql.Composed:
    """A query with the alarm's columns ({cols}) and its device/location joins ({joins}) filled in."""
    return sql.SQL(template).format(cols=sql.SQL(_ALARM_COLUMNS), joins=sql.SQL(_ALARM_JOINS))


# Upsert on the partial unique index: a second trigger for the same open (device, type) updates it.
# The worse severity wins; details are merged (newest keys win).
_UPSERT = _q(
    """
    WITH up AS (
        INSERT INTO alarms AS cur
            (community_id, device_id, type, severity, first_at, last_at, source, details)
        VALUES (%(community_id)s, %(device_id)s, %(type)s, %(severity)s, %(at)s, %(at)s,
                %(source)s, %(details)s)
        ON CONFLICT (device_id, type) WHERE status = 'active' DO UPDATE SET
            last_at = GREATEST(cur.last_at, EXCLUDED.last_at),
            first_at = LEAST(cur.first_at, EXCLUDED.first_at),
            occurrences = cur.occurrences + 1,
            details = cur.details || EXCLUDED.details,
            severity = CASE
                WHEN array_position(ARRAY['critical','major','minor','warning']::text[], EXCLUDED.severity)
                   < array_position(ARRAY['critical','major','minor','warning']::text[], cur.severity)
                THEN EXCLUDED.severity ELSE cur.severity END
        RETURNING cur.*, (xmax = 0) AS inserted
    )
    SELECT a.inserted, {cols} FROM up a {joins}
    """
)

# pg_advisory_xact_lock key for transition writers: "alrm" in ASCII, recognisable in pg_locks
TRANSITION_LOCK_KEY = 0x616C_726D

_INSERT_TRANSITION: LiteralString = """
    WITH t AS (
        INSERT INTO alarm_transitions (alarm_id, at, action, actor, comment, details)
        VALUES (%s, COALESCE(%s, now()), %s, %s, %s, %s)
        RETURNING *
    )
    SELECT t.*, pg_notify('yiju_alarm_events', t.id::text) AS notified FROM t
"""


_CLEAR = """
    WITH up AS (
        UPDATE alarms SET status = 'cleared', cleared_at = COALESCE(%s, now()), cleared_by = %s
        WHERE status = 'active' AND {key} RETURNING *
    )
    SELECT {cols} FROM up a {joins}
"""
_CLEAR_BY_ID = sql.SQL(_CLEAR).format(
    key=sql.SQL("id = %s"), cols=sql.SQL(_ALARM_COLUMNS), joins=sql.SQL(_ALARM_JOINS)
)
_CLEAR_BY_PAIR = sql.SQL(_CLEAR).format(
    key=sql.SQL("device_id = %s AND type = %s"), cols=sql.SQL(_ALARM_COLUMNS), joins=sql.SQL(_ALARM_JOINS)
)
_ACKNOWLEDGE = _q(
    """
    WITH up AS (
        UPDATE alarms SET acknowledged = true, acknowledged_at = COALESCE(%s, now()), acknowledged_by = %s
        WHERE id = %s AND NOT acknowledged RETURNING *
    )
    SELECT {cols} FROM up a {joins}
    """
)
_GET = _q("SELECT {cols} FROM alarms a {joins} WHERE a.id = %s")
_GET_FOR_UPDATE = _q("SELECT {cols} FROM alarms a {joins} WHERE a.id = %s FOR UPDATE OF a")
_GET_OPEN = _q(
    "SELECT {cols} FROM alarms a {joins} WHERE a.device_id = %s AND a.type = %s AND a.status = 'active'"
)
_OPEN_OF_DEVICE = _q(
    "SELECT {cols} FROM alarms a {joins} WHERE a.device_id = %s AND a.status = 'active' ORDER BY a.id"
)

_ALARM_FIELDS = tuple(f.name for f in fields(Alarm))
_TRANSITION_FIELDS = tuple(f.name for f in fields(Transition))


def _alarm(row: dict[str, Any]) -> Alarm:
    return Alarm(**{name: row[name] for name in _ALARM_FIELDS})


def _transition(row: dict[str, Any]) -> Transition:
    return Transition(**{name: row[name] for name in _TRANSITION_FIELDS})


def _one(
    conn: psycopg.Connection[Any], query: LiteralString | sql.Composed, params: Any
) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def _record(
    conn: psycopg.Connection[Any],
    alarm_id: int,
    *,
    action: TransitionAction,
    actor: str,
    comment: str | None,
    details: dict[str, Any] | None,
    at: datetime | None,
) -> Transition:
    row = _one(conn, _INSERT_TRANSITION, (alarm_id, at, action, actor, comment, Jsonb(details or {})))
    assert row is not None
    return _transition(row)


def _serialise_transitions(conn: psycopg.Connection[Any]) -> None:
    """Hold the transition-writer lock until this transaction ends (re-entrant within it)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (TRANSITION_LOCK_KEY,))


def _check_aware(at: datetime | None) -> None:
    if at is not None and at.tzinfo is None:
        raise InputError("alarm times must be timezone-aware")


# ---------------------------------------------------------------------------------------------
# Lifecycle


def raise_or_update(
    conn: psycopg.Connection[Any],
    *,
    community_id: int,
    device_id: int,
    type: str,
    severity: Severity,
    at: datetime,
    source: str = "engine",
    details: dict[str, Any] | None = None,
    actor: str = "engine",
    comment: str | None = None,
) -> AlarmChange:
    """Open an alarm for (device, type), or update the open one (last_at, occurrences, details).

    `at` is when the condition occurred (device time); it becomes first_at/last_at and the time of
    the 'raised'/'updated' transition.
    """
    if severity not in SEVERITIES:
        raise InputError(f"unknown severity {severity!r}")
    if source not in SOURCES:
        raise InputError(f"unknown alarm source {source!r}")
    _check_aware(at)
    params = {
        "community_id": community_id,
        "device_id": device_id,
        "type": type,
        "severity": str(severity),
        "at": at,
        "source": source,
        "details": Jsonb(details or {}),
    }
    with conn.transaction():
        _serialise_transitions(conn)
        row = _one(conn, _UPSERT, params)
        if row is None:  # the device row vanished between the insert and the join
            raise StorageError(f"device {device_id} does not exist")
        action: TransitionAction = "raised" if row["inserted"] else "updated"
        transition = _record(
            conn, row["id"], action=action, actor=actor, comment=comment, details=details, at=at
        )
    return AlarmChange(_alarm(row), transition)


def clear(
    conn: psycopg.Connection[Any],
    alarm_id: int | None = None,
    *,
    device_id: int | None = None,
    type: str | None = None,
    actor: str,
    comment: str | None = None,
    at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> AlarmChange | None:
    """Clear an alarm by id, or the open alarm of (device_id, type).

    Returns None when there is nothing open to clear (already cleared, or no open alarm for the pair);
    raises `AlarmNotFound` for an unknown id.
    """
    _check_aware(at)
    if alarm_id is None and (device_id is None or type is None):
        raise InputError("clear needs an alarm id or a device id and alarm type")
    with conn.transaction():
        _serialise_transitions(conn)
        query = _CLEAR_BY_ID if alarm_id is not None else _CLEAR_BY_PAIR
        key = (alarm_id,) if alarm_id is not None else (device_id, type)
        row = _one(conn, query, (at, actor, *key))
        if row is None:
            if alarm_id is not None and get(conn, alarm_id) is None:
                raise AlarmNotFound(f"no alarm {alarm_id}")
            return None
        transition = _record(
            conn, row["id"], action="cleared", actor=actor, comment=comment, details=details, at=at
        )
    return AlarmChange(_alarm(row), transition)


def acknowledge(
    conn: psycopg.Connection[Any],
    alarm_id: int,
    *,
    actor: str,
    comment: str | None = None,
    at: datetime | None = None,
) -> AlarmChange | None:
    """Acknowledge an alarm (active or already cleared). None if it was acknowledged before."""
    _check_aware(at)
    with conn.transaction():
        _serialise_transitions(conn)
        row = _one(conn, _ACKNOWLEDGE, (at, actor, alarm_id))
        if row is None:
            if get(conn, alarm_id) is None:
                raise AlarmNotFound(f"no alarm {alarm_id}")
            return None
        transition = _record(
            conn, alarm_id, action="acknowledged", actor=actor, comment=comment, details=None, at=at
        )
    return AlarmChange(_alarm(row), transition)


def acknowledge_many(
    conn: psycopg.Connection[Any], alarm_ids: Sequence[int], *, actor: str, comment: str | None = None
) -> list[AlarmChange]:
    """Acknowledge several alarms with one comment (an alarm storm), all or none: one transaction.
    Alarms acknowledged before are skipped; an unknown id raises `AlarmNotFound` and writes nothing."""
    with conn.transaction():
        changes = [acknowledge(conn, i, actor=actor, comment=comment) for i in dict.fromkeys(alarm_ids)]
    return [c for c in changes if c is not None]


def comment(
    conn: psycopg.Connection[Any], alarm_id: int, *, actor: str, text: str, at: datetime | None = None
) -> AlarmChange:
    """Add a comment to an alarm's history (any status)."""
    if not text.strip():
        raise InputError("a comment needs text")
    return record_transition(conn, alarm_id, action="commented", actor=actor, comment=text, at=at)


def record_transition(
    conn: psycopg.Connection[Any],
    alarm_id: int,
    *,
    action: Literal["commented", "escalated", "notified"],
    actor: str,
    comment: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AlarmChange:
    """A transition that does not change the alarm's state (comment, escalation, notification)."""
    _check_aware(at)
    with conn.transaction():
        _serialise_transitions(conn)
        alarm = get(conn, alarm_id, for_update=True)
        if alarm is None:
            raise AlarmNotFound(f"no alarm {alarm_id}")
        transition = _record(
            conn, alarm_id, action=action, actor=actor, comment=comment, details=details, at=at
        )
    return AlarmChange(alarm, transition)


# ---------------------------------------------------------------------------------------------
# Handling workflow (处置流程, issue 13)

# The steps an alarm may be in before each step. Invariant "handling follows its order": enforced by
# the conditional UPDATE in `handle` (one statement, under the transition lock). Dispatch needs an
# acknowledged alarm; the result may follow acknowledgement directly (a test, or a false alarm seen on
# CCTV, needs nobody on site); close follows the result.
_HANDLING_AFTER: dict[HandlingStep, tuple[str, ...]] = {
    "dispatched": ("none",),
    "on_site": ("dispatched",),
    "resolved": ("none", "dispatched", "on_site"),
    "closed": ("resolved",),
}
_HANDLE = _q(
    """
    WITH up AS (
        UPDATE alarms SET handling = %(step)s, result = COALESCE(%(result)s, result)
        WHERE id = %(id)s AND acknowledged AND COALESCE(handling, 'none') = ANY(%(after)s) RETURNING *
    )
    SELECT {cols} FROM up a {joins}
    """
)


def handle(
    conn: psycopg.Connection[Any],
    alarm_id: int,
    step: HandlingStep,
    *,
    actor: str,
    comment: str | None = None,
    dispatched_to: str | None = None,
    result: AlarmResult | None = None,
    at: datetime | None = None,
) -> AlarmChange:
    """Move an acknowledged alarm to the next handling step, recording a transition of that name.

    dispatched needs `dispatched_to`; resolved needs a `result` and a comment; closed needs a comment
    (the reason) and clears the alarm in the same transaction when it is still active. Raises
    `HandlingOutOfOrder` when the alarm is not acknowledged or not at a step this one may follow.
    """
    _check_aware(at)
    if step == "dispatched" and not (dispatched_to or "").strip():
        raise InputError("dispatch needs the person or team it goes to")
    if step == "resolved" and result not in RESULTS:
        raise InputError(f"the result must be one of {', '.join(RESULTS)}")
    if step in ("resolved", "closed") and not (comment or "").strip():
        raise InputError(f"{step} needs a comment")
    details: dict[str, Any] = {}
    if step == "dispatched":
        details["to"] = dispatched_to
    if step == "resolved":
        details["result"] = result
    with conn.transaction():
        _serialise_transitions(conn)
        params = {"step": step, "result": result if step == "resolved" else None, "id": alarm_id}
        row = _one(conn, _HANDLE, {**params, "after": list(_HANDLING_AFTER[step])})
        if row is None:
            current = get(conn, alarm_id)
            if current is None:
                raise AlarmNotFound(f"no alarm {alarm_id}")
            stage = current.handling or "none"
            where = "not acknowledged" if not current.acknowledged else f"at step {stage}"
            raise HandlingOutOfOrder(f"alarm {alarm_id} cannot be {step}: it is {where}")
        if step == "closed" and row["status"] == "active":
            cleared = _one(conn, _CLEAR_BY_ID, (at, actor, alarm_id))
            assert cleared is not None  # the row is locked by the UPDATE above
            _record(conn, alarm_id, action="cleared", actor=actor, comment=comment, details=None, at=at)
            row = cleared
        transition = _record(
            conn, alarm_id, action=step, actor=actor, comment=comment, details=details, at=at
        )
    return AlarmChange(_alarm(row), transition)


# ---------------------------------------------------------------------------------------------
# Reads


def get(conn: psycopg.Connection[Any], alarm_id: int, *, for_update: bool = False) -> Alarm | None:
    row = _one(conn, _GET_FOR_UPDATE if for_update else _GET, (alarm_id,))
    return None if row is None else _alarm(row)


def get_open(conn: psycopg.Connection[Any], device_id: int, type: str) -> Alarm | None:
    """The open alarm of (device, type), if any."""
    row = _one(conn, _GET_OPEN, (device_id, type))
    return None if row is None else _alarm(row)


def history(conn: psycopg.Connection[Any], alarm_id: int) -> list[Transition]:
    """Every transition of an alarm in the order recorded (`at` may be device time, not monotonic)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM alarm_transitions WHERE alarm_id = %s ORDER BY id", (alarm_id,))
        return [_transition(r) for r in cur.fetchall()]


def get_transition(conn: psycopg.Connection[Any], transition_id: int) -> AlarmEvent | None:
    """A transition with its alarm (what a NOTIFY payload names)."""
    events = _events(conn, sql.SQL("t.id = %s"), [transition_id], 1)
    return events[0] if events else None


def transitions_after(
    conn: psycopg.Connection[Any],
    after_id: int,
    *,
    community_ids: Sequence[int] | None = None,
    limit: int = LIST_LIMIT_MAX,
) -> list[AlarmEvent]:
    """Transitions with id > after_id (oldest first), optionally only of some communities: a stream
    resumes from its last event id with this."""
    where = [sql.SQL("t.id > %s")]
    params: list[Any] = [after_id]
    if community_ids is not None:
        where.append(sql.SQL("a.community_id = ANY(%s)"))
        params.append(list(community_ids))
    return _events(conn, sql.SQL(" AND ").join(where), params, max(1, min(limit, LIST_LIMIT_MAX)))


def _events(
    conn: psycopg.Connection[Any], where: sql.Composable, params: list[Any], limit: int
) -> list[AlarmEvent]:
    query = sql.SQL(
        "SELECT t.id AS t_id, t.alarm_id AS t_alarm_id, t.at AS t_at, t.action AS t_action, "
        "t.actor AS t_actor, t.comment AS t_comment, t.details AS t_details, {cols} "
        "FROM alarm_transitions t JOIN alarms a ON a.id = t.alarm_id {joins} "
        "WHERE {where} ORDER BY t.id LIMIT %s"
    ).format(cols=sql.SQL(_ALARM_COLUMNS), joins=sql.SQL(_ALARM_JOINS), where=where)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, [*params, limit])
        rows = cur.fetchall()
    return [
        AlarmEvent(
            Transition(
                r["t_id"],
                r["t_alarm_id"],
                r["t_at"],
                r["t_action"],
                r["t_actor"],
                r["t_comment"],
                r["t_details"],
            ),
            _alarm(r),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """Filters of `list_alarms`; every field is optional and they combine with AND."""

    community_ids: Sequence[int] | None = None
    building_id: int | None = None
    device_id: int | None = None
    family: str | None = None
    types: Sequence[str] | None = None
    severities: Sequence[str] | None = None
    status: AlarmStatus | None = None
    acknowledged: bool | None = None
    since: datetime | None = None  # alarms still occurring at or after this time (last_at >= since)
    until: datetime | None = None  # alarms that began before this time (first_at < until)
    # The duty board (issue 13, "nothing vanishes"): active alarms plus cleared ones that nobody has
    # acknowledged yet — an alarm that cleared itself while the operator was away must still reach them.
    on_board: bool = False


def _filter_clauses(f: AlarmFilter) -> tuple[list[sql.Composable], list[Any]]:
    candidates: list[tuple[LiteralString, Any]] = [
        ("a.community_id = ANY(%s)", None if f.community_ids is None else list(f.community_ids)),
        ("l.building_id = %s", f.building_id),
        ("a.device_id = %s", f.device_id),
        ("d.family = %s", f.family),
        ("a.type = ANY(%s)", list(f.types) if f.types else None),
        ("a.severity = ANY(%s)", list(f.severities) if f.severities else None),
        ("a.status = %s", f.status),
        ("a.acknowledged = %s", f.acknowledged),
        ("a.last_at >= %s", f.since),
        ("a.first_at < %s", f.until),
    ]
    used = [(clause, value) for clause, value in candidates if value is not None]
    clauses: list[sql.Composable] = [sql.SQL(clause) for clause, _ in used]
    if f.on_board:
        clauses.append(sql.SQL("(a.status = 'active' OR NOT a.acknowledged)"))
    return clauses, [value for _, value in used]


def list_alarms(
    conn: psycopg.Connection[Any],
    filters: AlarmFilter | None = None,
    *,
    order: AlarmOrder = "recent",
    cursor: str | None = None,
    limit: int = 100,
) -> AlarmPage:
    """One page of alarms. order='recent': last_at newest first; 'worst': severity then last_at.

    Keyset pagination: pass `next_cursor` back as `cursor` for the next page.
    """
    limit = max(1, min(limit, LIST_LIMIT_MAX))
    where, params = _filter_clauses(filters or AlarmFilter())

    rank = sql.SQL(_SEVERITY_RANK_SQL)
    order_by: sql.Composable
    if order == "worst":
        order_by = sql.SQL("{rank}, a.last_at DESC, a.id DESC").format(rank=rank)
    else:
        order_by = sql.SQL("a.last_at DESC, a.id DESC")
    if cursor is not None:
        key = _decode_cursor(cursor, order)
        if order == "worst":
            where.append(
                sql.SQL("({rank} > %s OR ({rank} = %s AND (a.last_at, a.id) < (%s, %s)))").format(rank=rank)
            )
            params.extend([key[0], key[0], key[1], key[2]])
        else:
            where.append(sql.SQL("(a.last_at, a.id) < (%s, %s)"))
            params.extend([key[0], key[1]])

    query = sql.SQL(
        "SELECT {cols}, {rank} AS severity_rank FROM alarms a {joins} {where} ORDER BY {order} LIMIT %s"
    ).format(
        cols=sql.SQL(_ALARM_COLUMNS),
        rank=rank,
        joins=sql.SQL(_ALARM_JOINS),
        where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        order=order_by,
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, [*params, limit + 1])
        rows = cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = _encode_cursor(order, last["severity_rank"], last["last_at"], last["id"])
    return AlarmPage([_alarm(r) for r in rows], next_cursor)


def _encode_cursor(order: AlarmOrder, rank: int, last_at: datetime, alarm_id: int) -> str:
    text = f"{order}|{rank}|{last_at.isoformat()}|{alarm_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, order: AlarmOrder) -> tuple[Any, ...]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, rank, last_at, alarm_id = text.split("|")
        at = datetime.fromisoformat(last_at)
        if kind != order or at.tzinfo is None:
            raise ValueError(kind)
        if order == "worst":
            return (int(rank), at, int(alarm_id))
        return (at, int(alarm_id))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("invalid or foreign pagination cursor") from exc


def latest_transition_id(conn: psycopg.Connection[Any]) -> int:
    """The newest alarm transition id (0 when there is none): where a new live stream starts."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM alarm_transitions").fetchone()
    return int(row[0]) if row else 0
