"""Alarms: filtered, paged lists; one alarm with its full history; acknowledge, comment, clear."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from alerts.config import AlertSettings
from alerts.thresholds import trigger_of
from api import fastjson
from api.alarms import export
from api.alarms.pages import AlarmPages
from api.alarms.schemas import (
    AckRequest,
    ActionResult,
    AlarmChart,
    AlarmDetail,
    AlarmOut,
    AlarmTypeOut,
    BatchAckRequest,
    BatchAckResult,
    ChartSeries,
    ChartThreshold,
    CommentRequest,
    DispatchRequest,
    HistoryOut,
    ReasonRequest,
    ResolveRequest,
    TransitionOut,
    type_en,
    type_zh,
)
from api.deps import Conn, FastReader, Operator, Principal, Reader, app_settings
from api.errors import ERROR_RESPONSES, invalid, not_found
from api.fastjson import JsonBytes
from api.linkage.router import incident_detail
from api.linkage.schemas import IncidentDetail
from api.pagination import Cursor, Limit, Page
from api.params import Time
from devices.alarms import ALARM_INFO, AlarmType, Severity
from devices.contract import Family
from devices.metrics import info as metric_info
from storage import alarm_history as history_store
from storage import alarms, escalation, readings, rule_state, users
from storage.alarms import Alarm, AlarmChange, Transition
from yiju.errors import ConfigurationError
from yiju.settings import Settings

router = APIRouter(tags=["alarms"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

AlarmId = Annotated[int, Path(ge=1, le=2**62, description="Alarm id")]
DbId = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
BigId = Annotated[int | None, Query(ge=1, le=2**62)]


def _visible(conn: Conn, principal: Principal, alarm_id: int) -> Alarm:
    alarm = alarms.get(conn, alarm_id)
    if alarm is None or not principal.sees(alarm.community_id):
        raise not_found("alarm", alarm_id)
    return alarm


@router.get(
    "/alarms", summary="List alarms with filters, newest (or worst) first", response_model=Page[AlarmOut]
)
async def list_alarms(
    *,
    request: Request,
    read: FastReader,
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
) -> JsonBytes:
    def query(principal: Principal) -> tuple[alarms.AlarmFilter, Hashable]:
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
        # the whole query, the caller's scope included: a page is served only to the same question
        key = (
            tuple(filters.community_ids) if filters.community_ids is not None else None,
            building_id,
            device_id,
            filters.family,
            tuple(filters.types or ()),
            tuple(filters.severities or ()),
            status,
            acknowledged,
            board,
            since,
            until,
            order,
            cursor,
            limit,
        )
        return filters, key

    def work(conn: Conn, principal: Principal) -> JsonBytes:
        filters, key = query(principal)
        kept = _kept(pages, key)
        if kept is not None:
            return kept
        generation, started = pages.generation(), pages.clock()
        try:
            page = alarms.list_alarms(conn, filters, order=order, cursor=cursor, limit=limit)
        except alarms.InvalidCursor:
            raise invalid("query.cursor", "not a cursor returned by this API for this order") from None
        items = fastjson.many(AlarmOut, page.items, type_zh=type_zh, type_en=type_en)
        body = fastjson.encode({"items": items, "next_cursor": page.next_cursor})
        pages.put(key, generation, body, started)
        return JsonBytes(body)

    pages: AlarmPages = request.app.state.alarm_pages
    return await read.run(work, kept=lambda principal: _kept(pages, query(principal)[1]))


def _kept(pages: AlarmPages, key: Hashable) -> JsonBytes | None:
    """The page kept for `key`, if any: served on the event loop when the caller is kept too."""
    body = pages.get(key)
    return None if body is None else JsonBytes(body)


@router.get(
    "/alarms/{alarm_id}", summary="One alarm with its full transition history", response_model=AlarmDetail
)
async def get_alarm(alarm_id: AlarmId, request: Request, read: FastReader) -> JsonBytes:
    def key(principal: Principal) -> Hashable:
        # kept per scope: a caller with the same communities gets the same answer (a 404 is not kept)
        return ("detail", alarm_id, principal.community_ids)

    def work(conn: Conn, principal: Principal) -> JsonBytes:
        kept = _kept(pages, key(principal))
        if kept is not None:
            return kept
        generation, started = pages.generation(), pages.clock()
        alarm = _visible(conn, principal, alarm_id)
        rows = alarms.history(conn, alarm_id)
        names = _transition_actor_names(conn, rows)
        history = fastjson.many(TransitionOut, rows, actor_name=lambda t: names.get(t.id))
        detail = fastjson.convert(
            AlarmDetail, alarm, type_zh=type_zh(alarm), type_en=type_en(alarm), history=history
        )
        body = fastjson.encode(detail)
        pages.put(key(principal), generation, body, started)
        return JsonBytes(body)

    pages: AlarmPages = request.app.state.alarm_pages
    return await read.run(work, kept=lambda principal: _kept(pages, key(principal)))


def _transition_actor_names(conn: Conn, rows: list[Transition]) -> dict[int, str]:
    """`actor_name` by transition id (as TransitionOut.of gives it): a user's display name, else its
    user name; transitions by no user are absent."""
    users_of = {t.id: t.actor.removeprefix("user:") for t in rows if t.actor.startswith("user:")}
    if not users_of:
        return {}  # no query: a history of system actors only (the engine, a device)
    names = users.display_names(conn, list(users_of.values()))
    return {i: names.get(user, user) for i, user in users_of.items()}


def _history(conn: Conn, alarm_id: int) -> list[TransitionOut]:
    """The transitions with the people's display names (the console shows names, not user ids)."""
    rows = alarms.history(conn, alarm_id)
    names = _transition_actor_names(conn, rows)
    return [TransitionOut.of(t).model_copy(update={"actor_name": names.get(t.id)}) for t in rows]


@router.get("/alarms/{alarm_id}/history", summary="The transitions of an alarm, oldest first")
def alarm_history(alarm_id: AlarmId, principal: Reader, conn: Conn) -> list[TransitionOut]:
    _visible(conn, principal, alarm_id)
    return _history(conn, alarm_id)


@router.get(
    "/alarms/{alarm_id}/escalation",
    summary="The emergency-linkage escalation of an alarm: each incident with its attempts and receipts",
)
def alarm_escalation(alarm_id: AlarmId, principal: Reader, conn: Conn) -> list[IncidentDetail]:
    alarm = _visible(conn, principal, alarm_id)
    # an incident is the alarm's community's (storage/escalation.py start_incident): same scope
    return [
        incident_detail(conn, inc)
        for inc in escalation.incidents_for_alarm(conn, alarm.id)
        if principal.sees(inc.community_id)
    ]


# The chart window (issue 13 §6): from this long before the alarm began to this long after it cleared
# (or now). Not a safety setting: what an operator needs to see the reading rise and fall back.
CHART_MARGIN = timedelta(minutes=15)
CHART_SERIES_MAX = 4


def _effective_alerts(conn: Conn, settings: Settings, community_id: int) -> AlertSettings:
    """The community's alert settings as the engine applies them (alerts/service.py `_load`)."""
    try:
        return settings.alerts.with_overrides(rule_state.community_overrides(conn).get(community_id))
    except ConfigurationError:  # the engine refuses these too; the chart still shows the defaults
        return settings.alerts


@router.get("/alarms/{alarm_id}/chart", summary="What the alarm chart shows: window, metrics, threshold")
def alarm_chart(
    alarm_id: AlarmId, principal: Reader, conn: Conn, settings: Annotated[Settings, Depends(app_settings)]
) -> AlarmChart:
    alarm = _visible(conn, principal, alarm_id)
    now = datetime.now(UTC)
    since = alarm.first_at - CHART_MARGIN
    ended = alarm.cleared_at if alarm.status == "cleared" and alarm.cleared_at else now
    until = min(now, max(ended, alarm.last_at) + CHART_MARGIN)
    trigger = trigger_of(alarm.type, alarm.details, _effective_alerts(conn, settings, alarm.community_id))
    reported = [(r.metric, r.channel) for r in readings.device_metrics(conn, alarm.device_id, since)]

    def rank(metric: str, channel: int) -> int:
        if trigger is None or metric != trigger.metric:
            return 2
        return 0 if trigger.channel is None or channel == trigger.channel else 1

    ordered = sorted(reported, key=lambda mc: (rank(*mc), mc))
    series = []
    for metric, channel in ordered[:CHART_SERIES_MAX]:
        names = metric_info(metric)
        is_trigger = rank(metric, channel) == 0
        threshold = None
        if is_trigger and trigger is not None and trigger.threshold is not None and trigger.source:
            threshold = ChartThreshold(
                value=trigger.threshold,
                direction=trigger.direction,
                setting=trigger.setting,
                source=trigger.source,
            )
        series.append(
            ChartSeries(
                metric=metric,
                channel=channel,
                label_zh=names.zh,
                label_en=names.en,
                unit=names.unit,
                trigger=is_trigger,
                threshold=threshold,
            )
        )
    return AlarmChart(alarm_id=alarm.id, device_id=alarm.device_id, since=since, until=until, series=series)


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


# ---------------------------------------------------------------------------------------------
# History of ended alarms and its export (issue 13 §7)

Result = Literal["real", "false_alarm", "test", "device_fault"]
DeviceSearch = Annotated[
    str | None,
    Query(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]*$", description="Part of the device uid"),
]


def _history_filter(
    *,
    principal: Reader,
    community_id: BigId = None,
    building_id: BigId = None,
    device: DeviceSearch = None,
    type: Annotated[list[AlarmType] | None, Query(description="One or more alarm types")] = None,
    result: Annotated[list[Result] | None, Query(description="Handling results (处置结果)")] = None,
    since: Annotated[Time | None, Query(description="Alarms that began at or after this time")] = None,
    until: Annotated[Time | None, Query(description="Alarms that began before this time")] = None,
) -> history_store.HistoryFilter:
    return history_store.HistoryFilter(
        community_ids=principal.scope_for(community_id),
        since=since,
        until=until,
        types=[t.value for t in type] if type else None,
        results=result or None,
        building_id=building_id,
        device=device.strip() or None if device else None,
    )


HistoryQuery = Annotated[history_store.HistoryFilter, Depends(_history_filter)]


def _actor_names(conn: Conn, rows: list[history_store.HistoryRow]) -> dict[str, str]:
    people = {
        actor.split(":", 1)[1]
        for r in rows
        for actor in (r.cleared_by, r.acknowledged_by)
        if actor and actor.startswith(("user:", "apikey:"))
    }
    return users.display_names(conn, sorted(people))


@router.get("/alarm-types", summary="Every alarm type with its Chinese and English label and severity")
def alarm_types(principal: Reader) -> list[AlarmTypeOut]:
    return [
        AlarmTypeOut(type=t.value, zh=i.zh, en=i.en, severity=i.severity.value) for t, i in ALARM_INFO.items()
    ]


@router.get("/alarm-history", summary="Search ended alarms (cleared or closed), newest first")
def alarm_history_search(
    principal: Reader, conn: Conn, filters: HistoryQuery, limit: Limit = 100, cursor: Cursor = None
) -> Page[HistoryOut]:
    try:
        page = history_store.search(conn, filters, cursor=cursor, limit=limit)
    except alarms.InvalidCursor:
        raise invalid("query.cursor", "not a cursor returned by this API for this search") from None
    names = _actor_names(conn, page.items)
    return Page[HistoryOut](items=[HistoryOut.of(r, names) for r in page.items], next_cursor=page.next_cursor)


@router.get(
    "/alarm-history/export",
    summary="The filtered history as CSV or XLSX with Chinese headers (at most api.export_max_rows rows)",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in export.MEDIA_TYPES.values()}, "description": "The file"},
        422: ERROR_RESPONSES[422],
    },
)
def alarm_history_export(
    principal: Reader,
    conn: Conn,
    filters: HistoryQuery,
    settings: Annotated[Settings, Depends(app_settings)],
    format: Annotated[export.ExportFormat, Query(description="csv or xlsx")] = "xlsx",
) -> Response:
    cap = settings.api.export_max_rows
    try:
        rows = history_store.export(conn, filters, max_rows=cap)
    except history_store.ExportTooLarge as exc:
        raise invalid(
            "query",
            f"{exc.rows} 条告警符合条件，一次最多导出 {cap} 条，请缩小时间范围或增加筛选条件 "
            f"({exc.rows} alarms match; an export holds at most {cap}: narrow the filters)",
        ) from None
    cells = export.table(rows, _actor_names(conn, rows))
    body = export.to_csv(cells) if format == "csv" else export.to_xlsx(cells)
    name = f"告警历史.{format}"
    disposition = f"attachment; filename=\"alarm-history.{format}\"; filename*=UTF-8''{quote(name)}"
    return Response(
        body,
        media_type=export.MEDIA_TYPES[format],
        headers={"Content-Disposition": disposition, "X-Yiju-Rows": str(len(rows))},
    )
