"""Communities and buildings (with per-building device and alarm status)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.communities.schemas import BuildingStatus, CommunityOut
from api.deps import Conn, Reader
from api.errors import ERROR_RESPONSES, not_found
from api.pagination import Cursor, Limit, Page, decode_int_cursor, page_by_id
from storage import api_queries

router = APIRouter(tags=["communities"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

Id = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/communities", summary="Communities the caller may see, with counts")
def list_communities(
    principal: Reader, conn: Conn, limit: Limit = 100, cursor: Cursor = None
) -> Page[CommunityOut]:
    rows = api_queries.list_communities(
        conn, community_ids=principal.scope_for(None), after_id=decode_int_cursor(cursor), limit=limit + 1
    )
    return page_by_id([CommunityOut(**r) for r in rows], limit, lambda c: c.id)


@router.get("/communities/{community_id}", summary="One community")
def get_community(community_id: Id, principal: Reader, conn: Conn) -> CommunityOut:
    row = api_queries.get_community(conn, community_id) if principal.sees(community_id) else None
    if row is None:
        raise not_found("community", community_id)
    return CommunityOut(**row)


@router.get("/buildings", summary="Buildings with device presence and open-alarm counts")
def list_buildings(
    principal: Reader,
    conn: Conn,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[BuildingStatus]:
    rows = api_queries.list_buildings(
        conn,
        community_ids=principal.scope_for(community_id),
        after_id=decode_int_cursor(cursor),
        limit=limit + 1,
    )
    return page_by_id([BuildingStatus(**r) for r in rows], limit, lambda b: b.id)


@router.get("/buildings/{building_id}", summary="One building with its status")
def get_building(building_id: Id, principal: Reader, conn: Conn) -> BuildingStatus:
    row = api_queries.get_building(conn, building_id)
    if row is None or not principal.sees(row["community_id"]):
        raise not_found("building", building_id)
    return BuildingStatus(**row)
