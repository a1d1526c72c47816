"""Indicator verification (indicators.md): the score sheet of a community as JSON, HTML or PDF; the
inspection / test / maintenance records behind Jiangsu item [10]; the assessor's on-site evidence and its
attachments. Every route is scoped to the caller's communities (404 outside them)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from alerts.indicators import records_csv
from alerts.indicators.config import FaultUnit
from alerts.indicators.period import parse_period, zone
from alerts.indicators.render import render_html
from alerts.indicators.report import as_json
from alerts.indicators.service import make_report
from api.deps import Conn, Editor, Operator, Principal, Reader
from api.errors import ERROR_RESPONSES, ApiError, invalid, not_found
from api.indicators.schemas import (
    AttachmentOut,
    ImportOut,
    ManualIn,
    ManualOut,
    RecordIn,
    RecordOut,
)
from devices.csv_import import CsvFileError
from storage import maintenance, sites, users
from storage.maintenance import NewRecord
from storage.registry import UnknownReference

router = APIRouter(tags=["indicators"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

Id = Annotated[int, Path(ge=1, le=2**62)]
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # a phone photo or a scanned record; the table's CHECK agrees
MAX_CSV_BYTES = 5 * 1024 * 1024
ATTACHMENT_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/pdf", "text/plain"})


def _community(conn: Conn, principal: Principal, community_id: int) -> sites.Community:
    row = sites.get_community(conn, community_id) if principal.sees(community_id) else None
    if row is None:
        raise not_found("community", community_id)
    return row


async def _body(request: Request, limit: int) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"the body is larger than {limit // (1024 * 1024)} MiB")
    return bytes(data)


@router.get(
    "/communities/{community_id}/indicator-report",
    summary="The indicator score sheet (Jiangsu, Yantai, green community, Zhumadian) for a period",
    responses={200: {"content": {"application/pdf": {}, "text/html": {}}}},
)
def indicator_report(
    *,
    community_id: Id,
    principal: Reader,
    conn: Conn,
    period: Annotated[
        str | None,
        Query(description="Local days, both included: 2026-11-01..2026-11-30; default the last 30 days"),
    ] = None,
    format: Annotated[Literal["json", "html", "pdf"], Query()] = "json",
    lang: Annotated[Literal["zh", "en"], Query()] = "zh",
    fault_unit: Annotated[
        FaultUnit | None, Query(description="What one fault counts (default: the community's)")
    ] = None,
) -> Response:
    community = _community(conn, principal, community_id)
    now = datetime.now(UTC)
    start, end = parse_period(period, community.timezone, now)
    overrides = {"fault_unit": fault_unit} if fault_unit else None
    report = make_report(conn, community_id, start, end, now=now, overrides=overrides)
    if format == "json":
        return JSONResponse(as_json(report))
    if format == "html":
        return HTMLResponse(render_html(report, lang))
    from alerts.indicators.pdf import render_pdf  # noqa: PLC0415 - WeasyPrint only when a PDF is asked for

    name = f"indicators-{community.code}-{start.astimezone(zone(community.timezone)):%Y%m%d}.pdf"
    return Response(
        render_pdf(report, lang),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _record_out(r: maintenance.Record) -> RecordOut:
    return RecordOut(
        id=r.id,
        device_uid=r.device_uid,
        family=r.family,
        kind=r.kind,
        performed_at=r.performed_at,
        performed_by=r.performed_by,
        result=r.result,
        notes=r.notes,
        attachments=list(r.attachments),
        source=r.source,
        recorded_by=r.recorded_by,
        recorded_at=r.recorded_at,
    )


@router.get(
    "/communities/{community_id}/maintenance-records", summary="Inspection, test and maintenance records"
)
def list_records(
    *,
    community_id: Id,
    principal: Reader,
    conn: Conn,
    family: Annotated[str | None, Query(max_length=32)] = None,
    device_uid: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RecordOut]:
    _community(conn, principal, community_id)
    rows = maintenance.list_records(
        conn, community_id, family=family, device_uid=device_uid, after_id=before_id, limit=limit
    )
    return [_record_out(r) for r in rows]


@router.post(
    "/communities/{community_id}/maintenance-records",
    status_code=status.HTTP_201_CREATED,
    summary="Record an inspection, test or maintenance (a maintenance worker's phone form posts here)",
)
def add_record(community_id: Id, body: RecordIn, principal: Operator, conn: Conn) -> RecordOut:
    _community(conn, principal, community_id)
    if body.device_uid is None and body.family is None:
        raise invalid("body.family", "a record without a device needs the system's family")
    if body.performed_at.tzinfo is None:
        raise invalid("body.performed_at", "needs a timezone offset, e.g. 2026-11-20T09:30:00+08:00")
    if body.performed_at > datetime.now(UTC):
        raise invalid("body.performed_at", "lies in the future")
    new = NewRecord(
        body.family or "",
        body.kind,
        body.performed_at,
        body.performed_by,
        body.result,
        device_uid=body.device_uid,
        notes=body.notes,
        attachments=tuple(body.attachments),
    )
    (record,) = maintenance.add_records(
        conn, community_id, [new], source="manual", recorded_by=principal.actor
    )
    users.audit(
        conn,
        actor=principal.actor,
        action="maintenance_record.create",
        target_type="maintenance_record",
        target_id=str(record.id),
        community_id=community_id,
    )
    return _record_out(record)


@router.post(
    "/communities/{community_id}/maintenance-records/import",
    summary="Import records from a CSV (UTF-8 or GBK, Chinese headers): bad rows reported, good ones kept",
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def import_records(community_id: Id, request: Request, principal: Operator, conn: Conn) -> ImportOut:
    # the body is read on the event loop (with its cap); every database call runs in the thread pool
    community = await run_in_threadpool(_community, conn, principal, community_id)
    data = await _body(request, MAX_CSV_BYTES)
    try:
        parsed = records_csv.parse(data, zone(community.timezone))
    except CsvFileError as exc:
        raise ApiError(422, str(exc)) from None
    return await run_in_threadpool(_import, conn, principal, community_id, parsed)


def _import(conn: Conn, principal: Principal, community_id: int, parsed: records_csv.Parsed) -> ImportOut:
    errors = [str(e) for e in parsed.errors]
    imported = 0
    for record in parsed.records:  # one by one, so that an unknown device is that row's error only
        try:
            maintenance.add_records(
                conn, community_id, [record], source="import", recorded_by=principal.actor
            )
            imported += 1
        except UnknownReference as exc:
            errors.append(f"device {record.device_uid}: {exc}")
    users.audit(
        conn,
        actor=principal.actor,
        action="maintenance_record.import",
        target_type="community",
        target_id=str(community_id),
        community_id=community_id,
        details={"rows": parsed.rows_total, "imported": imported, "errors": len(errors)},
    )
    return ImportOut(rows_total=parsed.rows_total, imported=imported, errors=errors[:1000])


@router.post(
    "/communities/{community_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    summary="Upload an attachment (photo, scanned record) as the raw request body",
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
)
async def upload_attachment(
    community_id: Id,
    request: Request,
    principal: Operator,
    conn: Conn,
    filename: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f/\\]+$")],
) -> AttachmentOut:
    await run_in_threadpool(_community, conn, principal, community_id)
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in ATTACHMENT_TYPES:
        raise invalid("header.content-type", f"one of {', '.join(sorted(ATTACHMENT_TYPES))}")
    data = await _body(request, MAX_ATTACHMENT_BYTES)
    if not data:
        raise invalid("body", "empty")
    store = partial(_store_attachment, filename=filename, content_type=content_type, data=data)
    return await run_in_threadpool(store, conn, principal, community_id)


def _store_attachment(
    conn: Conn, principal: Principal, community_id: int, *, filename: str, content_type: str, data: bytes
) -> AttachmentOut:
    a = maintenance.add_attachment(
        conn,
        community_id,
        filename=filename,
        content_type=content_type,
        content=data,
        uploaded_by=principal.actor,
    )
    users.audit(
        conn,
        actor=principal.actor,
        action="attachment.upload",
        target_type="attachment",
        target_id=str(a.id),
        community_id=community_id,
        details={"sha256": a.sha256, "bytes": a.size_bytes},
    )
    return AttachmentOut(
        id=a.id, sha256=a.sha256, filename=a.filename, content_type=a.content_type, size_bytes=a.size_bytes
    )


@router.get("/communities/{community_id}/attachments/{attachment_id}", summary="Download an attachment")
def download_attachment(community_id: Id, attachment_id: Id, principal: Reader, conn: Conn) -> Response:
    _community(conn, principal, community_id)
    found = maintenance.get_attachment(conn, community_id, attachment_id)
    if found is None:
        raise not_found("attachment", attachment_id)
    a, content = found
    return Response(
        content,
        media_type=a.content_type,
        headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"},
    )


def _manual_out(m: maintenance.Manual) -> ManualOut:
    return ManualOut(
        id=m.id,
        scheme=m.scheme,
        item=m.item,
        verdict=m.verdict,
        finding=m.finding,
        observed_on=m.observed_on,
        attachments=list(m.attachments),
        recorded_by=m.recorded_by,
        recorded_at=m.recorded_at,
    )


@router.get(
    "/communities/{community_id}/manual-evidence", summary="On-site findings recorded for indicator items"
)
def list_manual(community_id: Id, principal: Reader, conn: Conn) -> list[ManualOut]:
    _community(conn, principal, community_id)
    return [_manual_out(m) for m in maintenance.list_manual(conn, community_id)]


@router.post(
    "/communities/{community_id}/manual-evidence",
    status_code=status.HTTP_201_CREATED,
    summary="Record an on-site finding for an indicator item (never turned into a computed score)",
)
def add_manual(community_id: Id, body: ManualIn, principal: Editor, conn: Conn) -> ManualOut:
    _community(conn, principal, community_id)
    m = maintenance.add_manual(
        conn,
        community_id,
        scheme=body.scheme,
        item=body.item,
        verdict=body.verdict,
        finding=body.finding,
        observed_on=body.observed_on,
        attachments=body.attachments,
        recorded_by=principal.actor,
    )
    users.audit(
        conn,
        actor=principal.actor,
        action="manual_evidence.create",
        target_type="manual_evidence",
        target_id=str(m.id),
        community_id=community_id,
        details={"scheme": m.scheme, "item": m.item},
    )
    return _manual_out(m)
