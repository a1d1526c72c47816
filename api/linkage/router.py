"""Emergency linkage: people with on-duty schedules and the roster, endpoints, chains, policies,
incidents with their timeline, acknowledgement, and drills (test-fire a chain without an alarm).

Every object belongs to a community; objects outside the caller's communities answer 404."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, status

from alerts.escalation import core
from alerts.escalation.worker import start_drill
from api.deps import Conn, Editor, Operator, Principal, Reader
from api.errors import ERROR_RESPONSES, invalid, not_found
from api.linkage.schemas import (
    AckIn,
    AckOut,
    ChainIn,
    ChainOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    IncidentDetail,
    IncidentOut,
    PersonCreate,
    PersonOut,
    PersonUpdate,
    PolicyCreate,
    PolicyOut,
    Shift,
    TimelineEntry,
)
from api.pagination import Cursor, Limit, Page, decode_int_cursor, encode_cursor
from storage import escalation as store
from storage import users

router = APIRouter(prefix="/linkage", tags=["linkage"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

Id = Annotated[int, Path(ge=1, le=2**62)]
CommunityQuery = Annotated[int | None, Query(ge=1, le=2**62)]


def _check_community(conn: Conn, principal: Principal, community_id: int) -> None:
    if not principal.sees(community_id) or not store.community_exists(conn, community_id):
        raise not_found("community", community_id)


def _person_out(p: store.PersonRow, on_duty: bool | None = None) -> PersonOut:
    return PersonOut(
        id=p.id,
        community_id=p.community_id,
        name=p.name,
        phone=p.phone,
        duty_group=p.duty_group,
        enabled=p.enabled,
        shifts=[
            Shift(weekdays=s["weekdays"], start_min=s["start_min"], end_min=s["end_min"]) for s in p.shifts
        ],
        on_duty=on_duty,
    )


def _visible_person(conn: Conn, principal: Principal, person_id: int) -> store.PersonRow:
    p = store.get_person(conn, person_id)
    if p is None or not principal.sees(p.community_id):
        raise not_found("person", person_id)
    return p


def _audit(
    conn: Conn,
    principal: Principal,
    action: str,
    target_type: str,
    *,
    ident: int,
    community_id: int,
    **kw: Any,
) -> None:
    users.audit(
        conn,
        actor=principal.actor,
        action=f"linkage.{action}",
        target_type=target_type,
        target_id=str(ident),
        community_id=community_id,
        details=kw,
    )


# ---------------------------------------------------------------- people, schedules, roster


@router.get("/people", summary="People who can be notified, with their shifts")
def list_people(principal: Reader, conn: Conn, community_id: CommunityQuery = None) -> list[PersonOut]:
    return [_person_out(p) for p in store.list_people(conn, principal.scope_for(community_id))]


@router.post("/people", status_code=status.HTTP_201_CREATED, summary="Add a person")
def create_person(body: PersonCreate, principal: Editor, conn: Conn) -> PersonOut:
    _check_community(conn, principal, body.community_id)
    p = store.create_person(
        conn, community_id=body.community_id, name=body.name, phone=body.phone, duty_group=body.duty_group
    )
    if body.shifts:
        store.set_schedule(conn, p.id, [(s.weekdays, s.start_min, s.end_min) for s in body.shifts])
    _audit(
        conn,
        principal,
        "person.create",
        "linkage_person",
        ident=p.id,
        community_id=p.community_id,
        name=p.name,
    )
    person = store.get_person(conn, p.id)
    assert person is not None
    return _person_out(person)


@router.patch("/people/{person_id}", summary="Change a person")
def update_person(person_id: Id, body: PersonUpdate, principal: Editor, conn: Conn) -> PersonOut:
    p = _visible_person(conn, principal, person_id)
    updated = store.update_person(
        conn, p.id, name=body.name, phone=body.phone, duty_group=body.duty_group, enabled=body.enabled
    )
    _audit(
        conn,
        principal,
        "person.update",
        "linkage_person",
        ident=p.id,
        community_id=p.community_id,
        **body.model_dump(exclude_none=True),
    )
    return _person_out(updated)


@router.put("/people/{person_id}/schedule", summary="Replace a person's weekly on-duty shifts")
def set_schedule(person_id: Id, body: list[Shift], principal: Editor, conn: Conn) -> PersonOut:
    if len(body) > 50:
        raise invalid("body", "at most 50 shifts")
    p = _visible_person(conn, principal, person_id)
    store.set_schedule(conn, p.id, [(s.weekdays, s.start_min, s.end_min) for s in body])
    _audit(
        conn,
        principal,
        "schedule.set",
        "linkage_person",
        ident=p.id,
        community_id=p.community_id,
        shifts=len(body),
    )
    person = store.get_person(conn, p.id)
    assert person is not None
    return _person_out(person)


@router.delete("/people/{person_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a person")
def delete_person(person_id: Id, principal: Editor, conn: Conn) -> None:
    p = _visible_person(conn, principal, person_id)
    store.delete_person(conn, p.id)
    _audit(conn, principal, "person.delete", "linkage_person", ident=p.id, community_id=p.community_id)


@router.get("/roster", summary="On-duty roster now: every person and whether on duty")
def roster(principal: Reader, conn: Conn, community_id: CommunityQuery = None) -> list[PersonOut]:
    now = datetime.now(UTC)
    out: list[PersonOut] = []
    zones: dict[int, str] = {}
    for p in store.list_people(conn, principal.scope_for(community_id)):
        if p.community_id not in zones:
            zones[p.community_id] = store.community_timezone(conn, p.community_id)[1]
        try:
            local = now.astimezone(ZoneInfo(zones[p.community_id]))
        except (KeyError, ValueError):
            local = now.astimezone(ZoneInfo("Asia/Shanghai"))
        shifts = [core.Shift(frozenset(s["weekdays"]), s["start_min"], s["end_min"]) for s in p.shifts]
        on = p.enabled and core.on_duty(shifts, local.isoweekday(), local.hour * 60 + local.minute)
        out.append(_person_out(p, on))
    return out


# ---------------------------------------------------------------- endpoints


def _endpoint_out(e: store.EndpointRow) -> EndpointOut:
    return EndpointOut(
        id=e.id,
        community_id=e.community_id,
        name=e.name,
        kind=e.kind,
        config=e.config,
        enabled=e.enabled,
        has_secret=bool(e.secret),
    )


@router.get("/endpoints", summary="External endpoints (webhooks, fire remote-monitoring centres)")
def list_endpoints(principal: Reader, conn: Conn, community_id: CommunityQuery = None) -> list[EndpointOut]:
    return [_endpoint_out(e) for e in store.list_endpoints(conn, principal.scope_for(community_id))]


@router.post("/endpoints", status_code=status.HTTP_201_CREATED, summary="Add an external endpoint")
def create_endpoint(body: EndpointCreate, principal: Editor, conn: Conn) -> EndpointOut:
    _check_community(conn, principal, body.community_id)
    config: dict[str, Any]
    if body.kind == "webhook":
        if not body.url.startswith(("http://", "https://")):
            raise invalid("body.url", "a webhook needs an http(s) URL")
        config = {"url": body.url}
    else:
        host, _, port = body.url.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise invalid("body.url", "a GB/T 26875.3 centre needs host:port")
        config = {
            "address": body.url,
            "source": body.source or "000000000001",
            "destination": body.destination or "000000000000",
        }
    e = store.create_endpoint(
        conn,
        community_id=body.community_id,
        name=body.name,
        kind=body.kind,
        config=config,
        secret=body.secret,
    )
    _audit(
        conn,
        principal,
        "endpoint.create",
        "linkage_endpoint",
        ident=e.id,
        community_id=e.community_id,
        kind=e.kind,
    )
    return _endpoint_out(e)


# ---------------------------------------------------------------- chains and policies


def _checked_chain(conn: Conn, community_id: int, definition: dict[str, Any]) -> core.Chain:
    try:
        chain = core.Chain.from_json(definition)
    except core.ChainError as exc:
        raise invalid("body.definition", str(exc)) from None
    people = {p.id for p in store.list_people(conn, [community_id])}
    endpoints = {e.id for e in store.list_endpoints(conn, [community_id])}
    for i, step in enumerate(chain.steps):
        for t in step.targets:
            if t.kind == "person" and t.ref not in people:
                raise invalid("body.definition", f"step {i}: person {t.ref} is not in this community")
            if t.kind == "endpoint" and t.ref not in endpoints:
                raise invalid("body.definition", f"step {i}: endpoint {t.ref} is not in this community")
    return chain


def _chain_out(c: store.ChainRow) -> ChainOut:
    return ChainOut(
        id=c.id,
        community_id=c.community_id,
        name=c.name,
        definition=c.definition,
        version=c.version,
        updated_at=c.updated_at,
    )


@router.get("/chains", summary="Escalation chains")
def list_chains(principal: Reader, conn: Conn, community_id: CommunityQuery = None) -> list[ChainOut]:
    return [_chain_out(c) for c in store.list_chains(conn, principal.scope_for(community_id))]


@router.post("/chains", status_code=status.HTTP_201_CREATED, summary="Create an escalation chain")
def create_chain(body: ChainIn, principal: Editor, conn: Conn) -> ChainOut:
    _check_community(conn, principal, body.community_id)
    chain = _checked_chain(conn, body.community_id, body.definition)
    row = store.save_chain(conn, community_id=body.community_id, name=body.name, definition=chain.to_json())
    _audit(
        conn,
        principal,
        "chain.create",
        "linkage_chain",
        ident=row.id,
        community_id=row.community_id,
        name=row.name,
    )
    return _chain_out(row)


@router.put(
    "/chains/{chain_id}", summary="Replace a chain (running incidents keep the chain they started with)"
)
def update_chain(chain_id: Id, body: ChainIn, principal: Editor, conn: Conn) -> ChainOut:
    row = store.get_chain(conn, chain_id)
    if row is None or not principal.sees(row.community_id):
        raise not_found("chain", chain_id)
    if body.community_id != row.community_id:
        raise invalid("body.community_id", "a chain cannot move to another community")
    chain = _checked_chain(conn, row.community_id, body.definition)
    saved = store.save_chain(
        conn, community_id=row.community_id, name=body.name, definition=chain.to_json(), chain_id=row.id
    )
    _audit(
        conn,
        principal,
        "chain.update",
        "linkage_chain",
        ident=row.id,
        community_id=row.community_id,
        version=saved.version,
    )
    return _chain_out(saved)


@router.post(
    "/chains/{chain_id}/drill",
    status_code=status.HTTP_201_CREATED,
    summary="Test-fire a chain (a drill: marked as such in every notification)",
)
def drill(chain_id: Id, principal: Operator, conn: Conn) -> IncidentOut:
    row = store.get_chain(conn, chain_id)
    if row is None or not principal.sees(row.community_id):
        raise not_found("chain", chain_id)
    inc = start_drill(
        conn, community_id=row.community_id, chain_id=row.id, actor=principal.actor, now=datetime.now(UTC)
    )
    store.wake_workers(conn)  # the worker starts the drill's first step at once (NOTIFY on commit)
    _audit(
        conn,
        principal,
        "drill.start",
        "linkage_incident",
        ident=inc.id,
        community_id=row.community_id,
        chain_id=row.id,
    )
    return _incident_out(inc)


def _policy_out(p: store.PolicyRow) -> PolicyOut:
    return PolicyOut(
        id=p.id,
        community_id=p.community_id,
        name=p.name,
        chain_id=p.chain_id,
        alarm_types=p.alarm_types,
        severities=p.severities,
        quiet_start_min=p.quiet_start_min,
        quiet_end_min=p.quiet_end_min,
        priority=p.priority,
        enabled=p.enabled,
    )


@router.get("/policies", summary="Policies: which alarms start which chain")
def list_policies(principal: Reader, conn: Conn, community_id: CommunityQuery = None) -> list[PolicyOut]:
    return [_policy_out(p) for p in store.list_policies(conn, principal.scope_for(community_id))]


@router.post("/policies", status_code=status.HTTP_201_CREATED, summary="Create a policy")
def create_policy(body: PolicyCreate, principal: Editor, conn: Conn) -> PolicyOut:
    _check_community(conn, principal, body.community_id)
    if (body.quiet_start_min is None) != (body.quiet_end_min is None):
        raise invalid("body.quiet_end_min", "quiet hours need both a start and an end")
    chain = store.get_chain(conn, body.chain_id)
    if chain is None or chain.community_id != body.community_id:
        raise invalid("body.chain_id", "not a chain of this community")
    p = store.create_policy(
        conn,
        community_id=body.community_id,
        name=body.name,
        chain_id=body.chain_id,
        alarm_types=body.alarm_types,
        severities=body.severities,
        quiet_start_min=body.quiet_start_min,
        quiet_end_min=body.quiet_end_min,
        priority=body.priority,
    )
    _audit(
        conn,
        principal,
        "policy.create",
        "linkage_policy",
        ident=p.id,
        community_id=p.community_id,
        chain_id=p.chain_id,
    )
    return _policy_out(p)


@router.delete("/policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a policy")
def delete_policy(policy_id: Id, principal: Editor, conn: Conn) -> None:
    found = [p for p in store.list_policies(conn, None) if p.id == policy_id]
    if not found or not principal.sees(found[0].community_id):
        raise not_found("policy", policy_id)
    store.delete_policy(conn, policy_id)
    _audit(
        conn,
        principal,
        "policy.delete",
        "linkage_policy",
        ident=policy_id,
        community_id=found[0].community_id,
    )


# ---------------------------------------------------------------- incidents


def _incident_out(i: store.IncidentRow) -> IncidentOut:
    return IncidentOut(
        id=i.id,
        community_id=i.community_id,
        alarm_id=i.alarm_id,
        drill=i.drill,
        alarm_type=i.alarm_type,
        severity=i.severity,
        summary=i.summary,
        state=i.state,
        group_key=i.group_key,
        chain_id=i.chain_id,
        loop=i.loop,
        next_step=i.next_step,
        next_step_at=i.next_step_at,
        started_at=i.started_at,
        first_attempt_at=i.first_attempt_at,
        ended_at=i.ended_at,
        ended_by=i.ended_by,
    )


def _visible_incident(conn: Conn, principal: Principal, incident_id: int) -> store.IncidentRow:
    inc = store.get_incident(conn, incident_id)
    if inc is None or not principal.sees(inc.community_id):
        raise not_found("incident", incident_id)
    return inc


@router.get("/incidents", summary="Incidents, newest first")
def list_incidents(  # noqa: PLR0917 - FastAPI query parameters
    principal: Reader,
    conn: Conn,
    community_id: CommunityQuery = None,
    state: Literal["open", "acknowledged", "cleared", "exhausted", "cancelled"] | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[IncidentOut]:
    before = decode_int_cursor(cursor)
    rows = store.list_incidents(
        conn, principal.scope_for(community_id), state=state, limit=limit + 1, before_id=before
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[IncidentOut](
        items=[_incident_out(r) for r in rows],
        next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
    )


@router.get(
    "/incidents/{incident_id}", summary="An incident: who was notified, when, how, the outcome, next step"
)
def get_incident(incident_id: Id, principal: Reader, conn: Conn) -> IncidentDetail:
    return incident_detail(conn, _visible_incident(conn, principal, incident_id))


def incident_detail(conn: Conn, inc: store.IncidentRow) -> IncidentDetail:
    """An incident with its deliveries and timeline (also the alarm detail's escalation section)."""
    deliveries = [
        DeliveryOut(
            id=r.id,
            loop=r.loop,
            step=r.step,
            target=r.target,
            target_name=r.target_name,
            channel=r.channel,
            address=r.address,
            status=r.status,
            attempts=r.attempts,
            next_at=r.next_at,
            claimed_at=r.claimed_at,
            finished_at=r.finished_at,
            outcome=r.outcome,
            idempotency_key=r.idem_key,
        )
        for r in store.outbox_of(conn, inc.id)
    ]
    timeline = [
        TimelineEntry(id=a.id, at=a.at, kind=a.kind, actor=a.actor, detail=a.detail)
        for a in store.audit_of(conn, inc.id)
    ]
    return IncidentDetail(
        **_incident_out(inc).model_dump(), chain=inc.chain, deliveries=deliveries, timeline=timeline
    )


@router.post(
    "/incidents/{incident_id}/ack", summary="Acknowledge an incident: every pending step stops at once"
)
def ack_incident(incident_id: Id, body: AckIn, principal: Operator, conn: Conn) -> AckOut:
    inc = _visible_incident(conn, principal, incident_id)
    done = store.acknowledge_incident(conn, inc.id, actor=principal.actor, via=body.via, comment=body.comment)
    if done:
        _audit(
            conn,
            principal,
            "incident.ack",
            "linkage_incident",
            ident=inc.id,
            community_id=inc.community_id,
            via=body.via,
        )
    after = store.get_incident(conn, inc.id)
    assert after is not None
    return AckOut(incident_id=inc.id, acknowledged=done, state=after.state)
