"""Compliance summaries (domain.md §5): per check, per family and the failing devices of a community."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api import fastjson
from api.alarms.pages import AlarmPages
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
    # Kept as the alarm pages are (api/alarms/pages.py, the rule of api/kept.py): until a finding or a
    # pre-aggregate changes (`yiju_compliance`, migration 0031), the registry changes (a device's uid
    # or family), any write of this process, a reconnect of the listener, or `MAX_AGE_S`. Its answer
    # depends on the community and the window only, so it is kept by those, and served only to a
    # caller who sees the community. With the default window (until now), a kept summary states the
    # window it was computed for (`window_start`, `window_end`, up to MAX_AGE_S old) and is exact for
    # it: what it lacks is only findings older than 30 days leaving the window since then.
    # the times as given, offsets included: equal instants in other offsets are written as given
    key: Hashable = ("compliance", community_id, since and since.isoformat(), until and until.isoformat())

    def kept(principal: Principal) -> JsonBytes | None:
        if not principal.sees(community_id):
            return None  # the work below answers 404
        body = pages.get(key)
        return None if body is None else JsonBytes(body)

    def work(conn: Conn, principal: Principal) -> JsonBytes:
        if not principal.sees(community_id):
            raise not_found("community", community_id)
        answer = kept(principal)
        if answer is not None:
            return answer
        generation, started = pages.generation(), pages.clock()
        end = until or datetime.now(UTC)
        start = since or end - DEFAULT_WINDOW
        if start >= end or end - start > MAX_WINDOW:
            raise invalid("query.since", f"must be before until, within {MAX_WINDOW.days} days")
        # SummaryLine's `failed` is a property: read by attribute like its fields
        summary = findings.compliance_summary(conn, community_id, start, end)
        body = fastjson.encode(fastjson.convert(ComplianceSummaryOut, summary))
        pages.put(key, generation, body, started)
        return JsonBytes(body)

    pages: AlarmPages = request.app.state.alarm_pages
    return await read.run(work, kept=kept)
