"""Devices: registry with presence and last seen, CSV import, telemetry ranges and recent events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from api.deps import Conn, Principal, Reader
from api.devices.schemas import Bucket, DeviceEventOut, DeviceOut, MetricOut, RawPoint, TelemetryOut
from api.errors import ERROR_RESPONSES, invalid, not_found
from api.pagination import Cursor, Limit, Page, decode_int_cursor, page_by_id
from devices.contract import Family
from storage import api_queries

router = APIRouter(tags=["devices"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

DeviceId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Device id")]
# Raw points up to this span by default; longer ranges use the hourly rollup.
AUTO_RAW_SPAN = timedelta(hours=6)
MAX_RANGE = timedelta(days=800)
Metric = Annotated[str, Query(pattern=r"^[a-z0-9_]{1,64}$", description="Metric name, see /metrics")]


def visible_device(conn: Conn, principal: Principal, device_id: int) -> dict[str, Any]:
    row = api_queries.get_device(conn, device_id)
    if row is None or not principal.sees(row["community_id"]):
        raise not_found("device", device_id)
    return row


@router.get("/devices", summary="Devices with presence (online, last seen) and open alarms")
def list_devices(
    *,
    principal: Reader,
    conn: Conn,
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
) -> Page[DeviceOut]:
    rows = api_queries.list_devices(
        conn,
        community_ids=principal.scope_for(community_id),
        building_id=building_id,
        family=family.value if family else None,
        online=online,
        search=q,
        after_id=decode_int_cursor(cursor),
        limit=limit + 1,
    )
    return page_by_id([DeviceOut(**r) for r in rows], limit, lambda d: d.id)


@router.get("/devices/{device_id}", summary="One device with presence and last seen")
def get_device(device_id: DeviceId, principal: Reader, conn: Conn) -> DeviceOut:
    return DeviceOut(**visible_device(conn, principal, device_id))


def _range(since: datetime | None, until: datetime | None, default: timedelta) -> tuple[datetime, datetime]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise invalid(f"query.{name}", "needs a timezone offset, e.g. 2026-11-20T08:00:00+08:00")
    end = until or datetime.now(UTC)
    start = since or end - default
    if start >= end:
        raise invalid("query.since", "must be before until")
    if end - start > MAX_RANGE:
        raise invalid("query.since", f"range longer than {MAX_RANGE.days} days")
    return start, end


Since = Annotated[datetime | None, Query(description="Start (inclusive); default: until minus 24 h")]
Until = Annotated[datetime | None, Query(description="End (exclusive); default: now")]


@router.get("/devices/{device_id}/metrics", summary="The metrics a device reported, with the latest value")
def device_metrics(
    device_id: DeviceId,
    principal: Reader,
    conn: Conn,
    since: Annotated[datetime | None, Query(description="Default: 7 days ago")] = None,
) -> list[MetricOut]:
    visible_device(conn, principal, device_id)
    start, _ = _range(since, None, timedelta(days=7))
    return [MetricOut(**r) for r in api_queries.device_metrics(conn, device_id, start)]


@router.get(
    "/devices/{device_id}/telemetry",
    summary="One metric over a time range: raw points or hourly buckets (min/max/avg) from the rollup",
)
def telemetry(
    *,
    device_id: DeviceId,
    principal: Reader,
    conn: Conn,
    metric: Metric,
    channel: Annotated[int, Query(ge=0, le=32767)] = 0,
    since: Since = None,
    until: Until = None,
    resolution: Annotated[
        Literal["auto", "raw", "hour"], Query(description=f"auto: raw up to {AUTO_RAW_SPAN}, else hourly")
    ] = "auto",
) -> TelemetryOut:
    visible_device(conn, principal, device_id)
    start, end = _range(since, until, timedelta(hours=24))
    use_raw = resolution == "raw" or (resolution == "auto" and end - start <= AUTO_RAW_SPAN)
    out = TelemetryOut(
        device_id=device_id,
        metric=metric,
        channel=channel,
        since=start,
        until=end,
        resolution="raw" if use_raw else "hour",
        truncated=False,
    )
    if use_raw:
        rows = api_queries.points_range(
            conn, device_id, metric=metric, channel=channel, since=start, until=end
        )
        out.points = [RawPoint(**r) for r in rows]
        out.truncated = len(rows) >= api_queries.RAW_POINTS_MAX
    else:
        out.buckets = [
            Bucket(**r)
            for r in api_queries.hourly_range(
                conn, device_id, metric=metric, channel=channel, since=start, until=end
            )
        ]
    return out


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
    visible_device(conn, principal, device_id)
    start, end = _range(since, until, timedelta(hours=24))
    return [DeviceEventOut(**r) for r in api_queries.recent_events(conn, device_id, start, end, limit)]
