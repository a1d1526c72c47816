"""Dead letters: every inbound message ingest refused, with its reason, scoped like every other read.

A dead letter belongs to the community of the registered device its topic names, else to the
registered community its topic names (resolved by ingest when it writes it); one that names neither
(a made-up community, a topic of the wrong shape) is visible to admins only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.dead_letters.schemas import DeadLetterOut
from api.deps import Conn, Reader
from api.errors import ERROR_RESPONSES
from api.pagination import Cursor, Limit, Page, decode_int_cursor, page_by_id
from api.params import Time
from devices.contract import ID_PATTERN, DeadLetterReason
from storage import dead_letters

router = APIRouter(tags=["dead letters"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})


@router.get("/dead-letters", summary="Refused inbound messages, newest first")
def list_dead_letters(
    *,
    principal: Reader,
    conn: Conn,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    device_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    device_uid: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Also for devices that are not registered")
    ] = None,
    reason: Annotated[list[DeadLetterReason] | None, Query(description="One or more reasons")] = None,
    since: Annotated[Time | None, Query(description="Received at or after")] = None,
    until: Annotated[Time | None, Query(description="Received before")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[DeadLetterOut]:
    filters = dead_letters.DeadLetterFilter(
        community_ids=principal.scope_for(community_id),
        device_id=device_id,
        device_uid=device_uid,
        reasons=[r.value for r in reason] if reason else None,
        since=since,
        until=until,
    )
    rows = dead_letters.list_dead_letters(conn, filters, before_id=decode_int_cursor(cursor), limit=limit + 1)
    page = page_by_id(rows, limit, lambda r: r.id)
    return Page[DeadLetterOut](items=[DeadLetterOut.of(r) for r in page.items], next_cursor=page.next_cursor)
