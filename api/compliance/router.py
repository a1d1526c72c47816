"""Compliance summaries (domain.md §5): per check, per family and the failing devices of a community."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api.compliance.schemas import ComplianceSummaryOut, SummaryLineOut
from api.deps import Conn, Reader
from api.errors import ERROR_RESPONSES, invalid, not_found
from api.params import Time
from storage import findings

router = APIRouter(tags=["compliance"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

# domain.md §5.1: shares are reported over a rolling window, 30 days by default
DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=800)


@router.get(
    "/compliance/summary", summary="Compliance of a community per check over a window (default 30 days)"
)
def compliance_summary(
    principal: Reader,
    conn: Conn,
    community_id: Annotated[int, Query(ge=1, le=2**62)],
    since: Annotated[Time | None, Query(description="Window start; default: until minus 30 days")] = None,
    until: Annotated[Time | None, Query(description="Window end (exclusive); default: now")] = None,
) -> ComplianceSummaryOut:
    if not principal.sees(community_id):
        raise not_found("community", community_id)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise invalid(f"query.{name}", "needs a timezone offset, e.g. 2026-11-20T08:00:00+08:00")
    end = until or datetime.now(UTC)
    start = since or end - DEFAULT_WINDOW
    if start >= end or end - start > MAX_WINDOW:
        raise invalid("query.since", f"must be before until, within {MAX_WINDOW.days} days")
    s = findings.compliance_summary(conn, community_id, start, end)
    return ComplianceSummaryOut(
        community_id=s.community_id,
        window_start=s.window_start,
        window_end=s.window_end,
        by_check=[SummaryLineOut.of(x) for x in s.by_check],
        by_family=[SummaryLineOut.of(x) for x in s.by_family],
        failing_devices=[SummaryLineOut.of(x) for x in s.failing_devices],
    )
