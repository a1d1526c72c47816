"""Request and response bodies of the indicator report, maintenance records and manual evidence."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Text = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]
Uid = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
AttachmentIds = Annotated[list[Annotated[int, Field(ge=1, le=2**62)]], Field(max_length=20)]


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_uid: Uid | None = Field(default=None, description="The device; omit for a whole system")
    family: (
        Literal[
            "ebike_charger", "smoke_alarm", "gas_alarm", "light", "elevator", "access_door", "cctv_recorder"
        ]
        | None
    ) = Field(default=None, description="Required without a device: the system the record covers")
    kind: Literal["inspection", "test", "maintenance"] = Field(description="巡检 / 检测 / 维保")
    performed_at: datetime = Field(examples=["2026-11-20T09:30:00+08:00"])
    performed_by: Text
    result: Literal["pass", "fail", "fixed"]
    notes: Annotated[str, StringConstraints(max_length=2000)] = ""
    attachments: AttachmentIds = Field(default_factory=list)


class RecordOut(BaseModel):
    id: int
    device_uid: str | None
    family: str
    kind: str
    performed_at: datetime
    performed_by: str
    result: str
    notes: str
    attachments: list[int]
    source: str
    recorded_by: str
    recorded_at: datetime


class ImportOut(BaseModel):
    rows_total: int
    imported: int
    errors: list[str]


class AttachmentOut(BaseModel):
    id: int
    sha256: str
    filename: str
    content_type: str
    size_bytes: int


class ManualIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheme: Literal["jiangsu_basic", "jiangsu_improve", "yantai", "green", "zhumadian"]
    item: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.+-]{1,32}$")] = Field(
        examples=["5", "26.basic"], description="Item number; Yantai levels as `<item>.<level>`"
    )
    verdict: Literal["met", "not_met", "partly"] | None = None
    finding: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    observed_on: date
    attachments: AttachmentIds = Field(default_factory=list)


class ManualOut(BaseModel):
    id: int
    scheme: str
    item: str
    verdict: str | None
    finding: str
    observed_on: date
    attachments: list[int]
    recorded_by: str
    recorded_at: datetime
