"""Compliance summaries (domain.md §5): per check, per family and the failing devices of a community."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api import fastjson
from api.compliance.schemas import ComplianceSummaryOut
from api.deps import Conn, FastReader, Principal
from api.errors import ERROR_RESPONSES, invalid, not_found
from api.fastjson import JsonBytes
from api.params import Time
from storage import findings

router = APIRouter(tags=["compliance"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

# domain.md §5.1: shares are reported over a rolling window, 30 days by default
DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=800)


@router.get(
    "/compliance/summary",
    summary="Compliance of a community per check over a window (default 30 days)",
    response_model=ComplianceSummaryOut,
)
async def compliance_summary(
    read: FastReader,
    community_id: Annotated[int, Query(ge=1, le=2**62)],
    since: Annotated[Time | None, Query(description="Window start; default: until minus 30 days")] = None,
    until: Annotated[Time | None, Query(description="Window end (exclusive); default: now")] = None,
) -> JsonBytes:
    def work(conn: Conn, principal: Principal) -> JsonBytes:
        if not principal.sees(community_id):
            raise not_found("community", community_id)
        end = until or datetime.now(UTC)
        start = since or end - DEFAULT_WINDOW
        if start >= end or end - start > MAX_WINDOW:
            raise invalid("query.since", f"must be before until, within {MAX_WINDOW.days} days")
        # SummaryLine's `failed` is a property: read by attribute like its fields
        summary = findings.compliance_summary(conn, community_id, start, end)
        return JsonBytes(fastjson.encode(fastjson.convert(ComplianceSummaryOut, summary)))

    return await read.run(work)
