"""Compliance summaries (domain.md §5): per check, per family and the failing devices of a community."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api import fastjson
from api.compliance.pages import ComplianceSummaries
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
    request: Request,
    read: FastReader,
    community_id: Annotated[int, Query(ge=1, le=2**62)],
    since: Annotated[Time | None, Query(description="Window start; default: until minus 30 days")] = None,
    until: Annotated[Time | None, Query(description="Window end (exclusive); default: now")] = None,
) -> JsonBytes:
    # Kept by community, the default window only (api/compliance/pages.py: the bounds, and the rule
    # of api/kept.py), and served only to a caller who sees the community. A kept summary states the
    # window it was computed for (`window_start`, `window_end`, up to MAX_AGE_S old) and is exact for
    # it: what it lacks is only findings older than 30 days leaving the window since then.
    default_window = since is None and until is None

    def kept(principal: Principal) -> JsonBytes | None:
        if not principal.sees(community_id):
            return None  # the work below answers 404
        body = summaries.get(community_id) if default_window else None
        return None if body is None else JsonBytes(body)

    def work(conn: Conn, principal: Principal) -> JsonBytes:
        if not principal.sees(community_id):
            raise not_found("community", community_id)
        answer = kept(principal)
        if answer is not None:
            return answer
        generation, started = summaries.generation(), summaries.clock()
        end = until or datetime.now(UTC)
        start = since or end - DEFAULT_WINDOW
        if start >= end or end - start > MAX_WINDOW:
            raise invalid("query.since", f"must be before until, within {MAX_WINDOW.days} days")
        # SummaryLine's `failed` is a property: read by attribute like its fields
        summary = findings.compliance_summary(conn, community_id, start, end)
        body = fastjson.encode(fastjson.convert(ComplianceSummaryOut, summary))
        if default_window:
            summaries.put(community_id, generation, body, started)
        return JsonBytes(body)

    summaries: ComplianceSummaries = request.app.state.compliance_summaries
    return await read.run(work, kept=kept)
