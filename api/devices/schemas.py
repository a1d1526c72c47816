"""Device and telemetry bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from devices.contract import Family
from devices.metadata import MAX_METADATA_BYTES, metadata_problem


class DeviceOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "uid": "smk-b3-0601",
                    "community_id": 1,
                    "family": "smoke_alarm",
                    "model": "JTY-GD-01",
                    "vendor": "ACME",
                    "install_date": "2024-05-01",
                    "retrofit": False,
                    "enabled": True,
                    "metadata": {},
                    "created_at": "2026-11-01T00:00:00Z",
                    "updated_at": "2026-11-01T00:00:00Z",
                    "location_id": 9,
                    "location_name": "3号楼 6层",
                    "floor": 6,
                    "unit": "1",
                    "building_id": 3,
                    "building_name": "3号楼",
                    "online": True,
                    "presence_status": "online",
                    "last_seen": "2026-11-20T08:00:55Z",
                    "last_seq": 10233,
                    "open_alarms": 0,
                }
            ]
        }
    )
    id: int
    uid: str
    community_id: int
    family: Family
    model: str | None
    vendor: str | None
    install_date: date | None
    retrofit: bool
    enabled: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    location_id: int | None
    location_name: str | None
    floor: int | None
    unit: str | None
    building_id: int | None
    building_name: str | None
    online: bool | None = Field(description="Null: the device has never reported")
    presence_status: str | None
    last_seen: datetime | None
    last_seq: int | None
    open_alarms: int


class MetricOut(BaseModel):
    metric: str = Field(examples=["port_temperature_c"])
    channel: int = Field(examples=[3], description="Port, channel or 0 for the whole device")
    last_ts: datetime
    last_value: float


class RawPoint(BaseModel):
    ts: datetime
    value: float


class Bucket(BaseModel):
    bucket: datetime = Field(description="Start of the hour")
    samples: int
    min_value: float | None
    max_value: float | None
    avg_value: float | None


class TelemetryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "device_id": 42,
                    "metric": "port_temperature_c",
                    "channel": 3,
                    "since": "2026-11-20T06:00:00Z",
                    "until": "2026-11-20T08:00:00Z",
                    "resolution": "raw",
                    "truncated": False,
                    "points": [{"ts": "2026-11-20T06:00:10Z", "value": 31.5}],
                    "buckets": [],
                }
            ]
        }
    )
    device_id: int
    metric: str
    channel: int
    since: datetime
    until: datetime
    resolution: Literal["raw", "hour"]
    truncated: bool = Field(description="Raw points were cut at the limit; ask for resolution=hour")
    points: list[RawPoint] = Field(default_factory=list)
    buckets: list[Bucket] = Field(default_factory=list)


class DeviceEventOut(BaseModel):
    ts: datetime
    seq: int
    kind: str
    code: str | None
    channel: int
    body: dict[str, Any]


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    problem = metadata_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_check_metadata),
    Field(description=f"Free-form details (JSON object, at most {MAX_METADATA_BYTES} bytes)"),
]
Uid = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ShortText = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00]*$")]
LocationCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# 房号 / 桩号 as written on site (0023_device_places.sql): 1–32 characters, no surrounding blanks
PlaceText = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[^\s\x00]([^\x00]*[^\s\x00])?$")
]


class DeviceCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "uid": "smk-b3-0601",
                    "community_id": 1,
                    "family": "smoke_alarm",
                    "location_code": "B03-F6",
                    "model": "JTY-GD-01",
                    "vendor": "ACME",
                }
            ]
        }
    )
    uid: Uid = Field(description="The device's MQTT username and topic id")
    community_id: int = Field(ge=1, le=2**62)
    family: Family
    location_code: LocationCode | None = Field(default=None, description="A location of the community")
    model: ShortText | None = None
    vendor: ShortText | None = None
    install_date: date | None = None
    retrofit: bool = False
    room: PlaceText | None = Field(default=None, description="Room (房号) of a household device, e.g. 601")
    post: PlaceText | None = Field(default=None, description="Post number (桩号) in its shed")
    metadata: Metadata = Field(default_factory=dict)
    enabled: bool = True


class DeviceUpdate(BaseModel):
    """Fields to change; omitted fields keep their value."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"location_code": "B03-F7", "enabled": True}]})
    community_id: int | None = Field(
        default=None,
        ge=1,
        le=2**62,
        description="Move the device to another community (admin only; audited). Its location is then "
        "`location_code` of the new community, or none.",
    )
    location_code: LocationCode | None = None
    model: ShortText | None = None
    vendor: ShortText | None = None
    install_date: date | None = None
    retrofit: bool | None = None
    metadata: Metadata | None = None
    enabled: bool | None = None
    room: PlaceText | None = None
    post: PlaceText | None = None


class ImportRowError(BaseModel):
    row: int = Field(description="Line in the file (the header is line 1)")
    column: str
    reason: str


class ImportReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rows_total": 120,
                    "imported": 119,
                    "inserted": 100,
                    "updated": 19,
                    "rejected_rows": [7],
                    "errors": [{"row": 7, "column": "family", "reason": "unknown family 'toaster'"}],
                }
            ]
        }
    )
    rows_total: int
    imported: int
    inserted: int
    updated: int
    rejected_rows: list[int]
    errors: list[ImportRowError]
