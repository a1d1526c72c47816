"""Emergency linkage storage (domain.md §6, issue 11): people, schedules, endpoints, chains, policies,
incidents, the delivery outbox and the audit trail, on the tables of 0014_linkage.sql.

Invariants and what enforces them:
- One incident per alarm, ever (`linkage_incidents_one_per_alarm`); one open incident per linked
  group (`linkage_incidents_open_group`): `start_incident` is `INSERT … ON CONFLICT DO NOTHING`.
- The chain is frozen into the incident (`linkage_incidents.chain` is copied at start; editing the
  chain bumps its version and never touches running incidents).
- Each delivery exists once: `linkage_outbox.idem_key` (incident:loop:step:target:channel) is unique
  and `enqueue` is `ON CONFLICT DO NOTHING`; the key is also sent to the provider.
- A row is sent only while its incident is open and its alarm unacknowledged and active: `claim`
  takes due rows `FOR UPDATE SKIP LOCKED` and, in the same transaction, locks and re-reads their
  incident (`FOR UPDATE SKIP LOCKED`) and alarm (`FOR SHARE SKIP LOCKED`): an acknowledgement that
  commits meanwhile either waits for the claim to commit or is seen by it, and a row whose incident
  or alarm is held by another writer waits for the next round. Rows of a stopped incident are
  cancelled there and then.
- An acknowledgement or clear stops everything at once: `end_incident` sets the state and cancels
  every pending row in one transaction; rows already being sent finish, and nothing new is claimed.
- A worker records an outcome only for a row it still holds (`claimed_by` fencing): a row taken
  over after its lease expired cannot be overwritten by the worker that lost it.
- Crash between "provider accepted" and "recorded": `recover_stale` returns rows left in 'sending'
  past their lease to 'pending' for channels whose provider de-duplicates by the idempotency key
  (webhook, SMS/voice gateway, GB/T 26875.3 centre), and marks in-process SIP calls 'interrupted'
  (the call died with the process; the next step or loop calls again, under a new key).
- Per-number rate limits: `claim` serialises on the address (transaction advisory lock) and counts
  the attempts already started in each window before taking another.
- Every attempt, outcome, retry, rate limit, DTMF, acknowledgement and stop is a row in
  `linkage_audit`, written in the transaction that made the change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, LiteralString

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from storage import alarms as alarm_store
from yiju.errors import InputError, StorageError

CURSOR_NAME = "escalation"
WAKE_CHANNEL = "yiju_linkage"  # NOTIFY: something for the escalation worker (a drill, an ack)
OPEN = "open"
ENDED_STATES = ("acknowledged", "cleared", "exhausted", "cancelled")
# providers that de-duplicate a resend carrying the same idempotency key
RESENDABLE_CHANNELS = ("webhook", "sms", "voice", "gbt26875")
FINAL_STATUSES = (
    "delivered",
    "answered",
    "acknowledged",
    "busy",
    "no_answer",
    "failed",
    "interrupted",
    "cancelled",
)


class LinkageNotFound(StorageError):
    """No such person, chain, policy, endpoint or incident (in the caller's communities)."""


def _rows(conn: psycopg.Connection[Any], query: LiteralString, params: Any = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _row(conn: psycopg.Connection[Any], query: LiteralString, params: Any = ()) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def wake_workers(conn: psycopg.Connection[Any]) -> None:
    """Wake escalation workers when this transaction commits (they LISTEN on WAKE_CHANNEL)."""
    conn.execute("SELECT pg_notify(%s, '')", (WAKE_CHANNEL,))


def audit(
    conn: psycopg.Connection[Any],
    incident_id: int,
    kind: str,
    detail: dict[str, Any] | None = None,
    *,
    outbox_id: int | None = None,
    actor: str = "linkage",
) -> None:
    conn.execute(
        "INSERT INTO linkage_audit (incident_id, outbox_id, kind, actor, detail) VALUES (%s, %s, %s, %s, %s)",
        (incident_id, outbox_id, kind, actor, Jsonb(detail or {})),
    )


# ---------------------------------------------------------------------------------------------
# Configuration: people, schedules, endpoints, chains, policies


@dataclass(frozen=True, slots=True)
class PersonRow:
    id: int
    community_id: int
    name: str
    phone: str
    duty_group: str
    enabled: bool
    shifts: list[dict[str, Any]]


_PEOPLE = """
    SELECT p.id, p.community_id, p.name, p.phone, p.duty_group, p.enabled,
           COALESCE(jsonb_agg(jsonb_build_object('id', s.id, 'weekdays', s.weekdays,
                    'start_min', s.start_min, 'end_min', s.end_min) ORDER BY s.id)
                    FILTER (WHERE s.id IS NOT NULL), '[]'::jsonb) AS shifts
    FROM linkage_people p LEFT JOIN linkage_schedules s ON s.person_id = p.id
"""


def _person(r: dict[str, Any]) -> PersonRow:
    return PersonRow(**{f.name: r[f.name] for f in fields(PersonRow)})


def create_person(
    conn: psycopg.Connection[Any], *, community_id: int, name: str, phone: str, duty_group: str = "manager"
) -> PersonRow:
    try:
        with conn.transaction():
            row = _row(
                conn,
                "INSERT INTO linkage_people (community_id, name, phone, duty_group) VALUES (%s, %s, %s, %s) "
                "RETURNING id",
                (community_id, name, phone, duty_group),
            )
    except psycopg.errors.CheckViolation as exc:
        raise InputError(f"invalid person: {exc.diag.constraint_name}") from None
    assert row is not None
    person = get_person(conn, row["id"])
    assert person is not None
    return person


def get_person(conn: psycopg.Connection[Any], person_id: int) -> PersonRow | None:
    row = _row(conn, _PEOPLE + " WHERE p.id = %s GROUP BY p.id", (person_id,))
    return None if row is None else _person(row)


def list_people(conn: psycopg.Connection[Any], community_ids: Sequence[int] | None) -> list[PersonRow]:
    if community_ids is None:
        rows = _rows(conn, _PEOPLE + " GROUP BY p.id ORDER BY p.id")
    else:
        rows = _rows(
            conn,
            _PEOPLE + " WHERE p.community_id = ANY(%s) GROUP BY p.id ORDER BY p.id",
            (list(community_ids),),
        )
    return [_person(r) for r in rows]


def update_person(
    conn: psycopg.Connection[Any],
    person_id: int,
    *,
    name: str | None = None,
    phone: str | None = None,
    duty_group: str | None = None,
    enabled: bool | None = None,
) -> PersonRow:
    try:
        with conn.transaction():
            conn.execute(
                "UPDATE linkage_people SET name = COALESCE(%s, name), phone = COALESCE(%s, phone), "
                "duty_group = COALESCE(%s, duty_group), enabled = COALESCE(%s, enabled) WHERE id = %s",
                (name, phone, duty_group, enabled, person_id),
            )
    except psycopg.errors.CheckViolation as exc:
        raise InputError(f"invalid person: {exc.diag.constraint_name}") from None
    person = get_person(conn, person_id)
    if person is None:
        raise LinkageNotFound(f"no person {person_id}")
    return person


def delete_person(conn: psycopg.Connection[Any], person_id: int) -> None:
    conn.execute("DELETE FROM linkage_people WHERE id = %s", (person_id,))


def set_schedule(
    conn: psycopg.Connection[Any], person_id: int, shifts: Sequence[tuple[list[int], int, int]]
) -> None:
    """Replace a person's weekly shifts: (ISO weekdays, start minute, end minute)."""
    try:
        with conn.transaction():
            conn.execute("DELETE FROM linkage_schedules WHERE person_id = %s", (person_id,))
            for weekdays, start_min, end_min in shifts:
                conn.execute(
                    "INSERT INTO linkage_schedules (person_id, weekdays, start_min, end_min) "
                    "VALUES (%s, %s::smallint[], %s, %s)",
                    (person_id, weekdays, start_min, end_min),
                )
    except psycopg.errors.CheckViolation as exc:
        raise InputError(f"invalid shift: {exc.diag.constraint_name}") from None


@dataclass(frozen=True, slots=True)
class EndpointRow:
    id: int
    community_id: int
    name: str
    kind: str
    config: dict[str, Any]
    secret: str
    enabled: bool


def create_endpoint(
    conn: psycopg.Connection[Any],
    *,
    community_id: int,
    name: str,
    kind: str,
    config: dict[str, Any],
    secret: str = "",
) -> EndpointRow:
    try:
        with conn.transaction():
            row = _row(
                conn,
                "INSERT INTO linkage_endpoints (community_id, name, kind, config, secret) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING *",
                (community_id, name, kind, Jsonb(config), secret),
            )
    except psycopg.errors.CheckViolation as exc:
        raise InputError(f"invalid endpoint: {exc.diag.constraint_name}") from None
    assert row is not None
    return EndpointRow(**{f.name: row[f.name] for f in fields(EndpointRow)})


def list_endpoints(conn: psycopg.Connection[Any], community_ids: Sequence[int] | None) -> list[EndpointRow]:
    rows = (
        _rows(conn, "SELECT * FROM linkage_endpoints ORDER BY id")
        if community_ids is None
        else _rows(
            conn,
            "SELECT * FROM linkage_endpoints WHERE community_id = ANY(%s) ORDER BY id",
            (list(community_ids),),
        )
    )
    return [EndpointRow(**{f.name: r[f.name] for f in fields(EndpointRow)}) for r in rows]


def get_endpoint(conn: psycopg.Connection[Any], endpoint_id: int) -> EndpointRow | None:
    r = _row(conn, "SELECT * FROM linkage_endpoints WHERE id = %s", (endpoint_id,))
    return None if r is None else EndpointRow(**{f.name: r[f.name] for f in fields(EndpointRow)})


@dataclass(frozen=True, slots=True)
class ChainRow:
    id: int
    community_id: int
    name: str
    definition: dict[str, Any]
    version: int
    updated_at: datetime


def save_chain(
    conn: psycopg.Connection[Any],
    *,
    community_id: int,
    name: str,
    definition: dict[str, Any],
    chain_id: int | None = None,
) -> ChainRow:
    """Create a chain, or replace one's definition (version + 1; running incidents keep theirs)."""
    try:
        with conn.transaction():
            if chain_id is None:
                row = _row(
                    conn,
                    "INSERT INTO linkage_chains (community_id, name, definition) "
                    "VALUES (%s, %s, %s) RETURNING *",
                    (community_id, name, Jsonb(definition)),
                )
            else:
                row = _row(
                    conn,
                    "UPDATE linkage_chains SET name = %s, definition = %s, version = version + 1, "
                    "updated_at = now() WHERE id = %s RETURNING *",
                    (name, Jsonb(definition), chain_id),
                )
    except psycopg.errors.UniqueViolation:
        raise InputError(f"a chain named {name!r} exists in this community") from None
    if row is None:
        raise LinkageNotFound(f"no chain {chain_id}")
    return ChainRow(**{f.name: row[f.name] for f in fields(ChainRow)})


def get_chain(conn: psycopg.Connection[Any], chain_id: int) -> ChainRow | None:
    r = _row(conn, "SELECT * FROM linkage_chains WHERE id = %s", (chain_id,))
    return None if r is None else ChainRow(**{f.name: r[f.name] for f in fields(ChainRow)})


def find_chain(conn: psycopg.Connection[Any], name_or_id: str) -> ChainRow | None:
    if name_or_id.isdigit():
        r = _row(conn, "SELECT * FROM linkage_chains WHERE id = %s", (int(name_or_id),))
        if r is not None:
            return ChainRow(**{f.name: r[f.name] for f in fields(ChainRow)})
    rows = _rows(conn, "SELECT * FROM linkage_chains WHERE name = %s ORDER BY id", (name_or_id,))
    if len(rows) > 1:
        raise InputError(f"{len(rows)} chains are named {name_or_id!r}; give its id")
    return ChainRow(**{f.name: rows[0][f.name] for f in fields(ChainRow)}) if rows else None


def list_chains(conn: psycopg.Connection[Any], community_ids: Sequence[int] | None) -> list[ChainRow]:
    rows = (
        _rows(conn, "SELECT * FROM linkage_chains ORDER BY id")
        if community_ids is None
        else _rows(
            conn,
            "SELECT * FROM linkage_chains WHERE community_id = ANY(%s) ORDER BY id",
            (list(community_ids),),
        )
    )
    return [ChainRow(**{f.name: r[f.name] for f in fields(ChainRow)}) for r in rows]


@dataclass(frozen=True, slots=True)
class PolicyRow:
    id: int
    community_id: int
    name: str
    alarm_types: list[str]
    severities: list[str]
    chain_id: int
    quiet_start_min: int | None
    quiet_end_min: int | None
    priority: int
    enabled: bool


def create_policy(
    conn: psycopg.Connection[Any],
    *,
    community_id: int,
    name: str,
    chain_id: int,
    alarm_types: Sequence[str] = (),
    severities: Sequence[str] = (),
    quiet_start_min: int | None = None,
    quiet_end_min: int | None = None,
    priority: int = 100,
) -> PolicyRow:
    chain = get_chain(conn, chain_id)
    if chain is None or chain.community_id != community_id:
        raise InputError(f"chain {chain_id} is not a chain of this community")
    try:
        with conn.transaction():
            r = _row(
                conn,
                "INSERT INTO linkage_policies (community_id, name, alarm_types, severities, chain_id, "
                "quiet_start_min, quiet_end_min, priority) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (
                    community_id,
                    name,
                    list(alarm_types),
                    list(severities),
                    chain_id,
                    quiet_start_min,
                    quiet_end_min,
                    priority,
                ),
            )
    except psycopg.errors.CheckViolation as exc:
        raise InputError(f"invalid policy: {exc.diag.constraint_name}") from None
    assert r is not None
    return PolicyRow(**{f.name: r[f.name] for f in fields(PolicyRow)})


def list_policies(
    conn: psycopg.Connection[Any], community_ids: Sequence[int] | None, *, enabled_only: bool = False
) -> list[PolicyRow]:
    q: LiteralString = (
        "SELECT * FROM linkage_policies WHERE (%s::bigint[] IS NULL OR community_id = ANY(%s::bigint[]))"
    )
    if enabled_only:
        q += " AND enabled"
    ids = None if community_ids is None else list(community_ids)
    rows = _rows(conn, q + " ORDER BY priority, id", (ids, ids))
    return [PolicyRow(**{f.name: r[f.name] for f in fields(PolicyRow)}) for r in rows]


def delete_policy(conn: psycopg.Connection[Any], policy_id: int) -> None:
    conn.execute("DELETE FROM linkage_policies WHERE id = %s", (policy_id,))


def community_exists(conn: psycopg.Connection[Any], community_id: int) -> bool:
    return _row(conn, "SELECT 1 AS x FROM communities WHERE id = %s", (community_id,)) is not None


def community_timezone(conn: psycopg.Connection[Any], community_id: int) -> tuple[str, str]:
    """(code, timezone) of a community."""
    r = _row(conn, "SELECT code, timezone FROM communities WHERE id = %s", (community_id,))
    if r is None:
        raise LinkageNotFound(f"no community {community_id}")
    return r["code"], r["timezone"]


# ---------------------------------------------------------------------------------------------
# The alarm feed


def read_cursor(conn: psycopg.Connection[Any]) -> int:
    """The last alarm transition handled, locked until the transaction ends (one reader at a time)."""
    r = _row(conn, "SELECT last_transition_id FROM linkage_cursor WHERE name = %s FOR UPDATE", (CURSOR_NAME,))
    if r is None:
        conn.execute(
            "INSERT INTO linkage_cursor (name, last_transition_id) "
            "SELECT %s, COALESCE(max(id), 0) FROM alarm_transitions ON CONFLICT DO NOTHING",
            (CURSOR_NAME,),
        )
        return read_cursor(conn)
    return int(r["last_transition_id"])


def save_cursor(conn: psycopg.Connection[Any], last_id: int) -> None:
    conn.execute(
        "UPDATE linkage_cursor SET last_transition_id = %s, updated_at = now() WHERE name = %s",
        (last_id, CURSOR_NAME),
    )


def alarm_transitions_after(
    conn: psycopg.Connection[Any], after_id: int, limit: int
) -> list[alarm_store.AlarmEvent]:
    return alarm_store.transitions_after(conn, after_id, limit=limit)


# ---------------------------------------------------------------------------------------------
# Incidents


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: int
    community_id: int
    alarm_id: int | None
    group_key: str | None
    drill: bool
    policy_id: int | None
    chain_id: int | None
    chain: dict[str, Any]
    alarm_type: str
    severity: str
    summary: str
    context: dict[str, Any]
    state: str
    loop: int
    next_step: int
    next_step_at: datetime | None
    alarm_at: datetime
    started_at: datetime
    first_attempt_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None


def _incident(r: dict[str, Any]) -> IncidentRow:
    return IncidentRow(**{f.name: r[f.name] for f in fields(IncidentRow)})


def start_incident(
    conn: psycopg.Connection[Any],
    *,
    community_id: int,
    alarm_id: int | None,
    group_key: str | None,
    drill: bool,
    policy_id: int | None,
    chain_id: int | None,
    chain: dict[str, Any],
    alarm_type: str,
    severity: str,
    summary: str,
    context: dict[str, Any],
    alarm_at: datetime,
    next_step_at: datetime,
    actor: str = "linkage",
) -> IncidentRow | None:
    """A new incident, or None when the alarm already has one or its group an open one."""
    with conn.transaction():
        r = _row(
            conn,
            """
            INSERT INTO linkage_incidents (community_id, alarm_id, group_key, drill, policy_id, chain_id,
                chain, alarm_type, severity, summary, context, alarm_at, next_step_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING RETURNING *
            """,
            (
                community_id,
                alarm_id,
                group_key,
                drill,
                policy_id,
                chain_id,
                Jsonb(chain),
                alarm_type,
                severity,
                summary,
                Jsonb(context),
                alarm_at,
                next_step_at,
            ),
        )
        if r is None:
            return None
        audit(
            conn,
            r["id"],
            "started",
            {"alarm_id": alarm_id, "drill": drill, "policy_id": policy_id, "chain_id": chain_id},
            actor=actor,
        )
    return _incident(r)


def open_incident_of_group(conn: psycopg.Connection[Any], group_key: str) -> IncidentRow | None:
    r = _row(
        conn,
        "SELECT * FROM linkage_incidents WHERE group_key = %s AND state = 'open' FOR UPDATE",
        (group_key,),
    )
    return None if r is None else _incident(r)


def link_alarm(conn: psycopg.Connection[Any], incident_id: int, alarm_id: int, alarm_type: str) -> bool:
    """Attach a further alarm to a linked group's incident; False if it was attached already."""
    cur = conn.execute(
        "INSERT INTO linkage_incident_alarms (incident_id, alarm_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (incident_id, alarm_id),
    )
    if cur.rowcount:
        audit(conn, incident_id, "linked", {"alarm_id": alarm_id, "alarm_type": alarm_type})
        return True
    return False


def has_incident(conn: psycopg.Connection[Any], alarm_id: int) -> bool:
    return (
        _row(
            conn,
            "SELECT 1 AS x FROM linkage_incidents WHERE alarm_id = %s "
            "UNION ALL SELECT 1 FROM linkage_incident_alarms WHERE alarm_id = %s LIMIT 1",
            (alarm_id, alarm_id),
        )
        is not None
    )


def get_incident(conn: psycopg.Connection[Any], incident_id: int) -> IncidentRow | None:
    r = _row(conn, "SELECT * FROM linkage_incidents WHERE id = %s", (incident_id,))
    return None if r is None else _incident(r)


def list_incidents(
    conn: psycopg.Connection[Any],
    community_ids: Sequence[int] | None,
    *,
    state: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[IncidentRow]:
    ids = None if community_ids is None else list(community_ids)
    rows = _rows(
        conn,
        "SELECT * FROM linkage_incidents WHERE (%s::bigint[] IS NULL OR community_id = ANY(%s::bigint[])) "
        "AND (%s::text IS NULL OR state = %s) AND (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s",
        (ids, ids, state, state, before_id, before_id, max(1, min(limit, 500))),
    )
    return [_incident(r) for r in rows]


def incident_of_alarm(conn: psycopg.Connection[Any], alarm_id: int) -> IncidentRow | None:
    """The incident an alarm started (any state)."""
    r = _row(conn, "SELECT * FROM linkage_incidents WHERE alarm_id = %s", (alarm_id,))
    return None if r is None else _incident(r)


def incidents_for_alarm(conn: psycopg.Connection[Any], alarm_id: int) -> list[IncidentRow]:
    """Every incident the alarm started or joined (a fire's linkage failures join its incident), in
    any state, oldest first: the escalation timeline of the alarm detail (issue 13 §3)."""
    rows = _rows(
        conn,
        "SELECT * FROM linkage_incidents WHERE alarm_id = %s "
        "OR id IN (SELECT incident_id FROM linkage_incident_alarms WHERE alarm_id = %s) ORDER BY id",
        (alarm_id, alarm_id),
    )
    return [_incident(r) for r in rows]


def incidents_of_alarm(conn: psycopg.Connection[Any], alarm_id: int, *, primary_only: bool) -> list[int]:
    q: LiteralString = (
        "SELECT id FROM linkage_incidents WHERE alarm_id = %s AND state = 'open'"
        if primary_only
        else "SELECT id FROM linkage_incidents WHERE alarm_id = %s AND state = 'open' "
        "UNION SELECT i.id FROM linkage_incident_alarms l JOIN linkage_incidents i ON i.id = l.incident_id "
        "WHERE l.alarm_id = %s AND i.state = 'open'"
    )
    params = (alarm_id,) if primary_only else (alarm_id, alarm_id)
    return [int(r["id"]) for r in _rows(conn, q, params)]


def end_incident(
    conn: psycopg.Connection[Any],
    incident_id: int,
    state: str,
    *,
    actor: str,
    detail: dict[str, Any] | None = None,
) -> int | None:
    """Stop an open incident: set its state and cancel every pending delivery, in one transaction.
    Returns the number of deliveries cancelled, or None if the incident was not open."""
    if state not in ENDED_STATES:
        raise InputError(f"unknown end state {state!r}")
    with conn.transaction():
        r = _row(
            conn,
            "UPDATE linkage_incidents SET state = %s, ended_at = now(), ended_by = %s, next_step_at = NULL "
            "WHERE id = %s AND state = 'open' RETURNING id",
            (state, actor, incident_id),
        )
        if r is None:
            return None
        cur = conn.execute(
            "UPDATE linkage_outbox SET status = 'cancelled', outcome = %s, finished_at = now() "
            "WHERE incident_id = %s AND status = 'pending'",
            (state, incident_id),
        )
        audit(conn, incident_id, state, {**(detail or {}), "cancelled": cur.rowcount}, actor=actor)
    return cur.rowcount


def acknowledge_incident(
    conn: psycopg.Connection[Any], incident_id: int, *, actor: str, via: str, comment: str | None = None
) -> bool:
    """Acknowledge an incident (API, console or DTMF): stop it and acknowledge its alarms. False if it
    was not open (already acknowledged or ended)."""
    with conn.transaction():
        incident = _row(conn, "SELECT * FROM linkage_incidents WHERE id = %s FOR UPDATE", (incident_id,))
        if incident is None:
            raise LinkageNotFound(f"no incident {incident_id}")
        cancelled = end_incident(conn, incident_id, "acknowledged", actor=actor, detail={"via": via})
        if cancelled is None:
            return False
        alarm_ids = [incident["alarm_id"]] if incident["alarm_id"] else []
        alarm_ids += [
            int(r["alarm_id"])
            for r in _rows(
                conn, "SELECT alarm_id FROM linkage_incident_alarms WHERE incident_id = %s", (incident_id,)
            )
        ]
        for alarm_id in alarm_ids:
            alarm_store.acknowledge(
                conn, alarm_id, actor=actor, comment=comment or f"linkage incident {incident_id} ({via})"
            )
    return True


def due_incidents(conn: psycopg.Connection[Any], now: datetime, limit: int) -> list[IncidentRow]:
    """Open incidents whose next step is due, locked (SKIP LOCKED: another worker takes the rest)."""
    rows = _rows(
        conn,
        "SELECT * FROM linkage_incidents WHERE state = 'open' AND next_step_at <= %s "
        "ORDER BY next_step_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, limit),
    )
    return [_incident(r) for r in rows]


def next_due_at(conn: psycopg.Connection[Any]) -> datetime | None:
    """The earliest time anything is due: a step or an outbox row (the worker sleeps until then)."""
    r = _row(
        conn,
        "SELECT LEAST((SELECT min(next_step_at) FROM linkage_incidents WHERE state = 'open'), "
        "(SELECT min(next_at) FROM linkage_outbox WHERE status = 'pending')) AS at",
    )
    return None if r is None else r["at"]


def set_progress(
    conn: psycopg.Connection[Any],
    incident_id: int,
    *,
    loop: int,
    next_step: int,
    next_step_at: datetime | None,
) -> None:
    conn.execute(
        "UPDATE linkage_incidents SET loop = %s, next_step = %s, next_step_at = %s WHERE id = %s",
        (loop, next_step, next_step_at, incident_id),
    )


@dataclass(frozen=True, slots=True)
class NewDelivery:
    idem_key: str
    loop: int
    step: int
    target: str
    target_name: str
    channel: str
    address: str
    next_at: datetime


def enqueue(conn: psycopg.Connection[Any], incident_id: int, rows: Sequence[NewDelivery]) -> int:
    """Insert deliveries; a key that exists already is left alone. Returns how many were new."""
    n = 0
    for d in rows:
        cur = conn.execute(
            "INSERT INTO linkage_outbox (incident_id, idem_key, loop, step, target, target_name, channel, "
            "address, next_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (idem_key) DO NOTHING",
            (
                incident_id,
                d.idem_key,
                d.loop,
                d.step,
                d.target,
                d.target_name,
                d.channel,
                d.address,
                d.next_at,
            ),
        )
        n += cur.rowcount
    return n


# ---------------------------------------------------------------------------------------------
# Claiming and recording deliveries


@dataclass(frozen=True, slots=True)
class Claimed:
    """One delivery taken by a worker, with what the adapter needs to send it."""

    id: int
    incident_id: int
    idem_key: str
    loop: int
    step: int
    target: str
    target_name: str
    channel: str
    address: str
    attempts: int
    alarm_id: int | None
    alarm_type: str
    severity: str
    summary: str
    context: dict[str, Any]
    drill: bool
    community_id: int
    alarm_at: datetime
    first_for_incident: bool  # the incident's first attempt (time-to-first-attempt metric)


@dataclass(frozen=True, slots=True)
class ClaimResult:
    claimed: list[Claimed]
    cancelled: int
    rate_limited: int


RateLimits = Mapping[str, Sequence[tuple[float, int]]]  # channel -> [(window_s, max attempts)]


def claim(  # noqa: PLR0912 - one transaction, each rule of the module docstring in order
    conn: psycopg.Connection[Any],
    *,
    worker: str,
    now: datetime,
    limit: int,
    rate_limits: RateLimits,
    rate_limited_until: Any,
) -> ClaimResult:
    """Take up to `limit` due deliveries for `worker`, in one transaction (see the module's invariants).

    `rate_limited_until(recent_epoch_s, now_epoch_s, limits) -> epoch_s | None` is the pure rule
    (alerts.escalation.core) so that the policy stays out of SQL."""
    claimed: list[Claimed] = []
    cancelled = limited = 0
    with conn.transaction():
        candidates = _rows(
            conn,
            "SELECT o.id, o.incident_id, o.channel, o.address FROM linkage_outbox o "
            "WHERE o.status = 'pending' AND o.next_at <= %s ORDER BY o.next_at, o.id LIMIT %s "
            "FOR UPDATE OF o SKIP LOCKED",
            (now, limit),
        )
        if not candidates:
            return ClaimResult([], 0, 0)
        # The re-check never waits: an incident or alarm row that another transaction holds (an
        # acknowledgement committing, a step being materialised, an outcome being recorded) is
        # skipped this round and its deliveries stay pending — so the claim cannot deadlock with
        # those writers, and it never sends on a state it could not read as settled.
        incident_ids = sorted({c["incident_id"] for c in candidates})
        incidents = {
            r["id"]: r
            for r in _rows(
                conn,
                "SELECT * FROM linkage_incidents WHERE id = ANY(%s) ORDER BY id FOR UPDATE SKIP LOCKED",
                (incident_ids,),
            )
        }
        alarm_ids = sorted({r["alarm_id"] for r in incidents.values() if r["alarm_id"] is not None})
        alarm_state = {
            r["id"]: r
            for r in _rows(
                conn,
                "SELECT id, status, acknowledged FROM alarms WHERE id = ANY(%s) ORDER BY id "
                "FOR SHARE SKIP LOCKED",
                (alarm_ids,),
            )
        }
        busy = {
            i for i, r in incidents.items() if r["alarm_id"] is not None and r["alarm_id"] not in alarm_state
        }
        busy |= set(incident_ids) - set(incidents)
        for i in busy:
            incidents.pop(i, None)
        stopped: dict[int, str] = {}
        for inc in incidents.values():
            alarm = alarm_state.get(inc["alarm_id"]) if inc["alarm_id"] is not None else None
            if inc["state"] != OPEN:
                stopped[inc["id"]] = inc["state"]
            elif alarm is not None and alarm["acknowledged"]:
                stopped[inc["id"]] = "acknowledged"
            elif alarm is not None and alarm["status"] != "active":
                stopped[inc["id"]] = "cleared"
        for incident_id, state in stopped.items():
            if incidents[incident_id]["state"] == OPEN:
                end_incident(conn, incident_id, state, actor="linkage", detail={"seen_at": "claim"})
            else:
                cur = conn.execute(
                    "UPDATE linkage_outbox SET status = 'cancelled', outcome = %s, finished_at = now() "
                    "WHERE incident_id = %s AND status = 'pending'",
                    (state, incident_id),
                )
                cancelled += cur.rowcount
        for c in candidates:
            if c["incident_id"] in busy:
                continue  # locked elsewhere: next round
            if c["incident_id"] in stopped:
                cancelled += 1
                continue
            limits = rate_limits.get(c["channel"])
            if limits and c["address"]:
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 26875))", ("rate:" + c["address"],)
                )
                window = max(w for w, _ in limits)
                recent = _rows(
                    conn,
                    "SELECT extract(epoch FROM claimed_at)::float8 AS t FROM linkage_outbox "
                    "WHERE address = %s AND claimed_at IS NOT NULL "
                    "AND claimed_at > %s - make_interval(secs => %s)",
                    (c["address"], now, window),
                )
                until = rate_limited_until([r["t"] for r in recent], now.timestamp(), limits)
                if until is not None:
                    conn.execute(
                        "UPDATE linkage_outbox SET next_at = to_timestamp(%s) WHERE id = %s", (until, c["id"])
                    )
                    audit(
                        conn,
                        c["incident_id"],
                        "rate_limited",
                        {"address": c["address"], "channel": c["channel"], "until": until},
                        outbox_id=c["id"],
                    )
                    limited += 1
                    continue
            r = _row(
                conn,
                "UPDATE linkage_outbox SET status = 'sending', claimed_at = %s, claimed_by = %s, "
                "attempts = attempts + 1 WHERE id = %s RETURNING *",
                (now, worker, c["id"]),
            )
            assert r is not None
            inc = incidents[c["incident_id"]]
            first = _row(
                conn,
                "UPDATE linkage_incidents SET first_attempt_at = %s "
                "WHERE id = %s AND first_attempt_at IS NULL "
                "RETURNING id",
                (now, inc["id"]),
            )
            audit(
                conn,
                inc["id"],
                "attempt",
                {
                    "channel": r["channel"],
                    "target": r["target"],
                    "name": r["target_name"],
                    "address": r["address"],
                    "attempt": r["attempts"],
                    "key": r["idem_key"],
                },
                outbox_id=r["id"],
            )
            claimed.append(
                Claimed(
                    id=r["id"],
                    incident_id=inc["id"],
                    idem_key=r["idem_key"],
                    loop=r["loop"],
                    step=r["step"],
                    target=r["target"],
                    target_name=r["target_name"],
                    channel=r["channel"],
                    address=r["address"],
                    attempts=r["attempts"],
                    alarm_id=inc["alarm_id"],
                    alarm_type=inc["alarm_type"],
                    severity=inc["severity"],
                    summary=inc["summary"],
                    context=inc["context"],
                    drill=inc["drill"],
                    community_id=inc["community_id"],
                    alarm_at=inc["alarm_at"],
                    first_for_incident=first is not None,
                )
            )
    return ClaimResult(claimed, cancelled, limited)


def record_outcome(
    conn: psycopg.Connection[Any],
    outbox_id: int,
    *,
    worker: str,
    status: str,
    outcome: str,
    provider_ref: str | None = None,
    detail: dict[str, Any] | None = None,
    retry_at: datetime | None = None,
) -> bool:
    """Record what the provider said. With `retry_at` the row goes back to 'pending' for another
    attempt (same key). False when this worker no longer holds the row (fenced)."""
    if retry_at is None and status not in FINAL_STATUSES:
        raise InputError(f"unknown delivery status {status!r}")
    with conn.transaction():
        r = _row(
            conn,
            "UPDATE linkage_outbox SET status = %s, outcome = %s, provider_ref = COALESCE(%s, provider_ref), "
            "detail = detail || %s, next_at = COALESCE(%s, next_at), "
            "finished_at = CASE WHEN %s::timestamptz IS NULL THEN now() END "
            "WHERE id = %s AND status = 'sending' AND claimed_by = %s RETURNING incident_id, channel, target",
            (
                "pending" if retry_at is not None else status,
                outcome,
                provider_ref,
                Jsonb(detail or {}),
                retry_at,
                retry_at,
                outbox_id,
                worker,
            ),
        )
        if r is None:
            return False
        audit(
            conn,
            r["incident_id"],
            "retry" if retry_at is not None else "outcome",
            {
                "status": status,
                "outcome": outcome,
                "channel": r["channel"],
                "target": r["target"],
                "provider_ref": provider_ref,
                **({"retry_at": retry_at.isoformat()} if retry_at else {}),
                **(detail or {}),
            },
            outbox_id=outbox_id,
        )
    return True


def exhaust_finished(conn: psycopg.Connection[Any]) -> list[int]:
    """Open incidents whose chain has run out and whose every delivery is final: 'exhausted'
    (nobody acknowledged after every loop — the console shows it as such)."""
    rows = _rows(
        conn,
        "SELECT i.id FROM linkage_incidents i WHERE i.state = 'open' AND i.next_step_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM linkage_outbox o WHERE o.incident_id = i.id "
        "AND o.status IN ('pending', 'sending')) FOR UPDATE SKIP LOCKED",
    )
    ended = []
    for r in rows:
        if (
            end_incident(conn, r["id"], "exhausted", actor="linkage", detail={"reason": "chain_exhausted"})
            is not None
        ):
            ended.append(int(r["id"]))
    return ended


def recover_stale(conn: psycopg.Connection[Any], *, lease_s: float, now: datetime) -> tuple[int, int]:
    """Deliveries left in 'sending' longer than the lease (their worker died): (resent, interrupted)."""
    with conn.transaction():
        rows = _rows(
            conn,
            "SELECT id, incident_id, channel, claimed_by FROM linkage_outbox WHERE status = 'sending' "
            "AND claimed_at < %s ORDER BY id FOR UPDATE SKIP LOCKED",
            (now - timedelta(seconds=lease_s),),
        )
        resent = interrupted = 0
        for r in rows:
            if r["channel"] in RESENDABLE_CHANNELS:
                conn.execute(
                    "UPDATE linkage_outbox SET status = 'pending', next_at = %s, claimed_by = NULL "
                    "WHERE id = %s",
                    (now, r["id"]),
                )
                audit(
                    conn,
                    r["incident_id"],
                    "retry",
                    {"reason": "lease_expired", "worker": r["claimed_by"], "same_key": True},
                    outbox_id=r["id"],
                )
                resent += 1
            else:
                conn.execute(
                    "UPDATE linkage_outbox SET status = 'interrupted', outcome = 'worker_lost', "
                    "finished_at = now() WHERE id = %s",
                    (r["id"],),
                )
                audit(
                    conn,
                    r["incident_id"],
                    "outcome",
                    {"status": "interrupted", "reason": "lease_expired", "worker": r["claimed_by"]},
                    outbox_id=r["id"],
                )
                interrupted += 1
    return resent, interrupted


# ---------------------------------------------------------------------------------------------
# Reads for the API and console


@dataclass(frozen=True, slots=True)
class Delivery(NewDelivery):
    """One delivery of an incident's outbox as people read it (the API, `yiju linkage test`): what was
    enqueued, and how it went."""

    id: int
    status: str
    attempts: int
    claimed_at: datetime | None
    provider_ref: str | None
    outcome: str | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry of an incident's trail (`linkage_audit`)."""

    id: int
    outbox_id: int | None
    at: datetime
    kind: str
    actor: str
    detail: dict[str, Any]


def outbox_of(conn: psycopg.Connection[Any], incident_id: int) -> list[Delivery]:
    with conn.cursor(row_factory=class_row(Delivery)) as cur:
        cur.execute(
            "SELECT id, idem_key, loop, step, target, target_name, channel, address, status, attempts, "
            "next_at, claimed_at, provider_ref, outcome, finished_at FROM linkage_outbox "
            "WHERE incident_id = %s ORDER BY id",
            (incident_id,),
        )
        return cur.fetchall()


def audit_of(conn: psycopg.Connection[Any], incident_id: int) -> list[AuditEntry]:
    with conn.cursor(row_factory=class_row(AuditEntry)) as cur:
        cur.execute(
            "SELECT id, outbox_id, at, kind, actor, detail FROM linkage_audit "
            "WHERE incident_id = %s ORDER BY id",
            (incident_id,),
        )
        return cur.fetchall()


def people_with_shifts(conn: psycopg.Connection[Any], community_id: int) -> list[PersonRow]:
    rows = _rows(
        conn,
        _PEOPLE + " WHERE p.community_id = %s AND p.enabled GROUP BY p.id ORDER BY p.id",
        (community_id,),
    )
    return [_person(r) for r in rows]


def enabled_endpoints(conn: psycopg.Connection[Any], community_id: int) -> list[EndpointRow]:
    rows = _rows(
        conn,
        "SELECT * FROM linkage_endpoints WHERE community_id = %s AND enabled ORDER BY id",
        (community_id,),
    )
    return [EndpointRow(**{f.name: r[f.name] for f in fields(EndpointRow)}) for r in rows]


@dataclass(frozen=True, slots=True)
class AlarmContext:
    """An alarm with where it is and whose (to start an incident)."""

    id: int
    community_id: int
    device_id: int
    type: str
    severity: str
    status: str
    acknowledged: bool
    details: dict[str, Any]
    first_at: datetime
    device_uid: str
    building_id: int | None
    location_name: str | None
    building_name: str | None
    community_code: str
    community_name: str
    timezone: str
    family: str
    location_kind: str | None
    unit: str | None
    floor: int | None
    room: str | None
    post: str | None


def alarm_context(conn: psycopg.Connection[Any], alarm_id: int) -> AlarmContext | None:
    """The alarm with its community code and timezone (to start an incident)."""
    with conn.cursor(row_factory=class_row(AlarmContext)) as cur:
        cur.execute(
            "SELECT a.id, a.community_id, a.device_id, a.type, a.severity, a.status, a.acknowledged, "
            "a.details, a.first_at, d.uid AS device_uid, l.building_id, l.name AS location_name, "
            "b.name AS building_name, c.code AS community_code, c.name AS community_name, c.timezone, "
            "d.family, l.kind AS location_kind, l.unit, l.floor, d.room, d.post "
            "FROM alarms a JOIN devices d ON d.id = a.device_id JOIN communities c ON c.id = a.community_id "
            "LEFT JOIN locations l ON l.id = d.location_id LEFT JOIN buildings b ON b.id = l.building_id "
            "WHERE a.id = %s",
            (alarm_id,),
        )
        return cur.fetchone()
