"""Devices: registry with presence and last seen, CSV import, telemetry ranges and recent events."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from starlette.concurrency import run_in_threadpool

from api import fastjson
from api.deps import Conn, Editor, FastReader, ImportEditor, Principal, Reader
from api.devices.schemas import (
    DeviceCreate,
    DeviceEventOut,
    DeviceOut,
    DeviceUpdate,
    ImportReport,
    ImportRowError,
    MetricOut,
    TelemetryOut,
)
from api.errors import ERROR_RESPONSES, ApiError, invalid, not_found
from api.fastjson import JsonBytes
from api.pagination import Cursor, Limit, Page, decode_int_cursor, page_by_id
from api.params import Time
from devices.contract import Family
from devices.csv_import import CsvFileError, parse_csv
from storage import readings, registry, sites, users
from storage.db import Database, set_statement_timeout
from storage.users import Role

router = APIRouter(tags=["devices"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

MAX_DEVICE_ID = 2**31 - 1  # devices.id is a 4-byte serial (compact time-series rows)
DeviceId = Annotated[int, Path(ge=1, le=MAX_DEVICE_ID, description="Device id")]
# Raw points up to this span by default; longer ranges use the hourly rollup.
AUTO_RAW_SPAN = timedelta(hours=6)
MAX_RANGE = timedelta(days=800)
Metric = Annotated[str, Query(pattern=r"^[a-z0-9_]{1,64}$", description="Metric name, see /metrics")]


def visible_device(conn: Conn, principal: Principal, device_id: int) -> sites.SiteDevice:
    row = sites.get_device(conn, device_id)
    if row is None or not principal.sees(row.community_id):
        raise not_found("device", device_id)
    return row


def check_visible(conn: Conn, principal: Principal, device_id: int) -> None:
    """404 unless the device exists in one of the caller's communities (`visible_device` without
    the row: its location, presence and open-alarm count cost a query planned over four tables and
    a subquery, for a route that only needs the device's community)."""
    community_id = sites.device_community(conn, device_id)
    if community_id is None or not principal.sees(community_id):
        raise not_found("device", device_id)


_DEVICE_ID = sites.DEVICE_COLUMNS.index("id")
_METADATA_TEXT = frozenset({"metadata"})  # sites.list_device_tuples gives it as its JSON text


@router.get(
    "/devices",
    summary="Devices with presence (online, last seen) and open alarms",
    response_model=Page[DeviceOut],
)
async def list_devices(
    *,
    read: FastReader,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    building_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    family: Family | None = None,
    online: Annotated[bool | None, Query(description="false includes devices never seen")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            pattern=r"^[^\x00%_\\]*$",
            description="Part of the device uid or location name",
        ),
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> JsonBytes:
    def work(conn: Conn, principal: Principal) -> JsonBytes:
        rows = sites.list_device_tuples(
            conn,
            community_ids=principal.scope_for(community_id),
            building_id=building_id,
            family=family.value if family else None,
            online=online,
            search=q,
            after_id=decode_int_cursor(cursor, max_id=MAX_DEVICE_ID),
            limit=limit + 1,
        )
        page = page_by_id(rows, limit, lambda d: d[_DEVICE_ID])
        items = fastjson.from_rows(DeviceOut, sites.DEVICE_COLUMNS, page.items, _METADATA_TEXT)
        return JsonBytes(fastjson.encode({"items": items, "next_cursor": page.next_cursor}))

    return await read.run(work)


@router.get("/devices/{device_id}", summary="One device with presence and last seen")
def get_device(device_id: DeviceId, principal: Reader, conn: Conn) -> DeviceOut:
    return DeviceOut.model_validate(visible_device(conn, principal, device_id), from_attributes=True)


def _range(since: datetime | None, until: datetime | None, default: timedelta) -> tuple[datetime, datetime]:
    end = until or datetime.now(UTC)
    start = since or end - default
    if start >= end:
        raise invalid("query.since", "must be before until")
    if end - start > MAX_RANGE:
        raise invalid("query.since", f"range longer than {MAX_RANGE.days} days")
    return start, end


Since = Annotated[Time | None, Query(description="Start (inclusive); default: until minus 24 h")]
Until = Annotated[Time | None, Query(description="End (exclusive); default: now")]


@router.get("/devices/{device_id}/metrics", summary="The metrics a device reported, with the latest value")
def device_metrics(
    device_id: DeviceId,
    principal: Reader,
    conn: Conn,
    since: Annotated[Time | None, Query(description="Default: 7 days ago")] = None,
) -> list[MetricOut]:
    check_visible(conn, principal, device_id)
    start, _ = _range(since, None, timedelta(days=7))
    return [
        MetricOut.model_validate(r, from_attributes=True)
        for r in readings.device_metrics(conn, device_id, start)
    ]


@router.get(
    "/devices/{device_id}/telemetry",
    summary="One metric over a time range: raw points or hourly buckets (min/max/avg) from the rollup",
    response_model=TelemetryOut,
)
async def telemetry(
    *,
    device_id: DeviceId,
    read: FastReader,
    metric: Metric,
    channel: Annotated[int, Query(ge=0, le=32767)] = 0,
    since: Since = None,
    until: Until = None,
    resolution: Annotated[
        Literal["auto", "raw", "hour"], Query(description=f"auto: raw up to {AUTO_RAW_SPAN}, else hourly")
    ] = "auto",
) -> JsonBytes:
    def work(conn: Conn, principal: Principal) -> JsonBytes:
        check_visible(conn, principal, device_id)
        start, end = _range(since, until, timedelta(hours=24))
        use_raw = resolution == "raw" or (resolution == "auto" and end - start <= AUTO_RAW_SPAN)
        points: list[readings.Point] = []
        buckets: list[readings.HourBucket] = []
        if use_raw:
            points = readings.points_range(
                conn, device_id, metric=metric, channel=channel, since=start, until=end
            )
        else:
            buckets = readings.hourly_range(
                conn, device_id, metric=metric, channel=channel, since=start, until=end
            )
        out = TelemetryRow(
            device_id=device_id,
            metric=metric,
            channel=channel,
            since=start,
            until=end,
            resolution="raw" if use_raw else "hour",
            truncated=len(points) >= readings.RAW_POINTS_MAX,
            points=points,
            buckets=buckets,
        )
        return JsonBytes(fastjson.encode(fastjson.convert(TelemetryOut, out)))

    return await read.run(work)


@dataclasses.dataclass(frozen=True, slots=True)
class TelemetryRow:
    """What `TelemetryOut` says, before encoding (api/fastjson.py)."""

    device_id: int
    metric: str
    channel: int
    since: datetime
    until: datetime
    resolution: str
    truncated: bool
    points: list[readings.Point]
    buckets: list[readings.HourBucket]


@router.get("/devices/{device_id}/events", summary="A device's recent events (what it said), newest first")
def device_events(
    *,
    device_id: DeviceId,
    principal: Reader,
    conn: Conn,
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
) -> list[DeviceEventOut]:
    check_visible(conn, principal, device_id)
    start, end = _range(since, until, timedelta(hours=24))
    return [
        DeviceEventOut.model_validate(r, from_attributes=True)
        for r in readings.recent_events(conn, device_id, start, end, limit)
    ]


def _device_in(row: registry.Device, **changes: Any) -> registry.DeviceIn:
    """The registry row as it is, with the given (non-None) changes."""
    current = registry.DeviceIn(
        uid=row.uid,
        community=row.community,
        family=row.family,
        location=row.location,
        model=row.model,
        vendor=row.vendor,
        install_date=row.install_date,
        retrofit=row.retrofit,
        metadata=row.metadata,
        enabled=row.enabled,
        room=row.room,
        post=row.post,
    )
    return dataclasses.replace(current, **{k: v for k, v in changes.items() if v is not None})


def _community_code(conn: Conn, principal: Principal, community_id: int) -> str:
    row = sites.get_community(conn, community_id) if principal.sees(community_id) else None
    if row is None:
        raise not_found("community", community_id)
    return row.code


def _audit_device(
    conn: Conn, principal: Principal, *, action: str, device_id: int, community_id: int, details: Any
) -> None:
    users.audit(
        conn,
        actor=principal.actor,
        action=action,
        target_type="device",
        target_id=str(device_id),
        community_id=community_id,
        details=details,
    )


# One answer for a uid the caller cannot have, whether another community's device or a reserved MQTT
# username: a distinct "already registered" would tell a manager which uids other communities hold
# (issue 10 §12).
def uid_unavailable(uid: str) -> ApiError:
    return ApiError(409, f"device uid {uid!r} cannot be used; choose another uid")


@router.post("/devices", status_code=status.HTTP_201_CREATED, summary="Register a device (admin, manager)")
def create_device(body: DeviceCreate, principal: Editor, conn: Conn) -> DeviceOut:
    code = _community_code(conn, principal, body.community_id)
    found = sites.device_id_by_uid(conn, body.uid)
    if found is not None:
        if found[1] == body.community_id:
            raise ApiError(409, f"device uid {body.uid!r} is already registered in this community")
        if principal.role is Role.ADMIN:
            raise ApiError(
                409,
                f"device uid {body.uid!r} is device {found[0]} of community {found[1]}; to move it, "
                f"PATCH /devices/{found[0]} with community_id",
            )
        raise uid_unavailable(body.uid)
    counts = registry.upsert_devices(
        conn,
        [
            registry.DeviceIn(
                uid=body.uid,
                community=code,
                family=body.family.value,
                location=body.location_code,
                model=body.model,
                vendor=body.vendor,
                install_date=body.install_date,
                retrofit=body.retrofit,
                metadata=body.metadata,
                enabled=body.enabled,
                room=body.room,
                post=body.post,
            )
        ],
    )
    if counts.refused:  # reserved, or registered elsewhere meanwhile
        raise uid_unavailable(body.uid)
    found = sites.device_id_by_uid(conn, body.uid)
    assert found is not None
    _audit_device(
        conn,
        principal,
        action="device.create",
        device_id=found[0],
        community_id=body.community_id,
        details=body.model_dump(mode="json"),
    )
    return DeviceOut.model_validate(visible_device(conn, principal, found[0]), from_attributes=True)


@router.patch(
    "/devices/{device_id}",
    summary="Change a device's location, details or enabled flag; an admin may move it to another community",
)
def update_device(device_id: DeviceId, body: DeviceUpdate, principal: Editor, conn: Conn) -> DeviceOut:
    row = visible_device(conn, principal, device_id)
    current = registry.get_device(conn, row.uid)
    assert current is not None
    changes = body.model_dump(exclude_unset=True)
    target: int = body.community_id if body.community_id is not None else row.community_id
    moving = target != row.community_id
    if moving and principal.role is not Role.ADMIN:
        raise ApiError(403, "only an admin may move a device to another community")
    device = _device_in(
        current,
        location=changes.get("location_code"),
        model=changes.get("model"),
        vendor=changes.get("vendor"),
        install_date=changes.get("install_date"),
        retrofit=changes.get("retrofit"),
        metadata=changes.get("metadata"),
        enabled=changes.get("enabled"),
        room=changes.get("room"),
        post=changes.get("post"),
    )
    if moving:
        # locations belong to a community: the old one cannot come along
        device = dataclasses.replace(
            device, community=_community_code(conn, principal, target), location=changes.get("location_code")
        )
    counts = registry.upsert_devices(conn, [device], move=moving)
    if counts.refused:
        raise uid_unavailable(row.uid)
    details = body.model_dump(mode="json", exclude_unset=True)
    if moving:
        # an audit row in each community's log: the one that lost the device and the one that got it
        for community in (row.community_id, target):
            _audit_device(
                conn,
                principal,
                action="device.move",
                device_id=device_id,
                community_id=community,
                details={
                    "uid": row.uid,
                    "from_community_id": row.community_id,
                    "to_community_id": target,
                },
            )
    _audit_device(
        conn,
        principal,
        action="device.update",
        device_id=device_id,
        community_id=target,
        details=details,
    )
    return DeviceOut.model_validate(visible_device(conn, principal, device_id), from_attributes=True)


@router.delete(
    "/devices/{device_id}",
    summary="Decommission a device: disabled, its history kept as evidence (admin, manager)",
)
def delete_device(device_id: DeviceId, principal: Editor, conn: Conn) -> DeviceOut:
    row = visible_device(conn, principal, device_id)
    current = registry.get_device(conn, row.uid)
    assert current is not None
    registry.upsert_devices(conn, [_device_in(current, enabled=False)])
    _audit_device(
        conn,
        principal,
        action="device.disable",
        device_id=device_id,
        community_id=row.community_id,
        details={},
    )
    return DeviceOut.model_validate(visible_device(conn, principal, device_id), from_attributes=True)


MAX_CSV_BYTES = 20 * 1024 * 1024
IMPORT_STATEMENT_TIMEOUT_S = 300.0


def _import(conn: Any, principal: Principal, community_id: int, data: bytes) -> ImportReport:
    code = _community_code(conn, principal, community_id)
    try:
        plan = parse_csv(data, community=code)
    except CsvFileError as exc:
        raise invalid("body", str(exc)) from None
    counts = registry.import_plan(conn, plan)
    # a uid of another community (or a reserved MQTT username) is a row error, never a takeover
    row_of = {d.uid: d.row for d in plan.devices}
    refused = [
        ImportRowError(
            row=row_of[uid], column="device_uid", reason=f"{uid!r} cannot be used; choose another uid"
        )
        for uid in counts.refused
    ]
    errors = [ImportRowError(row=e.row, column=e.column, reason=e.reason) for e in plan.errors] + refused
    report = ImportReport(
        rows_total=plan.rows_total,
        imported=len(plan.devices) - len(refused),
        inserted=counts.inserted,
        updated=counts.updated,
        rejected_rows=sorted({*plan.rejected_rows, *(e.row for e in refused)}),
        errors=sorted(errors, key=lambda e: e.row),
    )
    users.audit(
        conn,
        actor=principal.actor,
        action="device.import",
        target_type="community",
        target_id=str(community_id),
        community_id=community_id,
        details=report.model_dump(exclude={"errors"}),
    )
    return report


@router.post(
    "/devices/import",
    summary="Import devices from a CSV spreadsheet (UTF-8 or GBK, Chinese headers); per-row report",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "device_uid,family,building,floor\nsmk-b3-0601,烟感,B03,6\n",
                }
            },
        }
    },
)
async def import_devices(
    request: Request,
    principal: ImportEditor,
    community_id: Annotated[int, Query(ge=1, le=2**62)],
) -> ImportReport:
    data = await request.body()
    if len(data) > MAX_CSV_BYTES:
        raise invalid("body", f"file larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB")
    db: Database = request.app.state.db

    def work() -> ImportReport:
        with db.connection() as conn:
            # exempt from the request deadline; a long import still may not run for ever
            set_statement_timeout(conn, IMPORT_STATEMENT_TIMEOUT_S)
            return _import(conn, principal, community_id, data)

    return await run_in_threadpool(work)
