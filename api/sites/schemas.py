"""Site view bodies (issue 13 §5): a community's buildings and outdoor places as tiles with their worst
state, and one place's plan — its floors (top first) and units, and its devices placed on them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from storage.site_plan import STATES, PlacedDevice, PlaceTile, StateCounts, natural_key
from storage.sites import BuildingRow, LocationRow

State = Literal["critical", "major", "minor", "warning", "offline", "never_reported", "online", "disabled"]
assert set(State.__args__) == set(STATES)  # type: ignore[attr-defined]  # the one list, two spellings


class CountsOut(BaseModel):
    devices: int
    online: int
    offline: int = Field(description="Reported before, not now")
    never_reported: int = Field(
        description="Registered, never heard from (从未上报): neither online nor offline"
    )
    disabled: int
    critical: int = Field(description="Alarms on the board (active, or cleared and not yet acknowledged)")
    major: int
    minor: int
    warning: int
    worst: State | None = Field(description="The worst state among the devices: the tile's colour")

    @classmethod
    def of(cls, c: StateCounts) -> CountsOut:
        return cls(**{k: getattr(c, k) for k in cls.model_fields})  # `worst` is a property of the row


class TileOut(BaseModel):
    kind: str = Field(description="'building', or the kind of an outdoor place (shed, road, entrance, …)")
    id: int = Field(description="Building id for a building, location id for an outdoor place")
    code: str
    name: str
    floors: int | None
    units: int | None
    high_rise: bool
    counts: CountsOut

    @classmethod
    def of(cls, t: PlaceTile) -> TileOut:
        return cls(
            kind=t.kind, id=t.id, code=t.code, name=t.name, floors=t.floors, units=t.units,
            high_rise=t.high_rise, counts=CountsOut.of(t.counts),
        )  # fmt: skip


class CommunitySite(BaseModel):
    community_id: int
    name: str
    counts: CountsOut = Field(description="All placed devices of the community")
    buildings: list[TileOut] = Field(description="In their real order (2号楼 before 10号楼)")
    areas: list[TileOut] = Field(description="Places outside any building that hold devices")


class PlacedDeviceOut(BaseModel):
    id: int
    uid: str
    family: str
    location_id: int
    location_kind: str
    location_name: str
    unit: str | None
    floor: int | None
    room: str | None
    post: str | None
    state: State
    online: bool | None
    last_seen: datetime | None
    open_alarms: int
    worst_alarm_id: int | None

    @classmethod
    def of(cls, d: PlacedDevice) -> PlacedDeviceOut:
        return cls(**{k: getattr(d, k) for k in cls.model_fields})  # `state` is a property of the row


class PlanOut(BaseModel):
    """A building's plan: `floors` top first (basements negative, at the bottom), `units` in order;
    a device sits at (floor, unit), on its unit's ground row when it has no floor (a lobby), or in
    the building-wide row when it has neither. An outdoor place has no floors or units: one row."""

    kind: str
    id: int
    community_id: int
    code: str
    name: str
    floors: list[int]
    units: list[str]
    counts: CountsOut
    devices: list[PlacedDeviceOut]

    @classmethod
    def of_building(cls, b: BuildingRow, devices: list[PlacedDevice], counts: StateCounts) -> PlanOut:
        floors = set(range(1, (b.floors or 0) + 1)) | {d.floor for d in devices if d.floor is not None}
        floors.discard(0)  # Chinese floor numbering has no floor 0 (1层 is the ground floor)
        units = {str(u) for u in range(1, (b.units or 0) + 1)} | {d.unit for d in devices if d.unit}
        return cls(
            kind="building", id=b.id, community_id=b.community_id, code=b.code, name=b.name,
            floors=sorted(floors, reverse=True), units=sorted(units, key=natural_key),
            counts=CountsOut.of(counts), devices=[PlacedDeviceOut.of(d) for d in devices],
        )  # fmt: skip

    @classmethod
    def of_location(cls, loc: LocationRow, devices: list[PlacedDevice], counts: StateCounts) -> PlanOut:
        return cls(
            kind=loc.kind, id=loc.id, community_id=loc.community_id, code=loc.code, name=loc.name,
            floors=[], units=[], counts=CountsOut.of(counts),
            devices=[PlacedDeviceOut.of(d) for d in devices],
        )  # fmt: skip
