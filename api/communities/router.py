"""Communities and buildings (with per-building device and alarm status)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.communities.schemas import (
    BuildingCreate,
    BuildingStatus,
    CommunityCreate,
    CommunityOut,
    LocationCreate,
    LocationOut,
)
from api.deps import Admin, Conn, Editor, Principal, Reader
from api.errors import ERROR_RESPONSES, not_found
from api.pagination import Cursor, Limit, Page, decode_int_cursor, page_by_id
from storage import registry, sites, users

router = APIRouter(tags=["communities"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

Id = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/communities", summary="Communities the caller may see, with counts")
def list_communities(
    principal: Reader, conn: Conn, limit: Limit = 100, cursor: Cursor = None
) -> Page[CommunityOut]:
    rows = sites.list_communities(
        conn, community_ids=principal.scope_for(None), after_id=decode_int_cursor(cursor), limit=limit + 1
    )
    return page_by_id(
        [CommunityOut.model_validate(r, from_attributes=True) for r in rows], limit, lambda c: c.id
    )


@router.get("/communities/{community_id}", summary="One community")
def get_community(community_id: Id, principal: Reader, conn: Conn) -> CommunityOut:
    row = sites.get_community(conn, community_id) if principal.sees(community_id) else None
    if row is None:
        raise not_found("community", community_id)
    return CommunityOut.model_validate(row, from_attributes=True)


@router.get("/buildings", summary="Buildings with device presence and open-alarm counts")
def list_buildings(
    principal: Reader,
    conn: Conn,
    community_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[BuildingStatus]:
    rows = sites.list_buildings(
        conn,
        community_ids=principal.scope_for(community_id),
        after_id=decode_int_cursor(cursor),
        limit=limit + 1,
    )
    return page_by_id(
        [BuildingStatus.model_validate(r, from_attributes=True) for r in rows], limit, lambda b: b.id
    )


@router.get("/buildings/{building_id}", summary="One building with its status")
def get_building(building_id: Id, principal: Reader, conn: Conn) -> BuildingStatus:
    row = sites.get_building(conn, building_id)
    if row is None or not principal.sees(row.community_id):
        raise not_found("building", building_id)
    return BuildingStatus.model_validate(row, from_attributes=True)


@router.post(
    "/communities",
    status_code=status.HTTP_201_CREATED,
    summary="Create (or update by code) a community (admin)",
)
def create_community(body: CommunityCreate, principal: Admin, conn: Conn) -> CommunityOut:
    cid = registry.upsert_community(
        conn,
        registry.CommunityIn(
            code=body.code,
            name=body.name,
            city=body.city,
            address=body.address,
            timezone=body.timezone,
            latitude=body.latitude,
            longitude=body.longitude,
        ),
    )
    users.audit(
        conn,
        actor=principal.actor,
        action="community.upsert",
        target_type="community",
        target_id=str(cid),
        community_id=cid,
        details=body.model_dump(),
    )
    row = sites.get_community(conn, cid)
    assert row is not None
    return CommunityOut.model_validate(row, from_attributes=True)


def _community_code(conn: Conn, principal: Principal, community_id: int) -> str:
    row = sites.get_community(conn, community_id) if principal.sees(community_id) else None
    if row is None:
        raise not_found("community", community_id)
    return row.code


@router.post(
    "/buildings", status_code=status.HTTP_201_CREATED, summary="Create (or update by code) a building"
)
def create_building(body: BuildingCreate, principal: Editor, conn: Conn) -> BuildingStatus:
    code = _community_code(conn, principal, body.community_id)
    registry.upsert_buildings(
        conn,
        [registry.BuildingIn(code, body.code, body.name, body.floors, body.units, body.high_rise)],
    )
    found = sites.find_building(conn, body.community_id, body.code)
    assert found is not None
    users.audit(
        conn,
        actor=principal.actor,
        action="building.upsert",
        target_type="building",
        target_id=str(found.id),
        community_id=body.community_id,
        details=body.model_dump(),
    )
    return BuildingStatus.model_validate(found, from_attributes=True)


@router.post(
    "/locations", status_code=status.HTTP_201_CREATED, summary="Create (or update by code) a location"
)
def create_location(body: LocationCreate, principal: Editor, conn: Conn) -> LocationOut:
    code = _community_code(conn, principal, body.community_id)
    building_code = None
    if body.building_id is not None:
        building = sites.get_building(conn, body.building_id)
        if building is None or building.community_id != body.community_id:
            raise not_found("building", body.building_id)
        building_code = building.code
    registry.upsert_locations(
        conn,
        [
            registry.LocationIn(
                code,
                body.code,
                body.kind,
                body.name,
                building_code,
                body.floor,
                body.unit,
                body.evacuation_route,
            )
        ],
    )
    found = sites.find_location(conn, body.community_id, body.code)
    assert found is not None
    users.audit(
        conn,
        actor=principal.actor,
        action="location.upsert",
        target_type="location",
        target_id=str(found.id),
        community_id=body.community_id,
        details=body.model_dump(),
    )
    return LocationOut.model_validate(found, from_attributes=True)
