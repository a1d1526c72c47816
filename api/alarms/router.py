"""Alarms: filtered, paged lists; one alarm with its full history; acknowledge, comment, clear."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from api.alarms.schemas import (
    AckRequest,
    ActionResult,
    AlarmDetail,
    AlarmOut,
    BatchAckRequest,
    BatchAckResult,
    CommentRequest,
    DispatchRequest,
    ReasonRequest,
    ResolveRequest,
    TransitionOut,
)
from api.deps import Conn, Operator, Principal, Reader
from api.errors import ERROR_RESPONSES, invalid, not_found
from api.pagination import Cursor, Limit, Page
from api.params import Time
from devices.alarms import AlarmType, Severity
from devices.contract import Family
from storage import alarms, users
from storage.alarms import Alarm, AlarmChange

router = APIRouter(tags=["alarms"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

AlarmId = Annotated[int, Path(ge=1, le=2**62, description="Alarm id")]
DbId = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
BigId = Annotated[int | None, Query(ge=1, le=2**62)]


def _visible(conn: Conn, principal: Principal, alarm_id: int) -> Alarm:
    alarm = alarms.get(conn, alarm_id)
    if alarm is None or not principal.sees(alarm.community_id):
        raise not_found("alarm", alarm_id)
    return alarm


@router.get("/alarms", summary="List alarms with filters, newest (or worst) first")
def list_alarms(
    *,
    principal: Reader,
    conn: Conn,
    community_id: BigId = None,
    building_id: BigId = None,
    device_id: DbId = None,
    family: Family | None = None,
    type: Annotated[list[AlarmType] | None, Query(description="One or more alarm types")] = None,
    severity: Annotated[list[Severity] | None, Query(description="One or more severities")] = None,
    status: Literal["active", "cleared"] | None = None,
    acknowledged: bool | None = None,
    board: Annotated[
        bool,
        Query(description="The duty board: active alarms plus cleared ones not yet acknowledged"),
    ] = False,
    since: Annotated[Time | None, Query(description="Alarms still occurring at or after this time")] = None,
    until: Annotated[Time | None, Query(description="Alarms that began before this time")] = None,
    order: Annotated[Literal["recent", "worst"], Query(description="worst: critical first")] = "recent",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[AlarmOut]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise invalid(f"query.{name}", "needs a timezone offset, e.g. 2026-11-20T08:00:00+08:00")
    filters = alarms.AlarmFilter(
        community_ids=principal.scope_for(community_id),
        building_id=building_id,
        device_id=device_id,
        family=family.value if family else None,
        types=[t.value for t in type] if type else None,
        severities=[s.value for s in severity] if severity else None,
        status=status,
        acknowledged=acknowledged,
        on_board=board,
        since=since,
        until=until,
    )
    try:
        page = alarms.list_alarms(conn, filters, order=order, cursor=cursor, limit=limit)
    except alarms.InvalidCursor:
        raise invalid("query.cursor", "not a cursor returned by this API for this order") from None
    return Page[AlarmOut](items=[AlarmOut.of(a) for a in page.items], next_cursor=page.next_cursor)


@router.get("/alarms/{alarm_id}", summary="One alarm with its full transition history")
def get_alarm(alarm_id: AlarmId, principal: Reader, conn: Conn) -> AlarmDetail:
    alarm = _visible(conn, principal, alarm_id)
    return AlarmDetail(**AlarmOut.of(alarm).model_dump(), history=_history(conn, alarm_id))


def _history(conn: Conn, alarm_id: int) -> list[TransitionOut]:
    """The transitions with the people's display names (the console shows names, not user ids)."""
    rows = alarms.history(conn, alarm_id)
    names = users.display_names(
        conn, [t.actor.removeprefix("user:") for t in rows if t.actor.startswith("user:")]
    )
    return [TransitionOut.of(t, names) for t in rows]


@router.get("/alarms/{alarm_id}/history", summary="The transitions of an alarm, oldest first")
def alarm_history(alarm_id: AlarmId, principal: Reader, conn: Conn) -> list[TransitionOut]:
    _visible(conn, principal, alarm_id)
    return _history(conn, alarm_id)


def _result(
    conn: Conn, principal: Principal, alarm: Alarm, change: AlarmChange | None, action: str
) -> ActionResult:
    if change is None:
        current = alarms.get(conn, alarm.id) or alarm
        return ActionResult(changed=False, alarm=AlarmOut.of(current), transition=None)
    users.audit(
        conn,
        actor=principal.actor,
        action=f"alarm.{action}",
        target_type="alarm",
        target_id=str(alarm.id),
        community_id=alarm.community_id,
        details={"transition_id": change.transition.id, "comment": change.transition.comment},
    )
    return ActionResult(
        changed=True, alarm=AlarmOut.of(change.alarm), transition=TransitionOut.of(change.transition)
    )


@router.post("/alarms/{alarm_id}/acknowledge", summary="Acknowledge an alarm (operator, manager, admin)")
def acknowledge(alarm_id: AlarmId, body: AckRequest, principal: Operator, conn: Conn) -> ActionResult:
    alarm = _visible(conn, principal, alarm_id)
    change = alarms.acknowledge(conn, alarm_id, actor=principal.actor, comment=body.comment)
    return _result(conn, principal, alarm, change, "acknowledge")


@router.post("/alarms/batch-acknowledge", summary="Acknowledge several alarms with one comment (all or none)")
def batch_acknowledge(body: BatchAckRequest, principal: Operator, conn: Conn) -> BatchAckResult:
    for alarm_id in body.ids:  # every id must be visible before anything is written
        _visible(conn, principal, alarm_id)
    changes = alarms.acknowledge_many(conn, body.ids, actor=principal.actor, comment=body.comment)
    for change in changes:
        _result(conn, principal, change.alarm, change, "acknowledge")
    done = [c.alarm.id for c in changes]
    return BatchAckResult(acknowledged=done, unchanged=[i for i in dict.fromkeys(body.ids) if i not in done])


@router.post("/alarms/{alarm_id}/comment", summary="Add a comment to an alarm's history")
def add_comment(alarm_id: AlarmId, body: CommentRequest, principal: Operator, conn: Conn) -> ActionResult:
    alarm = _visible(conn, principal, alarm_id)
    if not body.text.strip():
        raise invalid("body.text", "a comment needs some text")
    change = alarms.comment(conn, alarm_id, actor=principal.actor, text=body.text)
    return _result(conn, principal, alarm, change, "comment")


@router.post("/alarms/{alarm_id}/clear", summary="Clear an active alarm; a reason is required")
def clear(alarm_id: AlarmId, body: ReasonRequest, principal: Operator, conn: Conn) -> ActionResult:
    alarm = _visible(conn, principal, alarm_id)
    change = alarms.clear(conn, alarm_id, actor=principal.actor, comment=body.comment)
    return _result(conn, principal, alarm, change, "clear")


# Handling workflow (处置流程): acknowledge → dispatch → on site → result → close. Out of order: 409.


@router.post("/alarms/{alarm_id}/dispatch", summary="Dispatch someone to an acknowledged alarm")
def dispatch(alarm_id: AlarmId, body: DispatchRequest, principal: Operator, conn: Conn) -> ActionResult:
    alarm = _visible(conn, principal, alarm_id)
    change = alarms.handle(
        conn, alarm_id, "dispatched", actor=principal.actor, comment=body.comment, dispatched_to=body.to
    )
    return _result(conn, principal, alarm, change, "dispatch")


@router.post("/alarms/{alarm_id}/on-site", summary="The dispatched person is on site")
def on_site(alarm_id: AlarmId, body: AckRequest, principal: Operator, conn: Conn) -> ActionResult:
    alarm = _visible(conn, principal, alarm_id)
    change = alarms.handle(conn, alarm_id, "on_site", actor=principal.actor, comment=body.comment)
    return _result(conn, principal, alarm, change, "on_site")


@router.post("/alarms/{alarm_id}/resolve", summary="Record the result: real, false alarm, test, device fault")
def resolve(alarm_id: AlarmId, body: ResolveRequest, principal: Operator, conn: Conn) -> ActionResult:
    alarm = _visible(conn, principal, alarm_id)
    change = alarms.handle(
        conn, alarm_id, "resolved", actor=principal.actor, comment=body.comment, result=body.result
    )
    return _result(conn, principal, alarm, change, "resolve")


@router.post("/alarms/{alarm_id}/close", summary="Close a resolved alarm with a reason (clears it if active)")
def close(alarm_id: AlarmId, body: ReasonRequest, principal: Operator, conn: Conn) -> ActionResult:
    alarm = _visible(conn, principal, alarm_id)
    change = alarms.handle(conn, alarm_id, "closed", actor=principal.actor, comment=body.comment)
    return _result(conn, principal, alarm, change, "close")
