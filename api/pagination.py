"""Cursor pagination: lists return `{"items": [...], "next_cursor": "..."}`; pass the cursor back as
`?cursor=` for the next page. Cursors are opaque (base64url of the last row's sort key)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from api.errors import invalid

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, pattern=r"^[A-Za-z0-9_\-]+$", description="`next_cursor` of the previous page"),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page"
    )


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_int_cursor(cursor: str | None, *, max_id: int = 2**63 - 1) -> int | None:
    """The id of the last row of the previous page, for lists ordered by id (at most `max_id`, the
    range of the id column: a larger one would fail in the database, issue 10 §6)."""
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid("query.cursor", "not a cursor returned by this API") from None
    if not (isinstance(key, list) and len(key) == 1 and type(key[0]) is int and 0 <= key[0] <= max_id):
        raise invalid("query.cursor", "not a cursor returned by this API")
    return int(key[0])


def page_by_id(rows: list[T], limit: int, ident: Any) -> Page[T]:
    """Rows fetched with limit + 1, ordered by id: the page and the cursor to the next one."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[T](items=rows, next_cursor=encode_cursor(ident(rows[-1])) if more and rows else None)
