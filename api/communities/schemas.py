"""Community and building bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


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
