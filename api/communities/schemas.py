"""Community and building bodies."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator


class CommunityOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "code": "hz-xixi-01",
                    "name": "西溪花园",
                    "city": "杭州",
                    "address": "西湖区文二西路 1 号",
                    "timezone": "Asia/Shanghai",
                    "created_at": "2026-11-01T00:00:00Z",
                    "buildings": 40,
                    "devices": 7012,
                    "open_alarms": 3,
                }
            ]
        }
    )
    id: int
    code: str
    name: str
    city: str | None
    address: str | None
    timezone: str
    latitude: float | None = Field(default=None, description="Location, degrees north (lamps: sunset)")
    longitude: float | None = Field(default=None, description="Location, degrees east")
    created_at: datetime
    buildings: int
    devices: int
    open_alarms: int


class BuildingStatus(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "community_id": 1,
                    "code": "B03",
                    "name": "3号楼",
                    "floors": 18,
                    "units": 2,
                    "high_rise": True,
                    "devices": 180,
                    "online": 176,
                    "offline": 3,
                    "unknown": 1,
                    "critical": 1,
                    "major": 0,
                    "minor": 2,
                    "warning": 0,
                    "unacknowledged": 1,
                }
            ]
        }
    )
    id: int
    community_id: int
    code: str
    name: str
    floors: int | None
    units: int | None
    high_rise: bool
    devices: int = Field(description="Devices at locations in this building")
    online: int
    offline: int
    unknown: int = Field(description="Never reported")
    critical: int = Field(description="Open critical alarms")
    major: int
    minor: int
    warning: int
    unacknowledged: int = Field(description="Open alarms nobody has acknowledged yet")


@functools.cache
def _iana_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _iana(value: str) -> str:
    # an IANA name the tz database knows (PostgreSQL and Python both use it); "Asia/Shanghia" or
    # "Mars/Olympus" would make every local-time report of the community fail later (issue 10 §13)
    if value not in _iana_zones():
        raise ValueError(f"{value!r} is not an IANA time zone name, e.g. Asia/Shanghai")
    return value


TimeZone = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_iana),
    Field(description="IANA time zone name", examples=["Asia/Shanghai"]),
]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
OptText = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] | None


class CommunityCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"code": "hz-xixi-01", "name": "西溪花园", "city": "杭州"}]}
    )
    code: Code = Field(
        description="Natural code, also the MQTT topic level; creating an existing code updates it"
    )
    name: Name
    city: OptText = None
    address: OptText = None
    timezone: TimeZone = "Asia/Shanghai"
    latitude: float | None = Field(
        default=None,
        ge=-90,
        le=90,
        allow_inf_nan=False,
        description="Degrees north; with longitude, scheduled lamps are due on after sunset here",
    )
    longitude: float | None = Field(
        default=None, ge=-180, le=180, allow_inf_nan=False, description="Degrees east"
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> CommunityCreate:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class BuildingCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"community_id": 1, "code": "B03", "name": "3号楼", "floors": 18}]}
    )
    community_id: int = Field(ge=1, le=2**62)
    code: Code
    name: Name
    floors: int | None = Field(default=None, ge=1, le=200)
    units: int | None = Field(default=None, ge=1, le=50)
    high_rise: bool = False


LocationKind = Literal[
    "building", "floor", "unit", "stairwell", "lobby", "basement", "shed",
    "road", "entrance", "parking", "plant_room", "duty_room", "other",
]  # fmt: skip


class LocationCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "community_id": 1,
                    "code": "B03-F6",
                    "kind": "floor",
                    "name": "3号楼 6层",
                    "building_id": 3,
                    "floor": 6,
                }
            ]
        }
    )
    community_id: int = Field(ge=1, le=2**62)
    code: Code
    kind: LocationKind
    name: Name
    building_id: int | None = Field(default=None, ge=1, le=2**62)
    floor: int | None = Field(default=None, ge=-10, le=200)
    unit: Annotated[str, StringConstraints(max_length=20, pattern=r"^[^\x00]*$")] | None = None
    evacuation_route: bool = False


class LocationOut(BaseModel):
    id: int
    community_id: int
    building_id: int | None
    kind: str
    code: str
    name: str
    floor: int | None
    unit: str | None
