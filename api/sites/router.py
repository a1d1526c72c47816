"""The site view (issue 13 §5): per community its buildings and outdoor places as tiles with their worst
state; per building (or outdoor place) a plan of floors and units with the devices placed on it.

Scoped like every endpoint: an id of a community the caller does not see is the same 404 as an id
that does not exist (api/deps.py `Principal.sees`). Ids are bounded at the schema (a 422, never an
out-of-range integer reaching PostgreSQL).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import Conn, Reader
from api.errors import ERROR_RESPONSES, not_found
from api.sites.schemas import CommunitySite, CountsOut, PlanOut, TileOut
from storage import site_plan

router = APIRouter(tags=["site"], responses={k: ERROR_RESPONSES[k] for k in (404, 422)})

Id = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/communities/{community_id}/site", summary="Buildings and outdoor places with their worst state")
def community_site(community_id: Id, principal: Reader, conn: Conn) -> CommunitySite:
    community = site_plan.get_community(conn, community_id) if principal.sees(community_id) else None
    if community is None:
        raise not_found("community", community_id)
    buildings, areas = site_plan.community_tiles(conn, community_id)
    return CommunitySite(
        community_id=community_id,
        name=community.name,
        counts=CountsOut.of(site_plan.total(t.counts for t in (*buildings, *areas))),
        buildings=[TileOut.of(t) for t in buildings],
        areas=[TileOut.of(t) for t in areas],
    )


@router.get("/buildings/{building_id}/plan", summary="A building's floors and units with its devices placed")
def building_plan(building_id: Id, principal: Reader, conn: Conn) -> PlanOut:
    building = site_plan.get_building(conn, building_id)
    if building is None or not principal.sees(building.community_id):
        raise not_found("building", building_id)
    devices = site_plan.building_devices(conn, building.community_id, building.id)
    return PlanOut.of_building(building, devices, site_plan.counts_of(devices))


@router.get("/locations/{location_id}/plan", summary="An outdoor place (shed, road, …) with its devices")
def location_plan(location_id: Id, principal: Reader, conn: Conn) -> PlanOut:
    location = site_plan.get_location(conn, location_id)
    if location is None or not principal.sees(location.community_id):
        raise not_found("location", location_id)
    devices = site_plan.location_devices(conn, location.community_id, location.id)
    return PlanOut.of_location(location, devices, site_plan.counts_of(devices))
